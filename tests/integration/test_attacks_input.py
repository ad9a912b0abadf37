"""Input under attack: grids too large to expand, malformed grid files, torn manifests,
unreadable overrides, paths that are files, a device this machine lacks. Each is one line
naming the key, the bad value and what is allowed, exit 2, and nothing written (device=cuda
on a CPU-only machine: the planner's `unsupported`, with the reason, before anything runs)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import write_manifest
from bench.store import open_store
from tests.conftest import run_cli

S = [
    "engine=sleep",
    "scenario.min_duration_s=1",
    "scenario.max_duration_s=2",
    "scenario.min_requests=10",
]
TEN = "[1,2,3,4,5,6,7,8,9,10]"
# 1e7 cells of the sleep engine
HUGE = [
    *S,
    f"grid.axes.threads={TEN}",
    f"grid.axes.batch_size={TEN}",
    f"grid.axes.seed={TEN}",
    f"grid.axes.engine.service_ms={TEN}",
    f"grid.axes.engine.sigma={TEN}",
    f"grid.axes.scenario.warmup_requests={TEN}",
    f"grid.axes.engine.max_concurrency={TEN}",
]


def refused(proc: subprocess.CompletedProcess[str], *named: str) -> str:
    """The one line a refusal prints, checked: exit 2, no traceback, the names in it."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


def nothing_written(work: Path) -> None:
    assert not (work / "results").exists(), sorted(p.name for p in (work / "results").iterdir())


@pytest.mark.parametrize("verb", ["plan", "sweep"])
def test_a_1e7_cell_grid_is_refused_at_once_naming_the_limit(verb: str, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_cli([verb, *HUGE], tmp_path, timeout=120)
    line = refused(proc, "10,000,000 cells", "grid.max_cells=100000", "raise grid.max_cells")
    assert "planning:" not in proc.stderr, line  # refused before any expanding
    assert time.monotonic() - started < 60
    nothing_written(tmp_path)


def test_huge_repeats_are_refused_naming_repeats(tmp_path: Path) -> None:
    proc = run_cli(["sweep", *S, "repeats=100000000"], tmp_path, timeout=120)
    refused(proc, "repeats=100000000", "grid.max_cells")
    nothing_written(tmp_path)


def test_a_dotted_axis_on_the_command_line_is_that_axis(tmp_path: Path) -> None:
    """`grid.axes.engine.service_ms=[...]` once read as an engine named by a mapping."""
    proc = run_cli(
        ["plan", *S, "grid.axes.engine.service_ms=[1,2.5]", "format=json"], tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)["cells"]) == 2
    cells = plan_from_overrides([*S, "grid.axes.engine.service_ms=[1,2.5]"]).cells
    assert [c.engine.options["service_ms"] for c in cells] == [1, 2.5]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("grid:\n\tname: bad\n", ["line 3, column 1", "not valid YAML", "'\\t'"]),
        ("grid:\n  name: bad\n  axes: {threads: [1, 2\n", ["not valid YAML", "line 5"]),
        ("grid:\n  name: bad\n  axes: 5\n", ["grid.axes=5", "mapping"]),
        ("grid:\n  name: bad\n  axes: {threads: [1]}\n  blocks: 7\n", ["grid.blocks=7"]),
        ("grid:\n  name: bad\n  axes:\n    threads: ${nope}\n", ["grid.axes.threads", "nope"]),
        ("grid:\n  name: bad\n  axes: {engine: {service_ms: [1, 2]}, threadz: [1]}\n", ["threadz"]),
    ],
)
def test_a_malformed_grid_file_is_one_line_naming_the_file(
    tmp_path: Path, text: str, named: list[str]
) -> None:
    user = tmp_path / "mine"
    (user / "grid").mkdir(parents=True)
    path = user / "grid" / "bad.yaml"
    path.write_text("# @package _global_\n" + text)
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli(["sweep", "--config-dir", str(user), "+grid=bad", *S], work, timeout=120)
    refused(proc, str(path), *named)
    nothing_written(work)


def test_a_torn_manifest_is_named_and_listed(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "results"))
    uri = write_manifest(store, plan_from_overrides([*S, "sweep_id=torn"]))
    path = Path(uri)
    path.write_text(path.read_text()[:300])  # cut short: a full disk, a bad copy
    listed = run_cli(["ls"], tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert f"unreadable: {path} is not a readable manifest" in listed.stdout, listed.stdout
    proc = run_cli(["cell", "--manifest", str(path), "--index", "0"], tmp_path, timeout=120)
    refused(proc, str(path), "not a readable manifest", "run the same sweep again")
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]


def test_a_torn_manifest_is_named_by_every_reader_of_its_sweep(tmp_path: Path) -> None:
    assert run_cli(["sweep", *S, "sweep_id=read"], tmp_path, timeout=300).returncode == 0
    path = tmp_path / "results" / "read" / "manifest.json"
    path.write_text(path.read_text()[:300])
    for verb in (["status", "read"], ["collect", "read"], ["sweep", *S, "sweep_id=read"]):
        refused(run_cli(verb, tmp_path, timeout=300), str(path), "not a readable manifest")


@pytest.mark.parametrize("verb", ["plan", "sweep"])
def test_an_unquoted_unicode_sweep_id_names_the_rule(verb: str, tmp_path: Path) -> None:
    proc = run_cli([verb, *S, "sweep_id=héllo"], tmp_path, timeout=120)
    line = refused(proc, "sweep_id='héllo'", "letters, digits")
    assert "Lexer" not in line
    nothing_written(tmp_path)


def test_an_override_the_grammar_cannot_read_names_its_key(tmp_path: Path) -> None:
    proc = run_cli(["sweep", *S, "models_dir=/tmp/modèles"], tmp_path, timeout=120)
    line = refused(proc, "models_dir='/tmp/modèles'", "quote it")
    assert "Lexer" not in line and "token recognition" not in line
    nothing_written(tmp_path)


@pytest.mark.parametrize("models_dir", ["/etc/passwd", "/etc/passwd/models"])
def test_models_dir_that_is_a_file_is_refused_before_any_row(
    models_dir: str, tmp_path: Path
) -> None:
    proc = run_cli(["sweep", *S, f"models_dir={models_dir}"], tmp_path, timeout=120)
    refused(
        proc,
        f"models_dir='{models_dir}'",
        "/etc/passwd is a file" if "/m" in models_dir else "it is a file",
    )
    nothing_written(tmp_path)


def test_device_cuda_on_a_cpu_only_machine_is_unsupported_here(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli(["plan", *S, "device=cuda", "format=json"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (cell,) = json.loads(proc.stdout)["cells"]
    assert cell["decision"] == "unsupported" and "no CUDA device" in cell["reason"]
    proc = run_cli(["sweep", *S, "device=cuda", "sweep_id=cuda"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 unsupported" in proc.stderr and "0 to run" in proc.stderr, proc.stderr[-2000:]
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "results" / "cuda" / "aggregated.parquet")
    assert list(rows["status"]) == ["unsupported"]
    assert "no CUDA device" in rows.iloc[0]["error"]
