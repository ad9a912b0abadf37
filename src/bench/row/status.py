"""What became of a cell: a row's `status`, one of five. A row is written for every cell,
whatever happened; the collector keeps a cell's ok row over any other, so no row is ever
overwritten by a worse one."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):  # equal to its value: rows and files hold the plain word
    def __str__(self) -> str:  # the word, not "Status.OK", wherever it is formatted
        return self.value

    OK = "ok"  # measured: the row's figures are the cell's
    FAILED = "failed"  # the cell ran and raised, or its process died without a row
    UNSUPPORTED = "unsupported"  # its engine cannot run it here (the reason says why)
    INFEASIBLE = "infeasible"  # the planner's estimate says it cannot fit (run_infeasible: try)
    TIMEOUT = "timeout"  # its process ran past the executor's limit


# a cell that ran and did not finish well: what `sweep` lists as failed and what carries the
# planner's warnings (a borderline estimate may be why)
RAN_AND_FAILED = frozenset({Status.FAILED, Status.TIMEOUT})
