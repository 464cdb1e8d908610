# shellcheck shell=bash
# What the rendered k8s/ overlays hold (sourced by run.sh): the values that
# come from Terraform, the Secrets (none rendered), the ConfigMap's content
# hash, and the scripts the migration Job and the backup CronJob run, run here
# against the local PostgreSQL (127.0.0.1:5432, trust auth; loopback only).

REPO="$(cd "$SCRIPTS/.." && pwd)"

# render OVERLAY: kubectl kustomize k8s/overlays/OVERLAY into $TEST_TMP/<name>.yaml.
render() {
  needs_kustomize
  local out
  out="$TEST_TMP/$(tr '/' '_' <<<"$1").yaml"
  "$REAL_KUBECTL" kustomize "${K8S_UNDER_TEST:-$REPO/k8s}/overlays/$1" >"$out" || fail "kustomize failed on overlays/$1"
  printf '%s\n' "$out"
}

# py SCRIPT ARGS...: python with PyYAML (the check.sh venv has it).
py() {
  python3 -c 'import yaml' 2>/dev/null || skip "python3 has no yaml module"
  python3 - "$@"
}

# public_subnets ENV: the public subnet CIDRs Terraform makes for ENV, from
# its tfvars (vpc_cidr, availability_zones) and the vpc module's rule
# cidrsubnet(var.cidr, 4, index), comma-joined: what trusted_proxies outputs.
public_subnets() {
  local tfvars="$REPO/terraform/environments/$1.tfvars" module="$REPO/terraform/modules/vpc/main.tf"
  [[ -f "$tfvars" && -f "$module" ]] || skip "no terraform/environments/$1.tfvars"
  # The rule this computation mirrors must still be the module's.
  awk '/resource "aws_subnet" "public"/,/^}/' "$module" | grep -q 'cidr_block *= *cidrsubnet(var.cidr, 4, count.index)' ||
    fail "the vpc module no longer cuts public subnets with cidrsubnet(var.cidr, 4, count.index): update public_subnets()"
  py "$tfvars" <<'PY'
import ipaddress, re, sys
text = open(sys.argv[1]).read()
vpc = ipaddress.ip_network(re.search(r'^vpc_cidr\s*=\s*"([^"]+)"', text, re.M).group(1))
azs = re.findall(r'"([a-z]{2}-[a-z]+-\d[a-z])"', re.search(r'^availability_zones\s*=\s*\[([^\]]*)\]', text, re.M).group(1))
subnets = list(vpc.subnets(prefixlen_diff=4))[: len(azs)]
print(",".join(str(s) for s in subnets))
print(vpc)
PY
}

test_trusted_proxies_are_the_load_balancer_subnets_not_the_vpc() {
  local env rendered want vpc got
  for env in prod dev; do
    { read -r want; read -r vpc; } < <(public_subnets "$env")
    rendered="$(render "$env")"
    got="$(py "$rendered" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("usergraph-config-")]
assert len(cms) == 1, f"expected one usergraph-config-<hash>, got {[d['metadata']['name'] for d in cms]}"
print(cms[0]["data"]["TRUSTED_PROXIES"])
nps = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "usergraph-from-load-balancer"]
print(",".join(p["ipBlock"]["cidr"] for p in nps[0]["spec"]["ingress"][0]["from"]))
PY
)" || fail "$env: cannot read the render"
    assert_eq "$want" "$(sed -n 1p <<<"$got")" "$env: TRUSTED_PROXIES in the rendered ConfigMap"
    assert_not_contains "$(sed -n 1p <<<"$got")" "$vpc" "$env: TRUSTED_PROXIES"
    assert_eq "$want" "$(sed -n 2p <<<"$got")" "$env: ipBlocks of NetworkPolicy usergraph-from-load-balancer"
    echo "$env: TRUSTED_PROXIES=$want (VPC $vpc)"
  done
}

