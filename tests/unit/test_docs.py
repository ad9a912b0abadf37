"""The README and docs/ against the code: the generated column page, the README's length, every
relative link, every `python -m bench` command in a code block (its verb, its arguments, its
override keys) and every `make` target named. No sweep runs and no model loads: the commands
are parsed by the CLI's own parser and their overrides composed by the CLI's own Hydra
composition, nothing more."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from bench.cli import parser as cli
from bench.config.checks import ConfigError
from bench.config.compose import UsageError, compose_many
from bench.config.schema import CONFIG_GROUPS
from bench.row.schema_doc import columns_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# A stand-in a reader replaces: SWEEP_ID, BASE, DIR, R, <role>, and the synopsis' `...`.
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*|<[^>]*>|\.\.\.")
SHELL_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
GENERIC = {"key=value", "..."}  # the synopsis' "any override"
BENCH = ("python", ".venv/bin/python")
GROUP_KEYS = (*CONFIG_GROUPS, "grid")
# Each verb's own `key=value` options, which the CLI takes before Hydra sees the rest.
OWN_NUMERIC = {
    "compare": cli.COMPARE_OPTIONS,
    "capacity": cli.CAPACITY_OPTIONS,
    "report": {**cli.COMPARE_OPTIONS, **cli.CAPACITY_OPTIONS},
}
# compare=BASE, ratio=A/B; compare's ab=KEY (one A/B sweep) and host_check=off
OWN_TEXT = {
    "report": ("compare", "ratio"),
    "collect": ("format",),
    "compare": ("ab", "host_check"),
}
FIT_SHORT = ("params", "lbme_gb")  # `fit params=15e9` is `fit.params=15e9`


def _without_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def link_problems(page: Path) -> list[str]:
    """Relative links (and images) whose file, or heading anchor in a Markdown file, is absent."""
    problems = []
    for target in LINK.findall(_without_code(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(f"{_name(page)}: link to {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            problems.append(f"{_name(page)}: link to {target}: no such heading")
    return problems


def _logical_lines(block: str) -> list[str]:
    """A code block's lines with backslash continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def _words(line: str) -> list[str] | None:
    """A shell line's words (comments dropped), or None when it is not a shell line."""
    try:
        return shlex.split(line.strip().removeprefix("$ "), comments=True)
    except ValueError:
        return None


def _unbracket(word: str) -> str:
    """A synopsis word without its optional-part brackets: `[--strict]` -> `--strict`,
    `[key=value` -> `key=value`; a value's own list (`axes.x=[1,8]`) is kept."""
    word = word.removeprefix("[")
    while word.endswith("]") and word.count("]") > word.count("["):
        word = word[:-1]
    return word


def _placeholder(value: str) -> bool:
    return bool(PLACEHOLDER.fullmatch(value))


def _is_bench(module: str) -> bool:
    return module == "bench" or module.startswith("bench.")


