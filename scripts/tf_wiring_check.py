#!/usr/bin/env python3
"""Offline wiring check for the Terraform tree (default: ./terraform).

Why: `terraform validate` needs `terraform init` and the provider; check.sh
runs it when the AWS provider mirror is on the machine (step
terraform-validate) and skips it otherwise. This check needs neither: it
parses every .tf and .tfvars file with python-hcl2 and checks the references
that tie the tree together, the mistakes a refactor typically leaves behind:

  * var.X      - variable "X" is declared in the same directory;
  * local.X    - some locals block of the same directory defines X;
  * module "M" - its local source directory exists; every argument it passes
                 is a variable declared there; every variable there without a
                 default is passed;
  * module.M.O - module block "M" exists in the same directory and its source
                 declares output "O";
  * T.N / data.T.N (T a resource type of a required provider, e.g.
                 aws_vpc.this) - such a resource / data block exists in the
                 same directory. Checked everywhere, outputs included, so an
                 output cannot point at something that is not there;
  * *.tfvars   - every key is a variable declared in the root directory;
  * providers  - the configuration needs the AWS provider only: no other
                 required_providers entry, no resource or data source of
                 another provider (random_*, tls_*, ...), no provider block
                 for one (--providers widens the list).

Declared-but-unused variables are reported as warnings only.
String literals are ignored: only the expression parts of values (python-hcl2
keeps them as ${...}) are searched, so a description that mentions "var.x"
is not a reference.

Usage:  tf_wiring_check.py [--providers aws[,NAME...]] [TERRAFORM_DIR]
        (pip install "python-hcl2>=7")
Install python-hcl2 in its own venv: checkov depends on bc-python-hcl2, which
ships a different package under the same import name `hcl2`.
Exit status: 0 = clean, 1 = wiring errors (each names file, block and
reference), 2 = a file does not parse or the directory has no .tf files.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import hcl2
except ImportError:
    sys.exit("tf_wiring_check: python-hcl2 is not installed (pip install python-hcl2)")

# moved/removed name state addresses, not values: "from" is gone by design.
MOVE_BLOCKS = {"moved", "removed"}
ALLOWED_PROVIDERS = {"aws"}
# Types that belong to Terraform itself, not to a provider.
BUILTIN_TYPES = {"terraform_data", "null_resource"}
MODULE_META_ARGS = {"source", "version", "providers", "count", "for_each", "depends_on"}
NAME = r"[A-Za-z_][\w-]*"
NOT_AFTER = r"(?<![\w.])"  # not part of a longer name or attribute path
VAR_RE = re.compile(NOT_AFTER + rf"var\.({NAME})")
LOCAL_RE = re.compile(NOT_AFTER + rf"local\.({NAME})")
MODULE_RE = re.compile(NOT_AFTER + rf"module\.({NAME})(?:\[[^\]]*\])?(?:\.({NAME}))?")
DATA_RE = re.compile(NOT_AFTER + rf"data\.({NAME})\.({NAME})")


def unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def items(mapping: dict):
    """Entries of a parsed block, without python-hcl2's __is_block__/__comments__ markers."""
    return ((k, v) for k, v in mapping.items() if not k.startswith("__"))


def expression_text(value: str) -> str:
    """Keep the expression parts of a python-hcl2 string, drop literal text.

    python-hcl2 renders `var.x` as "${var.x}" and "a-${var.x}" with its quotes,
    so a small state machine is enough: literal (template) mode until "${" or
    "%{", expression mode until the matching "}", and a '"' inside an
    expression opens a nested template (e.g. format("%s", var.x)).
    """
    out: list[str] = []
    stack = ["T"]  # "T" = inside a template/literal, int = brace depth in an expression
    i = 1 if value.startswith('"') else 0
    while i < len(value):
        c, top = value[i], stack[-1]
        if top == "T":
            if value.startswith("$${", i) or value.startswith("%%{", i):
                i += 3  # escaped, literal
            elif value.startswith("${", i) or value.startswith("%{", i):
                stack.append(0)
                out.append(" ")
                i += 2
            elif c == "\\":
                i += 2
            elif c == '"' and len(stack) > 1:
                stack.pop()
                i += 1
            else:
                i += 1
        else:
            if c == '"':
                stack.append("T")
            elif c == "{":
                stack[-1] = top + 1
            elif c == "}":
                if top == 0:
                    stack.pop()
                    out.append(" ")
                else:
                    stack[-1] = top - 1
            else:
                out.append(c)
            i += 1
    return "".join(out)


