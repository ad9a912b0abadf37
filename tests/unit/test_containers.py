"""The container images, checked statically (nothing here needs Docker): every Dockerfile ends in
the `python -m bench cell` entry point, which must be a real verb of the CLI; base images are
pinned; COPY sources exist and are not hidden by .dockerignore; pip cannot replace the base
image's torch; the FasterTransformer image builds a pinned release in a separate stage and
points BENCH_FT_LIB at the library it copies.

The checks are functions returning a list of problems, so the tests at the bottom can show that
each one rejects a bad Dockerfile.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench.cli
from tests.support.dockerfile import (
    CONTAINERS,
    ENTRYPOINT,
    INSTRUCTIONS,
    REPO,
    base_image_problems,
    copied_sources,
    copy_problems,
    copy_sources,
    dockerignore_patterns,
    dockerignored,
    entrypoint_problems,
    final_stage,
    installs_only_torch,
    key_values,
    load,
    parse,
    pinned_checkout,
    pinned_ref_problem,
    stage_variables,
    stages,
    substitute,
    torch_pin_problems,
)

DOCKERFILES = (
    "Dockerfile.hf",
    "Dockerfile.deepspeed",
    "Dockerfile.fastertransformer",
    "Dockerfile.vllm",
)
# Built on vLLM's official image, whose torch is vLLM's choice, not the shared PyTorch release.
ON_PYTORCH_IMAGES = tuple(name for name in DOCKERFILES if name != "Dockerfile.vllm")
FT_LIB_NAME = "libth_transformer.so"


# ------------------------------------------------------------------------------------------
# A small Dockerfile parser: enough of the format for these files (no heredocs).
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Checks: each returns a list of problems (empty = fine).
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# The real Dockerfiles.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_parses(name: str) -> None:
    instructions = load(name)
    assert instructions, name
    assert instructions[0].keyword in ("FROM", "ARG"), instructions[0]
    unknown = [(i.line, i.keyword) for i in instructions if i.keyword not in INSTRUCTIONS]
    assert not unknown, f"{name}: unknown instructions {unknown}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_entrypoint_is_the_cell_verb_in_exec_form(name: str) -> None:
    assert entrypoint_problems(load(name)) == []


def test_entrypoint_resolves_to_a_cli_verb(tmp_path: Path) -> None:
    python, flag, module, verb = ENTRYPOINT
    assert (python, flag) == ("python", "-m")
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    assert verb in bench.cli.HANDLERS
    # What the container runs, from a folder with no source tree on the path.
    done = subprocess.run(
        [sys.executable, "-m", module, verb, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--manifest" in done.stdout
    assert "--index" in done.stdout


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_images_are_pinned(name: str) -> None:
    instructions = load(name)
    assert stages(instructions), f"{name}: no FROM"
    assert base_image_problems(instructions) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copy_sources_exist_in_the_context(name: str) -> None:
    assert copy_problems(load(name), REPO) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_install_bench_with_its_config(name: str) -> None:
    instructions = final_stage(load(name))
    copied = copied_sources(instructions)
    # pyproject.toml names README.md as the readme: the build fails without it.
    assert {"pyproject.toml", "README.md", "src", "conf"} <= copied, copied
    assert any(
        ins.keyword == "RUN" and re.search(r"pip3? install\b[^&;|]*\s\.(\s|$)", ins.args)
        for ins in instructions
    ), f"{name}: no `pip install .` in the final stage"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_pip_cannot_replace_the_base_torch(name: str) -> None:
    assert torch_pin_problems(load(name)) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_git_sha_comes_from_a_build_arg(name: str) -> None:
    final = final_stage(load(name))
    args = [
        ins for ins in final if ins.keyword == "ARG" and "BENCH_GIT_SHA" in key_values(ins.args)
    ]
    envs = [
        ins for ins in final if ins.keyword == "ENV" and "BENCH_GIT_SHA" in key_values(ins.args)
    ]
    assert args, f"{name}: no ARG BENCH_GIT_SHA in the final stage"
    assert envs, f"{name}: no ENV BENCH_GIT_SHA in the final stage"
    assert envs[-1].line > args[0].line
    assert key_values(envs[-1].args)["BENCH_GIT_SHA"] in ("${BENCH_GIT_SHA}", "$BENCH_GIT_SHA")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_healthcheck(name: str) -> None:
    checks = [ins.args.upper() for ins in final_stage(load(name)) if ins.keyword == "HEALTHCHECK"]
    assert checks == ["NONE"]


def test_all_images_share_one_pytorch_release() -> None:
    tags = set()
    for name in ON_PYTORCH_IMAGES:
        for image, _ in stages(load(name)):
            repository, _, tag = image.partition(":")
            assert repository == "pytorch/pytorch", image
            tags.add(re.sub(r"-(runtime|devel)$", "", tag))
    assert len(tags) == 1, tags


def test_deepspeed_is_pinned_and_builds_no_ops() -> None:
    instructions = load("Dockerfile.deepspeed")
    final = final_stage(instructions)
    variables = stage_variables(instructions, final[0].stage, len(instructions))
    assert variables.get("DS_BUILD_OPS") == "0"
    installs = [
        substitute(ins.args, variables)
        for ins in final
        if ins.keyword == "RUN" and "deepspeed" in ins.args and "pip install" in ins.args
    ]
    assert installs, "deepspeed is never pip-installed"
    assert "ninja" in installs[0]
    _installs_under_the_lock(final, "deepspeed")
    # JIT-compiled ops need nvcc: the devel flavour of the base.
    assert stages(instructions)[-1][0].endswith("-devel")


def _installs_under_the_lock(stage: list, package: str) -> None:
    """The project's lock is copied in and made a pip constraint before the stage's first pip
    install, so `package` (which the lock pins) installs at the version CI tested."""
    steps = [(i.keyword, i.args) for i in stage]

    def first(found) -> int:
        return next(k for k, (keyword, args) in enumerate(steps) if found(keyword, args))

    copy = first(lambda kw, args: kw == "COPY" and "requirements.lock" in args)
    env = first(lambda kw, args: kw == "ENV" and re.search(r"PIP_CONSTRAINT=.*requirements", args))
    install = first(
        lambda kw, args: (
            kw == "RUN"
            and any(
                not installs_only_torch(c, {"TORCH": "torch==2"})
                for c in re.findall(r"pip install[^&;|]*", args)
            )
        )
    )
    assert copy < env < install, (copy, env, install)
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(rf"^{package}==\d", lock, re.M), f"the lock does not pin {package}"


def test_hf_image_installs_accelerate_at_the_locks_version() -> None:
    _installs_under_the_lock(final_stage(load("Dockerfile.hf")), "accelerate")


def test_fastertransformer_builds_a_pinned_release_in_its_own_stage() -> None:
    instructions = load("Dockerfile.fastertransformer")
    bases = stages(instructions)
    assert len(bases) >= 2, bases
    builder = [name for _, name in bases[:-1] if name]
    assert builder, "the build stage has no name to copy from"
    assert bases[0][0].endswith("-devel") and bases[-1][0].endswith("-runtime"), bases

    ref = pinned_checkout(instructions)
    assert pinned_ref_problem(ref) is None, pinned_ref_problem(ref)
    assert "5.3" in str(ref)

    build = " ".join(ins.args for ins in instructions if ins.keyword == "RUN" and ins.stage == 0)
    for flag in ("-DSM=", "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_PYT=ON", "-DBUILD_MULTI_GPU=ON"):
        assert flag in build, flag
    assert re.search(r"\bmake\s+-j", build)
    sm = stage_variables(instructions, 0, len(instructions)).get("FT_SM", "")
    assert {"80", "86", "90"} <= set(sm.split(";")), sm


def test_fastertransformer_runtime_gets_only_the_op_library() -> None:
    instructions = load("Dockerfile.fastertransformer")
    final = final_stage(instructions)
    variables = stage_variables(instructions, final[0].stage, len(instructions))
    library = variables.get("BENCH_FT_LIB", "")
    assert library.endswith("/" + FT_LIB_NAME), library

    builders = {name for _, name in stages(instructions)[:-1] if name}
    copies = [copy_sources(ins) for ins in final if ins.keyword == "COPY"]
    from_builder = [c for c in copies if c[2].get("from") in builders]
    assert from_builder, "nothing is copied from the build stage"
    libraries = [(s, d) for s, d, _ in from_builder if any(".so" in x for x in s)]
    assert len(libraries) == 1, libraries
    sources, dest = libraries[0]
    assert len(sources) == 1 and sources[0].endswith(f"/lib/{FT_LIB_NAME}"), sources
    installed_at = dest + FT_LIB_NAME if dest.endswith("/") else dest
    assert installed_at == library, (installed_at, library)
    # Nothing else of the build tree (no folders, no other binaries).
    for srcs, _, _ in from_builder:
        for source in srcs:
            assert not source.endswith("/") and "*" not in source, source


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns(REPO)
    for path in (".venv", ".git", "results", ".pytest_cache", ".ruff_cache", "src/x/__pycache__"):
        assert dockerignored(path, patterns), path
    for path in ("src", "conf", "pyproject.toml", "README.md", "src/bench/cli/entry.py"):
        assert not dockerignored(path, patterns), path


def test_readme_documents_the_images() -> None:
    text = (CONTAINERS / "README.md").read_text()
    for needle in (*DOCKERFILES, "BENCH_FT_LIB", "AWS_BATCH_JOB_ARRAY_INDEX", "--manifest"):
        assert needle in text, needle


# ------------------------------------------------------------------------------------------
# The checks reject bad Dockerfiles.
# ------------------------------------------------------------------------------------------

GOOD = """\
# syntax=docker/dockerfile:1
ARG TAG=2.5.1-cuda12.4-cudnn9
FROM pytorch/pytorch:${TAG}-runtime
RUN pip list --format=freeze | grep '^torch==' > /c.txt
ENV PIP_CONSTRAINT=/c.txt
COPY pyproject.toml README.md ./
RUN apt-get update \\
    # a comment inside a continued instruction
 && pip install .
