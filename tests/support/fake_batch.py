"""A recording stand-in for boto3's Batch client: definitions, submissions, and queues that
are all ENABLED with a VALID compute environment (the emulator tests cover the real API;
this covers what bench sends)."""

from __future__ import annotations

from typing import Any


class FakeBatch:
    def __init__(self) -> None:
        self.registered: list[dict] = []
        self.submitted: list[dict] = []

    def describe_job_definitions(self, jobDefinitionName: str, status: str) -> dict:
        found = [d for d in self.registered if d["jobDefinitionName"] == jobDefinitionName]
        return {"jobDefinitions": found}

    def register_job_definition(self, **body: Any) -> dict:
        self.registered.append(body)
        return {"jobDefinitionName": body["jobDefinitionName"], "revision": 1}

    def submit_job(self, **request: Any) -> dict:
        self.submitted.append(request)
        return {"jobId": f"job-{len(self.submitted)}"}

    def describe_job_queues(self, jobQueues: list[str]) -> dict:
        order = [{"order": 1, "computeEnvironment": "ce"}]
        queue = {"state": "ENABLED", "computeEnvironmentOrder": order}
        return {"jobQueues": [{"jobQueueName": q, **queue} for q in jobQueues]}

    def describe_compute_environments(self, computeEnvironments: list[str]) -> dict:
        valid = {"state": "ENABLED", "status": "VALID"}
        return {
            "computeEnvironments": [
                {"computeEnvironmentName": n, **valid} for n in computeEnvironments
            ]
        }

    def describe_jobs(self, jobs: list[str]) -> dict:
        return {"jobs": [{"jobId": j, "status": "SUBMITTED"} for j in jobs]}