def walk(node, sink: list[str]) -> None:
    """Collect the expression text of every value and key below node."""
    if isinstance(node, dict):
        for key, val in items(node):
            if "${" in key:
                sink.append(expression_text(key))
            walk(val, sink)
    elif isinstance(node, list):
        for item in node:
            walk(item, sink)
    elif isinstance(node, str):
        sink.append(expression_text(node))


@dataclass
class Ref:
    file: Path
    where: str  # e.g. "resource aws_vpc this", "module vpc", "locals"
    text: str   # expression text of the block


@dataclass
class Dir:
    path: Path
    variables: dict[str, bool] = field(default_factory=dict)  # name -> has default
    locals: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)  # "type.name"
    data: set[str] = field(default_factory=set)
    modules: dict[str, tuple[Path, dict]] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    provider_blocks: set[str] = field(default_factory=set)
    refs: list[Ref] = field(default_factory=list)
    moves: list[tuple[Path, str, dict]] = field(default_factory=list)


def load(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as fh:
            return hcl2.load(fh)
    except Exception as exc:  # lark raises several exception types
        print(f"{path}: cannot parse: {exc}", file=sys.stderr)
        sys.exit(2)


def scan_dir(path: Path) -> Dir:
    d = Dir(path)
    for tf in sorted(path.glob("*.tf")):
        doc = load(tf)
        for block_type, entries in items(doc):
            for entry in entries:
                if block_type in MOVE_BLOCKS:
                    d.moves.append((tf, block_type, entry))
                    continue
                for where, body in describe(block_type, entry):
                    sink: list[str] = []
                    walk(body, sink)
                    d.refs.append(Ref(tf, where, "\n".join(sink)))
                register(d, tf, block_type, entry)
    return d


def describe(block_type: str, entry: dict):
    """Yield (human-readable block name, body) for one parsed block."""
    if block_type in ("resource", "data"):
        for rtype, named in items(entry):
            for name, body in items(named):
                yield f'{block_type} {rtype} {name}'.replace('"', ""), body
    elif block_type in ("variable", "output", "module", "provider"):
        for name, body in items(entry):
            yield f"{block_type} {unquote(name)}", body
    else:  # locals, terraform, moved, ...
        yield block_type, entry


def register(d: Dir, tf: Path, block_type: str, entry: dict) -> None:
    if block_type == "variable":
        for name, body in items(entry):
            d.variables[unquote(name)] = "default" in body
    elif block_type == "locals":
        d.locals.update(k for k, _ in items(entry))
    elif block_type in ("resource", "data"):
        target = d.resources if block_type == "resource" else d.data
        for rtype, named in items(entry):
            target.update(f"{unquote(rtype)}.{unquote(n)}" for n, _ in items(named))
    elif block_type == "module":
        for name, body in items(entry):
            d.modules[unquote(name)] = (tf, body)
    elif block_type == "output":
        d.outputs.update(unquote(n) for n, _ in items(entry))
    elif block_type == "terraform":
        for rp in entry.get("required_providers", []):
            d.providers.update(k for k, _ in items(rp))
    elif block_type == "provider":
        d.provider_blocks.update(unquote(n) for n, _ in items(entry))


def line_of(path: Path, needle: str) -> str:
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return f"{path}:{no}"
    return str(path)


def check_refs(d: Dir, dirs: dict[Path, Dir], res_re: re.Pattern, errors: list[str]) -> set[str]:
    """Check every reference made in directory d; return the variables used."""
    used_vars: set[str] = set()
    for ref in d.refs:
        def err(token: str, msg: str) -> None:
            errors.append(f"{line_of(ref.file, token)}: {ref.where}: {msg}")

        for var in VAR_RE.findall(ref.text):
            used_vars.add(var)
            if var not in d.variables:
                err(f"var.{var}", f'var.{var} is used but variable "{var}" is not declared in {d.path}')
        for loc in LOCAL_RE.findall(ref.text):
            if loc not in d.locals:
                err(f"local.{loc}", f"local.{loc} is not defined in any locals block of {d.path}")
        for mod, out in MODULE_RE.findall(ref.text):
            if mod not in d.modules:
                err(f"module.{mod}", f'module.{mod} is referenced but there is no module "{mod}" in {d.path}')
                continue
            target = module_dir(d, mod)
            if out and target in dirs and out not in dirs[target].outputs:
                err(f"module.{mod}.{out}",
                    f'module.{mod}.{out}: module "{mod}" ({rel(target)}) declares no output "{out}"')
        for dtype, name in DATA_RE.findall(ref.text):
            if f"{dtype}.{name}" not in d.data:
                err(f"data.{dtype}.{name}", f"data.{dtype}.{name} is referenced but not declared in {d.path}")
        for rtype, name in res_re.findall(ref.text):
            if f"{rtype}.{name}" not in d.resources:
                err(f"{rtype}.{name}", f"{rtype}.{name} is referenced but no such resource is declared in {d.path}")
    return used_vars


def check_module_calls(d: Dir, dirs: dict[Path, Dir], errors: list[str]) -> None:
    """Each module block passes exactly what its source declares (and every required variable)."""
    for mod, (tf, body) in d.modules.items():
        needle = f'module "{mod}"'
        where = f"{line_of(tf, needle)}: module {mod}"
        target = module_dir(d, mod)
        if target is None:
            continue  # registry/git source: its interface is not on disk
        if target not in dirs:
            errors.append(f"{where}: source {unquote(body.get('source', ''))} has no .tf files")
            continue
        inputs = {k for k, _ in items(body) if k not in MODULE_META_ARGS}
        declared = dirs[target].variables
        for name in sorted(inputs - declared.keys()):
            errors.append(f'{where}: passes "{name}", which {rel(target)} does not declare as a variable')
        for name in sorted(n for n, has_default in declared.items() if not has_default and n not in inputs):
            errors.append(f'{where}: omits required variable "{name}" of {rel(target)} (no default)')


def check_providers(d: Dir, allowed: set[str], errors: list[str]) -> None:
    """Only the allowed providers: required, configured, or used by a block type."""
    for name in sorted(d.providers - allowed):
        errors.append(f"{d.path}: required_providers lists {name}; only {', '.join(sorted(allowed))} may be required")
    for name in sorted(d.provider_blocks - allowed):
        errors.append(f'{d.path}: provider "{name}" block; only {", ".join(sorted(allowed))} may be configured')
    for kind, addresses in (("resource", d.resources), ("data", d.data)):
        for address in sorted(addresses):
            rtype = address.split(".")[0]
            if rtype in BUILTIN_TYPES:
                continue
            if not any(rtype.startswith(p + "_") for p in allowed):
                errors.append(f"{d.path}: {kind} {address} belongs to provider {rtype.split('_')[0]}; "
                              f"only {', '.join(sorted(allowed))} is allowed")


def check(root: Path, allowed: set[str] = ALLOWED_PROVIDERS) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    tf_dirs = sorted({p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts})
    if not tf_dirs:
        print(f"{root}: no .tf files", file=sys.stderr)
        sys.exit(2)
    dirs = {p.resolve(): scan_dir(p) for p in tf_dirs}
    # Resource references look like <provider>_<kind>.<name>, e.g. aws_vpc.this.
    providers = set().union(*(d.providers for d in dirs.values())) or {"aws"}
    res_re = re.compile(NOT_AFTER + rf"((?:{'|'.join(sorted(providers))})_\w+)\.({NAME})")

    for d in dirs.values():
        for tf, block_type, entry in d.moves:
            # A move into a module call must name a module block of this directory.
            for mod, _ in MODULE_RE.findall(expression_text(str(entry.get("to", "")))):
                if mod not in d.modules:
                    errors.append(f'{line_of(tf, f"module.{mod}")}: {block_type}: module "{mod}" is not declared in {d.path}')
        used_vars = check_refs(d, dirs, res_re, errors)
        check_module_calls(d, dirs, errors)
        check_providers(d, allowed, errors)
        for name in sorted(d.variables.keys() - used_vars):
            warnings.append(f'{d.path}: variable "{name}" is declared but never used')

    root_vars = dirs[root.resolve()].variables if root.resolve() in dirs else {}
    for tfvars in sorted(root.rglob("*.tfvars")):
        for key, _ in items(load(tfvars)):
            if key not in root_vars:
                errors.append(f'{line_of(tfvars, key)}: "{key}" is not a variable declared in {root}')
    return errors, warnings


def rel(path: Path) -> str:
    return os.path.relpath(path)


def module_dir(d: Dir, mod: str) -> Path | None:
    source = unquote(str(d.modules[mod][1].get("source", "")))
    if not source.startswith(("./", "../")):
        return None
    return (d.path / source).resolve()


def main() -> int:
    args = sys.argv[1:]
    allowed = set(ALLOWED_PROVIDERS)
    if "--providers" in args:
        i = args.index("--providers")
        allowed = {p for p in args[i + 1].split(",") if p}
        del args[i:i + 2]
    root = Path(args[0] if args else "terraform")
    errors, warnings = check(root, allowed)
    for w in warnings:
        print(f"warning: {w}")
    for e in errors:
        print(f"error: {e}")
    if errors:
        print(f"tf_wiring_check: {len(errors)} wiring error(s) in {root}")
        return 1
    print(f"tf_wiring_check: OK ({root}: variables, locals, modules, outputs and tfvars wired; providers: {', '.join(sorted(allowed))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
