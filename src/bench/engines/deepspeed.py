"""DeepSpeed inference: `deepspeed.init_inference` with tensor parallelism.

- Kernel injection (`replace_with_kernel_inject=True`, DeepSpeed's fused CUDA kernels) on GPU
  for the families DeepSpeed has kernels for; AutoTP (DeepSpeed shards the Linear layers
  itself) otherwise. Injection needs CUDA: on CPU it is `unsupported` with that reason, and
  GPT-2 (which AutoTP refuses) can only run with injection.
- tp_degree K > 1: the cell's process becomes rank 0 and starts K-1 follower processes
  (`python -m bench.engines.deepspeed --follow CELL.json`), with RANK / WORLD_SIZE /
  LOCAL_SIZE / MASTER_ADDR set as the deepspeed launcher would (LOCAL_SIZE must equal the
  world size for DeepSpeed's shared-memory all-reduce on CPU). Rank 0 runs the load generator;
  before each request it broadcasts which request comes (forward or generate) and every
  follower runs the same request, so the
  ranks stay in lockstep. Requests are serialised on rank 0 (a TP group serves one batch at a
  time), so extra client threads queue, as they would against a TP server. At the end rank 0
  broadcasts "stop". The followers start, and the ranks form their process group, in
  prepare(), which is not timed: load_s is the ranks' load, not their start-up.
- Loading (`engine.load`), as seed 002 loaded its large models where it can:
  - `sharded` (the default for tp_degree > 1 under AutoTP): every rank builds the model on the
    meta device (`deepspeed.OnDevice(dtype, device="meta")`: shapes, no weights),
    `init_inference` shards the empty model (AutoTP) and allocates the rank's slice, and the
    rank reads its own file of a pre-sharded checkpoint straight into that slice. No rank ever
    holds the whole model, so each rank's peak is its shard plus a fixed footprint. bench
    writes the shards once per checkpoint x TP degree x dtype x DeepSpeed version (K writer
    processes each load the model, let AutoTP shard it and save their slice as safetensors)
    under models_dir, and every later cell reuses them; writing them is checkpoint_build_s.
  - `json`: DeepSpeed's own checkpoint loading: the meta-device model and
    `init_inference(checkpoint=JSON)`, the json listing the checkpoint's safetensors files
    (`{"type": "ds_model", "checkpoints": [...], "version": 1.0}`). Under AutoTP each rank
    reads every listed file whole and keeps its slices, so a rank's peak is the largest file
    plus its shard (above the whole model for a one-file checkpoint: docs/seeds.md).
  - `full`: the whole model read on the host (`from_pretrained`), then `init_inference`
    shards it and moves each rank's slice to its GPU (the model never goes whole onto each
    GPU). Kernel injection always loads this way: DeepSpeed's injected-kernel checkpoint
    loader reads torch pickles, not safetensors. tp_degree 1 loads this way by default.
  load_s is the load: for sharded and json the meta build, init_inference and the reads
  (init_s is then nothing); for full, from_pretrained (init_s: init_inference).
- Memory: every rank records its resident memory around the load (LoadMemory); at the end
  rank 0 gathers them into the row (rank_memory_json, rank_peak_rss_mb).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig, cell_from_dict
from bench.engines.base import Capability, LoadInfo, PrepareInfo, Unsupported, device_kind
from bench.engines.device_memory import LoadMemory
from bench.engines.hf import HFEngine, torch_dtype
from bench.engines.ports import free_port

# Families with DeepSpeed inference kernels (seed 000's list).
KERNEL_FAMILIES = frozenset(
    {"bert", "distilbert", "gpt_neo", "gpt_neox", "gpt2", "gptj", "opt", "bloom", "megatron"}
)
AUTOTP_REFUSES = frozenset({"gpt2"})
FOLLOWER_START_TIMEOUT_S = 600
SHARD_WRITE_TIMEOUT_S = 7200  # a 30B model read, sharded and saved by every writer rank
# what rank 0 broadcasts before each request (and, at the end, to gather the ranks' memory)
STOP, INFER, GENERATE, REPORT = 0, 1, 2, 3
LOAD_MODES = ("auto", "sharded", "json", "full")
SHARD_FORMAT = "bench-deepspeed-autotp-shards"  # one safetensors file per rank + a manifest
SHARD_MANIFEST = "shards.json"
CHECKPOINT_JSON = "ds_checkpoint.json"
RANK_THREADS_VARIABLE = "BENCH_RANK_TORCH_THREADS"  # rank 0's torch threads, for every rank


@dataclass(frozen=True)
class DeepSpeedOptions:
    kernel_inject: str = "auto"  # auto: on GPU for KERNEL_FAMILIES | true | false (AutoTP)
    load: str = "auto"  # auto: sharded for tp_degree > 1 under AutoTP, else full | sharded |
    # json (DeepSpeed's checkpoint json) | full (the whole model on the host, then sharded)


def wants_injection(cell: CellConfig, option: str) -> bool:
    if option == "auto":
        return device_kind(cell) == "cuda" and cell.model.family in KERNEL_FAMILIES
    return option == "true"


def load_mode(cell: CellConfig, options: DeepSpeedOptions) -> str:
    """How the cell's ranks load (module docstring): `engine.load`, with auto resolved."""
    mode = options.load
    if mode != "auto":
        return mode
    inject = wants_injection(cell, options.kernel_inject)
    return "sharded" if cell.tp_degree > 1 and not inject else "full"


