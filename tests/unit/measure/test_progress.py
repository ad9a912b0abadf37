"""bench.measure.progress: a cell says each phase in its log, on the sweep's terminal (a line
rewritten in place on a tty) and in the store for `bench status`; the store's record is
removed when the cell ends, and only by the attempt that wrote it."""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

from bench.measure import progress
from bench.measure.progress import (
    CLEAR_LINE,
    PROGRESS_FD_VARIABLE,
    PROGRESS_LABEL_VARIABLE,
    CellProgress,
)
from bench.store import LocalStore, StoreError


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path))


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch):
    """No sweep's terminal unless a test passes one; no cell current after a test."""
    monkeypatch.delenv(PROGRESS_FD_VARIABLE, raising=False)
    monkeypatch.delenv(PROGRESS_LABEL_VARIABLE, raising=False)
    yield
    progress.begin(None)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class GoneTerminal(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("the terminal went away")


def test_each_phase_is_a_line_saying_how_long_the_one_before_took(capsys):
    said = CellProgress(None, "s", "cell-1", "a1", label="[2/5]")
    said.enter("import")
    said.since -= 2.0  # as if importing took two seconds
    said.enter("load", "bert_tiny")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[2/5] cell-1: import"
    assert lines[1] == "[2/5] cell-1: load bert_tiny (after import 2.0 s)"
    assert said.phase == "load"


def test_a_file_gets_every_line_and_a_tty_one_line_rewritten_in_place(capsys):
    file, tty = io.StringIO(), Tty()
    for terminal in (file, tty):
        said = CellProgress(None, "s", "c", "a", terminal=terminal)
        said.enter("warmup")
        said.enter("measure")
    lines = file.getvalue().splitlines()
    assert lines[0] == "  c: warmup" and lines[1].startswith("  c: measure (after warmup ")
    assert len(lines) == 2
    assert tty.getvalue().count(CLEAR_LINE) == 2 and "\n" not in tty.getvalue()
    assert tty.getvalue().startswith(f"{CLEAR_LINE}  c: warmup")


def test_a_terminal_that_went_away_is_dropped_and_the_log_keeps_the_line(capsys):
    said = CellProgress(None, "s", "c", "a", terminal=GoneTerminal())
    said.enter("load")
    assert said.terminal is None
    assert capsys.readouterr().out == "  c: load\n"


def test_the_store_holds_the_current_phase_until_the_cell_finishes(store, capsys):
    said = CellProgress(store, "s", "c", "a1")
    said.enter("measure", "stage 2")
    record = progress.read_phase(store, "s", "c")
    assert record is not None
    assert (record["phase"], record["detail"], record["attempt"]) == ("measure", "stage 2", "a1")
    assert record["pid"] == os.getpid() and record["host"] and record["since"] > 0
    said.finish()
    assert progress.read_phase(store, "s", "c") is None
    said.finish()  # already gone: nothing to say


class BrokenStore(LocalStore):
    def write_bytes(self, rel: str, data: bytes) -> None:
        raise StoreError(f"write {self.uri(rel)}: disk full")


def test_a_store_that_cannot_be_written_never_fails_the_cell(tmp_path, capsys):
    said = CellProgress(BrokenStore(str(tmp_path)), "s", "c", "a1")
    said.enter("load")
    out, err = capsys.readouterr()
    assert out == "  c: load\n" and "(progress not stored: write " in err and "disk full" in err


def test_the_current_cell_is_the_one_begun_and_none_says_nothing(store, capsys):
    progress.enter("load")  # no cell begun: nothing
    assert capsys.readouterr().out == ""
    progress.begin(CellProgress(store, "s", "c", "a1"))
    progress.enter("write", "ok")
    assert capsys.readouterr().out == "  c: write ok\n"
    assert progress.read_phase(store, "s", "c")["phase"] == "write"


def test_forget_removes_only_the_record_of_the_attempt_that_wrote_it(store, capsys):
    CellProgress(store, "s", "c", "a1").enter("measure")
    assert not progress.forget(store, "s", "c", "a2")  # another attempt's: kept
    assert progress.read_phase(store, "s", "c")["attempt"] == "a1"
    assert progress.forget(store, "s", "c", "a1")
    assert progress.read_phase(store, "s", "c") is None
    assert not progress.forget(store, "s", "c", "a1")  # nothing left


def test_a_torn_or_missing_record_reads_as_none(store):
    assert progress.read_phase(store, "s", "c") is None
    store.write_bytes(progress.progress_path("s", "c"), b'{"phase": "lo')
    assert progress.read_phase(store, "s", "c") is None
    store.write_bytes(progress.progress_path("s", "c"), json.dumps(["not", "ours"]).encode())
    assert not progress.forget(store, "s", "c", "a1")  # not a record bench wrote


def test_the_sweeps_terminal_and_label_come_from_the_environment(monkeypatch, capsys):
    read, write = os.pipe()
    try:
        monkeypatch.setenv(PROGRESS_FD_VARIABLE, str(write))
        monkeypatch.setenv(PROGRESS_LABEL_VARIABLE, "[1/3]")
        said = CellProgress(None, "s", "c", "a")
        said.enter("prepare")
        said.terminal.close()  # closefd=False: our descriptor stays open
        os.close(write)
        with os.fdopen(read) as seen:
            assert seen.read() == "[1/3] c: prepare\n"
    finally:
        for fd in (read, write):
            with contextlib.suppress(OSError):  # closed above unless an assertion failed
                os.close(fd)
    monkeypatch.setenv(PROGRESS_FD_VARIABLE, "not-a-descriptor")
    assert CellProgress(None, "s", "c", "a").terminal is None
