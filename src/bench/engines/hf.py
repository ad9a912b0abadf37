"""transformers eager (PyTorch): one model copy on one device, fp32 / fp16 / bf16 / int8.

int8: on CPU, torch's dynamic quantization of every nn.Linear (weights int8, activations
quantised per batch), applied in initialize() so it counts as init_s; on CUDA, bitsandbytes'
LLM.int8() at load time where bitsandbytes is installed (else the cell is `unsupported`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bench.config import InstanceSpec
from bench.engines.base import (
    ANY_PRECISION,
    BOTH_DEVICES,
    Capability,
    Engine,
    LoadInfo,
    PrepareInfo,
    Unsupported,
)

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float32"}


class NoGPUError(RuntimeError):
    pass


def resolve_device(requested: str, instance: InstanceSpec) -> str:
    """The device to run on. A cell for a GPU instance type never silently runs on the CPU:
    its row would carry the GPU instance's name and price over CPU figures."""
    import torch

    has_cuda = torch.cuda.is_available()
    wants_gpu = requested == "cuda" or (requested == "auto" and instance.gpus > 0)
    if wants_gpu and not has_cuda:
        raise NoGPUError(
            f"instance {instance.type} has {instance.gpus} x {instance.gpu_model} GPU but torch "
            "sees no CUDA device here; run this cell on such a host"
            if instance.gpus
            else "device=cuda but torch sees no CUDA device here"
        )
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    return requested


def torch_dtype(precision: str) -> Any:
    import torch

    return getattr(torch, TORCH_DTYPES[precision])


def token_clock(synchronize: Any) -> Any:
    """A generate() streamer that stamps the host time each step's tokens are ready.

    transformers hands a streamer the prompt first, then each step's new tokens; the stamp
    is taken after a device synchronise, so it is when the token exists on the device and
    could be sent to a client."""
    import time

    from transformers.generation.streamers import BaseStreamer

    class TokenClock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[int] = []
            self._prompt_seen = False

        def put(self, value: Any) -> None:
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            synchronize()
            self.times.append(time.perf_counter_ns())

        def end(self) -> None:
            pass

    return TokenClock()


class HFEngine(Engine):
    name = "hf"
    capability = Capability(ANY_PRECISION | {"int8"}, BOTH_DEVICES)

    def prepare(self) -> PrepareInfo:
        from transformers.utils import logging as hf_logging

        from bench.models import ensure_checkpoint

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        cell = self.cell
        # Before any build: a GPU cell on a host without one fails at once, not after minutes.
        self.device = resolve_device(cell.device, cell.instance)
        got = ensure_checkpoint(cell.model, cell.models_dir, cell.seed)
        self.folder = got.folder
        return PrepareInfo(
            checkpoint=str(got.folder), build_s=got.build_s, download_s=got.download_s
        )

    def load_kwargs(self) -> dict[str, Any]:
        """from_pretrained arguments; subclasses add device maps and quantisation configs."""
        kwargs: dict[str, Any] = {"dtype": torch_dtype(self.cell.precision)}
        if self.cell.precision == "int8" and self.device.startswith("cuda"):
            if importlib.util.find_spec("bitsandbytes") is None:
                raise Unsupported("int8 on CUDA needs bitsandbytes, which is not installed here")
            from transformers import BitsAndBytesConfig

            kwargs.update(dtype=torch_dtype("fp16"), device_map={"": 0})
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        return kwargs

    def load(self) -> LoadInfo:
        import torch

        from bench.models import auto_class

        cell = self.cell
        if cell.torch_threads:
            torch.set_num_threads(cell.torch_threads)
        kwargs = self.load_kwargs()
        model = auto_class(cell.model.auto_class).from_pretrained(self.folder, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(self.device)
        self.model = model.eval()
        self.synchronize()
        params = sum(p.numel() for p in self.model.parameters())
        return LoadInfo(device=self.device, params=params, extra=self.load_facts())

    def load_facts(self) -> dict[str, Any]:
        return {"tp_degree": 1}

    def initialize(self) -> dict[str, Any]:
        if self.cell.precision == "int8" and self.device == "cpu":
            import torch
            from torch.ao.quantization import quantize_dynamic

            self.model = quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
            return {"quantization": "torch dynamic int8 (nn.Linear)"}
        if self.cell.precision == "int8":
            return {"quantization": "bitsandbytes LLM.int8()"}
        return {}

    def input_device(self) -> str:
        return self.device

    def make_batch(self) -> dict[str, Any]:
        import torch

        cell = self.cell
        generator = torch.Generator().manual_seed(cell.seed)
        vocab = int(self.model.config.vocab_size)
        # Ids from 3 up avoid the special tokens (pad/bos/eos) of the common tokenizers.
        shape = (cell.batch_size, cell.model.seq_len)
        ids = torch.randint(3, vocab, shape, generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return {k: v.to(self.input_device()) for k, v in batch.items()}

    def infer(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(**batch)

    def generate(self, batch: dict[str, Any], new_tokens: int, streamer: Any = None) -> Any:
        import torch

        pad = self.model.config.pad_token_id
        with torch.inference_mode():
            return self.model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # a fixed amount of work per request
                do_sample=False,
                pad_token_id=pad if pad is not None else self.model.config.eos_token_id,
                streamer=streamer,
            )

    def generate_timed(self, batch: dict[str, Any], new_tokens: int) -> list[int]:
        clock = token_clock(self.synchronize)
        self.generate(batch, new_tokens, streamer=clock)
        return clock.times

    def own_memory(self) -> None:
        """On CPU, weights loaded from safetensors stay mapped from the checkpoint file, and
        every copy of one file would share those pages; clone them into private memory."""
        if self.device == "cpu":
            import itertools

            import torch

            with torch.no_grad():
                for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
                    tensor.data = tensor.data.clone()

    def synchronize(self) -> None:
        if getattr(self, "device", "cpu").startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self.model = None
        if getattr(self, "device", "cpu").startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        import torch

        facts: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
        if self.device.startswith("cuda"):
            facts["gpu_name"] = torch.cuda.get_device_name()
            facts["gpu_count"] = torch.cuda.device_count()
            facts["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return facts
