# shellcheck shell=bash
# The delivery pipeline as written (sourced by run.sh): the Dockerfile
# cross-compiles, and the workflow builds both architectures, never lets
# another run cancel a deploy, deploys prod from full releases only, and
# deploys a signed digest after verifying its signature.

PIPELINE_REPO="$(cd "$SCRIPTS/.." && pwd)"

test_dockerfile_cross_compiles_without_running_target_binaries() {
  python3 - "$PIPELINE_REPO/Dockerfile" <<'PY'
import re, sys
lines, stages, cur = open(sys.argv[1]).read().replace("\\\n", " ").splitlines(), [], None
for line in lines:
    m = re.match(r"\s*FROM\s+(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        cur = {"platform": m.group(1), "base": m.group(2), "name": (m.group(3) or "").lower(), "runs": []}
        stages.append(cur)
    elif cur and re.match(r"\s*RUN\s", line, re.I):
        cur["runs"].append(line.strip())
names = {s["name"]: s for s in stages if s["name"]}
def build_platform(stage):
    # A stage runs on the build platform when it, or the stage it starts
    # from, says --platform=$BUILDPLATFORM.
    while stage:
        if stage["platform"] in ("$BUILDPLATFORM", "${BUILDPLATFORM}"):
            return True
        stage = names.get(stage["base"].lower())
    return False
bad = []
final = stages[-1]
for s in stages[:-1]:
    if not build_platform(s):
        bad.append(f"stage {s['name'] or s['base']} does not run on $BUILDPLATFORM")
if final["runs"]:
    bad.append(f"the runtime stage RUNs {final['runs']}")
if final["platform"]:
    bad.append("the runtime stage must be of the target platform (no --platform)")
builds = [r for s in stages[:-1] for r in s["runs"] if re.search(r"cargo (zig)?build|cargo chef cook", r)]
if not builds or not all("--target" in r and "zigbuild" in r for r in builds):
    bad.append(f"every compile in the builder must cross-compile with cargo-zigbuild --target: {builds}")
# Nothing built for the target is executed in a build stage.
for s in stages[:-1]:
    for r in s["runs"]:
        if re.search(r"target/[^ ]*/release/usergraph\b(?!\s*/)", r) and not re.search(r"(install|cp)\s[^;&]*target/", r):
            bad.append(f"stage {s['name']} runs the target binary: {r}")
if bad:
    sys.exit("; ".join(bad))
print(f"{len(stages)} stages; builder on $BUILDPLATFORM, runtime RUNs nothing")
PY
}

test_workflow_builds_scans_signs_and_deploys_safely() {
  python3 -c 'import yaml' 2>/dev/null || skip "python3 has no yaml module"
  python3 - "$PIPELINE_REPO/.github/workflows/ci-cd.yml" "$PIPELINE_REPO/scripts/deploy.sh" "$PIPELINE_REPO/terraform/modules/ci_runner/variables.tf" <<'PY'
import re, sys, yaml
wf = yaml.safe_load(open(sys.argv[1]))
jobs, bad = wf["jobs"], []
# A deploy job's timeout must outlast deploy.sh's own waits (two
# ExternalSecrets and two dev workloads, the migration Job, the rollout and
# its undo), then rollback.sh after a failed smoke test, with 5 minutes for
# the rest; and end before the CodeBuild runner's own build timeout.
deploy_sh = open(sys.argv[2]).read()
def secs(var):
    v = re.search(var + r'="\$\{' + var + r':-(\d+)s\}"', deploy_sh)
    return int(v.group(1)) if v else 10**6
worst = (4 * secs("PREREQ_TIMEOUT") + secs("MIGRATE_TIMEOUT") + 3 * secs("ROLLOUT_TIMEOUT")) / 60 + 5
runner = re.search(r'variable "build_timeout_minutes".*?default\s*=\s*(\d+)', open(sys.argv[3]).read(), re.S)
runner = int(runner.group(1)) if runner else 60
def steps_text(job):
    return "\n".join(str(s.get("run", "")) + " " + str(s.get("uses", "")) for s in job.get("steps", []))
# Workflow concurrency: a push or release run is its own group.
group = wf.get("concurrency", {}).get("group", "")
if "github.sha" in group or "github.run_id" not in group:
    bad.append(f"top-level concurrency group {group!r} lets a run cancel another push or release run")
image = steps_text(jobs["image"])
if "docker buildx build --platform linux/amd64,linux/arm64" not in image:
    bad.append("the image job does not run docker buildx build --platform linux/amd64,linux/arm64")
if "setup-qemu" in image:
    bad.append("the image job sets up QEMU (the Dockerfile cross-compiles)")
scans = [s for s in jobs["image"]["steps"] if "trivy" in str(s.get("uses", ""))]
if sorted(s.get("with", {}).get("image-ref") for s in scans) != ["usergraph:scan-amd64", "usergraph:scan-arm64"]:
    bad.append("both architectures must be scanned")
if "cosign sign" not in image or jobs["image"].get("permissions", {}).get("id-token") != "write":
    bad.append("the pushed digest is not signed keyless")
for name, env in (("deploy-dev", "dev"), ("deploy-prod", "prod")):
    job = jobs[name]
    conc = job.get("concurrency") or {}
    if not conc.get("group", "").startswith("deploy-") or conc.get("cancel-in-progress") is not False:
        bad.append(f"{name}: needs a per-environment concurrency group without cancel-in-progress")
    text = [str(s.get("run", "")) for s in job["steps"]]
    verify = next((i for i, t in enumerate(text) if "cosign verify" in t), None)
    deploy = next((i for i, t in enumerate(text) if "scripts/deploy.sh" in t), None)
    if verify is None or deploy is None or verify > deploy:
        bad.append(f"{name}: the signature must be verified before scripts/deploy.sh")
    elif not re.search(r'deploy\.sh .*"\$DIGEST"', text[deploy]):
        bad.append(f"{name}: deploy.sh must get the digest, not a tag")
    t = job.get("timeout-minutes", 360)
    if not worst <= t < runner:
        bad.append(f"{name}: timeout-minutes {t} must cover deploy.sh's worst case ({worst:.0f} min) and stay under the runner's {runner} min")
    if not str(job.get("runs-on", "")).startswith(f"codebuild-usergraph-{env}-gha-runner-"):
        bad.append(f"{name}: must run on the CodeBuild runner inside the VPC")
    if "configure-aws-credentials" not in steps_text(job) or job.get("permissions", {}).get("id-token") != "write":
        bad.append(f"{name}: must assume the deploy role through OIDC")
cond = jobs["deploy-prod"].get("if", "")
if "prerelease == false" not in cond:
    bad.append(f"deploy-prod runs for pre-releases: if: {cond}")
if bad:
    sys.exit("; ".join(bad))
print("workflow: cross-built, both scanned, signed, verified, deployed by digest, never cancelled")
PY
}
