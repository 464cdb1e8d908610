#!/usr/bin/env python3
"""Check the seam between terraform/, k8s/ and the docs: the walk-through
table of docs/platform.md against the rendered manifests and the Terraform.

The table (the first Markdown table whose header has the columns Object,
Created by, Used by, AWS access and Env) names every object a manifest
relies on, what creates it and what uses it, with backticked tokens:

  k8s:Kind/name, k8s:Kind/namespace/name
                     a Kubernetes object. In "Used by" a suffix @dev / @prod
                     (joined with +) limits the environments, and a leading ~
                     means "relies on it without naming it" (existence only)
  manifest           (Created by) the object itself is in the rendered
                     manifests of every environment of the row
  tf:ADDRESS         a resource or data source of the Terraform, e.g.
                     tf:module.eks.aws_eks_cluster.this
  tf-output:NAME     a root output; as the Object, its value must reach the
                     consumers (or, before the first apply, the placeholder
                     REPLACE-WITH-terraform-output-NAME)
  tf-var:NAME        a root variable
  sm:NAME            a Secrets Manager secret name; <env> and <project> are
                     substituted
  doc:PATH, file:PATH
                     a repository file that creates or uses the object by
                     name (an install step, the workflow)
  other:NAME         any other named thing (provisioner:, controller:, api:,
                     rbac-group:, runner:): consumers must name it

AWS access is pod-identity (Terraform associates an IAM role with this
ServiceAccount: EKS Pod Identity) or none (no role at all, and no IRSA
annotation); Env lists the environments (dev, prod) the row holds in.

Checks, per row and environment: every k8s: token exists in that
environment's render (top-level kustomizations under k8s/ whose path has the
environment as a segment); a `manifest` object is rendered; each consumer
names the object; every tf:/tf-output:/tf-var: token exists in the Terraform;
AWS access matches. Then coverage: every IngressClass, StorageClass,
ServiceAccount, Secret, external ConfigMap, secret store, generator,
Secrets Manager secret (an ExternalSecret's remoteRef key) and namespace the
renders reference, and the metrics API when an HPA scales on
resources, must be a row.

With --tf-plan ENV=PLAN.json (terraform show -json of a plan; check.sh's
terraform-mock step passes them) the values Terraform resolves are checked
too: the Secrets Manager names, the Pod Identity associations, the deploy
role's RBAC group and namespace, and each known output value against its
consumers (TRUSTED_PROXIES, region, backup prefix, the API host).

Usage: check-seam.py [--root DIR] [--doc docs/platform.md]
                     [--render ENV=FILE.yaml ...] [--tf-plan ENV=PLAN.json ...]
Exit status: 0 = consistent, 1 = findings (each printed), 2 = usage or a
file that cannot be read or rendered.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TOKEN_RE = re.compile(r"`([^`]+)`")
# Backticked text that is not a token (e.g. `--create-namespace`) is prose.
TOKEN_LIKE = re.compile(r"^(manifest|~?[a-z][a-z0-9-]*:\S.*)$")
KINDS = {"manifest", "k8s", "tf", "tf-output", "tf-var", "sm", "doc", "file",
         "controller", "provisioner", "api", "rbac-group", "runner"}
K8S_RE = re.compile(r"^(~?)k8s:([A-Za-z]+)/([^@]+?)(?:@([a-z+]+))?$")
HASHED = r"-[a-z0-9]{10}"  # kustomize's content-hash suffix
IRSA = "eks.amazonaws.com/role-arn"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}

# What an output looks like when its value cannot be resolved (no plan, or
# known only after apply): the placeholder, or a value of the right shape.
OUTPUT_SHAPES = {
    "certificate_arn": r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+",
    "db_owner_secret_arn": r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+",
    "backup_bucket": r"{project}-{env}-backups-\d{{12}}",
    "deploy_role_arn": r"arn:aws[a-z-]*:iam::\d{12}:role/.+",
}


@dataclass
class Token:
    kind: str          # k8s, manifest, tf, tf-output, tf-var, sm, doc, file, or any other prefix
    value: str
    implicit: bool = False
    envs: set[str] | None = None
    k8s: tuple[str, str | None, str] | None = None  # kind, namespace, name

    def __str__(self) -> str:
        return self.value if self.kind == "manifest" else f"{self.kind}:{self.value}"


@dataclass
class Row:
    line: int
    obj: Token
    created: list[Token]
    used: list[Token]
    access: str
    envs: list[str]


@dataclass
class Finder:
    errors: list[str] = field(default_factory=list)

    def err(self, msg: str) -> None:
        self.errors.append(msg)


# ------------------------------------------------------------------ table ----

def parse_token(text: str) -> Token | None:
    text = text.strip()
    if text == "manifest":
        return Token("manifest", "manifest")
    m = K8S_RE.match(text)
    if m:
        implicit, kind, path, envs = m.groups()
        parts = path.split("/")
        if len(parts) == 1:
            ref = (kind, None, parts[0])
        elif len(parts) == 2:
            ref = (kind, parts[0], parts[1])
        else:
            return None
        return Token("k8s", f"{kind}/{path}", bool(implicit), set(envs.split("+")) if envs else None, ref)
    m = re.match(r"^(~?)([a-z][a-z0-9-]*):(.+)$", text)
    if m:
        return Token(m.group(2), m.group(3).strip(), bool(m.group(1)))
    return None


def parse_table(doc: Path, fail: Finder) -> list[Row]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip().lower() for c in line.strip().strip("|").split("|")]
        if {"object", "created by", "used by", "aws access", "env"} <= set(cells):
            header = cells
            start = i + 2  # skip the |---| line
            break
    else:
        fail.err(f"{doc}: no table with the columns Object | Created by | Used by | AWS access | Env")
        return []
    col = {name: header.index(name) for name in ("object", "created by", "used by", "aws access", "env")}
    rows: list[Row] = []
    for no in range(start, len(lines)):
        line = lines[no].strip()
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < len(header):
            fail.err(f"{doc}:{no + 1}: row has {len(cells)} cells, the header {len(header)}")
            continue

        def tokens(cell: str) -> list[Token]:
            out = []
            for t in TOKEN_RE.findall(cells[col[cell]]):
                if not TOKEN_LIKE.match(t) or re.match(r"^[a-z]+://", t):
                    continue
                tok = parse_token(t)
                if tok is not None and tok.kind not in KINDS:
                    fail.err(f"{doc}:{no + 1}: unknown token kind {tok.kind!r} in `{t}` (known: {', '.join(sorted(KINDS))})")
                    continue
                if tok is None:
                    fail.err(f"{doc}:{no + 1}: cannot read token `{t}` in column {cell}")
                else:
                    out.append(tok)
            return out

        objs = tokens("object")
        if len(objs) != 1:
            fail.err(f"{doc}:{no + 1}: the Object column must hold exactly one token, found {len(objs)}")
            continue
        created, used = tokens("created by"), tokens("used by")
        if not created:
            fail.err(f"{doc}:{no + 1}: {objs[0]}: nothing in Created by")
        if not used:
            fail.err(f"{doc}:{no + 1}: {objs[0]}: nothing in Used by")
        access = re.sub(r"[`*]", "", cells[col["aws access"]]).strip().lower()
        envs = [e.strip() for e in re.sub(r"[`*]", "", cells[col["env"]]).split(",") if e.strip()]
        rows.append(Row(no + 1, objs[0], created, used, access, envs))
    if not rows:
        fail.err(f"{doc}: the table has no rows")
    return rows


# ---------------------------------------------------------------- renders ----

def kustomizations(k8s: Path) -> list[Path]:
    """Kustomization directories nothing else includes (what gets applied), without components."""
    dirs, referenced = [], set()
    for k in sorted(k8s.rglob("kustomization.yaml")):
        d = k.parent.resolve()
        data = yaml.safe_load(k.read_text(encoding="utf-8")) or {}
        if data.get("kind") == "Component":
            referenced.add(d)
        dirs.append(d)
        for key in ("resources", "components", "bases"):
            for entry in data.get(key) or []:
                if isinstance(entry, str) and "://" not in entry:
                    target = (d / entry).resolve()
                    if target.is_dir():
                        referenced.add(target)
    return [d for d in dirs if d not in referenced]


def render(dirs: list[Path], envs: list[str], root: Path, fail: Finder) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {e: [] for e in envs}
    for d in dirs:
        rel = d.relative_to(root)
        mine = [e for e in envs if e in rel.parts] or envs
        try:
            text = subprocess.run(["kubectl", "kustomize", str(d)], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"check-seam: kubectl kustomize {rel} failed: {getattr(exc, 'stderr', exc)}", file=sys.stderr)
            sys.exit(2)
        docs = [x for x in yaml.safe_load_all(text) if isinstance(x, dict)]
        for e in mine:
            out[e].extend(docs)
        print(f"   rendered {rel} ({len(docs)} objects) for {', '.join(mine)}")
    return out


def key_of(doc: dict) -> tuple[str, str | None, str]:
    md = doc.get("metadata") or {}
    return doc.get("kind", ""), md.get("namespace"), md.get("name", "")


def name_matches(actual: str, want: str) -> bool:
    return actual == want or re.fullmatch(re.escape(want) + HASHED, actual) is not None


def find(objs: list[dict], ref: tuple[str, str | None, str]) -> list[dict]:
    kind, ns, name = ref
    return [o for o in objs if key_of(o)[0] == kind and name_matches(key_of(o)[2], name)
            and (ns is None or key_of(o)[1] in (ns, None))]


def scalars(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in scalars(k) + scalars(v)]
    if isinstance(node, list):
        return [s for v in node for s in scalars(v)]
    return [str(node)] if node is not None else []


# -------------------------------------------------------------- terraform ----

@dataclass
class Terraform:
    root: Path
    blocks: dict[Path, set[str]] = field(default_factory=dict)   # dir -> {"TYPE.NAME", "data.TYPE.NAME"}
    modules: dict[tuple[Path, str], Path] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    variables: dict[str, object] = field(default_factory=dict)   # root variable -> default (None if none)
    tfvars: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> "Terraform":
        tf = cls(root.resolve())
        block = re.compile(r'^(resource|data|module|output|variable)\s+"([^"]+)"(?:\s+"([^"]+)")?\s*\{', re.M)
        for f in sorted(tf.root.rglob("*.tf")):
            if ".terraform" in f.parts:
                continue
            d = f.parent
            text = f.read_text(encoding="utf-8")
            for kind, a, b in block.findall(text):
                if kind == "resource":
                    tf.blocks.setdefault(d, set()).add(f"{a}.{b}")
                elif kind == "data":
                    tf.blocks.setdefault(d, set()).add(f"data.{a}.{b}")
                elif kind == "module":
                    body = text[text.index(f'module "{a}"'):]
                    src = re.search(r'source\s*=\s*"([^"]+)"', body)
                    if src:
                        tf.modules[(d, a)] = (d / src.group(1)).resolve()
                elif d == tf.root and kind == "output":
                    tf.outputs.add(a)
                elif d == tf.root and kind == "variable":
                    body = text[text.index(f'variable "{a}"'):]
                    body = body[:body.index("\n}\n") if "\n}\n" in body else len(body)]
                    m = re.search(r'^\s*default\s*=\s*(.+)$', body, re.M)
                    tf.variables[a] = _literal(m.group(1)) if m else None
        for f in sorted((tf.root / "environments").glob("*.tfvars")):
            vals = {}
            for m in re.finditer(r'^\s*([a-z_][a-z0-9_]*)\s*=\s*(.+?)\s*(?:#.*)?$', f.read_text(encoding="utf-8"), re.M):
                vals[m.group(1)] = _literal(m.group(2))
            tf.tfvars[f.stem] = vals
        return tf

    def has(self, address: str) -> bool:
        parts = address.split(".")
        d = self.root
        while parts[:1] == ["module"] and len(parts) > 2:
            d = self.modules.get((d, parts[1]))
            if d is None:
                return False
            parts = parts[2:]
        return ".".join(parts) in self.blocks.get(d, set())

    def module_text(self, address: str) -> str:
        """The .tf text of the directory that holds ADDRESS."""
        parts, d = address.split("."), self.root
        while parts[:1] == ["module"] and len(parts) > 2:
            d = self.modules.get((d, parts[1]))
            if d is None:
                return ""
            parts = parts[2:]
        return "\n".join(f.read_text(encoding="utf-8") for f in sorted(d.glob("*.tf")))

    def var(self, env: str, name: str):
        return self.tfvars.get(env, {}).get(name, self.variables.get(name))


def _literal(text: str):
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if text.startswith("["):
        return re.findall(r'"([^"]*)"', text)
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def static_outputs(tf: Terraform, env: str) -> dict[str, object]:
    """Outputs whose value follows from the tfvars alone (mirrors the Terraform
    expressions; the plan check confirms them with Terraform itself)."""
    out: dict[str, object] = {}
    cidr, azs = tf.var(env, "vpc_cidr"), tf.var(env, "availability_zones")
    if isinstance(cidr, str) and isinstance(azs, list):
        subnets = list(ipaddress.ip_network(cidr).subnets(new_prefix=ipaddress.ip_network(cidr).prefixlen + 4))
        out["trusted_proxies"] = ",".join(str(subnets[i]) for i in range(len(azs)))
        out["private_subnet_cidrs"] = [str(subnets[i + 8]) for i in range(len(azs))]
    for name, var in (("region", "aws_region"), ("backup_prefix", "backup_prefix"), ("api_domain_name", "api_domain_name")):
        if isinstance(tf.var(env, var), str):
            out[name] = tf.var(env, var)
    return out


def plan_outputs(plan: dict) -> dict[str, object]:
    """Outputs the plan knows, except those embedding the planning account's
    id (a mock plan's bucket names and ARNs are not the real ones)."""
    accounts = {r.get("values", {}).get("account_id") for r in state_data(plan, "aws_caller_identity")} - {None, ""}
    out = {}
    for name, change in (plan.get("output_changes") or {}).items():
        if not change.get("after_unknown") and change.get("after") is not None:
            if not any(a in json.dumps(change["after"]) for a in accounts):
                out[name] = change["after"]
    return out


def state_data(plan: dict, rtype: str) -> list[dict]:
    found = []

    def walk(module: dict) -> None:
        for r in module.get("resources") or []:
            if r.get("type") == rtype and r.get("mode") == "data":
                found.append(r)
        for child in module.get("child_modules") or []:
            walk(child)

    walk(((plan.get("prior_state") or {}).get("values") or {}).get("root_module") or {})
    return found


def plan_resources(plan: dict, rtype: str) -> list[dict]:
    found = []

    def walk(module: dict) -> None:
        for r in module.get("resources") or []:
            if r.get("type") == rtype and r.get("mode") == "managed":
                found.append(r.get("values") or {})
        for child in module.get("child_modules") or []:
            walk(child)

    walk((plan.get("planned_values") or {}).get("root_module") or {})
    return found


# ----------------------------------------------------------------- checks ----

def subst(value: str, env: str, project: str) -> str:
    return value.replace("<env>", env).replace("<project>", project)


def consumer_mentions(consumer: dict, want: object) -> bool:
    values = scalars(consumer)
    if isinstance(want, list):
        return all(any(name_matches(v, str(w)) for v in values) for w in want)
    want = str(want)
    if any(name_matches(v, want) for v in values):
        return True
    parts = [p for p in want.split(",") if p]
    return len(parts) > 1 and all(p in values for p in parts)


def check(args, fail: Finder) -> None:
    root = Path(args.root).resolve()
    tf = Terraform.load(root / "terraform")
    envs = sorted(tf.tfvars) or ["dev", "prod"]
    project = str(tf.variables.get("project") or "usergraph")
    rows = parse_table(root / args.doc, fail)

    renders: dict[str, list[dict]] = {}
    if args.render:
        for item in args.render:
            env, _, path = item.partition("=")
            renders.setdefault(env, []).extend(x for x in yaml.safe_load_all(Path(path).read_text()) if isinstance(x, dict))
        envs = sorted(renders)
    else:
        renders = render(kustomizations(root / "k8s"), envs, root, fail)
    plans: dict[str, dict] = {}
    for item in args.tf_plan or []:
        env, _, path = item.partition("=")
        plans[env] = json.loads(Path(path).read_text())

    def where(row: Row) -> str:
        return f"{args.doc}:{row.line}: {row.obj}"

    listed: set[tuple[str, str]] = set()
    for row in rows:
        obj = row.obj
        if obj.k8s:
            listed.add((obj.k8s[0], obj.k8s[2]))
        elif obj.kind != "k8s":
            listed.add((obj.kind, obj.value))
        for e in row.envs:
            if e not in renders:
                fail.err(f"{where(row)}: unknown environment {e!r} (renders: {', '.join(renders)})")
        # Terraform and repository references, environment-independent.
        for tok in [obj, *row.created, *row.used]:
            if tok.kind == "tf" and not tf.has(tok.value):
                fail.err(f"{where(row)}: tf:{tok.value} is not a resource or data source of terraform/")
            elif tok.kind == "tf-output" and tok.value not in tf.outputs:
                fail.err(f"{where(row)}: tf-output:{tok.value} is not an output of terraform/")
            elif tok.kind == "tf-var" and tok.value not in tf.variables:
                fail.err(f"{where(row)}: tf-var:{tok.value} is not a variable of terraform/")
            elif tok.kind in ("doc", "file"):
                path = root / tok.value
                if not path.is_file():
                    fail.err(f"{where(row)}: {tok} does not exist")
                elif tok is not obj:
                    text = path.read_text(encoding="utf-8")
                    names = {subst(object_name(obj), e, project) for e in row.envs} if obj.kind in ("sm", "runner") \
                        else {object_name(obj)}
                    if obj.kind == "tf-output":
                        names = {obj.value}
                    for n in sorted(names):
                        if n not in text:
                            fail.err(f"{where(row)}: {tok} never names {n}")
        if obj.kind == "sm":
            creators = [t for t in row.created if t.kind == "tf"]
            if not creators:
                fail.err(f"{where(row)}: a Secrets Manager secret must be created by a tf: resource")
            # The name's own part (after <project>/<env>/) is a literal of the creating module.
            leaf = obj.value.rsplit("/", 1)[-1]
            if creators and "<" not in leaf and not any(f'"{leaf}"' in tf.module_text(t.value) for t in creators):
                fail.err(f"{where(row)}: no module of {', '.join(str(t) for t in creators)} spells \"{leaf}\"")

        for env in row.envs:
            objs = renders.get(env, [])
            known = dict(static_outputs(tf, env))
            if env in plans:
                known.update(plan_outputs(plans[env]))
            # the object itself
            if obj.k8s and any(t.kind == "manifest" for t in row.created) and not find(objs, obj.k8s):
                fail.err(f"{where(row)}: [{env}] created by a manifest, but not in the {env} render")
            for tok in row.created:
                if tok.k8s and not find(objs, tok.k8s):
                    fail.err(f"{where(row)}: [{env}] creator {tok} is not in the {env} render")
            # its consumers
            for tok in row.used:
                if not tok.k8s or (tok.envs and env not in tok.envs):
                    continue
                found = find(objs, tok.k8s)
                if not found:
                    fail.err(f"{where(row)}: [{env}] consumer {tok} is not in the {env} render")
                    continue
                if tok.implicit:
                    continue
                if obj.kind == "tf-output":
                    check_output_consumer(row, tok, found[0], env, known, project, fail, where(row))
                elif obj.kind not in ("api",):
                    want = subst(object_name(obj), env, project)
                    if not consumer_mentions(found[0], want):
                        fail.err(f"{where(row)}: [{env}] {tok} does not name {want}")
            # AWS access of a ServiceAccount
            if obj.k8s and obj.k8s[0] == "ServiceAccount":
                check_access(row, env, objs, tf, plans.get(env), fail, where(row))
            # values Terraform resolves
            if env in plans:
                check_plan_row(row, env, plans[env], project, fail, where(row))

    coverage(renders, listed, fail, project)


def object_name(tok: Token) -> str:
    return tok.k8s[2] if tok.k8s else tok.value


def check_output_consumer(row, tok, consumer, env, known, project, fail, where) -> None:
    name = row.obj.value
    placeholder = f"REPLACE-WITH-terraform-output-{name}"
    values = scalars(consumer)
    if name in known:
        if not consumer_mentions(consumer, known[name]):
            held = [v for v in values if placeholder in v]
            fail.err(f"{where}: [{env}] {tok} does not hold the value of output {name} "
                     f"({known[name]!r}{'; it still holds the placeholder' if held else ''})")
        return
    if any(placeholder in v for v in values):
        return
    shape = OUTPUT_SHAPES.get(name)
    if shape and any(re.fullmatch(shape.format(env=env, project=project), v) for v in values):
        return
    fail.err(f"{where}: [{env}] {tok} holds neither the placeholder {placeholder} nor a value of output {name}")


def check_access(row, env, objs, tf, plan, fail, where) -> None:
    _, ns, name = row.obj.k8s
    for sa in find(objs, row.obj.k8s):
        annotations = (sa.get("metadata") or {}).get("annotations") or {}
        if IRSA in annotations:
            fail.err(f"{where}: [{env}] carries an IRSA annotation ({IRSA}); roles come from EKS Pod Identity only")
    if row.access not in ("pod-identity", "none"):
        fail.err(f"{where}: AWS access must be pod-identity or none for a ServiceAccount, not {row.access!r}")
        return
    if plan is not None:
        pairs = {(a.get("namespace"), a.get("service_account")) for a in plan_resources(plan, "aws_eks_pod_identity_association")}
        has = (ns, name) in pairs
        if row.access == "pod-identity" and not has:
            fail.err(f"{where}: [{env}] the Terraform plan associates no Pod Identity role with {ns}/{name} "
                     f"(it associates {sorted(pairs)})")
        if row.access == "none" and has:
            fail.err(f"{where}: [{env}] the Terraform plan gives {ns}/{name} a Pod Identity role; the table says none")
    elif row.access == "pod-identity":
        values = {str(v) for v in list(tf.variables.values()) + list(tf.tfvars.get(env, {}).values()) if isinstance(v, str)}
        for part in (ns, name):
            if part not in values:
                fail.err(f"{where}: [{env}] {part} is not the value of any Terraform variable, so no Pod Identity association can name it")
        if not any("aws_eks_pod_identity_association" in b for bs in tf.blocks.values() for b in bs):
            fail.err(f"{where}: terraform/ has no aws_eks_pod_identity_association")


def check_plan_row(row, env, plan, project, fail, where) -> None:
    obj = row.obj
    if obj.kind == "sm":
        want = subst(obj.value, env, project)
        names = {s.get("name") for s in plan_resources(plan, "aws_secretsmanager_secret")}
        if want not in names:
            fail.err(f"{where}: [{env}] the Terraform plan creates no secret {want} (it creates {sorted(n for n in names if n)})")
    elif obj.kind == "rbac-group":
        groups = {g for a in plan_resources(plan, "aws_eks_access_entry") for g in (a.get("kubernetes_groups") or [])}
        if obj.value not in groups:
            fail.err(f"{where}: [{env}] no access entry of the Terraform plan carries the group {obj.value} (groups: {sorted(groups)})")
    elif obj.k8s and obj.k8s[0] == "Namespace":
        scopes = [s for a in plan_resources(plan, "aws_eks_access_policy_association")
                  for s in (a.get("access_scope") or []) if s.get("type") == "namespace"]
        if any(t.kind == "tf" and "access_policy_association" in t.value for t in row.used) and \
                not any(obj.k8s[2] in (s.get("namespaces") or []) for s in scopes):
            fail.err(f"{where}: [{env}] no namespace-scoped access policy of the Terraform plan covers {obj.k8s[2]}")


def coverage(renders: dict[str, list[dict]], listed: set[tuple[str, str]], fail: Finder, project: str = "usergraph") -> None:
    rendered = {(key_of(o)[0], key_of(o)[2]) for objs in renders.values() for o in objs}
    for env, objs in renders.items():
        refs: set[tuple[str, str, str]] = set()  # kind, name, referenced by
        for o in objs:
            kind, ns, name = key_of(o)
            me = f"{kind}/{name}"
            spec = o.get("spec") or {}
            if ns:
                refs.add(("Namespace", ns, me))
            if kind == "Ingress" and spec.get("ingressClassName"):
                refs.add(("IngressClass", spec["ingressClassName"], me))
            if kind == "IngressClass" and (spec.get("parameters") or {}).get("kind"):
                refs.add((spec["parameters"]["kind"], spec["parameters"]["name"], me))
            if kind == "PersistentVolumeClaim" and spec.get("storageClassName"):
                refs.add(("StorageClass", spec["storageClassName"], me))
            for vct in spec.get("volumeClaimTemplates") or []:
                sc = (vct.get("spec") or {}).get("storageClassName")
                if sc:
                    refs.add(("StorageClass", sc, me))
            if kind == "HorizontalPodAutoscaler" and any(m.get("type") in ("Resource", "ContainerResource") for m in spec.get("metrics") or []):
                refs.add(("api", "metrics.k8s.io", me))
            if kind == "ExternalSecret":
                store = spec.get("secretStoreRef") or {}
                if store.get("name"):
                    refs.add((store.get("kind", "SecretStore"), store["name"], me))
                for src in spec.get("dataFrom") or []:
                    gen = (src.get("sourceRef") or {}).get("generatorRef")
                    if gen:
                        refs.add((gen["kind"], gen["name"], me))
                # Secrets Manager secrets read by name (not by a Terraform
                # output's ARN, which has its own row).
                for item in spec.get("data") or []:
                    key = (item.get("remoteRef") or {}).get("key") or ""
                    if key and not key.startswith(("arn:", "REPLACE-WITH-")):
                        refs.add(("sm", key, me))
            if kind in POD_KINDS:
                pod = pod_spec(o)
                refs.add(("ServiceAccount", pod.get("serviceAccountName") or "default", me))
                for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                    for ef in c.get("envFrom") or []:
                        if "secretRef" in ef:
                            refs.add(("Secret", ef["secretRef"]["name"], me))
                        if "configMapRef" in ef:
                            refs.add(("ConfigMap", ef["configMapRef"]["name"], me))
                    for ev in c.get("env") or []:
                        vf = ev.get("valueFrom") or {}
                        if "secretKeyRef" in vf:
                            refs.add(("Secret", vf["secretKeyRef"]["name"], me))
                        if "configMapKeyRef" in vf:
                            refs.add(("ConfigMap", vf["configMapKeyRef"]["name"], me))
                for v in pod.get("volumes") or []:
                    if "secret" in v:
                        refs.add(("Secret", v["secret"]["secretName"], me))
                    if "configMap" in v:
                        refs.add(("ConfigMap", v["configMap"]["name"], me))
        secrets = {subst(v, env, project) for k, v in listed if k == "sm"}
        for kind, name, by in sorted(refs):
            if (kind, name) in listed or (kind == "sm" and name in secrets):
                continue
            # ConfigMaps and namespaces the renders create themselves need no row.
            if kind in ("ConfigMap",) and any(k == kind and name_matches(n, name) for k, n in rendered):
                continue
            if kind == "Namespace" and name == "kube-system":
                continue
            fail.err(f"[{env}] {by} uses {kind} {name}, which the table of docs/platform.md does not list")


def pod_spec(o: dict) -> dict:
    spec = o.get("spec") or {}
    if o.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    if o.get("kind") != "Pod":
        spec = ((spec.get("template") or {}).get("spec") or {})
    return spec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=os.environ.get("UG_CHECK_ROOT", "."), help="repository root")
    p.add_argument("--doc", default="docs/platform.md", help="walk-through with the table (relative to --root)")
    p.add_argument("--render", action="append", metavar="ENV=FILE", help="pre-rendered manifests of ENV (instead of kubectl kustomize)")
    p.add_argument("--tf-plan", action="append", metavar="ENV=FILE", help="terraform show -json of ENV's plan")
    args = p.parse_args()
    if not (Path(args.root) / args.doc).is_file():
        print(f"check-seam: {args.doc} not found under {args.root}", file=sys.stderr)
        return 2
    fail = Finder()
    check(args, fail)
    for e in fail.errors:
        print(f"error: {e}")
    if fail.errors:
        print(f"check-seam: {len(fail.errors)} finding(s)")
        return 1
    mode = "with the Terraform plans of " + ", ".join(sorted(x.partition("=")[0] for x in args.tf_plan)) if args.tf_plan else "static"
    print(f"check-seam: OK ({args.doc}: every object rendered, created and named by its consumers; {mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