# -- pre-sharded checkpoints: one safetensors file per rank ---------------------------------

SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def shard_file_name(rank: int, world: int) -> str:
    return f"rank{rank:02d}-of-{world:02d}.safetensors"


def named_tensors(module: Any) -> Iterator[tuple[str, Any]]:
    """Every parameter and buffer by every name it has (tied ones under each, non-persistent
    buffers too): what a rank's slice of the model is."""
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def model_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers, each tensor once (tied weights once),
    read from shapes alone: works on a meta-device model."""
    tensors = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def save_rank_shard(module: Any, path: Path) -> int:
    """This rank's slice of the model as one safetensors file: every parameter and buffer by
    name, a tensor shared by several names stored once with the other names as aliases in
    the file's metadata. Returns the bytes of tensor data written."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, tensor in named_tensors(module):
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
    metadata = {"format": SHARD_FORMAT, "aliases": json.dumps(aliases, sort_keys=True)}
    save_file(tensors, str(path), metadata=metadata)
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _read_exactly(handle: Any, offset: int, target: Any) -> None:
    """Fill the contiguous CPU tensor `target` with the file's bytes at `offset`."""
    import torch

    view = memoryview(target.detach().reshape(-1).view(torch.uint8).numpy())
    handle.seek(offset)
    got = 0
    while got < len(view):  # one read() returns at most ~2 GiB on Linux
        count = handle.readinto(view[got:])
        if not count:
            raise EOFError(f"{handle.name}: ends inside a tensor")
        got += count


def read_rank_shard(module: Any, path: Path) -> int:
    """Read this rank's shard file into the module's allocated (uninitialised) parameters
    and buffers, each straight from the file into the tensor's own memory: no mapping of the
    file and no second copy, so the rank holds its slice once. Every tensor of the module
    must be in the file with its shape and dtype, and the file must hold nothing else.
    Returns the bytes read."""
    import torch

    with open(path, "rb", buffering=0) as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
        aliases = json.loads((header.pop("__metadata__", None) or {}).get("aliases", "{}"))
        wanted = dict(named_tensors(module))
        keys = {name: aliases.get(name, name) for name in wanted}
        missing = sorted(name for name, key in keys.items() if key not in header)
        unused = sorted(set(header) - set(keys.values()))
        if missing or unused:
            raise ValueError(
                f"{path}: does not match the model as DeepSpeed shards it here (missing "
                f"{missing[:4]}, unexpected {unused[:4]}); delete the folder to write it again"
            )
        read = 0
        done: set[int] = set()
        for name, tensor in wanted.items():
            if id(tensor) in done:  # a tied weight, under its second name
                continue
            done.add(id(tensor))
            entry = header[keys[name]]
            code = SAFETENSORS_DTYPES.get(str(tensor.dtype).removeprefix("torch."))
            if entry["dtype"] != code or list(entry["shape"]) != list(tensor.shape):
                raise ValueError(
                    f"{path}: {name} is {entry['dtype']} {entry['shape']} in the file, "
                    f"{code} {list(tensor.shape)} in the model"
                )
            begin, end = entry["data_offsets"]
            if end == begin:
                continue
            direct = tensor.device.type == "cpu" and tensor.is_contiguous()
            target = tensor if direct else torch.empty(tensor.shape, dtype=tensor.dtype)
            _read_exactly(handle, 8 + size + begin, target)
            if not direct:
                with torch.no_grad():
                    tensor.copy_(target)
            read += end - begin
    return read


