"""A CloudFormation template read and evaluated offline: its intrinsic functions (Ref,
Fn::If, Fn::Sub, ...) resolved for given parameters, enough to check which resources and
policies a stack would create."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "jobs" / "batch.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short-form intrinsics into their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # a SafeLoader subclass


NO_VALUE = object()


PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "bench",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": NO_VALUE,
}


def parameter_values(template: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """Defaults, the required network inputs, then overrides; lists for list types."""
    values: dict[str, Any] = {"VpcId": "vpc-0abc", "SubnetIds": "subnet-0a,subnet-0b"}
    for name, spec in template["Parameters"].items():
        if "Default" in spec:
            values[name] = str(spec["Default"])
    values.update(overrides)
    for name, spec in template["Parameters"].items():
        if spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList":
            values[name] = values[name].split(",")
    missing = set(template["Parameters"]) - set(values)
    assert not missing, f"parameters without a value: {missing}"
    return values


class Evaluator:
    """Evaluates the intrinsics this template uses. A resource's Ref is `<Name>`, a GetAtt
    `<Name.Attr>`: stand-ins for what CloudFormation knows only at deploy time."""

    def __init__(self, template: dict[str, Any], params: dict[str, Any]) -> None:
        self.template = template
        self.params = params
        self.conditions = {
            name: self(expr) for name, expr in template.get("Conditions", {}).items()
        }

    def ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        assert name in self.template["Resources"], f"Ref to unknown {name!r}"
        return f"<{name}>"

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                return f"<{name}>"
            value = self.ref(name)
            assert isinstance(value, str), f"${{{name}}} in Fn::Sub is not a string"
            return value

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.conditions[arg]
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, {k: self(v) for k, v in local.items()})
            if key == "Fn::If":
                name, yes, no = arg
                return self(yes if self.conditions[name] else no)
            if key == "Fn::Equals":
                left, right = (self(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self(arg[0])
            if key == "Fn::And":
                return all(self(a) for a in arg)
            if key == "Fn::Or":
                return any(self(a) for a in arg)
            if key == "Fn::Join":
                return arg[0].join(self(arg[1]))
            assert not key.startswith("Fn::"), f"evaluator does not know {key}"
        items = {k: self(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not NO_VALUE}

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this parameter set creates, properties evaluated."""
        made = {}
        for name, resource in self.template["Resources"].items():
            condition = resource.get("Condition")
            if condition is None or self.conditions[condition]:
                made[name] = {**resource, "Properties": self(resource.get("Properties", {}))}
        return made
