"""What `--help` says: each verb's line, its examples (its epilog; tests/unit/test_docs.py
parses every one), where every key is documented and the flags that go anywhere."""

from __future__ import annotations

VERBS_HELP = {
    "sweep": "expand +grid=NAME into cells, run them (local: a subprocess each), collect",
    "run": "run one cell in this process and print its summary (format=json: the whole row; "
    "traceback=true: a failure's traceback on stderr)",
    "cell": "job entry point: run cell --index N (or the scheduler's index) of --manifest URI",
    "collect": "aggregate a sweep's cell rows into aggregated.parquet and print a table",
    "status": "a sweep's jobs as the scheduler sees them, and its rows so far",
    "plan": "the cells of +grid=NAME: memory fit, engine support, the sweep's own cost "
    "(the summary; cells=true adds the table of cells, format=json everything)",
    "fit": "instance types and partition degrees that can host model=NAME, cheapest first",
    "report": "plots, the cheapest configuration meeting sla.p99_ms, Pareto front (HTML + MD); "
    "compare=BASE adds the comparison with a base sweep, rate=R a fleet sized for R/s, "
    "ratio=A/B the table of instance type A over B (by itself for a sweep of two; ratio=off)",
    "prices": "prices refresh: rewrite the instance catalog from the AWS Price List API",
    "ls": "the sweeps in the store, newest first: grid, date, executor, cells, rows by status",
    "capacity": "capacity SWEEP rate=R sla.p99_ms=X: replicas, instances and $/month per cell "
    "to serve R inferences/s under the SLA (M/G/c over its measured latencies)",
    "compare": "compare BASE NEW: per configuration, faster / slower / no significant change "
    "(confidence intervals from the raw samples); exit 1 on a regression beyond threshold=",
}

# Each verb's own examples (its --help epilog).
VERB_EXAMPLES = {
    "sweep": [
        "python -m bench sweep +grid=smoke",
        "python -m bench sweep +grid=smoke 'grid.axes.batch_size=[1,8]' repeats=3",
        "python -m bench sweep +grid=bert_g5 executor=aws_batch executor.image=URI "
        "store.root=s3://BUCKET/bench",
    ],
    "run": [
        "python -m bench run model=opt_tiny batch_size=4",
        "python -m bench run engine=sleep engine.service_ms=5 threads=4",
    ],
    "plan": [
        "python -m bench plan +grid=smoke",
        "python -m bench plan +grid=bert_g5 executor=aws_batch pricing=sagemaker",
    ],
    "fit": [
        "python -m bench fit model=gpt_neox_20b precision=fp16",
        "python -m bench fit params=15e9 precision=fp16",
    ],
    "ls": ["python -m bench ls", "python -m bench ls store.root=s3://BUCKET/bench"],
    "report": [
        "python -m bench report SWEEP_ID sla.p99_ms=50",
        "python -m bench report SWEEP_ID sla.p99_ms=50 compare=BASE_ID rate=200",
    ],
    "compare": ["python -m bench compare BASE_ID NEW_ID threshold=0.05"],
    "capacity": ["python -m bench capacity SWEEP_ID rate=200 sla.p99_ms=50"],
    "status": ["python -m bench status SWEEP_ID", "python -m bench status SWEEP_ID wait=true"],
    "collect": ["python -m bench collect SWEEP_ID", "python -m bench collect SWEEP_ID format=csv"],
    "cell": ["python -m bench cell --manifest results/SWEEP_ID/manifest.json --index 0"],
    "prices": ["python -m bench prices refresh --out catalog.yaml"],
}
KEYS_DOCUMENTED = (
    "Every key, with its default: conf/config.yaml (and conf/<group>/*.yaml); how to write a "
    "grid: docs/config.md; every verb: docs/commands.md."
)
DESCRIPTION = (
    "Measure model inference across a grid of engines, precisions, batch sizes and instance "
    "types. Options after the verb are Hydra overrides (key=value, +grid=NAME)."
)
GLOBAL_FLAGS_HELP = (
    "Anywhere on the line: --config-dir DIR adds DIR's model/, grid/, engine/, scenario/ ... "
    "files to the package's (repeatable); --cfg job (sweep, run, plan) prints the composed "
    "config of the first cell and runs nothing."
)
