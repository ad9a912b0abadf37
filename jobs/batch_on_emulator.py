"""The bert_g5 sweep through executor=aws_batch, end to end, on moto's Batch and S3 emulator.

    python jobs/batch_on_emulator.py [--children-parallel 2]

1. starts moto's server on loopback (Batch told not to run containers), creates the bucket and
   a compute environment + job queue per G5 type (what jobs/batch.yaml creates on AWS);
2. `python -m bench sweep +grid=bert_g5 executor=aws_batch ...`: prints the array jobs;
3. lists the submitted jobs through boto3 and runs `python -m bench status`;
4. runs every array child here as a local process with AWS_BATCH_JOB_ARRAY_INDEX set (this
   host has no GPU, so each G5 cell writes a `failed` row saying so: the point is that every
   cell lands), then `python -m bench collect`.
Nothing leaves the machine: the emulator listens on 127.0.0.1 and the credentials are dummies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench.emulator import aws_env, moto_server, patched_environ
from bench.executors.base import read_submissions
from bench.store import open_store

G5_TYPES = ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.12xlarge", "g5.24xlarge", "g5.48xlarge"]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-hf:demo"
ROOT = "s3://bench-demo/results"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    print(f"$ python -m bench {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "bench", *args], text=True, check=False)
    print(f"(exit {proc.returncode})", flush=True)
    return proc


def create_queues(url: str) -> None:
    import boto3

    body = json.dumps({"batch": {"use_docker": False}}).encode()
    request = urllib.request.Request(f"{url}/moto-api/config", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request).read()
    role = boto3.client("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
    batch = boto3.client("batch")
    for instance_type in G5_TYPES:
        suffix = instance_type.replace(".", "-")
        env = batch.create_compute_environment(
            computeEnvironmentName=f"bench-ce-{suffix}",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role["Role"]["Arn"],
        )
        batch.create_job_queue(
            jobQueueName=f"bench-{suffix}",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
            ],
        )


def run_child(manifest: str, array: str, index: int) -> int:
    env = {**os.environ, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)}
    command = [sys.executable, "-m", "bench", "cell", "--manifest", manifest, "--array", array]
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children-parallel", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with moto_server() as url, patched_environ(aws_env(url)):
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench-demo")
        create_queues(url)
        bench(
            "sweep",
            "+grid=bert_g5",
            "executor=aws_batch",
            f"executor.image={IMAGE}",
            f"store.root={ROOT}",
            "sweep_id=bert_g5-demo",
        )
        batch = boto3.client("batch")
        for instance_type in G5_TYPES:
            queue = f"bench-{instance_type.replace('.', '-')}"
            for job in batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]:
                if ":" not in job["jobId"]:
                    described = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
                    size = described.get("arrayProperties", {}).get("size")
                    print(f"boto3: {queue}: job {job['jobId']} {job['jobName']} array size {size}")
        bench("status", "bert_g5-demo", f"store.root={ROOT}")
        store = open_store(ROOT)
        manifest = f"{ROOT}/bert_g5-demo/manifest.json"
        children = [
            (s.array, i)
            for s in read_submissions(store, "bert_g5-demo")
            for i in range(len(s.indices))
        ]
        print(f"running {len(children)} array children locally ...", flush=True)
        with ThreadPoolExecutor(args.children_parallel) as pool:
            codes = list(pool.map(lambda c: run_child(manifest, *c), children))
        print(f"children exit codes: {sorted(set(codes))}")
        bench("collect", "bert_g5-demo", f"store.root={ROOT}")
        import pandas as pd

        frame = pd.read_parquet(f"{ROOT}/bert_g5-demo/aggregated.parquet")
        print(f"aggregate: {len(frame)} rows, {frame['cell_id'].nunique()} cells")
        print(frame.groupby(["instance", "status", "error_class"]).size().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