def shards_complete(folder: Path) -> bool:
    manifest = folder / SHARD_MANIFEST
    if not manifest.exists():
        return False
    files = json.loads(manifest.read_text()).get("files", [])
    return bool(files) and all((folder / name).exists() for name in files)


def checkpoint_json(folder: Path, files: list[Path]) -> dict[str, Any]:
    """DeepSpeed's checkpoint json for a Hugging Face checkpoint's safetensors files, names
    relative to the checkpoint folder (init_inference's base_dir)."""
    names = [str(path.relative_to(folder)) for path in files]
    return {"type": "ds_model", "checkpoints": names, "version": 1.0}


ARCH_ENTRY = re.compile(r"^(\d+)\.(\d+)[a-z]?(\+PTX)?$")


def arch_list_for_deepspeed(value: str) -> str | None:
    """TORCH_CUDA_ARCH_LIST as DeepSpeed's JIT op builder can read it, or None when it can
    already. Its builder parses each entry's minor version with int(), so an arch-specific
    suffix (9.0a for Hopper's wgmma, 10.0f) stops every kernel build with "invalid literal
    for int() with base 10: '0a'" (DeepSpeed 0.19.8 on an H200 image that sets 9.0a). The
    suffix only unlocks arch-specific instructions DeepSpeed's kernels do not use, so the
    same arch without it builds the same kernels. Entries it cannot map are left as they are.
    """
    entries = [e for e in value.replace(" ", ";").split(";") if e]
    fixed = []
    for entry in entries:
        match = ARCH_ENTRY.match(entry)
        fixed.append(f"{match[1]}.{match[2]}{match[3] or ''}" if match else entry)
    return ";".join(fixed) if fixed != entries else None


def refuse_int8_if_dropped() -> None:
    """`Unsupported` before any load where the installed DeepSpeed's inference engine refuses
    torch.int8: it checks the dtype against its accelerator's `supported_dtypes()`, which in
    recent releases lists fp32 / fp16 / bf16 only (0.19.8 on an H200: "Data type torch.int8
    is not supported by cuda accelerator"), so the seed's DeepSpeed int8 path no longer runs;
    bitsandbytes (engine=hf or accelerate) does."""
    import deepspeed
    import torch
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    supported = accelerator.supported_dtypes()
    if torch.int8 not in supported:
        names = ", ".join(str(dtype).removeprefix("torch.") for dtype in supported)
        raise Unsupported(
            f"DeepSpeed {deepspeed.__version__}'s inference engine accepts {names} on "
            f"{accelerator.device_name()}, not int8 (its int8 kernels were dropped); "
            "engine=hf or accelerate run int8 through bitsandbytes"
        )


# The DeepSpeed that the deepspeed image installs (requirements.lock; a test keeps them equal),
# and what it is known to refuse: its inference engine checks the dtype against the
# accelerator's supported_dtypes(), which has no int8 (seen on an H200 and on CPU).
IMAGE_DEEPSPEED = "0.19.8"