test_prod_render_has_no_secret_values() {
  local o
  for o in prod prod/migrate prod/platform; do
    py "$(render "$o")" "$o" <<'PY'
import re, sys, yaml
path, overlay = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
bad = []
for d in docs:
    kind, name = d["kind"], d["metadata"]["name"]
    if kind == "Secret":
        bad.append(f"Secret/{name} is rendered")
    for key in ("data", "stringData"):
        if kind == "Secret" and d.get(key):
            bad.append(f"Secret/{name} has {key}")
    if kind == "ExternalSecret":
        for k, v in (d["spec"].get("target", {}).get("template", {}).get("data") or {}).items():
            # Only templates of fetched values, no literal credential.
            creds = re.search(r"://([^:/@]*):([^@]*)@", v)
            if creds and "{{" not in creds.group(2):
                bad.append(f"ExternalSecret/{name} {k} has a literal password")
            if re.search(r"(SECRET|PASSWORD|TOKEN|KEY)", k) and not re.fullmatch(r"\s*\{\{[^}]*\}\}\s*", v):
                bad.append(f"ExternalSecret/{name} {k} is not a template of a fetched value")
    # Literal values in containers' environment that look like secrets.
    def walk(node):
        if isinstance(node, dict):
            if "name" in node and "value" in node and isinstance(node["value"], str):
                n, v = node["name"], node["value"]
                if re.search(r"(SECRET|PASSWORD|TOKEN|_KEY$)", n) or re.search(r"://[^:/@\s]+:[^@\s{]+@", v):
                    bad.append(f"{kind}/{name}: env {n} has a literal value")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(d.get("spec", {}))
    if kind == "ConfigMap":
        for k, v in (d.get("data") or {}).items():
            if re.search(r"(SECRET|PASSWORD|TOKEN$)", k) or re.search(r"://[^:/@\s]+:[^@\s]+@", v):
                bad.append(f"ConfigMap/{name} {k} looks like a secret")
if bad:
    sys.exit(f"{overlay}: " + "; ".join(bad))
print(f"{overlay}: {len(docs)} objects, no Secret and no secret value")
PY
  done
}

test_dev_render_has_no_placeholder_secrets() {
  local o
  for o in dev dev/migrate; do
    py "$(render "$o")" "$o" <<'PY'
import sys, yaml
path, overlay = sys.argv[1], sys.argv[2]
text = open(path).read()
docs = [d for d in yaml.safe_load_all(text) if d]
bad = [f"Secret/{d['metadata']['name']} is rendered" for d in docs if d["kind"] == "Secret"]
for word in ("change-me", "REPLACE_ME", "changeme"):
    if word in text:
        bad.append(f"placeholder {word!r} in the render")
for d in docs:
    if d["kind"] != "ExternalSecret":
        continue
    spec, name = d["spec"], d["metadata"]["name"]
    # Generated once in the cluster, never rewritten by a deploy.
    if spec.get("refreshPolicy") != "CreatedOnce":
        bad.append(f"ExternalSecret/{name} is not refreshPolicy CreatedOnce")
    if spec["target"].get("immutable") is not True or spec["target"].get("creationPolicy") != "Orphan":
        bad.append(f"ExternalSecret/{name} target must be immutable and orphaned")
    if not all("generatorRef" in (e.get("sourceRef") or {}) for e in spec.get("dataFrom", [])) or spec.get("data"):
        bad.append(f"ExternalSecret/{name} must take its values from generators only")
if overlay == "dev":
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ExternalSecret"}
    if names != {"usergraph-secrets", "usergraph-migrate-secrets"}:
        bad.append(f"dev ExternalSecrets are {sorted(names)}")
if bad:
    sys.exit(f"{overlay}: " + "; ".join(bad))
print(f"{overlay}: no Secret, no placeholder")
PY
  done
}

test_config_change_renames_the_configmap_in_app_and_job() {
  needs_kustomize
  local env before after
  cp -R "$REPO/k8s" "$TEST_TMP/k8s"
  export K8S_UNDER_TEST="$TEST_TMP/k8s"
  for env in dev prod; do
    names() { grep -ohE 'usergraph-config-[a-z0-9]{10}' "$(render "$env")" "$(render "$env/migrate")" | sort -u; }
    before="$(names)"
    [[ "$(wc -l <<<"$before")" == 1 ]] || fail "$env: app and Job name different ConfigMaps: $before"
    printf 'RATE_LIMIT_AUTH_PER_MINUTE=21\n' >>"$TEST_TMP/k8s/overlays/$env/config/$env.env"
    after="$(names)"
    [[ "$(wc -l <<<"$after")" == 1 ]] || fail "$env: after a change, app and Job name different ConfigMaps: $after"
    [[ "$after" != "$before" ]] || fail "$env: a config change kept the name $before (pods would not roll)"
    echo "$env: $before -> $after"
  done
}

