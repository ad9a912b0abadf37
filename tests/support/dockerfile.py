"""Reading Dockerfiles without building them: a parser of instructions, continuations and
variables, and the checks bench's images must pass (pinned bases, the entry point, copy
sources, torch left to the base image)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
ENTRYPOINT = ["python", "-m", "bench", "cell"]
PIP_INSTALL = re.compile(r"\bpip3? install\b")


# Every Dockerfile instruction keyword (MAINTAINER, deprecated, is not used here).
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuation lines joined
    line: int  # 1-based line where it starts
    stage: int  # index of the FROM it belongs to; -1 for global ARGs before the first FROM


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, `\\`-continued lines joined."""
    escape = "\\"
    lines = text.splitlines()
    # Parser directives (`# syntax=...`, `# escape=...`) may only open the file.
    for line in lines:
        directive = re.match(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not directive:
            break
        if directive.group(1).lower() == "escape":
            escape = directive.group(2)

    instructions: list[Instruction] = []
    stage = -1
    parts: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue  # comments and blank lines go, also inside a continued instruction
        if not parts:
            start = number
        body = line.rstrip()
        if body.endswith(escape):
            parts.append(body[: -len(escape)])
            continue
        parts.append(body)
        joined = "".join(parts).strip()
        parts = []
        match = re.match(r"(\S+)\s*(.*)", joined, re.DOTALL)
        assert match, f"line {start}: cannot parse {joined!r}"
        keyword = match.group(1).upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, match.group(2).strip(), start, stage))
    if parts:
        raise ValueError(f"line {start}: the file ends inside a continued instruction")
    return instructions


