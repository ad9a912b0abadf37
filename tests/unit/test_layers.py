"""The import rules the layout stands for, over every import in src/ (module level and inside
functions; `if TYPE_CHECKING:` blocks excluded): the modules that measure a cell, and the
engines (bench.measure, bench.engines), import nothing from bench.plan and no Hydra/OmegaConf
(a cell's process reads a JSON manifest: it has no use for them); the engines import nothing
from the packages above them (measure, plan, executors, the CLI); bench.config, the base
layer, imports no other part of bench (no engine, no stage); and no two modules import each
other, directly or round a loop.

KNOWN lists what still breaks a rule; it may only shrink (a test below fails when an entry
no longer breaks anything, so the list cannot hide a fixed problem either)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# a cell's process: what measures it and the engines it drives
MEASURING = ("bench.measure", "bench.engines")
PLANNING = ("bench.plan", "bench.config.compose", "hydra", "omegaconf")
KNOWN: set[tuple[str, str]] = set()  # (importer, imported) still breaking a rule


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "bench").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports (bench modules resolved to the module, others to their top
    package), wherever the import statement is, except under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                for alias in child.names:
                    name = f"{child.module}.{alias.name}"
                    found.add(name if name in known else child.module)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {n if n.startswith("bench") else n.split(".")[0] for n in found}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, set(known)) for name, path in known.items()}


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# engines sit below measure: they own their checkpoints, ports, process groups, memory
# readings and MPI helpers; measure drives them, never the other way
ABOVE_ENGINES = ("bench.measure", "bench.plan", "bench.executors", "bench.cli", "bench.sweep")


def broken_rules(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    broken = set()
    for importer, imported in ((a, b) for a, bs in edges.items() for b in bs):
        if within(importer, MEASURING) and within(imported, PLANNING):
            broken.add((importer, imported))
        if within(importer, ("bench.engines",)) and within(imported, ABOVE_ENGINES):
            broken.add((importer, imported))
        # config is the base layer: it imports no other part of bench
        config = ("bench.config",)
        if (
            within(importer, config)
            and within(imported, ("bench",))
            and not within(imported, config)
        ):
            broken.add((importer, imported))
    return broken


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_measuring_code_and_engines_import_no_planning_engines_nothing_above_them() -> None:
    broken = broken_rules(graph())
    assert broken <= KNOWN, f"new imports across the layers: {sorted(broken - KNOWN)}"
    assert broken >= KNOWN, f"fixed: take out of KNOWN: {sorted(KNOWN - broken)}"


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_a_job_process_loads_no_hydra() -> None:
    """What `bench cell` imports to read its manifest and run a cell, on any executor."""
    code = (
        "import sys, bench.cli, bench.executors.job, bench.measure.runner, bench.engines, "
        "bench.executors.local, bench.executors.aws_batch, bench.executors.slurm; "
        "print(sorted(m for m in ('hydra', 'omegaconf') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_checks_catch_what_they_look_for() -> None:
    edges = {
        "bench.measure.runner": {"bench.plan.grid"},
        "bench.plan.grid": {"bench.measure.runner"},
        "bench.x": set(),
    }
    assert broken_rules(edges) == {("bench.measure.runner", "bench.plan.grid")}
    assert cycles(edges) == [{"bench.measure.runner", "bench.plan.grid"}]
    assert broken_rules({"bench.config.schema": {"bench.engines", "bench.config.tasks"}}) == {
        ("bench.config.schema", "bench.engines")
    }
    assert broken_rules({"bench.engines.hf": {"omegaconf", "bench.plan.manifest"}}) == {
        ("bench.engines.hf", "omegaconf"),
        ("bench.engines.hf", "bench.plan.manifest"),
    }
