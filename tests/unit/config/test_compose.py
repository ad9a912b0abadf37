"""bench.config.compose: overrides in, one composed config out, every error one line naming
the key: a group choice checked before Hydra sees it (and quoted, so `engine=null` is the null
engine), `grid.axes.KEY=[...]` adding an axis, a user's config folder added by
hydra.searchpath, an override the grammar cannot read, a config file that is not YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import compose
from bench.config.checks import ConfigError, UsageError
from bench.config.compose import compose_one, store_root
from bench.config.schema import USER_DIRS_ENV, user_config_dirs
from bench.plan.grid import plan_from_overrides


def test_engine_null_is_the_null_engine_not_none():
    # Hydra reads a bare `null` as None; the group choice must still be the `null` engine.
    cell = plan_from_overrides(["engine=null"]).cells[0]
    assert cell.engine.name == "null"
    assert cell.engine.options == {}


@pytest.mark.parametrize(
    "overrides",
    [
        ["store.root=/tmp/results"],
        ["store.root=s3://bucket/prefix"],
        ["store.root='/tmp/a b'"],  # quoted: Hydra's reading, not the fast path
        ["store.root=/tmp/x", "format=json"],
        [],
    ],
)
def test_store_root_fast_path_agrees_with_composing(overrides):
    assert store_root(overrides) == str(compose_one(overrides).store.root)


def test_a_group_choice_that_is_no_option_names_the_options_and_the_nearest():
    with pytest.raises(ConfigError) as refused:
        compose.check_group_choice("engine", "slep")
    message = str(refused.value)
    assert message.startswith("engine='slep' is not allowed; allowed: ")
    assert "sleep" in message and message.endswith("; did you mean sleep?")
    compose.check_group_choice("engine", "sleep")  # an option passes


def test_overrides_are_normalised_before_hydra_reads_them():
    assert compose._normalise(
        [
            "engine=null",
            "+grid='smoke'",
            "grid.axes.threads=[1,2]",
            "grid.axes.engine.service_ms=[1,2]",
            "grid.max_cells=5",
            "batch_size=4",
        ]
    ) == [
        "engine='null'",  # quoted: Hydra would read a bare null as None
        "+grid='smoke'",
        "++grid.axes.threads=[1,2]",  # an axis is added or replaced
        "++grid.axes={engine.service_ms:[1,2]}",  # a dotted axis is one key of the mapping
        "++grid.max_cells=5",
        "batch_size=4",
    ]


def test_a_new_architecture_replaces_the_models_rather_than_merging_into_it():
    assert compose._normalise(["model.architecture={n_layer: 2}"]) == [
        "~model.architecture",
        "+model.architecture={n_layer: 2}",
    ]
    assert compose._replacing_mapping("model.architecture.n_layer=2") is None


@pytest.mark.parametrize("sweep_id", ["../up", "résumé", "a/b"])
def test_a_sweep_id_is_checked_before_hydras_grammar_sees_it(sweep_id):
    with pytest.raises(ConfigError) as refused:
        compose._normalise([f"sweep_id={sweep_id}"])
    assert refused.value.key == "sweep_id"
    assert compose._normalise(["sweep_id=null", "sweep_id=${now:x}"])  # left to the config


def test_a_searchpath_adds_a_users_config_folder_and_is_taken_out(tmp_path, monkeypatch):
    monkeypatch.setenv(USER_DIRS_ENV, "")
    rest = compose.take_searchpath([f"hydra.searchpath=[file://{tmp_path}]", "threads=2"])
    assert rest == ["threads=2"] and user_config_dirs() == [tmp_path.resolve()]
    with pytest.raises(ConfigError) as refused:
        compose.take_searchpath(["hydra.searchpath=[pkg://bench.conf]"])
    assert refused.value.key == "hydra.searchpath" and "file:///absolute/folder" in str(
        refused.value
    )


def test_an_override_the_grammar_cannot_read_is_named_with_how_to_quote_it():
    with pytest.raises(ConfigError) as refused:
        compose_one(["batch_size=[1"])
    error = refused.value
    assert (error.key, error.value) == ("batch_size", "[1")
    assert "quote it (key='value')" in str(error) and "\n" not in str(error)


def test_an_unknown_key_is_named_with_the_nearest_known_one():
    with pytest.raises((ConfigError, UsageError)) as refused:
        compose_one(["scenario.min_requets=5"])
    message = str(refused.value)
    assert "min_requets" in message and "did you mean min_requests?" in message


def test_a_grid_file_that_is_not_yaml_says_where_it_breaks(conf_copy: Path):
    (conf_copy / "grid" / "broken.yaml").write_text("axes:\n  threads: [1, 2\n  batch_size: 3\n")
    with pytest.raises(ConfigError) as refused:
        compose_one(["+grid=broken"])
    error = refused.value
    assert (error.key, error.value) == ("grid", "broken")
    assert "broken.yaml line " in str(error) and "is not valid YAML" in str(error)


def test_the_gist_of_a_nested_error_is_one_line():
    inner = ValueError("Could not load 'x'\n  because\n  of this\nand more")
    outer = RuntimeError("Error composing")
    outer.__cause__ = inner
    assert compose._one_line(outer) == "Could not load 'x' because"
    assert compose._one_line(KeyError()) == "KeyError"
