"""transformers eager (PyTorch): one model copy on one device, fp32 / fp16 / bf16."""

from __future__ import annotations

from typing import Any

from bench.config import InstanceSpec
from bench.engines.base import Engine, LoadInfo, PrepareInfo

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


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


class HFEngine(Engine):
    name = "hf"

    def prepare(self) -> PrepareInfo:
        from transformers.utils import logging as hf_logging

        from bench.models import ensure_checkpoint

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        cell = self.cell
        # Before any build: a GPU cell on a host without one fails at once, not after minutes.
        self.device = resolve_device(cell.device, cell.instance)
        self.folder, build_s = ensure_checkpoint(cell.model, cell.models_dir, cell.seed)
        return PrepareInfo(checkpoint=str(self.folder), build_s=build_s)

    def load(self) -> LoadInfo:
        import torch

        from bench.models import auto_class

        cell = self.cell
        if cell.torch_threads:
            torch.set_num_threads(cell.torch_threads)
        model = auto_class(cell.model.auto_class).from_pretrained(
            self.folder, dtype=torch_dtype(cell.precision)
        )
        self.model = model.to(self.device).eval()
        self.synchronize()
        params = sum(p.numel() for p in self.model.parameters())
        return LoadInfo(device=self.device, params=params)

    def make_batch(self) -> dict[str, Any]:
        import torch

        cell = self.cell
        generator = torch.Generator().manual_seed(cell.seed)
        vocab = int(self.model.config.vocab_size)
        # Ids from 3 up avoid the special tokens (pad/bos/eos) of the common tokenizers.
        shape = (cell.batch_size, cell.model.seq_len)
        ids = torch.randint(3, vocab, shape, generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return {k: v.to(self.device) for k, v in batch.items()}

    def infer(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(**batch)

    def generate(self, batch: dict[str, Any], new_tokens: int) -> Any:
        import torch

        pad = self.model.config.pad_token_id
        with torch.inference_mode():
            return self.model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # a fixed amount of work per request
                do_sample=False,
                pad_token_id=pad if pad is not None else self.model.config.eos_token_id,
            )

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
