"""Synthetic aggregate rows for the report tests: one model's configurations with throughput
far from zero and one open P99 interval (report_frame), seed 004's study table of G5 against
G4dn (study_frame) and a thread sweep on two instance types (thread_sweep)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def report_frame() -> pd.DataFrame:
    """bert_base on one instance, two precisions, batch 1/8, threads 1/2; throughput far from
    zero (so an axis left to autoscale would not start there); fp16 b8 t2 (the cheapest)
    has its P99 interval open above (n too small), the rest bounded and stable."""
    rows = []
    for precision, speed in (("fp32", 1.0), ("fp16", 1.6)):
        for batch in (1, 8):
            for threads in (1, 2):
                p99 = 10.0 * batch**0.5 * threads / speed
                rows.append(
                    {
                        "model": "bert_base", "task": "encode", "engine": "hf",
                        "instance": "g5.xlarge", "precision": precision, "batch_size": batch,
                        "threads": threads, "tp_degree": 1, "status": "ok", "n": 2000,
                        "latency_ms_p50": p99 * 0.8, "latency_ms_p95": p99 * 0.9,
                        "latency_ms_p99": p99, "latency_ms_p99_lo": p99 * 0.95,
                        "latency_ms_p99_hi": p99 * 1.05, "stability": "stable",
                        "inferences_per_s": 900.0 + 40 * batch * speed + 5 * threads,
                        "usd_per_million_inferences": 0.9 - 0.05 * batch * speed - 0.01 * threads,
                        "load_s": 2.0, "init_s": 0.3,
                    }
                )  # fmt: skip
    frame = pd.DataFrame(rows)
    open_row = (frame["precision"] == "fp16") & (frame["batch_size"] == 8) & (frame["threads"] == 2)
    frame.loc[open_row, ["latency_ms_p99_hi", "n"]] = [None, 150]
    return frame


G5, G4DN = "g5.4xlarge", "g4dn.4xlarge"
PRICES = {G5: 1.624, G4DN: 1.204}  # the catalog's on-demand $/h

# The study's summary table: model, batch, precision, then throughput (inferences/s), latency
# (ms) and $ per million inferences for G5 and G4dn, and its "cost benefit (G5 over G4dn)".
STUDY = [
    ("bert_base", 32, "fp32", 723, 154, 44, 208, 0.6, 2.2, 3.7),
    ("bert_base", 32, "amp_fp16", 870, 410, 37, 79, 0.5, 0.8, 1.6),
    ("bert_base", 16, "fp32", 651, 158, 25, 102, 0.7, 2.1, 3.0),
    ("bert_base", 16, "amp_fp16", 762, 376, 21, 43, 0.6, 0.9, 1.5),
    ("bert_base", 8, "fp32", 642, 142, 13, 57, 0.7, 2.3, 3.3),
    ("bert_base", 8, "amp_fp16", 681, 350, 12, 23, 0.7, 1.0, 1.4),
    ("bert_base", 1, "fp32", 160, 116, 6, 9, 2.8, 2.9, 1.0),
    ("bert_base", 1, "amp_fp16", 137, 102, 7, 10, 3.3, 3.3, 1.0),
    ("resnet50", 32, "fp32", 941, 397, 34, 82, 0.5, 0.8, 1.6),
    ("resnet50", 32, "amp_fp16", 1533, 851, 21, 38, 0.3, 0.4, 1.3),
    ("resnet50", 16, "fp32", 888, 384, 18, 42, 0.5, 0.9, 1.8),
    ("resnet50", 16, "amp_fp16", 1474, 819, 11, 20, 0.3, 0.4, 1.3),
    ("resnet50", 8, "fp32", 805, 340, 10, 24, 0.6, 1.0, 1.7),
    ("resnet50", 8, "amp_fp16", 1419, 772, 6, 10, 0.3, 0.4, 1.3),
    ("resnet50", 1, "fp32", 202, 164, 5, 6, 2.2, 2.0, 0.9),
    ("resnet50", 1, "amp_fp16", 196, 180, 5, 6, 2.3, 1.9, 0.8),
]
TASKS = {"bert_base": "encode", "resnet50": "classify_image"}


def study_row(
    model: str, instance: str, precision: str, batch: int, threads: int, **figures: Any
) -> dict[str, Any]:
    """One ok row of an hf configuration whose P95 is `figures["p95"]` (P50 and P99 at 0.8
    and 1.1 times it), with the other figures given."""
    p95 = figures.pop("p95")
    return {
        "model": model,
        "task": TASKS.get(model, "encode"),
        "engine": "hf",
        "instance": instance,
        "precision": precision,
        "batch_size": batch,
        "threads": threads,
        "tp_degree": 1,
        "status": "ok",
        "price_per_hour": PRICES.get(instance, 0.192),
        "latency_ms_p50": p95 * 0.8,
        "latency_ms_p95": p95,
        "latency_ms_p99": p95 * 1.1,
        "n": 1000,
        "load_s": 1.0,
        "init_s": 0.0,
        **figures,
    }


def study_frame() -> pd.DataFrame:
    """The study's table as one client's rows, and a second client beside each (twice the
    throughput at twice the latency: what a saturated device does)."""
    rows = []
    for model, batch, precision, *figures in STUDY:
        tp_g5, tp_g4, p95_g5, p95_g4, usd_g5, usd_g4, _ = figures
        for instance, tp, p95, usd in ((G5, tp_g5, p95_g5, usd_g5), (G4DN, tp_g4, p95_g4, usd_g4)):
            for threads in (1, 2):
                rows.append(
                    study_row(
                        model, instance, precision, batch, threads,
                        p95=p95 * threads, inferences_per_s=tp * (1 + 0.1 * (threads - 1)),
                        usd_per_million_inferences=usd / (1 + 0.1 * (threads - 1)),
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)


def thread_sweep() -> pd.DataFrame:
    """bert_tiny on two instances, two precisions, batch 1/8, threads 1-4."""
    rows = []
    for instance, speed in (("cpu-g5", 2.0), ("cpu-g4dn", 1.0)):
        for precision in ("fp32", "amp_bf16"):
            for batch in (1, 8):
                for threads in (1, 2, 3, 4):
                    service = batch / speed
                    rows.append(
                        study_row(
                            "bert_tiny", instance, precision, batch, threads,
                            p95=service * threads, inferences_per_s=1000 * speed * batch**0.5,
                            usd_per_million_inferences=1 / speed,
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)