ENTRYPOINT ["python", "-m", "bench", "cell"]
"""


def test_parser_joins_continuations_and_drops_comments() -> None:
    instructions = parse(GOOD)
    assert [i.keyword for i in instructions] == [
        "ARG",
        "FROM",
        "RUN",
        "ENV",
        "COPY",
        "RUN",
        "ENTRYPOINT",
    ]
    assert instructions[5].args == "apt-get update  && pip install ."
    assert instructions[5].line == 7
    assert stages(instructions) == [("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", None)]
    assert [i.stage for i in instructions] == [-1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="continued"):
        parse("FROM a:1\nRUN true \\\n")


def test_checks_accept_a_good_dockerfile() -> None:
    instructions = parse(GOOD)
    assert entrypoint_problems(instructions) == []
    assert base_image_problems(instructions) == []
    assert copy_problems(instructions, REPO) == []
    assert torch_pin_problems(instructions) == []


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('ENTRYPOINT ["python", "-m", "bench", "cell"]', "ENTRYPOINT python -m bench cell", "JSON"),
        ('"cell"]', '"run"]', "want"),
        ('"cell"]', '"cell"]\nENTRYPOINT ["python"]', "2 ENTRYPOINT"),
        ('"cell"]', '"cell"]\nCMD --help', "shell-form CMD"),
        ('"cell"]', '"cell"]\nFROM ubuntu:22.04', "0 ENTRYPOINT"),
    ],
)
def test_entrypoint_check_rejects(old: str, new: str, fragment: str) -> None:
    problems = entrypoint_problems(parse(GOOD.replace(old, new)))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("pytorch/pytorch", "no tag"),
        ("pytorch/pytorch:latest", "not a pin"),
        ("localhost:5000/pytorch", "no tag"),
        ("pytorch/pytorch:${UNSET}", "unresolved"),
    ],
)
def test_base_image_check_rejects(image: str, fragment: str) -> None:
    text = GOOD.replace("pytorch/pytorch:${TAG}-runtime", image)
    problems = base_image_problems(parse(text))
    assert any(fragment in p for p in problems), problems


def test_base_image_check_accepts_digests_and_stage_names() -> None:
    text = "FROM nvidia/cuda@sha256:abc AS build\nFROM build\nFROM registry:5000/x/y:1.2\n"
    assert base_image_problems(parse(text)) == []


def test_copy_check_rejects_missing_and_ignored_sources(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "README.md", ".venv/bin/python"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert copy_problems(parse(GOOD), tmp_path) == []
    (tmp_path / ".dockerignore").write_text("# local state\n.venv\n")
    text = GOOD.replace("COPY pyproject.toml", "COPY no-such-file.txt .venv pyproject.toml")
    problems = copy_problems(parse(text), tmp_path)
    assert any("no-such-file.txt does not exist" in p for p in problems), problems
    assert any(".venv is excluded" in p for p in problems), problems
    # Copies from another stage are not looked up in the context.
    assert copy_problems(parse("FROM a:1 AS b\nCOPY --from=b /x /y\n"), tmp_path) == []


def test_torch_pin_check_rejects_unconstrained_installs() -> None:
    unconstrained = GOOD.replace("ENV PIP_CONSTRAINT=/c.txt\n", "")
    assert any("without PIP_CONSTRAINT" in p for p in torch_pin_problems(parse(unconstrained)))
    empty = GOOD.replace("RUN pip list --format=freeze | grep '^torch==' > /c.txt\n", "")
    assert any("nothing writes torch" in p for p in torch_pin_problems(parse(empty)))
    # -c works too, if the file holds the installed torch (written earlier, even in the same RUN).
    unwritten = "FROM a:1\nRUN pip install -c /x.txt foo\n"
    assert any("nothing writes torch" in p for p in torch_pin_problems(parse(unwritten)))
    written = "FROM a:1\nRUN pip freeze | grep ^torch== > /x.txt && pip install -c /x.txt foo\n"
    assert torch_pin_problems(parse(written)) == []
    # Installing torch itself (the base had none) is the one install allowed before it; a
    # second package in that command is not.
    torch_first = 'FROM a:1\nARG TORCH=torch==2.13.0\nRUN pip install "${TORCH}"\n'
    assert torch_pin_problems(parse(torch_first)) == []
    assert torch_pin_problems(parse(torch_first.replace('"${TORCH}"', '"${TORCH}" numpy')))
    # A constraint set in an earlier stage does not carry over.
    two_stages = GOOD.replace("COPY pyproject.toml", "FROM pytorch/pytorch:2.5.1-runtime\nCOPY x")
    assert torch_pin_problems(parse(two_stages))


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ("git clone --branch release/v5.3_tag https://x/y.git", None),
        ("git clone -b v5.3 https://x/y.git", None),
        ("git clone https://x/y.git && cd y && git checkout main", "branch"),
        ("git clone --branch ${REF} https://x/y.git", "unresolved"),
        ("git clone https://x/y.git", "no `git clone"),
    ],
)
def test_pinned_checkout_check(run: str, problem: str | None) -> None:
    found = pinned_ref_problem(pinned_checkout(parse(f"FROM a:1\nRUN {run}\n")))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_dockerignore_matching() -> None:
    patterns = ["results", "**/__pycache__", "*.log", "docs", "!docs/keep.md"]
    assert dockerignored("results/x.parquet", patterns)
    assert dockerignored("a/b/__pycache__/m.pyc", patterns)
    assert dockerignored("x.log", patterns)
    assert not dockerignored("src/x.log", patterns)  # `*` does not cross folders
    assert not dockerignored("src/results", patterns)  # patterns are anchored at the root
    assert dockerignored("docs/a.md", patterns)
    assert not dockerignored("docs/keep.md", patterns)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(name: str) -> None:
    # Each exception is an inline `# hadolint ignore=...` with its reason beside it.
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), "--no-color", str(CONTAINERS / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