def bench_commands(text: str) -> list[tuple[str, list[str]]]:
    """(line, words after `python -m`) of every bench command in the text's code blocks."""
    found = []
    for block in FENCE.findall(text):
        for line in _logical_lines(block):
            words = _words(line) or []
            if len(words) > 2 and words[0] in BENCH and words[1] == "-m" and _is_bench(words[2]):
                # a shell expansion ($BASE_SHA) stands for what the shell fills in: its name
                filled = [SHELL_VARIABLE.sub(r"\1", w) for w in words[2:]]
                found.append((line.strip(), [_unbracket(w) for w in filled]))
    return found


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _check_own_options(verb: str, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(problems, the overrides left for Hydra) after the verb's own options."""
    problems, rest = [], []
    for override in overrides:
        key, _, value = override.partition("=")
        if key in OWN_NUMERIC.get(verb, {}):
            if not _placeholder(value):
                try:
                    cli._verb_options([override], OWN_NUMERIC[verb])
                except ConfigError as exc:
                    problems.append(str(exc))
        elif key in OWN_TEXT.get(verb, ()):
            if key == "format" and not _placeholder(value) and value not in cli.EXPORT_FORMATS:
                problems.append(f"collect format={value}: not one of {cli.EXPORT_FORMATS}")
        elif verb == "fit" and key in FIT_SHORT:
            rest.append(f"fit.{override}")
        else:
            rest.append(override)
    return problems, rest


def _key_exists(cfg: object, key: str) -> bool:
    from omegaconf import OmegaConf

    if key.startswith("grid.axes."):  # axes are open: any key may become one
        return True
    missing = object()
    return OmegaConf.select(cfg, key, default=missing) is not missing  # type: ignore[arg-type]


def _parse(words: list[str]) -> tuple[str | None, object, list[str]]:
    """(problem, parsed arguments, --config-dir folders) of `bench ...` words, as the CLI parses
    them (placeholder positionals and option values stand in as `0`)."""
    argv = ["0" if _placeholder(w) else w for w in words if w not in GENERIC]
    _, dirs, _ = cli._global_flags(argv)
    errors = io.StringIO()
    try:
        # the docs' example config folders need not exist; argparse's complaint is kept
        with mock.patch.object(cli, "add_config_dir"), contextlib.redirect_stderr(errors):
            return None, cli._arguments(argv), dirs
    except SystemExit:
        said = errors.getvalue().strip().splitlines()
        return f"does not parse: {said[-1] if said else ' '.join(argv)}", None, dirs
    except (ConfigError, UsageError) as exc:
        return str(exc), None, dirs


def command_problems(text: str) -> list[str]:
    """What is wrong with the bench commands in the text's code blocks: an unknown verb or
    module, arguments the parser refuses, a verb option out of range, an override key the
    composed config lacks, a config group choice that does not exist."""
    problems: list[str] = []
    to_compose: list[tuple[str, list[str], list[str]]] = []  # (line, overrides, keys to look up)
    for line, words in bench_commands(text):
        if words[0] != "bench":  # `python -m bench.row.schema_doc`
            if importlib.util.find_spec(words[0]) is None:
                problems.append(f"{line}: no module {words[0]}")
            continue
        args = [w for w in words[1:] if w not in GENERIC]
        if "-h" in args or "--help" in args:
            verb = next((w for w in args if not w.startswith("-")), None)
            if verb is not None and not _placeholder(verb) and verb not in cli.HANDLERS:
                problems.append(f"{line}: no verb {verb}")
            continue
        problem, parsed, dirs = _parse(args)
        if problem:
            problems.append(f"{line}: {problem}")
            continue
        verb = parsed.verb  # type: ignore[attr-defined]
        own, rest = _check_own_options(verb, list(getattr(parsed, "overrides", [])))
        problems += [f"{line}: {p}" for p in own]
        concrete = [o for o in rest if not _placeholder(o.partition("=")[2])]
        if len(concrete) == len(rest) and not dirs:
            to_compose.append((line, rest, []))  # the whole command, as the CLI composes it
            continue
        # illustrative: compose its concrete group choices, then look its keys up in that
        choices = [o for o in concrete if _key(o) in GROUP_KEYS and not dirs]
        keys = [_key(o) for o in rest if _key(o) not in GROUP_KEYS]
        to_compose.append((line, choices, keys))
    problems += _compose_problems(to_compose)
    return problems


def _compose_problems(items: list[tuple[str, list[str], list[str]]]) -> list[str]:
    """Compose each distinct override list (one Hydra initialisation for all; one each only
    when some fails, to say which) and look the keys up in the result."""
    distinct = list(dict.fromkeys(tuple(overrides) for _, overrides, _ in items))
    composed: dict[tuple[str, ...], object] = {}
    try:
        composed = dict(zip(distinct, compose_many([list(o) for o in distinct]), strict=True))
    except (ConfigError, UsageError):
        for overrides in distinct:
            try:
                composed[overrides] = compose_many([list(overrides)])[0]
            except (ConfigError, UsageError) as exc:
                composed[overrides] = exc
    problems = []
    for line, overrides, keys in items:
        cfg = composed[tuple(overrides)]
        if isinstance(cfg, Exception):
            problems.append(f"{line}: {cfg}")
        else:
            problems += [f"{line}: no config key {k}" for k in keys if not _key_exists(cfg, k)]
    return problems


def inline_verb_problems(text: str) -> list[str]:
    """`python -m bench VERB ...` in running text: the verb must exist."""
    problems = []
    for _, code in INLINE_CODE.findall(FENCE.sub("", text)):
        words = _words(code)
        if words and len(words) > 3 and words[0] in BENCH and words[1:3] == ["-m", "bench"]:
            verb = _unbracket(words[3])
            if _placeholder(verb) or verb.startswith("-"):  # `python -m bench VERB --help`
                continue
            if verb not in cli.HANDLERS:
                problems.append(f"`{code}`: no verb {verb}")
    return problems


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M))


def make_problems(text: str, targets: set[str]) -> list[str]:
    """`make TARGET` in a code block or in running text: the Makefile must have the target."""
    named = []
    for block in FENCE.findall(text):
        named += [_words(line) for line in _logical_lines(block)]
    named += [_words(code) for _, code in INLINE_CODE.findall(FENCE.sub("", text))]
    problems = []
    for words in named:
        if words and words[0] == "make":
            for target in (w for w in words[1:] if "=" not in w and not w.startswith("-")):
                if target not in targets:
                    problems.append(f"make {target}: no such target in the Makefile")
    return problems


