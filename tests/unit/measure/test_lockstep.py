"""bench.measure.lockstep in one process: a leader and a follower thread on loopback, rank variables
set by hand (the real launch under mpirun is tests/integration/test_lockstep_mpirun.py)."""

from __future__ import annotations

import threading

import pytest

from bench.engines import mpi
from bench.engines.calibration import SleepEngine
from bench.engines.ports import free_port
from bench.measure import lockstep
from bench.plan.grid import plan_from_overrides


def _cell(*overrides: str):
    return plan_from_overrides(["engine=sleep", "engine.service_ms=1", *overrides]).cells[0]


def _group(monkeypatch: pytest.MonkeyPatch, calls: list[str], fail_on_follower: bool = False):
    """A leader engine and a follower thread, each engine recording its requests in `calls`."""
    monkeypatch.setenv(lockstep.CHANNEL_ENV, f"127.0.0.1:{free_port()}")
    monkeypatch.setenv(mpi.MPI_SIZE_ENV, "2")
    monkeypatch.setenv(mpi.MPI_RANK_ENV, "0")
    original = SleepEngine.infer

    def infer(self, batch):
        who = "follower" if threading.current_thread().name == "follower" else "leader"
        calls.append(who)
        if fail_on_follower and who == "follower":
            raise RuntimeError("rank 1 ran out of memory")
        return original(self, batch)

    monkeypatch.setattr(SleepEngine, "infer", infer)
    cell = _cell()
    engine = lockstep.lead(SleepEngine(cell))
    codes: list[int] = []
    follower = threading.Thread(
        target=lambda: codes.append(lockstep.follow(cell, SleepEngine)),
        name="follower",
        daemon=True,
    )
    follower.start()
    return engine, follower, codes


def test_every_request_of_rank_0_is_repeated_by_the_follower_in_order(monkeypatch):
    calls: list[str] = []
    engine, follower, codes = _group(monkeypatch, calls)
    engine.import_libraries()
    info = engine.load()
    assert info.extra["mpi_ranks"] == 2
    batch = engine.make_batch()
    for _ in range(5):
        engine.infer(batch)  # returns only once the follower answered
    engine.close()
    follower.join(timeout=10)
    assert codes == [0]
    assert calls.count("leader") == calls.count("follower") == 5


def test_a_follower_that_fails_fails_rank_0s_request_instead_of_hanging(monkeypatch):
    calls: list[str] = []
    engine, follower, _ = _group(monkeypatch, calls, fail_on_follower=True)
    engine.load()
    with pytest.raises(lockstep.LockstepError, match="rank 1: RuntimeError: rank 1 ran out"):
        engine.infer(engine.make_batch())
    engine.close()
    follower.join(timeout=10)


def test_rank_0_closing_before_loading_ends_the_follower(monkeypatch):
    engine, follower, codes = _group(monkeypatch, [])
    engine.lockstep._accept()  # connected, then rank 0 stands down (another attempt measures)
    engine.close()
    follower.join(timeout=10)
    assert codes == [0] and not follower.is_alive()


def test_outside_a_group_the_engine_is_left_alone(monkeypatch):
    monkeypatch.delenv(lockstep.CHANNEL_ENV, raising=False)
    engine = SleepEngine(_cell())
    assert lockstep.lead(engine) is engine and "infer" not in vars(engine)


def test_a_host_without_mpirun_makes_a_group_cell_unsupported(monkeypatch):
    monkeypatch.delenv(mpi.MPI_SIZE_ENV, raising=False)
    monkeypatch.setattr("bench.engines.mpi.shutil.which", lambda name: None)
    cell = _cell("engine.mpi_ranks=2")
    assert "no mpirun" in SleepEngine.host_reason(cell)
    assert SleepEngine.host_reason(_cell()) is None  # one process needs no launcher


def test_the_mpirun_command_carries_the_channel_and_the_same_arguments():
    command = lockstep.mpirun_command(4, ["cell", "--manifest", "m.json", "--index", "3"], "a:1")
    assert command[:5] == ["mpirun", "-np", "4", "-x", f"{lockstep.CHANNEL_ENV}=a:1"]
    assert command[-6:] == ["bench", "cell", "--manifest", "m.json", "--index", "3"]