class DeepSpeedEngine(HFEngine):
    name = "deepspeed"
    transforms_model = True  # quality=auto checks its outputs against eager fp32
    Options = DeepSpeedOptions
    capability = Capability(
        frozenset({"fp32", "fp16", "bf16", "int8"}),
        frozenset({"cpu", "cuda"}),
        max_tp=None,
        tensor_parallel=True,
        tasks=frozenset({"encode", "generate", "seq2seq"}),
        task_notes=(
            (
                "classify_image",
                "DeepSpeed inference shards and fuses transformer text layers; its kernel "
                "injection and AutoTP have no policy for image models",
            ),
        ),
        varied_inputs=True,
    )
    cuda_sync_scope = "device"  # tensor parallel: the ranks' collectives run on their streams

    @classmethod
    def varies_inputs(cls, cell: CellConfig) -> bool:
        """One process (tp_degree 1) sends each request's own inputs; tensor-parallel ranks
        repeat rank 0's requests with a batch each makes alike (bench.measure.lockstep)."""
        return cell.tp_degree == 1

    @classmethod
    def validate(cls, options: DeepSpeedOptions) -> None:
        if options.kernel_inject not in ("auto", "true", "false"):
            raise ConfigError(
                "engine.kernel_inject", options.kernel_inject, "allowed: auto, true, false"
            )
        if options.load not in LOAD_MODES:
            raise ConfigError("engine.load", options.load, f"allowed: {', '.join(LOAD_MODES)}")

    @classmethod
    def plan_warning(cls, cell: CellConfig) -> str | None:
        if cell.precision != "int8":
            return None
        return (
            f"DeepSpeed {IMAGE_DEEPSPEED} (the deepspeed image's) has no int8 inference "
            "kernels: the job reports `unsupported` unless its DeepSpeed still has them; "
            "runnable instead: fp16 on GPUs that hold it, or int8 through bitsandbytes "
            "(engine=accelerate or hf)"
        )

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason:
            return reason
        if device_kind(cell) == "cpu" and cell.precision == "fp16":
            # its CPU accelerator refuses the dtype at init_inference, after every rank loaded
            return "DeepSpeed's CPU accelerator runs fp32 and bf16, not fp16"
        options = cls.options_of(cell.engine.options)
        inject = wants_injection(cell, options.kernel_inject)
        if cell.precision == "int8" and not (inject and device_kind(cell) == "cuda"):
            return (
                "DeepSpeed's int8 is its kernel-injected inference path: it needs CUDA and a "
                f"family with DeepSpeed kernels ({', '.join(sorted(KERNEL_FAMILIES))})"
            )
        if inject and device_kind(cell) != "cuda":
            return "DeepSpeed kernel injection needs CUDA (its fused kernels are GPU-only)"
        if inject and cell.model.family not in KERNEL_FAMILIES:
            return f"DeepSpeed has no inference kernels for the {cell.model.family} family"
        if not inject and cell.model.family in AUTOTP_REFUSES:
            return (
                f"DeepSpeed AutoTP refuses {cell.model.family}: it needs kernel injection, "
                "which needs CUDA"
            )
        mode = load_mode(cell, options)
        if inject and mode in ("sharded", "json"):
            return (
                f"engine.load={mode} is an AutoTP path (bench's per-rank shards, DeepSpeed's "
                "checkpoint json over safetensors); kernel injection loads the full model on "
                "the host (engine.load=full or auto)"
            )
        if mode == "json" and cell.tp_degree == 1:
            return (
                "engine.load=json: DeepSpeed reads a checkpoint json only while it shards "
                "(tp_degree > 1) or injects kernels; tp_degree 1 loads with engine.load=full"
            )
        return None

    # -- ranks ---------------------------------------------------------------------------
    def _rank(self) -> int:
        return int(os.environ.get("RANK", "0"))

    def _leads(self) -> bool:
        """This process started the cell (rank 0, before any group exists)."""
        return self._rank() == 0 and "WORLD_SIZE" not in os.environ

    def _cell_json(self) -> str:
        """The cell as a JSON file the processes rank 0 starts read (removed at close)."""
        if getattr(self, "_cell_file", None) is None:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(self.cell.to_dict(), handle)
            self._cell_file = handle.name
        return self._cell_file

    def _spawn_ranks(self, ranks: range, args: list[str]) -> list[subprocess.Popen[bytes]]:
        """`python -m bench.engines.deepspeed ARGS` as ranks `ranks` of a group of
        tp_degree, with the environment the deepspeed launcher would set (LOCAL_SIZE equal
        to the world size for DeepSpeed's shared-memory all-reduce on CPU); returns the base
        environment's processes."""
        import torch

        world = self.cell.tp_degree
        self._group_env = {
            "WORLD_SIZE": str(world),
            "LOCAL_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
            RANK_THREADS_VARIABLE: str(torch.get_num_threads()),  # rank 0's, as the cell set it
        }
        command = [sys.executable, "-m", "bench.engines.deepspeed", *args]
        return [
            subprocess.Popen(
                command,
                env={**os.environ, **self._group_env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdin=subprocess.DEVNULL,
            )
            for rank in ranks
        ]

    def _start_followers(self) -> None:
        """Rank 0: start ranks 1..K-1 and join their group as rank 0."""
        self.followers = self._spawn_ranks(
            range(1, self.cell.tp_degree), ["--follow", self._cell_json()]
        )
        os.environ.update(self._group_env, RANK="0", LOCAL_RANK="0")

    def _write_shards(self, into: Path) -> None:
        """Rank 0, once per checkpoint x TP degree x dtype: K writer processes load the
        model, let AutoTP shard it and save one file per rank into `into` (their peak is
        theirs, never the cell's)."""
        writers = self._spawn_ranks(
            range(self.cell.tp_degree), ["--write-shards", self._cell_json(), "--into", str(into)]
        )
        codes = []
        for writer in writers:
            try:
                codes.append(writer.wait(timeout=SHARD_WRITE_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                writer.kill()
                codes.append("timeout")
        if any(code != 0 for code in codes):
            raise RuntimeError(
                f"writing the {self.cell.tp_degree}-rank DeepSpeed shards of {self.folder} "
                f"failed (writer exit codes {codes}; their output is in the cell's log)"
            )

    def import_libraries(self) -> None:
        # deepspeed: seconds of its own, never part of load_s or init_s. torch._dynamo (which
        # transformers' generation code imports) before any deepspeed.OnDevice: imported
        # inside it, its patched tensor constructor stops the import ("Signature mismatch")
        import deepspeed  # noqa: F401
        import torch
        import torch._dynamo
        import transformers.generation.utils  # noqa: F401

        if self.cell.device != "cpu" and torch.cuda.is_available():
            # each rank's CUDA context on its own GPU, not all of them on GPU 0
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if (threads := os.environ.get(RANK_THREADS_VARIABLE)) and not self._leads():
            torch.set_num_threads(int(threads))  # a rank rank 0 started: its thread count
        super().import_libraries()
        if self.cell.precision == "int8":
            refuse_int8_if_dropped()
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
        if readable := arch_list_for_deepspeed(arch_list):
            os.environ["TORCH_CUDA_ARCH_LIST"] = readable  # this cell's process only; said
            self.arch_list_note = f"TORCH_CUDA_ARCH_LIST {arch_list!r} -> {readable!r}"

    def prepare(self) -> PrepareInfo:
        """The checkpoint (built once), then the load mode's own form of it (written once:
        per-rank shards, or DeepSpeed's checkpoint json), then the TP group: followers
        started and the process group formed, all before load_s begins."""
        from bench.engines.checkpoints import derived_folder, publish_folder, weight_files

        info = super().prepare()
        self.followers: list[subprocess.Popen[bytes]] = []
        self.ds_engine: Any = None
        self.mode = load_mode(self.cell, self.options)
        self.loading: dict[str, Any] = {"load": self.mode}
        if self.mode == "sharded":
            import deepspeed

            spec = {"format": SHARD_FORMAT, "deepspeed": deepspeed.__version__}
            kind = f"ds-tp{self.cell.tp_degree}-{self.cell.precision}"
            self.shards = derived_folder(self.folder, self.cell.models_dir, kind, spec)
            if not shards_complete(self.shards):
                if not self._leads():  # rank 0 writes them before it starts the followers
                    raise RuntimeError(f"rank {self._rank()}: no shards at {self.shards}")
                seconds = publish_folder(self.shards, self._write_shards, shards_complete)
                info.build_s = (info.build_s or 0.0) + seconds
                self.loading["shards_written_s"] = round(seconds, 3)
            self.loading["shards"] = str(self.shards)
        elif self.mode == "json":
            folder = derived_folder(Path(self.folder), self.cell.models_dir, "ds-json", {})
            self.checkpoint_json = folder / CHECKPOINT_JSON
            document = checkpoint_json(Path(self.folder), weight_files(Path(self.folder)))

            def write_json(tmp: Path) -> None:
                (tmp / CHECKPOINT_JSON).write_text(json.dumps(document, indent=1))

            if not self.checkpoint_json.exists():
                publish_folder(folder, write_json, lambda path: (path / CHECKPOINT_JSON).exists())
            self.loading["checkpoint_json"] = str(self.checkpoint_json)
        if self.cell.tp_degree > 1:
            import deepspeed
            import torch.distributed as dist

            if self._leads():
                self._start_followers()
            started = time.perf_counter()
            deepspeed.init_distributed()
            dist.barrier()  # every rank here: their loads start together
            self.loading["group_s"] = round(time.perf_counter() - started, 3)
        return info

    def load(self) -> LoadInfo:
        self.memory = LoadMemory()
        self.memory.start()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        if self.mode in ("sharded", "json"):
            return self._load_on_meta()
        return self._load_full()

    def _load_full(self) -> LoadInfo:
        """The whole model read on the host; with tp_degree > 1 it stays there until
        init_inference has sharded it, and DeepSpeed moves each rank's slice to its GPU."""
        from bench.engines.checkpoints import auto_class

        model = auto_class(self.cell.model.auto_class).from_pretrained(
            self.folder, **self.load_kwargs()
        )
        if self.cell.tp_degree == 1:
            model = model.to(self.device)
        self.model = model.eval()
        self.synchronize()
        self.loading["model_mb"] = round(model_bytes(model) / 2**20, 1)
        params = sum(p.numel() for p in self.model.parameters())
        return LoadInfo(device=self.device, params=params, extra=self.load_facts())

    def _load_on_meta(self) -> LoadInfo:
        """Seed 002's way: the model built on the meta device, sharded by init_inference while
        empty, then each rank's slice read (from its own shard file, or by DeepSpeed from the
        checkpoint json)."""
        import deepspeed
        import transformers

        from bench.engines.checkpoints import auto_class

        dtype = torch_dtype(self.cell.precision)
        started = time.perf_counter()
        config = transformers.AutoConfig.from_pretrained(self.folder)
        with deepspeed.OnDevice(dtype=dtype, device="meta"):
            model = auto_class(self.cell.model.auto_class).from_config(config, dtype=dtype)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        whole = model_bytes(model)
        built = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if self.mode == "json":
            kwargs = {"checkpoint": str(self.checkpoint_json), "base_dir": str(self.folder)}
        self.ds_engine = deepspeed.init_inference(
            model,
            tensor_parallel={"tp_size": self.cell.tp_degree},
            dtype=dtype,
            replace_with_kernel_inject=False,
            **kwargs,
        )
        self.model = self.ds_engine.module.eval()
        sharded = time.perf_counter()
        phases = {"meta_build_s": built - started, "init_inference_s": sharded - built}
        if self.mode == "sharded":
            name = shard_file_name(self._rank(), self.cell.tp_degree)
            read_rank_shard(self.model, self.shards / name)
            phases["read_shard_s"] = time.perf_counter() - sharded
        self.synchronize()
        self.loading.update(
            model_mb=round(whole / 2**20, 1),
            shard_mb=round(model_bytes(self.model) / 2**20, 1),
            load_phases={k: round(v, 3) for k, v in phases.items()},
        )
        return LoadInfo(device=self.device, params=params, extra=self.load_facts())

    def load_facts(self) -> dict[str, Any]:
        return {"tp_degree": self.cell.tp_degree, **self.loading}

    def load_kwargs(self) -> dict[str, Any]:
        # int8: the weights load in fp16 and init_inference quantises them into its kernels
        return {
            "dtype": torch_dtype("fp16" if self.cell.precision == "int8" else self.cell.precision)
        }

    def initialize(self) -> dict[str, Any]:
        import deepspeed
        import torch

        inject = wants_injection(self.cell, self.options.kernel_inject)
        int8 = self.cell.precision == "int8"
        if self.ds_engine is None:  # load=full: shard (and inject) the model read whole
            self.ds_engine = deepspeed.init_inference(
                self.model,
                tensor_parallel={"tp_size": self.cell.tp_degree},
                dtype=torch.int8 if int8 else torch_dtype(self.cell.precision),
                replace_with_kernel_inject=inject,
            )
            self.model = self.ds_engine.module
            self.loading["shard_mb"] = round(model_bytes(self.model) / 2**20, 1)
        self.memory.loaded()
        self._lock = threading.Lock()
        # on the rank's device: NCCL (DeepSpeed's backend on CUDA) carries no host tensors
        self._command = torch.zeros(1, dtype=torch.int64, device=self._collective_device())
        return {
            "tp_degree": self.cell.tp_degree,
            "shard_mb": self.loading.get("shard_mb"),
            "kernels_injected": inject,
            "mode": "kernel injection" if inject else "AutoTP",
            "deepspeed_version": deepspeed.__version__,
            **({"kernel_build": note} if (note := getattr(self, "arch_list_note", None)) else {}),
            **({"quantization": "DeepSpeed inference int8 (kernel injection)"} if int8 else {}),
        }

    def _collective_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"

    def rank_memory(self) -> list[dict[str, Any]]:
        """Every rank's LoadMemory figures, rank 0 first (a collective: every rank calls it,
        the followers when rank 0 broadcasts REPORT)."""
        import torch

        figures = getattr(self, "memory", LoadMemory()).figures()
        shard_mb = self.loading.get("shard_mb", self.loading.get("model_mb"))
        mine = [float(self._rank()), *figures.values(), shard_mb]
        rows = [[math.nan if v is None else float(v) for v in mine]]
        if self.cell.tp_degree > 1:
            import torch.distributed as dist

            tensor = torch.tensor(rows[0], dtype=torch.float64, device=self._collective_device())
            gathered = [torch.empty_like(tensor) for _ in range(self.cell.tp_degree)]
            dist.all_gather(gathered, tensor)
            rows = [t.cpu().tolist() for t in gathered]
        names = [*LoadMemory.FIELDS, "shard_mb"]
        return [
            {
                "rank": int(row[0]),
                **{
                    k: None if math.isnan(v) else round(v, 1)
                    for k, v in zip(names, row[1:], strict=True)
                },
            }
            for row in sorted(rows)
        ]

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        if self.cell.tp_degree > 1:
            with self._lock:
                self._broadcast(REPORT)
                ranks = self.rank_memory()
        else:
            ranks = self.rank_memory()
        peaks = [r["peak_rss_mb"] for r in ranks if r["peak_rss_mb"] is not None]
        facts["rank_memory_json"] = json.dumps(ranks)
        facts["rank_peak_rss_mb"] = max(peaks) if peaks else None
        return facts

    def _broadcast(self, command: int) -> int:
        import torch.distributed as dist

        self._command.fill_(command)
        dist.broadcast(self._command, src=0)
        return int(self._command.item())

    def infer(self, batch: dict[str, Any]) -> Any:
        if self.cell.tp_degree == 1:
            return super().infer(batch)
        with self._lock:  # one request at a time through the TP group, in the same order
            self._broadcast(INFER)
            return super().infer(batch)

    def generate(self, batch: dict[str, Any], new_tokens: int, streamer: Any = None) -> Any:
        if self.cell.tp_degree == 1:
            return super().generate(batch, new_tokens, streamer)
        with self._lock:
            self._broadcast(GENERATE)
            return super().generate(batch, new_tokens, streamer)

    def follow(self) -> None:
        """Ranks 1..K-1: run each request rank 0 announces, until it says stop."""
        batch = self.make_batch()
        while (command := self._broadcast(STOP)) != STOP:  # our value is ignored: rank 0's wins
            if command == REPORT:
                self.rank_memory()
                continue
            if command == GENERATE:
                HFEngine.generate(self, batch, self.cell.model.new_tokens)
            else:
                HFEngine.infer(self, batch)
            self.synchronize()

    def close(self) -> None:
        if self.cell.tp_degree > 1 and self._rank() == 0 and getattr(self, "_lock", None):
            with self._lock:
                self._broadcast(STOP)
        for follower in getattr(self, "followers", []):
            try:
                follower.wait(timeout=60)
            except subprocess.TimeoutExpired:
                follower.kill()
        if getattr(self, "_cell_file", None):
            Path(self._cell_file).unlink(missing_ok=True)
        super().close()


def _follow(cell_file: str) -> int:
    cell = cell_from_dict(json.loads(Path(cell_file).read_text()))
    engine = DeepSpeedEngine(cell)
    engine.prepare()
    engine.load()
    engine.initialize()
    try:
        engine.follow()
    finally:
        engine.model = None
    return 0


def _write(cell_file: str, into: str) -> int:
    """One writer rank: the whole model on the host, sharded by AutoTP, this rank's slice
    saved; rank 0 then writes the manifest that makes the folder complete."""
    import deepspeed
    import torch.distributed as dist

    from bench.engines.checkpoints import auto_class

    cell = cell_from_dict(json.loads(Path(cell_file).read_text()))
    engine = DeepSpeedEngine(cell)
    engine.import_libraries()
    folder = HFEngine.prepare(engine).checkpoint  # built already by rank 0
    dtype = torch_dtype(cell.precision)
    model = auto_class(cell.model.auto_class).from_pretrained(folder, dtype=dtype).eval()
    params, whole = sum(p.numel() for p in model.parameters()), model_bytes(model)
    deepspeed.init_distributed()
    sharded = deepspeed.init_inference(
        model,
        tensor_parallel={"tp_size": cell.tp_degree},
        dtype=dtype,
        replace_with_kernel_inject=False,
        keep_module_on_host=True,
    ).module
    rank = dist.get_rank()
    save_rank_shard(sharded, Path(into) / shard_file_name(rank, cell.tp_degree))
    dist.barrier()
    if rank == 0:
        files = [shard_file_name(r, cell.tp_degree) for r in range(cell.tp_degree)]
        manifest = {
            "format": SHARD_FORMAT,
            "tp_size": cell.tp_degree,
            "dtype": str(dtype).removeprefix("torch."),
            "deepspeed_version": deepspeed.__version__,
            "checkpoint": str(folder),
            "params": params,
            "model_bytes": whole,
            "files": files,
            "file_bytes": [(Path(into) / name).stat().st_size for name in files],
        }
        (Path(into) / SHARD_MANIFEST).write_text(json.dumps(manifest, indent=1))
    dist.barrier()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="DeepSpeed TP ranks started by rank 0")
    parser.add_argument("--follow", help="follow rank 0's requests for this cell (JSON)")
    parser.add_argument("--write-shards", help="write this cell's per-rank shards (JSON)")
    parser.add_argument("--into", help="the folder the shards go to")
    args = parser.parse_args()
    if args.write_shards:
        raise SystemExit(_write(args.write_shards, args.into))
    raise SystemExit(_follow(args.follow))
