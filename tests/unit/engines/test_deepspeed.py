"""DeepSpeed's loading without DeepSpeed's process group: the per-rank shard files (written
from one module, read straight into another's empty tensors), the load modes and the cells
they refuse, the per-rank memory figures, and where a checkpoint's derived forms live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from bench.config.checks import ConfigError  # noqa: E402
from bench.engines.checkpoints import derived_folder, weight_files  # noqa: E402
from bench.engines.deepspeed import (  # noqa: E402
    DeepSpeedEngine,
    checkpoint_json,
    load_mode,
    model_bytes,
    read_rank_shard,
    save_rank_shard,
    shards_complete,
)
from bench.engines.device_memory import LoadMemory  # noqa: E402
from bench.plan.grid import plan_from_overrides  # noqa: E402


class Slice(torch.nn.Module):
    """A rank's slice as AutoTP leaves it: a tied pair, a bf16 weight, a buffer that is not
    in the state dict, an empty tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(11, 4)
        self.head = torch.nn.Linear(4, 11, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.mix = torch.nn.Linear(4, 3).to(torch.bfloat16)
        self.register_buffer("table", torch.arange(6.0).reshape(2, 3), persistent=False)
        self.register_buffer("nothing", torch.zeros(0))


def _empty_slice() -> Slice:
    with torch.device("meta"):
        module = Slice()
    return module.to_empty(device="cpu")


def test_a_shard_reads_back_into_an_empty_module_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    written = Slice()
    path = tmp_path / "rank00-of-01.safetensors"
    size = save_rank_shard(written, path)
    assert size == model_bytes(written)  # the tied weight stored once
    aliases = json.loads(_metadata(path)["aliases"])
    assert aliases == {"head.weight": "embed.weight"}

    read = _empty_slice()
    assert read_rank_shard(read, path) == model_bytes(read)
    for (name, want), (_, got) in zip(
        [*written.named_parameters(remove_duplicate=False), *written.named_buffers()],
        [*read.named_parameters(remove_duplicate=False), *read.named_buffers()],
        strict=True,
    ):
        assert got.dtype == want.dtype, name
        assert torch.equal(got, want), name  # non-persistent buffer included


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def test_a_shard_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shard.safetensors"
    save_rank_shard(Slice(), path)
    other = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match="does not match the model"):
        read_rank_shard(other, path)
    wider = _empty_slice()
    wider.mix = torch.nn.Linear(4, 5).to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"mix\.weight is BF16 \[3, 4\] in the file"):
        read_rank_shard(wider, path)


def test_a_shard_folder_is_complete_once_its_manifest_and_every_file_are_there(tmp_path):
    assert not shards_complete(tmp_path)
    (tmp_path / "shards.json").write_text(json.dumps({"files": ["a.safetensors"]}))
    assert not shards_complete(tmp_path)
    (tmp_path / "a.safetensors").write_bytes(b"")
    assert shards_complete(tmp_path)


def _cell(*overrides: str):
    return plan_from_overrides(["model=opt_tiny", "engine=deepspeed", *overrides]).cells[0]


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        ((), "full"),  # one rank: the model read whole
        (("tp_degree=2",), "sharded"),  # AutoTP: each rank reads its own shard
        (("tp_degree=2", "engine.kernel_inject='true'"), "full"),  # injection reads it whole
        (("tp_degree=2", "engine.load=json"), "json"),
        (("tp_degree=2", "engine.load=full"), "full"),
        (("engine.load=sharded",), "sharded"),
    ],
)
def test_the_load_mode(overrides: tuple[str, ...], mode: str) -> None:
    cell = _cell(*overrides)
    assert load_mode(cell, DeepSpeedEngine.options_of(cell.engine.options)) == mode


def test_load_modes_the_cell_cannot_take_are_unsupported_with_the_reason() -> None:
    # a GPU instance: OPT gets DeepSpeed's kernels there (auto)
    inject = _cell("tp_degree=2", "instance=g5.12xlarge", "engine.load=sharded")
    assert "AutoTP path" in DeepSpeedEngine.unsupported_reason(inject)
    one_rank = _cell("engine.load=json")
    assert "tp_degree > 1" in DeepSpeedEngine.unsupported_reason(one_rank)
    assert DeepSpeedEngine.unsupported_reason(_cell("tp_degree=2")) is None


def test_an_unknown_load_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"engine\.load"):
        DeepSpeedEngine.check({"load": "lazy"})


def test_checkpoint_json_lists_the_files_relative_to_the_checkpoint(tmp_path: Path) -> None:
    files = [tmp_path / "model-00001-of-00002.safetensors", tmp_path / "model-00002.safetensors"]
    assert checkpoint_json(tmp_path, files) == {
        "type": "ds_model",
        "checkpoints": ["model-00001-of-00002.safetensors", "model-00002.safetensors"],
        "version": 1.0,
    }


def test_weight_files_follow_the_index(tmp_path: Path) -> None:
    index = {"weight_map": {"a": "model-2.safetensors", "b": "model-1.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert [p.name for p in weight_files(tmp_path)] == [
        "model-2.safetensors",
        "model-1.safetensors",
    ]


def test_a_derived_folder_changes_with_its_spec_and_with_the_weights(tmp_path: Path) -> None:
    checkpoint = tmp_path / "opt"
    checkpoint.mkdir()
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(b"1234")
    models = str(tmp_path / "models")
    first = derived_folder(checkpoint, models, "ds-tp2-fp32", {"deepspeed": "0.19.8"})
    assert first.parent == tmp_path / "models"
    assert first.name.startswith("opt.ds-tp2-fp32-")
    assert first == derived_folder(checkpoint, models, "ds-tp2-fp32", {"deepspeed": "0.19.8"})
    assert first != derived_folder(checkpoint, models, "ds-tp2-fp32", {"deepspeed": "0.20.0"})
    weights.write_bytes(b"123456")  # the checkpoint was built again
    os.utime(weights, ns=(1, 1))
    assert first != derived_folder(checkpoint, models, "ds-tp2-fp32", {"deepspeed": "0.19.8"})


def test_load_memory_keeps_the_load_peak_when_a_later_reset_lowers_vmhwm(monkeypatch) -> None:
    from bench.engines import device_memory

    readings = {"rss": 500.0, "hwm": 500.0}
    monkeypatch.setattr(device_memory, "reset_peak_rss", lambda: True)
    monkeypatch.setattr(device_memory, "rss_mb", lambda: readings["rss"])
    monkeypatch.setattr(device_memory, "peak_rss_mb", lambda: readings["hwm"])
    memory = LoadMemory()
    memory.start()
    readings.update(rss=1200.0, hwm=1300.0)
    memory.loaded()
    readings["hwm"] = 1250.0  # the runner reset the peak after loading; serving peaked lower
    assert memory.figures() == {
        "rss_before_load_mb": 500.0,
        "rss_after_load_mb": 1200.0,
        "load_peak_rss_mb": 1300.0,
        "peak_rss_mb": 1300.0,
    }
    readings["hwm"] = 1400.0  # ... or higher
    assert memory.figures()["peak_rss_mb"] == 1400.0
