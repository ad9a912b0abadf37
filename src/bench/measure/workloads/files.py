"""Reading a workload's file (a dataset, a trace) from local disk or s3:// when the cell
starts, before anything is measured. Nothing is downloaded from anywhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.config.checks import ConfigError, require


def read_bytes(path: str) -> bytes:
    if path.startswith("s3://"):
        import boto3  # the environment's credentials and AWS_ENDPOINT_URL, as the store's

        bucket, _, key = path.removeprefix("s3://").partition("/")
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(path).expanduser().read_bytes()


def read_lines(path: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped)."""
    out = []
    for number, line in enumerate(read_bytes(path).decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: not JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{path} line {number}: not a JSON object")
        out.append(entry)
    return out


def read_json(path: str) -> Any:
    try:
        return json.loads(read_bytes(path))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def check_path(path: str, what: str) -> None:
    """workload.path names `what`: an s3:// object (read where the cell runs) or a local file
    that exists (ConfigError otherwise)."""
    require(bool(path), "workload.path", path, f"name the {what}")
    if not path.startswith("s3://") and not Path(path).expanduser().is_file():
        raise ConfigError("workload.path", path, "no such file")
