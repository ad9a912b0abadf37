"""main over bad input across every verb: exit 2, one line that names the key, nothing
written; argparse's own errors keep its usage line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.cli import entry, main, parser
from bench.config.checks import UsageError

# (verb and arguments, what the one line must name)
CASES = [
    # unknown keys, with or without +, at every level
    (["plan", "+foo=1"], "foo"),
    (["plan", "foo=1"], "foo"),
    (["plan", "+executor.timeout=5"], "executor.timeout"),
    (["plan", "executor.timeout=5"], "executor.timeout"),
    (["plan", "+model.seqlen=8"], "model.seqlen"),
    (["plan", "model.seqlen=8"], "model.seqlen"),
    (["plan", "+store.rooot=x"], "store.rooot"),
    (["plan", "+scenario.min_duraton_s=3"], "scenario.min_duraton_s"),
    (["plan", "+sla.p90_ms=3"], "sla.p90_ms"),
    (["plan", "+fit.marginn=0.1"], "fit.marginn"),
    (["plan", "+grid.blokcs=[]"], "grid.blokcs"),
    (["sweep", "+foo=1"], "foo"),
    (["run", "+model.seqlen=8"], "model.seqlen"),
    (["fit", "+executor.timeout=5"], "executor.timeout"),
    (["collect", "s", "+foo=1"], "foo"),
    (["status", "s", "+store.rooot=x"], "store.rooot"),
    (["report", "s", "+sla.p90_ms=3"], "sla.p90_ms"),
    # group choices
    (["plan", "model=gpt9"], "model"),
    (["plan", "engine=vllm9"], "engine"),
    (["plan", "+grid=nope"], "grid"),
    (["plan", "executor=k8s"], "executor"),
    (["plan", "scenario=soak"], "scenario"),
    (["sweep", "store=gcs"], "store"),
    # booleans
    (["sweep", "force=no"], "force"),
    (["sweep", "force=off"], "force"),
    (["sweep", "force='0'"], "force"),
    (["sweep", "wait=yes"], "wait"),
    (["sweep", "run_infeasible=1"], "run_infeasible"),
    # integers and their ranges
    (["plan", "batch_size=0"], "batch_size"),
    (["plan", "batch_size=-3"], "batch_size"),
    (["plan", "batch_size=1e20"], "batch_size"),
    (["plan", "batch_size=4.5"], "batch_size"),
    (["plan", "threads=0"], "threads"),
    (["plan", "threads=1e20"], "threads"),
    (["plan", "threads=100000"], "threads"),
    (["plan", "tp_degree=0"], "tp_degree"),
    (["plan", "torch_threads=0"], "torch_threads"),
    (["plan", "repeats=0"], "repeats"),
    (["plan", "seed=1.7"], "seed"),
    (["plan", "seed=abc"], "seed"),
    (["plan", "seed=-1"], "seed"),
    (["plan", "model.seq_len=0"], "model.seq_len"),
    (["plan", "scenario.windows=2"], "scenario.windows"),
    (["plan", "scenario.min_requests=0"], "scenario.min_requests"),
    # numbers: finite, in range
    (["plan", "price_per_hour=inf"], "price_per_hour"),
    (["plan", "price_per_hour=-1"], "price_per_hour"),
    (["plan", "price_per_hour=nan"], "price_per_hour"),
    (["plan", "executor.timeout_s=-1"], "executor.timeout_s"),
    (["plan", "executor.timeout_s=abc"], "executor.timeout_s"),
    (["sweep", "executor.timeout_s=abc"], "executor.timeout_s"),
    (["sweep", "executor.timeout_s=0"], "executor.timeout_s"),
    (["plan", "scenario.max_duration_s=-1"], "scenario.max_duration_s"),
    (["plan", "scenario.ci_target=2"], "scenario.ci_target"),
    (["plan", "scenario.confidence=1"], "scenario.confidence"),
    (["fit", "fit.margin=-1"], "fit.margin"),
    (["fit", "fit.margin=inf"], "fit.margin"),
    (["fit", "fit.partitions=[0]"], "fit.partitions"),
    (["fit", "fit.partitions=abc"], "fit.partitions"),
    (["fit", "fit.partitions=[]"], "fit.partitions"),
    (["report", "s", "sla.p99_ms=-5"], "sla.p99_ms"),
    (["report", "s", "sla.p99_ms=fast"], "sla.p99_ms"),
    (["report", "s", "sla.p99_ms=0"], "sla.p99_ms"),
    (["plan", "plan.cell_overhead_s=-1"], "plan.cell_overhead_s"),
    # choices
    (["plan", "format=xml"], "format"),
    (["fit", "format=yaml"], "format"),
    (["plan", "precision=fp8"], "precision"),
    (["plan", "device=tpu"], "device"),
    (["plan", "order=random"], "order"),
    (["plan", "instance=x1.huge"], "instance"),
    # identifiers and paths
    (["plan", "sweep_id=../x"], "sweep_id"),
    (["sweep", "sweep_id=a/b"], "sweep_id"),
    (["collect", "../outside"], "sweep_id"),
    (["report", "../outside"], "sweep_id"),
    (["status", "../outside"], "sweep_id"),
    (["collect", "no-such-sweep"], "sweep_id"),
    (["status", "no-such-sweep"], "sweep_id"),
    (["report", "no-such-sweep"], "sweep_id"),
    (["sweep", "store.root=ftp://host/x"], "store.root"),
    (["collect", "s", "store.root=s3://b"], "store.root"),
    # the job entry point
    (["cell", "--manifest", "results/s/notes.txt", "--index", "0"], "--manifest"),
    (["cell", "--manifest", "results/none/manifest.json", "--index", "0"], "manifest.json"),
]


@pytest.mark.parametrize(("argv", "key"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_naming_the_key_and_nothing_is_written(
    argv: list[str], key: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert key in err[0], err[0]
    assert sorted(tmp_path.rglob("*")) == before  # not a file, not a folder


def test_there_are_at_least_60_cases_across_every_verb() -> None:
    assert len(CASES) >= 60
    assert {argv[0] for argv, _ in CASES} >= {
        "sweep", "run", "plan", "fit", "collect", "status", "report", "cell",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["sweep", "+gird=smoke"], "did you mean grid?"),
        (["run", "batchsize=4"], "did you mean batch_size?"),
        (["run", "model=bert_tny"], "did you mean bert_tiny?"),
        (["run", "precision=fp61"], "did you mean fp16?"),
        (["run", "scenario.min_request=3"], "did you mean min_requests?"),
        (["plan", "+grid=smok"], "did you mean smoke?"),
    ],
)
def test_a_near_miss_is_named(args, hint, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(hint), err


def test_verbs_without_a_sweep_id_say_only_what_is_missing(capsys):
    with pytest.raises(SystemExit):
        main(["collect"])
    assert "required: sweep_id\n" in capsys.readouterr().err


def _verb_that_raises(exc: BaseException):
    def verb(args) -> int:
        raise exc

    return verb


@pytest.mark.parametrize(
    ("raised", "code", "said"),
    [
        (KeyboardInterrupt(), 130, "interrupted: the running cell was stopped"),
        (FileNotFoundError("results/x gone"), 2, "error: FileNotFoundError: results/x gone"),
        (ValueError("bad value"), 2, "error: ValueError: bad value"),
    ],
)
def test_what_a_verb_raises_is_an_exit_code_and_at_most_one_line(
    raised: BaseException, code: int, said: str, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(parser.HANDLERS, "ls", _verb_that_raises(raised))
    assert main(["ls"]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith(said) and len(err.splitlines()) == 1, err


def test_a_reader_that_left_ends_it_quietly(monkeypatch, capfd) -> None:
    pointed = []  # main points fd 1 at /dev/null, so exiting flushes nothing: not here
    monkeypatch.setattr(entry.os, "dup2", lambda source, target: pointed.append(target))
    monkeypatch.setitem(parser.HANDLERS, "ls", _verb_that_raises(BrokenPipeError()))
    assert main(["ls"]) == 0
    assert pointed == [sys.stdout.fileno()] and capfd.readouterr().err == ""


def test_a_secret_in_an_error_is_masked(monkeypatch, capsys) -> None:
    message = "http://user:hunter22@host/ said Bearer abcdef123456"
    monkeypatch.setitem(parser.HANDLERS, "ls", _verb_that_raises(UsageError(message)))
    assert main(["ls"]) == 2
    err = capsys.readouterr().err
    assert "hunter22" not in err and "abcdef123456" not in err and err.startswith("error: ")


def test_an_unexpected_error_is_not_swallowed(monkeypatch) -> None:
    monkeypatch.setitem(parser.HANDLERS, "ls", _verb_that_raises(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["ls"])


def test_a_verb_gets_the_command_line_it_was_given(monkeypatch) -> None:
    seen = []
    monkeypatch.setitem(parser.HANDLERS, "ls", lambda args: seen.append(args) or 0)
    assert main(["ls", "store.root=/tmp/x"]) == 0
    (args,) = seen
    assert args.argv == ["ls", "store.root=/tmp/x"]  # what runs again under mpirun
    assert args.overrides == ["store.root=/tmp/x"]
