"""Bad input across every verb: exit 2, one line that names the key, nothing written."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from bench.cli import main

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


def test_a_grid_name_for_a_sweep_id_names_the_sweep(tmp_path, capsys):
    for name in ("smoke-2b29ec4c/manifest.json", "smoke-2b29ec4c/cells/x.ok.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    from bench.plan import history

    found = [history.SweepInfo("smoke-2b29ec4c", "smoke", "", "local", 1, {}, False)]
    with mock.patch.object(history, "list_sweeps", return_value=found):
        assert main(["status", "smoke", f"store.root={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().endswith("did you mean smoke-2b29ec4c?")


def test_verbs_without_a_sweep_id_say_only_what_is_missing(capsys):
    with pytest.raises(SystemExit):
        main(["collect"])
    assert "required: sweep_id\n" in capsys.readouterr().err


def test_compare_says_whether_a_sweep_is_uncollected_or_elsewhere(tmp_path, capsys):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "manifest.json").write_text("{}")
    assert main(["compare", "s1", "s1", f"store.root={tmp_path}"]) == 2
    assert "not collected yet: python -m bench collect s1" in capsys.readouterr().err
    assert main(["compare", "s2", "s2", f"store.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "no sweep s2 in the store" in err and "aggregated.parquet" in err
