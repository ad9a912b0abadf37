"""jobs/batch.yaml: cfn-lint finds no errors or warnings, and the template gives a sweep what
it needs: a queue per GPU instance type named as the executor expects, a job role that can
touch only the results prefix, and the outputs a sweep config is filled from.

No AWS access: the template is read with a YAML loader that keeps the intrinsic functions
(!Ref, !Sub, ...) and the few this template uses are evaluated here against parameter values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cfn import (
    TEMPLATE,
    Evaluator,
    _CfnLoader,
    _intrinsic,
    load_template,
    parameter_values,
)

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "conf" / "catalog.yaml"

# The instance types the harness sweeps on AWS Batch; each needs queue bench-<type, '.' as '-'>.
INSTANCE_TYPES = [
    "g4dn.xlarge",
    "g4dn.2xlarge",
    "g4dn.4xlarge",
    "g4dn.12xlarge",
    "g5.xlarge",
    "g5.2xlarge",
    "g5.4xlarge",
    "g5.12xlarge",
    "g5.24xlarge",
    "g5.48xlarge",
    "p3.2xlarge",
    "p3.8xlarge",
    "p4d.24xlarge",
    "p4de.24xlarge",
    "p5.48xlarge",
    "g6.xlarge",
    "g6.2xlarge",
    "g6.12xlarge",
    "g6.48xlarge",
    "g6e.xlarge",
    "g6e.12xlarge",
    "g6e.48xlarge",
    "p5e.48xlarge",
    "p5en.48xlarge",
    "p6-b200.48xlarge",
]
# The only thing a cell does in S3: GET the manifest, PUT samples and its row (DELETE to
# replace), list its own sweep's prefix.
JOB_ROLE_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
# Every family on, and the AMI p3 needs when it is on.
ALL_FAMILIES = {
    "EnableG4dn": "true",
    "EnableG5": "true",
    "EnableP3": "true",
    "EnableP4d": "true",
    "EnableP4de": "true",
    "EnableP5": "true",
    "EnableG6": "true",
    "EnableG6e": "true",
    "EnableP5e": "true",
    "EnableP5en": "true",
    "EnableP6B200": "true",
    "P3ImageId": "ami-0123456789abcdef0",
}
# cfn-lint findings allowed despite being warnings, rule id -> why. None today.
ALLOWED_WARNINGS: dict[str, str] = {}


# ------------------------------------------------------------------ loading and evaluating


_CfnLoader.add_multi_constructor("!", _intrinsic)


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def _catalog_vcpus() -> dict[str, int]:
    instances = yaml.safe_load(CATALOG.read_text())["catalog"]["instances"]
    # NVIDIA types only: Neuron instances (accelerator: neuron) run no bench engine
    return {i["type"]: i["vcpus"] for i in instances if i.get("gpus") and not i.get("accelerator")}


# ------------------------------------------------------------------ checks (also mutated below)


def check_queues(template: dict[str, Any], **overrides: str) -> None:
    """Every instance type: queue bench-<dashed type> on its own compute environment
    bench-ce-<dashed type>, managed, scaling from 0, on a GPU AMI."""
    params = parameter_values(template, **{**ALL_FAMILIES, **overrides})
    made = Evaluator(template, params).resources()
    queues = _of_type(made, "AWS::Batch::JobQueue")
    envs = _of_type(made, "AWS::Batch::ComputeEnvironment")
    by_name = {q["Properties"]["JobQueueName"]: q for q in queues.values()}
    vcpus = _catalog_vcpus()

    expected = {f"bench-{t.replace('.', '-')}": t for t in INSTANCE_TYPES}
    assert set(by_name) == set(expected), (
        f"missing queues {sorted(set(expected) - set(by_name))}, "
        f"unexpected {sorted(set(by_name) - set(expected))}"
    )
    for queue_name, instance_type in expected.items():
        queue = by_name[queue_name]
        order = queue["Properties"]["ComputeEnvironmentOrder"]
        assert len(order) == 1, f"{queue_name}: expected one compute environment"
        env_id = order[0]["ComputeEnvironment"].strip("<>")
        assert env_id in envs, f"{queue_name}: {env_id} is not a compute environment"
        env = envs[env_id]
        assert queue.get("Condition") == env.get("Condition"), f"{queue_name}: conditions differ"
        props = env["Properties"]
        resources = props["ComputeResources"]
        assert props["ComputeEnvironmentName"] == f"bench-ce-{instance_type.replace('.', '-')}"
        assert props["Type"] == "MANAGED"
        assert "ServiceRole" not in props, "omit ServiceRole: Batch's service-linked role"
        assert resources["InstanceTypes"] == [instance_type]
        assert resources["MinvCpus"] == 0
        assert int(resources["MaxvCpus"]) >= vcpus[instance_type], (
            f"{instance_type}: MaxvCpus {resources['MaxvCpus']} cannot fit one instance"
        )
        images = resources["Ec2Configuration"]
        assert images and all(i["ImageType"].endswith("_NVIDIA") for i in images), images
        assert resources["Subnets"] == params["SubnetIds"]


def check_job_role(template: dict[str, Any], prefix: str = "bench") -> None:
    """The job role: assumed by ECS tasks, allowed only object actions under the results
    prefix and a listing conditioned to that prefix; nothing else attached."""
    params = parameter_values(template, ResultsPrefix=prefix)
    made = Evaluator(template, params).resources()
    role = made["JobRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "ecs-tasks.amazonaws.com"}]
    assert not role.get("ManagedPolicyArns"), "the job role takes no managed policies"
    for name, other in made.items():
        if other["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            assert "<JobRole>" not in other["Properties"].get("Roles", []), (
                f"{name} attaches more permissions to the job role"
            )

    bucket_arn = "arn:aws:s3:::<ResultsBucket>"
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = statement["Action"]
        actions = {actions} if isinstance(actions, str) else set(actions)
        assert actions <= JOB_ROLE_ACTIONS, f"unexpected actions {actions - JOB_ROLE_ACTIONS}"
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        assert "*" not in resources, f"wildcard resource for {actions}"
        if "s3:ListBucket" in actions:
            assert actions == {"s3:ListBucket"}, "ListBucket needs its own statement"
            assert resources == [bucket_arn], resources
            condition = statement.get("Condition", {})
            assert set(condition) == {"StringLike"}, f"ListBucket condition: {condition}"
            values = condition["StringLike"].get("s3:prefix", [])
            values = [values] if isinstance(values, str) else values
            assert values and all(v.startswith(f"{prefix}/") for v in values), values
        else:
            for resource in resources:
                assert resource.startswith(f"{bucket_arn}/{prefix}/"), (
                    f"{resource} is outside s3://<bucket>/{prefix}/"
                )


# ------------------------------------------------------------------ tests


def test_cfn_lint_finds_no_errors_or_warnings() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE, ManualArgs(regions=["us-east-1", "us-west-2"]))
    found = [
        f"{m.rule.id} line {m.linenumber}: {m.message}"
        for m in matches
        if m.rule.id[0] in "EW" and m.rule.id not in ALLOWED_WARNINGS
    ]
    assert not found, "\n".join(found)


def test_every_instance_type_has_its_queue_and_compute_environment() -> None:
    check_queues(load_template())


def test_every_gpu_type_in_the_catalog_has_a_queue() -> None:
    """The executor submits a cell to its instance's queue: a catalog GPU type without one
    would leave its cells unscheduled."""
    assert set(_catalog_vcpus()) <= set(INSTANCE_TYPES)


def test_queue_names_follow_name_prefix() -> None:
    template = load_template()
    made = Evaluator(template, parameter_values(template, NamePrefix="team-a")).resources()
    names = {
        q["Properties"]["JobQueueName"] for q in _of_type(made, "AWS::Batch::JobQueue").values()
    }
    assert "team-a-g5-xlarge" in names and all(n.startswith("team-a-") for n in names)
    outputs = Evaluator(template, parameter_values(template, NamePrefix="team-a"))(
        template["Outputs"]
    )
    assert outputs["QueuePrefix"]["Value"] == "team-a-"


@pytest.mark.parametrize(
    ("model", "batch_type", "strategy"),
    [("SPOT", "SPOT", "SPOT_CAPACITY_OPTIMIZED"), ("ON_DEMAND", "EC2", "BEST_FIT_PROGRESSIVE")],
)
def test_provisioning_model(model: str, batch_type: str, strategy: str) -> None:
    template = load_template()
    assert template["Parameters"]["ProvisioningModel"]["AllowedValues"] == ["SPOT", "ON_DEMAND"]
    params = parameter_values(template, ProvisioningModel=model, **ALL_FAMILIES)
    envs = _of_type(Evaluator(template, params).resources(), "AWS::Batch::ComputeEnvironment")
    assert len(envs) == len(INSTANCE_TYPES)
    for name, env in envs.items():
        resources = env["Properties"]["ComputeResources"]
        assert resources["Type"] == batch_type, name
        assert resources["AllocationStrategy"] == strategy, name
        assert "SpotIamFleetRole" not in resources, name


def test_families_can_be_turned_off() -> None:
    template = load_template()
    params = parameter_values(template, **{**ALL_FAMILIES, "EnableP5": "false"})
    made = Evaluator(template, params).resources()
    names = {
        q["Properties"]["JobQueueName"] for q in _of_type(made, "AWS::Batch::JobQueue").values()
    }
    assert "bench-p5-48xlarge" not in names and "bench-g5-xlarge" in names


@pytest.mark.parametrize("prefix", ["bench", "team/bench"])
def test_job_role_is_scoped_to_the_results_prefix(prefix: str) -> None:
    check_job_role(load_template(), prefix)


def test_execution_and_instance_roles() -> None:
    template = load_template()
    made = Evaluator(template, parameter_values(template)).resources()
    execution = made["ExecutionRole"]["Properties"]
    assert execution["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    ]
    instance = made["InstanceRole"]["Properties"]
    assert instance["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    ]
    assert made["InstanceProfile"]["Properties"]["Roles"] == ["<InstanceRole>"]


def test_results_bucket_is_private_and_encrypted() -> None:
    template = load_template()
    made = Evaluator(template, parameter_values(template)).resources()
    bucket = made["ResultsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rules = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_image_repositories() -> None:
    template = load_template()
    made = Evaluator(template, parameter_values(template, KeepImages="7")).resources()
    repos = _of_type(made, "AWS::ECR::Repository")
    names = {r["Properties"]["RepositoryName"] for r in repos.values()}
    assert names == {"bench-hf", "bench-deepspeed", "bench-fastertransformer"}
    for repo in repos.values():
        props = repo["Properties"]
        assert props["ImageScanningConfiguration"]["ScanOnPush"] is True
        policy = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])
        (rule,) = policy["rules"]
        assert rule["selection"]["countType"] == "imageCountMoreThan"
        assert rule["selection"]["countNumber"] == 7
        assert rule["action"]["type"] == "expire"


def test_outputs_name_what_a_sweep_needs() -> None:
    template = load_template()
    outputs = Evaluator(template, parameter_values(template))(template["Outputs"])
    values = {name: output["Value"] for name, output in outputs.items()}
    assert values["StoreRoot"] == "s3://<ResultsBucket>/bench"
    assert values["ResultsBucket"] == "<ResultsBucket>"
    assert values["JobRoleArn"] == "<JobRole.Arn>"
    assert values["ExecutionRoleArn"] == "<ExecutionRole.Arn>"
    assert values["QueuePrefix"] == "bench-"
    for repo in ("HfRepository", "DeepspeedRepository", "FastertransformerRepository"):
        assert values[f"{repo}Uri"] == f"<{repo}.RepositoryUri>"


# ------------------------------------------------------------------ the checks can fail


def test_check_queues_catches_a_missing_queue() -> None:
    template = load_template()
    del template["Resources"]["JobQueueG5Xlarge"]
    with pytest.raises(AssertionError, match="bench-g5-xlarge"):
        check_queues(template)


def test_check_queues_catches_a_misnamed_queue() -> None:
    template = load_template()
    queue = template["Resources"]["JobQueueP4de24xlarge"]["Properties"]
    queue["JobQueueName"] = {"Fn::Sub": "${NamePrefix}-p4de.24xlarge"}
    with pytest.raises(AssertionError, match="bench-p4de-24xlarge"):
        check_queues(template)


@pytest.mark.parametrize(
    "resource",
    [
        "*",
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ResultsBucket}/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::*/${ResultsPrefix}/*"},
    ],
)
def test_check_job_role_catches_a_wider_resource(resource: Any) -> None:
    template = load_template()
    statement = template["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    statement["Statement"][0]["Resource"] = resource
    with pytest.raises(AssertionError):
        check_job_role(template)


def test_check_job_role_catches_an_unconditioned_listing() -> None:
    template = load_template()
    policy = template["Resources"]["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    listing = next(s for s in policy["Statement"] if s["Action"] == "s3:ListBucket")
    del listing["Condition"]
    with pytest.raises(AssertionError, match="ListBucket condition"):
        check_job_role(template)
