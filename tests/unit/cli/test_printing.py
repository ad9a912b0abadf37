"""The verbs' shared printing: stdout kept for a verb's own output (a child process's too),
a failing cell's traceback held back unless asked for, secrets masked, a row as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import bench.cell.runner as runner
from bench.cli.printing import held_traceback, printable_row, redact, stdout_to_stderr


def test_stdout_goes_to_stderr_meanwhile_a_childs_too(capfd) -> None:
    print("before")
    with stdout_to_stderr():
        print("ours")
        subprocess.run([sys.executable, "-c", "print('a child')"], check=True)
    print("after")
    captured = capfd.readouterr()
    assert captured.out.split() == ["before", "after"]
    assert captured.err.split() == ["ours", "a", "child"]


def _fail() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        runner.traceback.print_exc()


def test_a_traceback_is_held_unless_asked_for(capsys) -> None:
    own = runner.traceback
    with held_traceback(show=False) as held:
        _fail()
    assert len(held) == 1 and "RuntimeError: boom" in held[0]
    assert runner.traceback is own and capsys.readouterr().err == ""
    with held_traceback(show=True) as held:
        _fail()
    assert held == [] and "RuntimeError: boom" in capsys.readouterr().err


def test_secrets_are_masked() -> None:
    assert redact("GET https://me:pa55word@host/ Bearer abc.def-123") == (
        "GET https://***@host/ Bearer ***"
    )


def test_a_row_prints_its_set_columns_but_not_its_config() -> None:
    shown = json.loads(printable_row({"cell_id": "c", "n": 3, "error": None, "config_json": "{}"}))
    assert shown == {"cell_id": "c", "n": 3}
