"""The import rules the layout stands for, over every import in src/ (module level and inside
functions; `if TYPE_CHECKING:` blocks excluded): the packages form layers, base to top
(LAYERS), and a module imports only from its own layer and those below it; no module imports
its own package's face (its `__init__`: a package's members import each other directly); the
code a cell's process runs (everything up to bench.cell) imports no Hydra/OmegaConf and
nothing of bench.plan (it reads a JSON manifest); and no two modules import each other,
directly or round a loop.

KNOWN lists what still breaks a rule; it may only shrink (a test below fails when an entry
no longer breaks anything, so the list cannot hide a fixed problem either)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Base to top. config: the typed cell and one-line errors; store: files under a root URI;
# stats: intervals; engines: what runs a model (and the checkpoints, ports, process groups
# and MPI helpers they stand on); measure: load, scenarios and workloads over an engine;
# row: the one schema (shared columns and each scenario's and workload's own) and every row
# builder; cell: one cell run in this process (measure, then its row); plan: the grid into
# cells and a manifest; executors: jobs that run cells; results: collect, report, compare;
# sweep: plan -> executor -> collect; the CLI (and the emulator the tests and benchmarks
# start) on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bench.version", "bench.config"),
    ("bench.store",),
    ("bench.stats",),
    ("bench.engines",),
    ("bench.measure",),
    ("bench.row",),
    ("bench.cell",),
    ("bench.plan",),
    ("bench.executors",),
    ("bench.results",),
    ("bench.sweep",),
    ("bench.cli", "bench.emulator", "bench.__main__", "bench"),
)
# a cell's process: every layer above config up to bench.cell (it reads a JSON manifest;
# config's compose is the planner's, and test_a_job_process_loads_no_hydra checks the rest)
MEASURING = tuple(p for layer in LAYERS[1 : LAYERS.index(("bench.cell",)) + 1] for p in layer)
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


def layer_of(module: str) -> int | None:
    """The index in LAYERS of a bench module (its longest matching package), None otherwise."""
    best: tuple[int, int] | None = None  # (length of the match, layer)
    for index, layer in enumerate(LAYERS):
        for package in layer:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > best[0]
            ):
                best = (len(package), index)
    return None if best is None else best[1]


def faces(edges: dict[str, set[str]]) -> set[str]:
    """The packages among the modules (a module that is a prefix of another)."""
    return {m for m in edges if any(o.startswith(m + ".") for o in edges)}


def broken_rules(
    edges: dict[str, set[str]], packages: set[str] | None = None
) -> set[tuple[str, str]]:
    packages = faces(edges) if packages is None else packages
    broken = set()
    for importer, imported in ((a, b) for a, bs in edges.items() for b in bs):
        if within(importer, MEASURING) and within(imported, PLANNING):
            broken.add((importer, imported))
        low, high = layer_of(imported), layer_of(importer)
        if low is not None and high is not None and low > high:  # an arrow running back up
            broken.add((importer, imported))
        if high is not None and imported in packages and importer.startswith(imported + "."):
            broken.add((importer, imported))  # its own package's face
    return broken


def test_every_module_has_a_layer() -> None:
    assert [m for m in graph() if layer_of(m) is None] == []


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


def test_packages_import_one_way_and_no_module_its_own_face() -> None:
    broken = broken_rules(graph())
    assert broken <= KNOWN, f"new imports across the layers: {sorted(broken - KNOWN)}"
    assert broken >= KNOWN, f"fixed: take out of KNOWN: {sorted(KNOWN - broken)}"


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_a_job_process_loads_no_hydra() -> None:
    """What `bench cell` imports to read its manifest and run a cell, on any executor."""
    code = (
        "import sys, bench.cli, bench.executors.job, bench.cell.runner, bench.engines, "
        "bench.executors.local, bench.executors.aws_batch, bench.executors.slurm; "
        "print(sorted(m for m in ('hydra', 'omegaconf') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_checks_catch_what_they_look_for() -> None:
    edges = {
        "bench.cell.runner": {"bench.plan.grid"},
        "bench.plan.grid": {"bench.cell.runner"},
        "bench.x": set(),
    }
    assert broken_rules(edges) == {("bench.cell.runner", "bench.plan.grid")}
    assert cycles(edges) == [{"bench.cell.runner", "bench.plan.grid"}]
    assert broken_rules({"bench.config.schema": {"bench.engines", "bench.config.tasks"}}) == {
        ("bench.config.schema", "bench.engines")
    }
    assert broken_rules({"bench.engines.hf": {"omegaconf", "bench.plan.manifest"}}) == {
        ("bench.engines.hf", "omegaconf"),
        ("bench.engines.hf", "bench.plan.manifest"),
    }
