"""scenario=multi_model: models fill memory up to the limit and no further, requests go to
models drawn uniformly or by Zipf's law, models past memory load on first use and evict the
least recently used (cold starts apart from warm requests), and the users follow the stages'
spawn rates."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.cell.runner import run_cell
from bench.config.checks import ConfigError
from bench.config.schema import EngineConfig
from bench.engines import ENGINES
from bench.engines.base import LoadInfo
from bench.engines.calibration import SleepEngine
from bench.measure.loadgen import Plain
from bench.measure.scenarios import SCENARIOS, check_scenario
from bench.measure.scenarios.multi_model_pool import ModelPool
from bench.measure.scenarios.multi_model_ramp import (
    Stage,
    run_users,
    stages_of,
    user_changes,
    users_at,
)
from bench.measure.scenarios.multi_model_traffic import ModelChooser, model_shares
from bench.plan.grid import plan_from_overrides

# chi-square critical values at 0.1 % (a fixed seed passes or fails for good; 0.1 % keeps a
# fair draw's chance of failing out of the way), by degrees of freedom
CHI2_999 = {5: 20.515, 7: 24.322, 9: 27.877}


def _chi2(counts: list[int] | np.ndarray, shares: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() * shares
    return float(((counts - expected) ** 2 / expected).sum())


def _stages(*stages: tuple[int, float, float]) -> str:
    inner = ",".join(f"{{users:{u},spawn_rate:{r},duration_s:{d}}}" for u, r, d in stages)
    return f"scenario.user_stages=[{inner}]"


QUICK = ["scenario=multi_model", "scenario.think_max_s=0", "scenario.think_min_s=0"]


def _row(*overrides: str, engine: str | None = None) -> dict[str, Any]:
    cell = plan_from_overrides([*QUICK, *overrides]).cells[0]
    if engine is not None:
        cell = dataclasses.replace(cell, engine=EngineConfig(engine, {}))
    result = run_cell(cell)
    assert result.row["status"] == "ok", result.row.get("error")
    return {**result.row, "samples": result.samples}


# -- the pieces ---------------------------------------------------------------------------


def test_the_stages_are_checked_and_the_seed_shape_is_the_default() -> None:
    default = plan_from_overrides(["scenario=multi_model"]).cells[0].scenario
    stages = stages_of("s", list(default.options["user_stages"]))
    assert [s.users for s in stages] == [10, 20, *range(40, 201, 20)]
    assert SCENARIOS["multi_model"].seconds(default) == (340.0, 340.0)  # the seed's 340 s
    for bad in ([], [{"users": 2, "spawn_rate": 0, "duration_s": 1}], [{"users": 2}]):
        config = dataclasses.replace(default, options={**default.options, "user_stages": bad})
        with pytest.raises(ConfigError) as info:
            check_scenario(config)
        assert info.value.key.startswith("scenario.user_stages")
    with pytest.raises(ConfigError) as info:
        check_scenario(dataclasses.replace(default, options={"distribution": "pareto"}))
    assert info.value.key == "scenario.distribution"


def test_users_change_one_at_a_time_at_the_spawn_rate() -> None:
    stages = (Stage(10, 5.0, 30.0), Stage(20, 1.0, 30.0), Stage(4, 2.0, 5.0), Stage(14, 1.0, 2.0))
    changes = user_changes(stages)
    assert changes[0] == (0.0, 1) and changes[9] == pytest.approx((1.8, 10))
    assert changes[10] == (30.0, 11) and changes[19] == (39.0, 20)
    # stopping at 2/s: 10 stopped in the stage's 5 s, its 4 users not reached
    assert users_at(changes, 60.0) == 19 and users_at(changes, 64.9) == 10
    assert users_at(changes, 100) == 12  # 2 s at 1/s: 2 of the 4 more users


def test_requests_go_to_models_uniformly_at_a_fixed_seed() -> None:
    shares = model_shares(10, "uniform", 1.0)
    chooser = ModelChooser(shares, (7, 0))
    counts = np.bincount([chooser() for _ in range(50_000)], minlength=10)
    assert _chi2(counts, shares) < CHI2_999[9]
    # reproducible: the k-th draw is the same model for the same seed
    assert _draws(ModelChooser(shares, (7, 0)), 100) == _draws(ModelChooser(shares, (7, 0)), 100)
    assert _draws(ModelChooser(shares, (8, 0)), 100) != _draws(ModelChooser(shares, (7, 0)), 100)


def _draws(chooser: ModelChooser, n: int) -> list[int]:
    return [chooser() for _ in range(n)]


def test_zipf_gives_the_most_popular_model_its_share() -> None:
    shares = model_shares(8, "zipf", 1.2)
    assert shares.sum() == pytest.approx(1.0) and np.all(np.diff(shares) < 0)
    assert shares[0] == pytest.approx(1 / sum(k**-1.2 for k in range(1, 9)))
    counts = np.bincount(_draws(ModelChooser(shares, (3, 0)), 20_000), minlength=8)
    spread = np.sqrt(shares[0] * (1 - shares[0]) / 20_000)
    assert abs(counts[0] / 20_000 - shares[0]) < 4 * spread
    assert _chi2(counts, shares) < CHI2_999[7]


class _Model:
    """An engine stand-in for the pool: counts its loads and closes."""

    def __init__(self, name: int) -> None:
        self.name, self.loads, self.closes = name, 0, 0

    def load(self) -> None:
        self.loads += 1

    def initialize(self) -> None:
        pass

    def own_memory(self) -> None:
        pass

    def close(self) -> None:
        self.closes += 1


def test_the_pool_loads_on_first_use_and_evicts_the_least_recently_used() -> None:
    made: dict[int, _Model] = {}

    def make(name: int) -> Any:
        made[name] = _Model(name)
        return made[name]

    first = {0: make(0), 1: make(1)}
    pool = ModelPool(first, 2, make)  # type: ignore[arg-type]

    def use(name: int) -> bool:
        _, cold = pool.acquire(name)
        pool.release(name)
        return cold

    assert [use(0), use(1), use(0)] == [False, False, False]
    assert use(2) is True and made[1].closes == 1  # 1 was least recently used
    assert pool.loaded() == [0, 2]
    assert use(1) is True and made[0].closes == 1 and made[1].loads == 1
    # a model in use is never evicted: the load takes the other one
    pool.acquire(2)  # held by a request in flight
    assert use(3) is True and made[1].closes == 2 and made[2].closes == 0
    pool.release(2)
    assert [m for _, m in pool.evictions] == [1, 0, 1]
    assert len(pool.loads) == 3


def test_a_request_for_a_model_being_loaded_waits_for_it_and_is_cold() -> None:
    started, finish = threading.Event(), threading.Event()

    class Slow(_Model):
        def load(self) -> None:
            started.set()
            finish.wait(5)
            super().load()

    pool = ModelPool({0: _Model(0)}, 1, Slow)  # type: ignore[arg-type]
    colds: list[bool] = []

    def use() -> None:
        colds.append(pool.acquire(1)[1])
        pool.release(1)

    loader = threading.Thread(target=use)
    loader.start()
    assert started.wait(5)
    waiter = threading.Thread(target=use)
    waiter.start()
    time.sleep(0.05)
    finish.set()
    loader.join(5)
    waiter.join(5)
    assert colds == [True, True] and len(pool.loads) == 1


def test_users_over_time_follow_the_stages_in_order_and_never_early() -> None:
    stages = (Stage(3, 4.0, 1.2), Stage(8, 5.0, 1.5), Stage(2, 6.0, 1.3))
    ramp = run_users(Plain(lambda: time.sleep(0.002)), lambda: None, stages, warmup_s=0.3)
    changes = user_changes(stages)
    # every user started or stopped, in the schedule's order, none before its time (how late
    # a busy host lets the spawner wake is a timing claim: benchmarks/timing_claims.py)
    assert [u for _, u in ramp.trace[1:]] == [u for _, u in changes]
    late = [t - at for (t, _), (at, _) in zip(ramp.trace[1:], changes, strict=True)]
    assert min(late) >= 0, late
    # each stage was measured once its users were all running, after the warmup
    assert [s.measured.n > 0 for s in ramp.stages] == [True, True, True]
    assert ramp.warmup_n > 0
    measured = ramp.stages[1]
    assert set(measured.users.tolist()) == {8}


# -- whole cells ---------------------------------------------------------------------------


def test_a_cell_spreads_requests_uniformly_and_by_zipf_across_the_models() -> None:
    sleep = ["engine=sleep", "engine.service_ms=1", "scenario.models=6", "scenario.warmup_s=0.2"]
    uniform = _row(*sleep, _stages((3, 20, 2.0)))
    counts = json.loads(uniform["model_requests_json"])
    assert len(counts) == 6 and sum(counts) > 600
    assert _chi2(counts, model_shares(6, "uniform", 1.0)) < CHI2_999[5]
    assert uniform["max_models_loaded"] == 6 and "all 6" in uniform["fill_reason"]
    assert uniform["cold_starts"] == 0 and uniform["warm_hit_rate"] == 1.0
    assert uniform["evictions"] == 0 and uniform["first_failure_s"] is None
    zipf = _row(*sleep, _stages((3, 20, 2.0)), "scenario.distribution=zipf", "scenario.zipf_s=1.5")
    counts = np.asarray(json.loads(zipf["model_requests_json"]))
    shares = model_shares(6, "zipf", 1.5)
    spread = np.sqrt(shares[0] * (1 - shares[0]) / counts.sum())
    assert abs(counts[0] / counts.sum() - shares[0]) < 4 * spread
    assert _chi2(counts, shares) < CHI2_999[5]


def test_a_full_server_fails_requests_and_the_row_names_the_users_then() -> None:
    row = _row(
        "engine=sleep",
        "engine.service_ms=5",
        "scenario.models=2",
        "scenario.warmup_s=0",
        "scenario.server_workers=1",
        "scenario.max_waiting=1",
        _stages((1, 10, 1.0), (4, 10, 1.0)),
    )
    stages = json.loads(row["user_stages_json"])
    assert stages[0]["failed"] == 0 and stages[1]["failed"] > 0
    # one served, one waiting: the third user's request is the first refused
    assert row["first_failure_users"] >= 3 and row["first_failure_s"] >= 1.0
    assert row["max_users_before_failure"] == row["first_failure_users"]
    assert row["max_rps_without_failure"] == stages[0]["requests_per_s"]
    assert row["headline_users"] == 1 and row["errors"] == 0


class BallastEngine(SleepEngine):
    """A model that holds MiB of memory of its own while loaded (touched pages: the process's
    anonymous memory grows by that much) and takes load_ms to load, serving in service_ms."""

    name = "ballast"
    mib = 8
    load_ms = 60.0

    def load(self) -> LoadInfo:
        import mmap

        time.sleep(self.load_ms / 1000)
        # pages of its own, mapped and touched: an array from the heap could reuse memory an
        # earlier test freed (glibc raises its mmap threshold after large frees) and grow
        # this long-lived process by nothing
        private = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # anonymous memory, as weights are
        self.weights = mmap.mmap(-1, self.mib << 20, flags=private)
        np.frombuffer(self.weights, dtype=np.uint8).fill(1)
        return super().load()

    def close(self) -> None:
        if self.weights is not None:
            self.weights.close()
        self.weights = None


def test_models_past_memory_load_on_first_use_as_cold_starts_apart_from_warm_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(ENGINES, BallastEngine.name, BallastEngine)
    row = _row(
        "engine=sleep",
        "engine.service_ms=2",
        "scenario.models=8",
        f"scenario.memory_cap_mb={3.5 * BallastEngine.mib}",
        "scenario.warmup_s=0.3",
        _stages((2, 20, 3.0)),
        engine=BallastEngine.name,
    )
    assert row["max_models_loaded"] == 3, row["models_json"]
    assert row["cold_starts"] > 5 and row["evictions"] > 5
    assert 0.1 < row["warm_hit_rate"] < 0.7  # LRU under uniform draws: about 3/8
    # the warm figures leave the loads out; a cold start carries its model's load
    assert row["warm_latency_ms_p99"] < BallastEngine.load_ms <= row["cold_start_ms_p50"]
    stage = json.loads(row["user_stages_json"])[0]
    assert stage["warm_n"] + stage["cold_n"] == stage["n"] == row["n"]
    assert stage["cold_n"] == row["cold_starts"] and stage["p99_ms"] == row["warm_latency_ms_p99"]
    assert row["latency_ms_p99"] >= BallastEngine.load_ms  # the headline: what clients saw
    assert row["samples"].num_rows == row["n"] + row["errors"]


def _row_in_a_fresh_process(*overrides: str) -> dict[str, Any]:
    """The cell as a job runs it: in a process of its own. In this long-lived test process,
    memory freed by earlier tests is reused without growing RSS, so a model's measured
    memory would read low."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", *QUICK, *overrides, "format=json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_bert_tiny_models_fill_memory_to_the_limit_and_no_further(tmp_path: Path) -> None:
    row = _row_in_a_fresh_process(
        "engine=hf",
        "model=bert_tiny",
        f"models_dir={tmp_path}",
        "scenario.models=50",
        "scenario.memory_cap_mb=70",
        "scenario.warmup_requests=1",
        "scenario.warmup_s=0.2",
        _stages((1, 10, 1.0)),
    )
    loaded, per_model = row["max_models_loaded"], json.loads(row["models_json"])
    used, limit = row["models_memory_used_mb"], row["models_memory_limit_mb"]
    assert limit == pytest.approx(row["models_memory_base_mb"] + 70)
    assert 2 <= loaded < 50 and len(per_model) == loaded  # memory stopped it, not a count
    assert "past the" in row["fill_reason"]
    # these models' measured memory fits; one more, sized as the largest after the first,
    # would not
    assert used <= limit < used + row["memory_per_model_mb"]
    assert sum(m["memory_mb"] for m in per_model) == pytest.approx(
        used - row["models_memory_base_mb"]
    )
    assert all(m["memory_mb"] > 10 for m in per_model)  # bert_tiny's weights: ~17 MiB
    assert all(m["load_s"] > 0 for m in per_model[1:])
    assert row["n"] > 0 and row["cold_starts"] > 0  # 50 names, a few loaded


class EndpointEngine(SleepEngine):
    """An endpoint bench did not load: it manages its own models."""

    name = "endpoint"
    remote = True


def test_an_endpoint_engine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, EndpointEngine.name, EndpointEngine)
    cell = plan_from_overrides([*QUICK, "engine=sleep", "scenario.models=2"]).cells[0]
    row = run_cell(dataclasses.replace(cell, engine=EngineConfig(EndpointEngine.name, {}))).row
    assert row["status"] == "unsupported" and "endpoint" in row["error"]


def test_filling_memory_with_models_that_take_none_stops_with_a_reason() -> None:
    cell = plan_from_overrides([*QUICK, "engine=sleep", "scenario.models=0"]).cells[0]
    row = run_cell(cell).row
    assert row["status"] == "failed" and "set scenario.models" in row["error"]
