"""transformers eager (PyTorch): one model copy on one device.

Precision: fp32; fp16 / bf16 cast the whole model (weights and every operation in that dtype);
amp_fp16 / amp_bf16 keep fp32 weights and run each call under `torch.autocast` (mixed
precision: matmuls and convolutions in the low dtype, reductions and norms in fp32), as the G5
study's `torch.cuda.amp` did; int8 below.

On CUDA each client thread issues its calls on a CUDA stream of its own and `synchronize()`
waits for that stream alone, so one request's latency is its own kernels, not its neighbours'
(sync_scope "stream"); engines that split a model over devices wait for the whole device.

int8: on CPU, torch's dynamic quantization of every nn.Linear (weights int8, activations
quantised per batch), applied in initialize() so it counts as init_s; on CUDA, bitsandbytes'
LLM.int8() at load time where bitsandbytes is installed (else the cell is `unsupported`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from typing import Any

from bench.config.schema import InstanceSpec
from bench.config.tasks import task_of
from bench.engines.base import (
    ALL_TASKS,
    ANY_PRECISION,
    BOTH_DEVICES,
    MIXED_PRECISION,
    Capability,
    Engine,
    Inputs,
    LoadInfo,
    PrepareInfo,
    Reply,
    Unsupported,
)

# The dtype weights are loaded in; mixed precision keeps fp32 weights and autocasts the calls.
TORCH_DTYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int8": "float32",
    "amp_fp16": "float32",
    "amp_bf16": "float32",
}
AUTOCAST_DTYPES = {"amp_fp16": "float16", "amp_bf16": "bfloat16"}
CAST = frozenset({"fp16", "bf16"})  # the whole model in that dtype: float inputs must match


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


def precision_method(precision: str) -> str:
    """How a precision is applied, for the row: none | cast | autocast | quantized."""
    if precision in AUTOCAST_DTYPES:
        return "autocast"
    return {"fp32": "none", "int8": "quantized"}.get(precision, "cast")


def import_modeling_code(model: Any) -> None:
    """Import transformers, the loading code and the architecture's modeling module, which
    the first from_pretrained would otherwise import lazily inside load_s."""
    import json
    from pathlib import Path

    import transformers
    import transformers.modeling_utils  # from_pretrained's loader

    from bench.engines.checkpoints import auto_class

    model_type = model.architecture.get("model_type")
    config_file = Path(model.checkpoint or "").expanduser() / "config.json"
    if model_type is None and model.checkpoint and config_file.is_file():
        model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type is not None:  # resolving the class imports its modeling module
        config = transformers.AutoConfig.for_model(model_type)
        auto_class(model.auto_class)._model_mapping[type(config)]


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
    capability = Capability(
        ANY_PRECISION | MIXED_PRECISION | {"int8"},
        BOTH_DEVICES,
        tasks=ALL_TASKS,
        varied_inputs=True,
    )
    cuda_sync_scope = "stream"
    # torch's import starts no intra-op team (that happens at the first parallel region) and
    # initialises no CUDA; modeling_utils (2.5 of the 4.6 s) is code, no model: the cell
    # still imports its architecture's modeling module itself
    preload = ("torch", "transformers", "transformers.modeling_utils")

    def __init__(self, cell: Any) -> None:
        super().__init__(cell)
        self._local = threading.local()  # per client thread: its CUDA stream

    def import_libraries(self) -> None:
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        # Before any build: a GPU cell on a host without one fails at once, not after minutes.
        self.device = resolve_device(self.cell.device, self.cell.instance)
        import_modeling_code(self.cell.model)
        if self.device.startswith("cuda"):  # the CUDA context: once per process, not load
            torch.cuda.init()
            torch.empty(1, device=self.device)
            torch.cuda.synchronize()

    def prepare(self) -> PrepareInfo:
        from bench.engines.checkpoints import ensure_checkpoint

        if not hasattr(self, "device"):  # a caller that skipped the import step
            self.import_libraries()
        cell = self.cell
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
        from bench.engines.checkpoints import auto_class

        cell = self.cell
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
        """The task's inputs (bench.config.tasks), on the device the model reads them from, in the
        dtype of its weights where they are floating point (pixels)."""

        batch = task_of(self.cell.model).inputs(self.cell, self.model.config)
        dtype = torch_dtype(self.cell.precision) if self.cell.precision in CAST else None
        return {
            k: v.to(self.input_device(), dtype=dtype if dtype and v.is_floating_point() else None)
            for k, v in batch.items()
        }

    def batch_for(self, inputs: Inputs) -> dict[str, Any]:
        """The workload's prompts as one padded batch (docs/definitions.md): a decoder-only
        model's on the left (its new tokens follow every prompt's last one), an encoder's
        and an encoder-decoder's on the right; the mask covers the prompt tokens only. Ids
        past the model's vocabulary wrap into it. Images keep the task's fixed batch."""
        if not task_of(self.cell.model).text:
            return super().batch_for(inputs)
        import numpy as np
        import torch

        # numpy, then one copy each to the device: per-row torch ops cost ~0.3 ms a request
        config = self.model.config
        lengths = [len(p) for p in inputs.prompts]
        width = max(lengths)
        if min(lengths) == width:
            ids = np.asarray(inputs.prompts, dtype=np.int64)
            mask = np.ones_like(ids)
        else:
            pad = config.pad_token_id if config.pad_token_id is not None else 0
            ids = np.full((len(lengths), width), int(pad), dtype=np.int64)
            mask = np.zeros_like(ids)
            left = self.cell.model.task == "generate"
            for row, prompt in enumerate(inputs.prompts):
                span = slice(width - len(prompt), width) if left else slice(0, len(prompt))
                ids[row, span] = prompt
                mask[row, span] = 1
        vocab = int(getattr(config, "vocab_size", 0) or 0)
        if vocab > 3 and int(ids.max()) >= vocab:
            ids = np.where(ids >= vocab, 3 + (ids - 3) % (vocab - 3), ids)
        device = self.input_device()
        return {
            "input_ids": torch.from_numpy(ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }

    def _own_stream(self) -> Any:
        """This client thread's CUDA stream, made on its first call: it first waits for the
        default stream, where the weights and the batch were written."""
        import torch

        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(device=self.device)
            stream.wait_stream(torch.cuda.default_stream(self.device))
        return stream

    def calling(self) -> contextlib.ExitStack:
        """The context one call runs in: inference mode, the client's own stream (CUDA, where
        this engine syncs per stream), autocast (mixed precision)."""
        import torch

        context = contextlib.ExitStack()
        context.enter_context(torch.inference_mode())
        on_cuda = self.device.startswith("cuda")
        if on_cuda and self.cuda_sync_scope == "stream":
            context.enter_context(torch.cuda.stream(self._own_stream()))
        if autocast := AUTOCAST_DTYPES.get(self.cell.precision):
            device_type = "cuda" if on_cuda else "cpu"
            context.enter_context(torch.autocast(device_type, dtype=getattr(torch, autocast)))
        return context

    def infer(self, batch: dict[str, Any]) -> Any:
        with self.calling():
            return self.model(**batch)

    def generate(self, batch: dict[str, Any], new_tokens: int, streamer: Any = None) -> Any:
        pad = self.model.config.pad_token_id
        with self.calling():
            return self.model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # a fixed amount of work per request
                do_sample=False,
                pad_token_id=pad if pad is not None else self.model.config.eos_token_id,
                streamer=streamer,
            )

    def generate_timed(self, batch: dict[str, Any], new_tokens: int) -> Reply:
        """Token times, and the first sequence's new token ids (a conversation's answer)."""
        clock = token_clock(self.synchronize)
        output = self.generate(batch, new_tokens, streamer=clock)
        sequences = getattr(output, "sequences", output)
        answer = tuple(sequences[0, -new_tokens:].tolist())
        produced = new_tokens * int(sequences.shape[0])
        return Reply(token_times=clock.times, output_tokens=produced, answer=answer)

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
        if not getattr(self, "device", "cpu").startswith("cuda"):
            return
        import torch

        stream = getattr(self._local, "stream", None)
        if self.cuda_sync_scope == "stream" and stream is not None:
            stream.synchronize()  # this client's work only
        else:
            torch.cuda.synchronize()

    def close(self) -> None:
        self.model = None
        if getattr(self, "device", "cpu").startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        import torch

        facts: dict[str, Any] = {
            "torch_threads": torch.get_num_threads(),
            "precision_method": precision_method(self.cell.precision),
        }
        if self.device.startswith("cuda"):
            facts["gpu_name"] = torch.cuda.get_device_name()
            facts["gpu_count"] = torch.cuda.device_count()
        return facts
