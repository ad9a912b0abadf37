"""bench.row.status: a row's status is a plain word wherever it goes (files, formatting, a
comparison with the word), and `failed` and `timeout` are the statuses of a cell that ran and
did not finish well."""

from __future__ import annotations

import json

from bench.row.status import RAN_AND_FAILED, Status


def test_a_status_is_its_word_when_compared_formatted_or_written():
    assert Status.OK == "ok" and Status("timeout") is Status.TIMEOUT
    assert f"{Status.INFEASIBLE}" == str(Status.INFEASIBLE) == "infeasible"
    assert json.dumps({"status": Status.FAILED}) == '{"status": "failed"}'
    assert "ok" in {Status.OK}  # a set of statuses answers for the plain word


def test_there_are_five_statuses():
    assert [s.value for s in Status] == ["ok", "failed", "unsupported", "infeasible", "timeout"]


def test_only_a_cell_that_ran_and_did_not_finish_well_counts_as_failed():
    assert frozenset({Status.FAILED, Status.TIMEOUT}) == RAN_AND_FAILED
    assert "timeout" in RAN_AND_FAILED
    assert not {Status.OK, Status.UNSUPPORTED, Status.INFEASIBLE} & RAN_AND_FAILED