test_cluster_objects_stay_out_of_the_deployed_overlays() {
  local o
  for o in dev dev/migrate prod prod/migrate; do
    py "$(render "$o")" "$o" <<'PY'
import sys, yaml
path, overlay = sys.argv[1], sys.argv[2]
cluster = {"Namespace", "StorageClass", "IngressClass", "IngressClassParams", "ClusterSecretStore",
           "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
docs = [d for d in yaml.safe_load_all(open(path)) if d]
bad = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
       if d["kind"] in cluster or d["metadata"].get("namespace") not in ("usergraph",)]
# The deploy role may edit the namespace usergraph only.
if bad:
    sys.exit(f"{overlay}: not deployable by the deploy role: {bad}")
sa = [d for d in docs if d["kind"] == "ServiceAccount"]
for d in sa:
    if any(k.startswith("eks.amazonaws.com/") for k in (d["metadata"].get("annotations") or {})):
        sys.exit(f"{overlay}: ServiceAccount/{d['metadata']['name']} has an IRSA annotation (Pod Identity is associated by Terraform)")
PY
  done
  py "$(render prod/platform)" <<'PY'
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
need = [("Namespace", "usergraph"), ("IngressClass", "alb"), ("IngressClassParams", "alb"), ("StorageClass", "gp3"),
        ("ClusterSecretStore", "aws-secrets-manager"), ("ConfigMap", "amazon-vpc-cni"), ("RoleBinding", "usergraph-deployers")]
missing = [f"{k}/{n}" for k, n in need if (k, n) not in docs]
if missing:
    sys.exit(f"prod/platform lacks {missing}")
if docs[("IngressClass", "alb")]["spec"]["controller"] != "eks.amazonaws.com/alb":
    sys.exit("IngressClass alb is not EKS Auto Mode's")
if docs[("StorageClass", "gp3")]["provisioner"] != "ebs.csi.eks.amazonaws.com":
    sys.exit("StorageClass gp3 is not EKS Auto Mode's")
PY
}

