"""The package layout holds: pure logic imports no Dagster, the simulator stays a demo
tool, MLflow is reached only through the registry, modules fit in one sitting, and no
block of code stands twice.

Read from the source with ``ast`` (imports inside functions count too), so a lazy
``import dagster`` inside a helper cannot slip past.
"""

from __future__ import annotations

import ast
import hashlib
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ct_assets"
# Inside a domain, only these files may import Dagster (DESIGN.md "Layout").
DAGSTER_FILES = {"assets.py", "sensors.py", "schedules.py", "resources.py", "jobs.py", "automation.py", "launcher.py"}
# Pipes workers speak the protocol (dagster_pipes, no dependencies), never Dagster itself.
PIPES_WORKERS = {"ct_assets.training.pipes_worker"}
# Dagster glue shared by the domains, the wiring, and the demo that drives the instance.
DAGSTER_PACKAGES = {"orchestration", "demo"}
DAGSTER_MODULES = {"ct_assets.definitions"}
PRIVATE_ADAPTER = "ct_assets.orchestration.dagster_private"
MAX_LINES = 400
DUPLICATE_WINDOW = 6  # the `duplicates` tool's threshold


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from ct_assets.sim import simulator` imports ct_assets.sim.simulator.
            out.update(f"{node.module}.{alias.name}" for alias in node.names
                       if f"{node.module}.{alias.name}" in MODULES)
    return out


def may_use_dagster(module: str) -> bool:
    parts = module.split(".")
    return (module in DAGSTER_MODULES or (len(parts) > 1 and parts[1] in DAGSTER_PACKAGES)
            or MODULES[module].name in DAGSTER_FILES)


def _is(imported: str, root: str) -> bool:
    return imported == root or imported.startswith(root + ".")


PURE = sorted(m for m in MODULES if not may_use_dagster(m) and m != "ct_assets.cli")


def test_the_layer_split_is_not_empty():
    # Guards the guard: a rename that made every module "Dagster" would pass vacuously.
    assert len(PURE) > 30 and "ct_assets.drift.statistics" in PURE and "ct_assets.drift.assets" not in PURE


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_dagster(module):
    bad = sorted(i for i in _imports(MODULES[module])
                 if (i.split(".")[0].startswith("dagster") and not (module in PIPES_WORKERS and i == "dagster_pipes"))
                 or (i in MODULES and may_use_dagster(i)))  # nor a module that does
    assert not bad, f"{module} is pure logic but imports {bad}"


def test_only_the_simulator_source_and_the_demo_import_sim():
    allowed = {"ct_assets.ingest.resources"}
    offenders = {m: sorted(i for i in _imports(p) if _is(i, "ct_assets.sim"))
                 for m, p in MODULES.items()
                 if not _is(m, "ct_assets.sim") and not _is(m, "ct_assets.demo") and m not in allowed}
    assert not {m: i for m, i in offenders.items() if i}


def test_only_the_registry_talks_to_mlflow():
    offenders = {m: sorted(i for i in _imports(p) if _is(i, "mlflow") or _is(i, "dagster_mlflow"))
                 for m, p in MODULES.items() if not _is(m, "ct_assets.registry")}
    assert not {m: i for m, i in offenders.items() if i}


def test_private_dagster_imports_live_in_one_adapter():
    offenders = {m: sorted(i for i in _imports(p) if _is(i, "dagster._") or i.startswith("dagster._"))
                 for m, p in MODULES.items() if m != PRIVATE_ADAPTER}
    assert not {m: i for m, i in offenders.items() if i}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_fit_in_one_sitting(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module}: {lines} lines > {MAX_LINES}"


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, normalized text) of lines that carry logic: no blanks, comments,
    docstrings, imports, decorators or lone brackets."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(range(node.lineno, node.end_lineno + 1))
        # Decorator arguments are declarations (partitions, group, IO manager), the
        # boilerplate every asset repeats; the code under them is what must not repeat.
        for decorator in getattr(node, "decorator_list", []):
            skip.update(range(decorator.lineno, decorator.end_lineno + 1))
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip() if not line.strip().startswith(("'", '"')) else line.strip()
        if n in skip or not text or text in {")", "]", "}", "),", "],", "},", "):", "else:", "try:"}:
            continue
        out.append((n, text))
    return out


def test_no_block_of_code_stands_twice():
    seen: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for module, path in MODULES.items():
        lines = _code_lines(path)
        for i in range(len(lines) - DUPLICATE_WINDOW + 1):
            block = "\n".join(text for _, text in lines[i:i + DUPLICATE_WINDOW])
            seen[hashlib.sha1(block.encode()).hexdigest()].append((module, lines[i][0]))
    repeated = []
    for places in seen.values():
        # Overlapping windows of one long block inside a module are not a repeat.
        distinct = {(m, n) for m, n in places}
        modules = {m for m, _ in distinct}
        if len(modules) > 1 or (len(distinct) > 1 and max(n for _, n in distinct) - min(n for _, n in distinct)
                                >= DUPLICATE_WINDOW):
            repeated.append(sorted(distinct))
    assert not repeated, "blocks of code that stand twice (first line of each): " + "; ".join(
        ", ".join(f"{m}:{n}" for m, n in r) for r in repeated[:10])