def exec_form(args: str) -> list[str] | None:
    """The argument list when `args` is in JSON (exec) form, else None (shell form)."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def key_values(args: str) -> dict[str, str]:
    """`KEY=value KEY2="v 2"` (ENV, ARG, LABEL) or the legacy `ENV KEY value`; ARG without a
    default maps to ''."""
    if not re.match(r"[^\s=]+=", args) and re.match(r"\S+\s+\S", args):
        key, value = args.split(None, 1)
        return {key: value.strip()}
    pairs: dict[str, str] = {}
    for match in re.finditer(r"""([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?""", args):
        value = match.group(2) or ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs[match.group(1)] = value
    return pairs


def substitute(text: str, variables: dict[str, str]) -> str:
    """Docker's `$VAR`, `${VAR}` and `${VAR:-default}`; an unknown variable stays as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables and variables[name] != "":
            return variables[name]
        if match.group(2) is not None:
            return match.group(2)
        return match.group(0)

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", replace, text)


def stage_variables(instructions: list[Instruction], stage: int, upto: int) -> dict[str, str]:
    """ARG and ENV values visible in `stage` before instruction index `upto`."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == -1 and ins.keyword == "ARG":
            defaults.update(key_values(ins.args))
    variables: dict[str, str] = {}
    for ins in instructions[:upto]:
        if ins.stage != stage or ins.keyword not in ("ARG", "ENV"):
            continue
        for key, value in key_values(ins.args).items():
            # `ARG NAME` inside a stage re-imports the global default; a default may use the
            # variables before it (`ARG BASE_IMAGE=pytorch/pytorch:${PYTORCH_TAG}-runtime`).
            value = substitute(value, variables)
            variables[key] = value if value or ins.keyword == "ENV" else defaults.get(key, "")
    return variables


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    return stage_variables(instructions, -1, len(instructions))


def stages(instructions: list[Instruction]) -> list[tuple[str, str | None]]:
    """(resolved base image, stage name) for each FROM."""
    variables = global_args(instructions)
    result = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append((substitute(words[0], variables), name))
    return result


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last]


def copy_sources(ins: Instruction) -> tuple[list[str], str, dict[str, str]]:
    """(sources, destination, flags) of a COPY/ADD."""
    args = ins.args
    flags: dict[str, str] = {}
    while args.startswith("--"):
        flag, _, args = args.partition(" ")
        key, _, value = flag[2:].partition("=")
        flags[key] = value
        args = args.strip()
    words = exec_form(args) or args.split()
    return words[:-1], words[-1], flags


def load(name: str) -> list[Instruction]:
    return parse((CONTAINERS / name).read_text())


def entrypoint_problems(instructions: list[Instruction]) -> list[str]:
    problems = []
    final = final_stage(instructions)
    entrypoints = [ins for ins in final if ins.keyword == "ENTRYPOINT"]
    if len(entrypoints) != 1:
        return [f"final stage has {len(entrypoints)} ENTRYPOINT instructions, want 1"]
    argv = exec_form(entrypoints[0].args)
    if argv is None:
        problems.append(f"line {entrypoints[0].line}: ENTRYPOINT is not in JSON (exec) form")
    elif argv != ENTRYPOINT:
        problems.append(f"line {entrypoints[0].line}: ENTRYPOINT is {argv}, want {ENTRYPOINT}")
    for ins in final:
        if ins.keyword == "CMD" and exec_form(ins.args) is None:
            problems.append(f"line {ins.line}: shell-form CMD would be appended to ENTRYPOINT")
    return problems


def image_reference_problem(image: str) -> str | None:
    """Why `image` is not pinned, or None. A pin is a tag other than `latest`, or a digest."""
    if "$" in image:
        return f"{image}: unresolved variable"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image}: no tag"
    tag = last.rsplit(":", 1)[1]
    if not tag or tag.lower() == "latest":
        return f"{image}: tag {tag or '(empty)'!r} is not a pin"
    return None


def base_image_problems(instructions: list[Instruction]) -> list[str]:
    problems = []
    names: set[str] = set()
    for image, name in stages(instructions):
        if image not in names and (problem := image_reference_problem(image)):
            problems.append(problem)
        if name:
            names.add(name)
    if not stages(instructions):
        problems.append("no FROM")
    return problems


def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` (relative to the context) out of the build context:
    the last matching pattern wins; a folder's exclusion covers what is inside it."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip().strip("/").removeprefix("./"))
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def copy_problems(instructions: list[Instruction], root: Path) -> list[str]:
    """COPY/ADD sources from the build context must exist there and not be .dockerignored."""
    problems = []
    patterns = dockerignore_patterns(root)
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        sources, _, flags = copy_sources(ins)
        if "from" in flags:
            continue  # from another stage or image, not from the context
        if not sources:
            problems.append(f"line {ins.line}: {ins.keyword} without a source")
        for source in sources:
            if re.match(r"[a-z]+://", source):
                problems.append(f"line {ins.line}: remote source {source}")
                continue
            relative = source.strip("/").removeprefix("./") or "."
            if not ((root / relative).exists() or any(root.glob(relative))):
                problems.append(f"line {ins.line}: {source} does not exist in {root}")
            elif relative != "." and dockerignored(relative, patterns):
                problems.append(f"line {ins.line}: {source} is excluded by .dockerignore")
    return problems


def copied_sources(instructions: list[Instruction]) -> set[str]:
    found = set()
    for ins in instructions:
        if ins.keyword == "COPY":
            sources, _, flags = copy_sources(ins)
            if "from" not in flags:
                found.update(s.strip("/").removeprefix("./") for s in sources)
    return found


def torch_pin_problems(instructions: list[Instruction]) -> list[str]:
    """Each `pip install` must run under a torch constraint: `-c FILE`, or PIP_CONSTRAINT set
    earlier in the same stage, naming a file that an earlier command of the stage wrote from
    the installed packages (`pip list --format=freeze` / `pip freeze`) and torch."""
    problems = []
    for index, ins in enumerate(instructions):
        if ins.keyword != "RUN":
            continue
        variables = stage_variables(instructions, ins.stage, index)
        earlier = [
            e.args for e in instructions[:index] if e.stage == ins.stage and e.keyword == "RUN"
        ]
        for match in PIP_INSTALL.finditer(ins.args):
            command = re.split(r"&&|\|\||;", ins.args[match.start() :])[0]
            if installs_only_torch(command, variables):
                continue  # where the base has no torch, this is what chooses it
            flag = re.search(r"\s(?:-c|--constraint)[\s=]+(\S+)", command)
            constraint = flag.group(1).strip("\"'") if flag else variables.get("PIP_CONSTRAINT")
            if not constraint:
                problems.append(f"line {ins.line}: pip install without PIP_CONSTRAINT or -c")
                continue
            before = [*earlier, ins.args[: match.start()]]
            files = constraint.strip("\"'").split()  # PIP_CONSTRAINT may list several files
            if not any(_writes_torch_constraints(t, f) for t in before for f in files):
                problems.append(f"line {ins.line}: nothing writes torch into {constraint} first")
    return problems


def installs_only_torch(command: str, variables: dict[str, str]) -> bool:
    """`pip install [flags] torch==X`: the one install that may run before the constraints."""
    words = substitute(command, variables).replace('"', "").split()[2:]
    packages = [w for w in words if not w.startswith("-")]
    return len(packages) == 1 and re.fullmatch(r"torch(==[\w.+]+)?", packages[0]) is not None


def _writes_torch_constraints(text: str, path: str) -> bool:
    if path not in text or not re.search(r"pip3? (list --format=freeze|freeze)", text):
        return False
    return re.search(r"\btorch\b", text.replace(path, "")) is not None


def pinned_checkout(instructions: list[Instruction]) -> str | None:
    """The ref a `git clone --branch REF` / `git checkout REF` uses, resolved, or None."""
    for index, ins in enumerate(instructions):
        if ins.keyword != "RUN" or "git " not in ins.args:
            continue
        variables = stage_variables(instructions, ins.stage, index)
        match = re.search(
            r"git\s+clone\b[^&;|]*?\s(?:--branch|-b)[\s=]+(\S+)", ins.args
        ) or re.search(r"git\s+checkout\s+(?:--detach\s+)?(\S+)", ins.args)
        if match:
            return substitute(match.group(1), variables).strip("\"'")
    return None


def pinned_ref_problem(ref: str | None) -> str | None:
    if ref is None:
        return "no `git clone --branch REF` or `git checkout REF`"
    if "$" in ref:
        return f"{ref}: unresolved variable"
    if ref in {"main", "master", "HEAD", "dev", "develop"} or not re.search(r"\d+\.\d+", ref):
        return f"{ref}: a branch, not a release tag"
    return None
