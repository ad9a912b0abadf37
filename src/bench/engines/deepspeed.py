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
  broadcasts "stop".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig, cell_from_dict
from bench.engines.base import Capability, LoadInfo, Unsupported, device_kind
from bench.engines.hf import HFEngine, torch_dtype
from bench.measure.ports import free_port

# Families with DeepSpeed inference kernels (seed 000's list).
KERNEL_FAMILIES = frozenset(
    {"bert", "distilbert", "gpt_neo", "gpt_neox", "gpt2", "gptj", "opt", "bloom", "megatron"}
)
AUTOTP_REFUSES = frozenset({"gpt2"})
FOLLOWER_START_TIMEOUT_S = 600
STOP, INFER, GENERATE = 0, 1, 2  # what rank 0 broadcasts before each request


@dataclass(frozen=True)
class DeepSpeedOptions:
    kernel_inject: str = "auto"  # auto: on GPU for KERNEL_FAMILIES | true | false (AutoTP)


def wants_injection(cell: CellConfig, option: str) -> bool:
    if option == "auto":
        return device_kind(cell) == "cuda" and cell.model.family in KERNEL_FAMILIES
    return option == "true"


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


class DeepSpeedEngine(HFEngine):
    name = "deepspeed"
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

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason:
            return reason
        if device_kind(cell) == "cpu" and cell.precision == "fp16":
            # its CPU accelerator refuses the dtype at init_inference, after every rank loaded
            return "DeepSpeed's CPU accelerator runs fp32 and bf16, not fp16"
        inject = wants_injection(cell, cell.engine.options.get("kernel_inject", "auto"))
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
        return None

    # -- ranks ---------------------------------------------------------------------------
    def _rank(self) -> int:
        return int(os.environ.get("RANK", "0"))

    def _start_followers(self) -> None:
        """Rank 0: set the distributed environment and start ranks 1..K-1."""
        world = self.cell.tp_degree
        base = {
            "WORLD_SIZE": str(world),
            "LOCAL_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }
        os.environ.update(base, RANK="0", LOCAL_RANK="0")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(self.cell.to_dict(), handle)
        self._cell_file = handle.name
        self.followers = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.engines.deepspeed", "--follow", handle.name],
                env={**os.environ, **base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdin=subprocess.DEVNULL,
            )
            for rank in range(1, world)
        ]

    def import_libraries(self) -> None:
        import deepspeed  # noqa: F401  (seconds of its own: never part of load_s or init_s)
        import torch

        if self.cell.device != "cpu" and torch.cuda.is_available():
            # each rank's CUDA context on its own GPU, not all of them on GPU 0
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        super().import_libraries()
        if self.cell.precision == "int8":
            refuse_int8_if_dropped()
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
        if readable := arch_list_for_deepspeed(arch_list):
            os.environ["TORCH_CUDA_ARCH_LIST"] = readable  # this cell's process only; said
            self.arch_list_note = f"TORCH_CUDA_ARCH_LIST {arch_list!r} -> {readable!r}"

    def load(self) -> LoadInfo:
        self.followers: list[subprocess.Popen[bytes]] = []
        if self.cell.tp_degree > 1 and self._rank() == 0 and "WORLD_SIZE" not in os.environ:
            self._start_followers()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return super().load()

    def load_kwargs(self) -> dict[str, Any]:
        # int8: the weights load in fp16 and init_inference quantises them into its kernels
        return {
            "dtype": torch_dtype("fp16" if self.cell.precision == "int8" else self.cell.precision)
        }

    def initialize(self) -> dict[str, Any]:
        import deepspeed
        import torch

        if self.cell.tp_degree > 1:
            deepspeed.init_distributed()
        inject = wants_injection(self.cell, self.options.kernel_inject)
        int8 = self.cell.precision == "int8"
        engine = deepspeed.init_inference(
            self.model,
            tensor_parallel={"tp_size": self.cell.tp_degree},
            dtype=torch.int8 if int8 else torch_dtype(self.cell.precision),
            replace_with_kernel_inject=inject,
        )
        self.ds_engine = engine
        self.model = engine.module
        self._lock = threading.Lock()
        self._command = torch.zeros(1, dtype=torch.int64)
        return {
            "tp_degree": self.cell.tp_degree,
            "kernels_injected": inject,
            "mode": "kernel injection" if inject else "AutoTP",
            "deepspeed_version": deepspeed.__version__,
            **({"kernel_build": note} if (note := getattr(self, "arch_list_note", None)) else {}),
            **({"quantization": "DeepSpeed inference int8 (kernel injection)"} if int8 else {}),
        }

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="DeepSpeed TP follower rank (started by rank 0)")
    parser.add_argument("--follow", required=True, help="the cell, as JSON")
    raise SystemExit(_follow(parser.parse_args().follow))
