"""bench.executors.local's own parts: a cell's process run in a session of its own to its end
or stopped past its time, the status a cell's attempt wrote read from the file names, why a
child that wrote no row stood down, and the sweep's leftovers tidied. (Its submit, held to the
contract every executor meets: tests/unit/executors/test_conformance.py.)"""

from __future__ import annotations

import os
import sys
import time

import pytest

from bench.config.checks import ConfigError
from bench.executors.local import LocalExecutor, _attempt_status, _run_child, _stood_down, _tidy
from bench.measure import progress
from bench.row.schema import rows_to_table
from bench.store import LocalStore, SweepPaths
from bench.store.local import TEMP_SUFFIX

SWEEP = "local-sweep"


def _child(code: str, log: int, timeout_s: float) -> tuple[str, int | None]:
    return _run_child([sys.executable, "-c", code], dict(os.environ), timeout_s, None, log)


def test_a_cell_process_runs_to_its_end_with_its_output_in_the_log(tmp_path):
    log = os.open(tmp_path / "cell.log", os.O_WRONLY | os.O_CREAT)
    try:
        outcome = _child("import sys; print('measured'); sys.exit(4)", log, 120)
    finally:
        os.close(log)
    assert outcome == ("exited", 4)
    assert (tmp_path / "cell.log").read_text() == "measured\n"


def test_a_cell_process_past_its_time_is_stopped(tmp_path):
    log = os.open(tmp_path / "cell.log", os.O_WRONLY | os.O_CREAT)
    try:
        # it would sleep ten minutes; it is given half a second
        assert _child("import time; time.sleep(600)", log, 0.5) == ("timeout", None)
    finally:
        os.close(log)


def test_the_status_an_attempt_wrote_is_read_from_its_file_name(tmp_path):
    store = LocalStore(str(tmp_path))
    paths = SweepPaths(SWEEP)
    store.write_table(paths.attempt_row("c", "a1", "failed"), rows_to_table([{"cell_id": "c"}]))
    store.write_table(paths.attempt_row("c", "a2", "ok"), rows_to_table([{"cell_id": "c"}]))
    assert _attempt_status(store, paths, "c", "a1") == "failed"
    assert _attempt_status(store, paths, "c", "a2") == "ok"
    assert _attempt_status(store, paths, "c", "a3") is None  # it wrote no row


def test_why_a_child_stood_down_is_its_last_json_line():
    log = (
        b"c: import\n"
        b'{"cell_id": "c", "stood_down": "busy: cell c is being measured by attempt x"}\n'
        b"a line printed after it\n"
    )
    assert _stood_down(log) == "busy: cell c is being measured by attempt x"
    assert _stood_down(b'{"cell_id": "c", "status": "ok"}\n') == ""
    assert _stood_down(b'{"cell_id": "c", torn\n') == ""
    assert _stood_down(b"no json here\n") == ""


def test_tidying_removes_stale_temp_files_and_progress_of_processes_gone(tmp_path, capsys):
    store = LocalStore(str(tmp_path))
    cells = store.root / SWEEP / "cells"
    cells.mkdir(parents=True)
    stale, fresh = (
        cells / f".a.ok.parquet.x1{TEMP_SUFFIX}",
        cells / f".b.ok.parquet.x2{TEMP_SUFFIX}",
    )
    for temp in (stale, fresh):
        temp.write_bytes(b"half a write")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    progress.CellProgress(store, SWEEP, "c", "killed", terminal=None).enter("measure")
    _tidy(store, SWEEP)
    assert not stale.exists() and fresh.exists()  # a write in progress is left alone
    assert progress.read_phase(store, SWEEP, "c") is None  # no lease holds it: killed


def test_a_sweep_folder_that_cannot_be_tidied_costs_one_line(tmp_path, capsys):
    class Unreadable(LocalStore):
        def list(self, rel_dir: str, suffix: str = "") -> list[str]:
            raise OSError("permission denied")

    _tidy(Unreadable(str(tmp_path)), SWEEP)
    assert capsys.readouterr().err == f"tidying {SWEEP}: permission denied\n"


def test_options_default_to_the_fork_server_and_a_half_hour_limit():
    options = LocalExecutor({}).options
    assert options.fork_server is True and options.timeout_s == 1800.0
    with pytest.raises(ConfigError, match=r"executor\.timeout_s"):
        LocalExecutor({"timeout_s": -1})