def test_columns_page_is_the_schema():
    assert (DOCS / "columns.md").read_text() == columns_markdown(), (
        "docs/columns.md differs from src/bench/row/schema.py's schema: run `make docs`"
    )


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_relative_links_resolve(page):
    assert not link_problems(page)


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_bench_commands_parse_and_name_real_keys(page):
    text = page.read_text()
    assert not command_problems(text) + inline_verb_problems(text)


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_make_targets_exist(page):
    assert not make_problems(page.read_text(), makefile_targets())


def test_the_checks_catch_broken_docs(tmp_path):
    """Each check fails on a page that breaks it, so a passing run means something."""

    def block(*lines: str) -> str:
        return "```bash\n" + "\n".join(lines) + "\n```\n"

    good = block(
        "python -m bench sweep +grid=smoke precision=bf16",
        "python -m bench capacity SWEEP_ID rate=R sla.p99_ms=X",
        "python -m bench collect SWEEP_ID format=csv",
    )
    assert not command_problems(good)
    for broken in (
        "python -m bench swep +grid=smoke",  # no such verb
        "python -m bench sweep +grid=smok",  # no such grid
        "python -m bench run scenario.min_request=5",  # no such key
        "python -m bench run model=NAME scenario.min_request=K",  # illustrative, still no key
        "python -m bench compare BASE NEW threshold=2",  # out of range
        "python -m bench collect SWEEP_ID format=xml",  # not an export format
        "python -m bench status",  # the sweep id is required
        "python -m bench.no_such_module",
    ):
        assert command_problems(block(broken)), broken
    assert inline_verb_problems("run `python -m bench swep +grid=smoke` first")
    assert make_problems(block("make no-such-target"), makefile_targets())
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[here](missing.md), [there](#title), [gone](#nowhere)\n")
    assert len(link_problems(page)) == 2


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a page."""
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```[ \t]*$", text, re.S | re.M)]


@pytest.mark.parametrize("page", pages(), ids=_name)
def test_python_blocks_parse(page):
    for block in python_blocks(page.read_text()):
        ast.parse(block)


def _aggregate(folder: Path) -> None:
    """results/smoke-1/aggregated.parquet: two models' ok rows (one sure, one not) and a
    failed one, every other column null, written with the row schema."""
    import pyarrow.parquet as pq

    from bench.row.schema import rows_to_table

    base = {"precision": "fp32", "threads": 1, "n": 400, "latency_ms_p50": 3.0}
    rows = [
        {**base, "model": "bert_tiny", "batch_size": 1, "status": "ok", "stability": "stable",
         "latency_ms_p99": 9.0, "latency_ms_p99_hi": 11.0, "usd_per_million_inferences": 0.4},
        {**base, "model": "opt_tiny", "batch_size": 4, "status": "ok", "stability": "drifting",
         "latency_ms_p99": 30.0, "latency_ms_p99_hi": 90.0, "usd_per_million_inferences": 0.2},
        {**base, "model": "opt_tiny", "batch_size": 1, "status": "failed"},
    ]  # fmt: skip
    (folder / "results" / "smoke-1").mkdir(parents=True)
    pq.write_table(rows_to_table(rows), folder / "results" / "smoke-1" / "aggregated.parquet")


def _run_readme_snippet(tmp_path: Path, snippet: str) -> str:
    _aggregate(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_readme_results_snippet_prints_the_rows_it_promises(tmp_path):
    (snippet,) = python_blocks(README.read_text())
    out = _run_readme_snippet(tmp_path, snippet)
    assert "Empty DataFrame" not in out
    assert "bert_tiny" in out and "opt_tiny" in out and "latency_ms_p99_hi" in out
    # the sure row is bert_tiny's alone: stable, P99 bounded under the SLA
    last = out.strip().splitlines()[-1]
    assert last.split()[0] == "bert_tiny", out


def test_a_renamed_column_fails_the_readme_snippet(tmp_path):
    """Shown once: the snippet names a column the schema no longer has."""
    (snippet,) = python_blocks(README.read_text())
    with pytest.raises(AssertionError, match="KeyError"):
        _run_readme_snippet(tmp_path, snippet.replace('"stability"', '"verdict"'))


@pytest.mark.parametrize("verb", sorted(cli.VERB_EXAMPLES))
def test_each_verbs_help_examples_parse(verb):
    examples = cli.VERB_EXAMPLES[verb]
    assert examples and all(e.startswith(f"python -m bench {verb}") for e in examples)
    assert not command_problems("```bash\n" + "\n".join(examples) + "\n```\n")