# The migration Job's psql step, taken from the render and run as the owner
# (the local superuser) for a throwaway database and app role.
test_migrate_job_creates_a_least_privilege_app_role() {
  if ! command -v psql >/dev/null || ! command -v setsid >/dev/null; then skip "no psql or setsid"; fi
  psql --no-psqlrc -X -q -tA -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1 || skip "no PostgreSQL at 127.0.0.1:5432"
  local script="$TEST_TMP/app-role.sh" owner out
  # Global: the EXIT trap runs after this function has returned.
  db="ug_role_test_$$_$RANDOM" role="ug_app_test_$$_$RANDOM"
  py "$(render prod/migrate)" "$script" <<'PY'
import sys, yaml
job = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Job"][0]
init = [c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "app-role"][0]
assert init["command"] == ["/bin/sh", "-c"], init["command"]
open(sys.argv[2], "w").write(init["args"][0])
PY
  sup() { psql --no-psqlrc -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
  owner="postgresql://postgres@127.0.0.1:5432/$db"
  trap 'sup -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; sup -d postgres -c "DROP ROLE IF EXISTS \"$role\"" >/dev/null 2>&1' EXIT
  sup -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  sup -d "$db" -c 'CREATE TABLE users (id int PRIMARY KEY, email text)' >/dev/null
  # Twice: the second run finds the role and only updates it.
  for _ in 1 2; do
    out="$(DATABASE_URL="$owner" APP_DATABASE_URL="postgres://$role:S3cretPassw0rd@127.0.0.1:5432/$db" \
      timeout 60 setsid -w sh "$script" </dev/null 2>&1)" || fail "app-role script failed: $out"
  done
  assert_contains "$out" "role $role is up to date"
  # Stored as a SCRAM verifier (never sent in clear), no attributes.
  assert_eq "t|f|f|f" "$(sup -d "$db" -c "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%', rolsuper, rolcreatedb, rolcreaterole FROM pg_authid WHERE rolname = '$role'")" "role attributes"
  # A table the owner creates later (as a migration would) is usable too.
  sup -d "$db" -c 'CREATE TABLE sessions (id int PRIMARY KEY)' >/dev/null
  app() { psql --no-psqlrc -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$role" -d "$db" "$@"; }
  app -c "INSERT INTO users VALUES (1, 'a@example.com'); UPDATE users SET email = 'b@example.com'; INSERT INTO sessions VALUES (1); DELETE FROM sessions" >/dev/null ||
    fail "the app role cannot read and write the tables"
  assert_eq 1 "$(app -c 'SELECT count(*) FROM users')" "rows the app role sees"
  ! app -c 'CREATE TABLE rogue (x int)' >/dev/null 2>&1 || fail "the app role can create tables"
  ! app -c 'DROP TABLE users' >/dev/null 2>&1 || fail "the app role can drop a table"
  ! app -c 'TRUNCATE users' >/dev/null 2>&1 || fail "the app role can truncate"
  ! app -c 'ALTER TABLE users ADD COLUMN x int' >/dev/null 2>&1 || fail "the app role can alter a table"
}

# The backup CronJob's two scripts, taken from the render, then
# restore-db.sh against what they uploaded (fake aws, local PostgreSQL).
test_backup_cronjob_dump_uploads_what_restore_db_restores() {
  command -v pg_dump >/dev/null || skip "no pg_dump"
  psql --no-psqlrc -X -q -tA -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1 || skip "no PostgreSQL at 127.0.0.1:5432"
  local out
  db="usergraph_bk_$$_$RANDOM" # global: used by the EXIT trap
  mkdir -p "$TEST_TMP/k8s"
  cp -R "$REPO/k8s/." "$TEST_TMP/k8s/"
  sed -i 's#^backup_bucket=.*#backup_bucket=ug-backups-test#' "$TEST_TMP/k8s/overlays/prod/terraform/terraform-outputs.env"
  export K8S_UNDER_TEST="$TEST_TMP/k8s"
  py "$(render prod)" "$TEST_TMP" <<'PY'
import sys, yaml
cj = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CronJob"][0]
pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
for c in pod["initContainers"] + pod["containers"]:
    script = c["args"][0].replace("/backup", sys.argv[2] + "/backup")
    env = "".join(f"export {e['name']}='{e['value']}'\n" for e in c.get("env", []) if "value" in e and e["name"] != "HOME")
    open(f"{sys.argv[2]}/{c['name']}.sh", "w").write(env + script)
PY
  grep -q "export BACKUP_BUCKET='ug-backups-test'" "$TEST_TMP/upload.sh" || fail "the bucket from terraform-outputs.env is not in the CronJob"
  grep -q "export BACKUP_ENV='prod'" "$TEST_TMP/dump.sh" || fail "BACKUP_ENV is not prod"
  mkdir -p "$TEST_TMP/backup"
  psql --no-psqlrc -X -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  trap 'psql --no-psqlrc -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1' EXIT
  psql --no-psqlrc -X -q -h 127.0.0.1 -U postgres -d "$db" -c \
    "CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 42) g" >/dev/null
  DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$db" sh "$TEST_TMP/dump.sh" >/dev/null || fail "the dump script failed"
  use_fakes aws
  sh "$TEST_TMP/upload.sh" >/dev/null || fail "the upload script failed"
  assert_contains "$(cat "$FAKE_LOG")" "aws s3 cp --only-show-errors $TEST_TMP/backup/prod-$db-"
  assert_contains "$(cat "$FAKE_LOG")" "s3://ug-backups-test/db-backups/prod/prod-$db-"
  psql --no-psqlrc -X -q -h 127.0.0.1 -U postgres -d "$db" -c 'DROP TABLE users' >/dev/null
  out="$("$SCRIPTS/restore-db.sh" --yes s3://ug-backups-test/db-backups/prod/ "postgresql://postgres@127.0.0.1:5432/$db" 2>&1)" || fail "restore failed: $out"
  assert_contains "$out" "checksum"
  assert_eq 42 "$(psql --no-psqlrc -X -q -tA -h 127.0.0.1 -U postgres -d "$db" -c 'SELECT count(*) FROM users')" "rows restored from the CronJob's dump"
}

# Mail: prod's MAILER is SES over SMTP from Secrets Manager (the
# ExternalSecret usergraph-secrets, usergraph/prod/mailer property MAILER),
# never a ConfigMap value that could shadow it or fall back to the log; dev
# says what it does with mail in its rendered config (MAILER=log, dev only).
test_mail_is_explicit_in_both_environments() {
  py "$(render prod)" "$(render dev)" <<'PY'
import re, sys, yaml
prod = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dev = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
bad = []

def config(docs):
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("usergraph-config-")]
    return cms[0].get("data") or {} if len(cms) == 1 else {}

def app_secret(docs):
    for d in docs:
        if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == "usergraph-secrets":
            return d["spec"]
    return {}

es = app_secret(prod)
tmpl = (es.get("target", {}).get("template", {}).get("data") or {}).get("MAILER")
m = re.fullmatch(r"\s*\{\{\s*\.(\w+)\s*\}\}\s*", tmpl or "")
if not m:
    bad.append(f"prod: ExternalSecret usergraph-secrets has no MAILER template of a fetched value (got {tmpl!r})")
else:
    refs = [e["remoteRef"] for e in es.get("data") or [] if e.get("secretKey") == m.group(1)]
    if refs != [{"key": "usergraph/prod/mailer", "property": "MAILER"}]:
        bad.append(f"prod: MAILER must come from usergraph/prod/mailer property MAILER, not {refs}")
pc = config(prod)
if "MAILER" in pc:
    bad.append(f"prod: ConfigMap usergraph-config sets MAILER={pc['MAILER']!r} (a secret; it must come from usergraph-secrets)")
if "@localhost" in pc.get("MAIL_FROM", "@localhost"):
    bad.append("prod: MAIL_FROM is unset or a localhost address: SES refuses it and every mail is dead")
dc = config(dev)
if not re.fullmatch(r"log|smtps?://[a-z0-9.-]+(:\d+)?(\?.*)?", dc.get("MAILER", "")):
    bad.append(f"dev: the rendered ConfigMap must set MAILER explicitly (log, or an in-cluster catcher without credentials), got {dc.get('MAILER')!r}")
if "MAILER" in (app_secret(dev).get("target", {}).get("template", {}).get("data") or {}):
    bad.append("dev: MAILER is set in the Secret too, which would override the ConfigMap")
if bad:
    sys.exit("; ".join(bad))
print(f"prod: MAILER from usergraph/prod/mailer, MAIL_FROM={pc['MAIL_FROM']}; dev: MAILER={dc['MAILER']}")
PY
}

# DNS: EKS Auto Mode runs its resolver on each node (no CoreDNS pods), so an
# egress rule that names kube-dns pods admits nothing. Every usergraph pod
# (server, migration Job, backup CronJob) must reach port 53 by port alone.
test_usergraph_pods_may_resolve_names_on_auto_mode() {
  local o
  for o in prod dev prod/migrate dev/migrate; do
    # The policies live in the app overlay; a migrate render is checked against them.
    py "$(render "$o")" "$o" "$(render "${o%%/*}")" <<'PY'
import sys, yaml
path, overlay, app = sys.argv[1], sys.argv[2], sys.argv[3]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
policies = [d for d in yaml.safe_load_all(open(app)) if d and d["kind"] == "NetworkPolicy"]

def pod_labels(d):
    spec = d.get("spec") or {}
    if d["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}

def selects(pol, labels):
    want = (pol["spec"].get("podSelector") or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in want.items())

bad = []
for d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
        continue
    labels = pod_labels(d)
    if labels.get("app.kubernetes.io/name") != "usergraph":
        continue
    mine = [p for p in policies if "Egress" in p["spec"].get("policyTypes", []) and selects(p, labels)]
    if not mine:
        continue
    ok = any(
        not rule.get("to") or all("ipBlock" in peer and peer["ipBlock"].get("cidr") == "0.0.0.0/0" and not peer["ipBlock"].get("except") for peer in rule["to"])
        for p in mine for rule in p["spec"].get("egress") or []
        if any(port.get("port") == 53 and port.get("protocol", "TCP") == "UDP" for port in rule.get("ports") or [])
    )
    if not ok:
        bad.append(f"{d['kind']}/{d['metadata']['name']}: no egress rule admits DNS (UDP 53) by port alone")
if bad:
    sys.exit(f"{overlay}: " + "; ".join(bad))
print(f"{overlay}: every usergraph pod may resolve names")
PY
  done
}
