"""A checkpoint exported to ONNX once, kept beside it under models_dir, for engine=onnxruntime.

The folder is `<models_dir>/<checkpoint>.onnx-<dtype>-<digest>` (bench.engines.checkpoints.
derived_folder: the digest covers the checkpoint's weight files, the opset, the torch version
and the input shape the graph fixes), so a rebuilt checkpoint or another opset gets a new
export and every other cell reuses it. It is written into a private temp folder and renamed
(publish_folder): a reader never sees half a file, and cells racing to export keep one copy.
`export.json` is written last, so a folder holding it is complete.

The exporter is torch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`): it needs
the `onnx` package alone, where the torch.export-based default of torch >= 2.9 also needs
onnxscript (and its own dependencies). torch 2.13 still ships it, with a deprecation warning.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.schema import CellConfig
from bench.config.tasks import image_size, task_of

MODEL_FILE = "model.onnx"
META_FILE = "export.json"  # written last: a folder with it holds a complete export
EXPORT_FORMAT = 1  # bump when what an export holds changes (its inputs, its output)
OUTPUT = "logits"  # the graph's one output: the model's first tensor (bench.engines.base)
EXPORT_BATCH = 2  # a trace at batch 1 may fix dimensions of size 1 into the graph


@dataclass(frozen=True)
class Export:
    """An ONNX export on disk and what it holds."""

    path: Path  # the .onnx file (weights inside it, or beside it past protobuf's 2 GB)
    inputs: tuple[str, ...]  # the graph's input names, in order
    params: int  # parameters of the exported model
    exported_s: float | None  # seconds this call spent exporting; None: it was there already


def export_spec(cell: CellConfig, dtype: str, opset: int) -> dict[str, Any]:
    """What besides the checkpoint's weights decides the graph (the folder's digest): the
    text graph is shape-generic in batch and sequence, an image graph fixes its pixel size."""
    import torch

    task = task_of(cell.model)
    return {
        "format": EXPORT_FORMAT,
        "exporter": "torchscript",
        "torch": torch.__version__,
        "opset": opset,
        "dtype": dtype,
        "auto_class": cell.model.auto_class,
        "image_size": None if task.text else image_size(cell.model),
    }


def ensure_export(checkpoint: Path, cell: CellConfig, dtype: str, opset: int) -> Export:
    """The checkpoint's ONNX export for `cell` in `dtype` (fp32 | fp16), exported unless an
    earlier cell left it."""
    from bench.engines.checkpoints import derived_folder, publish_folder

    spec = export_spec(cell, dtype, opset)
    folder = derived_folder(checkpoint, cell.models_dir, f"onnx-{dtype}", spec)
    seconds = None
    if not (folder / META_FILE).is_file():
        seconds = publish_folder(
            folder,
            lambda tmp: write_export(checkpoint, cell, tmp, dtype, opset),
            lambda done: (done / META_FILE).is_file(),
        )
    meta = json.loads((folder / META_FILE).read_text())
    return Export(folder / MODEL_FILE, tuple(meta["inputs"]), int(meta["params"]), seconds)


def first_output_module(model: Any, names: list[str]) -> Any:
    """`model` as a module of positional inputs returning its first tensor (logits where it
    has them), the one output the quality check compares with eager fp32 (engine tensorrt
    compiles the same module)."""
    import torch

    from bench.engines.base import first_tensor

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return first_tensor(self.model(**dict(zip(names, inputs, strict=True))))

    return FirstOutput().eval()


def example_inputs(cell: CellConfig, hf_config: Any) -> dict[str, Any]:
    """The task's inputs at EXPORT_BATCH, with padding in the last sequence of a text batch.
    transformers skips an all-ones attention mask in Python where it is not tracing; the padded
    example keeps the traced path one that applies the mask in any version, so padded
    requests (prompts of varied lengths) never attend to their padding."""
    batch = task_of(cell.model).inputs(
        dataclasses.replace(cell, batch_size=EXPORT_BATCH), hf_config
    )
    if "attention_mask" in batch:
        mask = batch["attention_mask"]
        mask[-1, max(1, mask.shape[1] // 2) :] = 0
    return batch


def _dynamic_axes(batch: dict[str, Any], output: Any, text: bool) -> dict[str, dict[int, str]]:
    """Batch (and, for token ids, sequence) dimensions left free in the graph."""
    axes = {name: {0: "batch", 1: "sequence"} if text else {0: "batch"} for name in batch}
    seq = next(iter(batch.values())).shape[1] if text else None
    out = {0: "batch"}
    if text and output.dim() > 1 and output.shape[1] == seq:  # per-token outputs (QA, MLM)
        out[1] = "sequence"
    return {**axes, OUTPUT: out}


def write_export(checkpoint: Path, cell: CellConfig, folder: Path, dtype: str, opset: int) -> None:
    """Load the checkpoint with transformers (fp32, or cast to fp16: on CUDA where there is
    one, whose half kernels cover every op), trace it and write MODEL_FILE, then META_FILE."""
    import torch
    import transformers

    from bench.engines.checkpoints import auto_class

    model = auto_class(cell.model.auto_class).from_pretrained(checkpoint, dtype=torch.float32)
    device = "cuda" if dtype == "fp16" and torch.cuda.is_available() else "cpu"
    model = model.to(device, dtype=torch.float16 if dtype == "fp16" else torch.float32).eval()
    batch = example_inputs(cell, transformers.AutoConfig.from_pretrained(checkpoint))
    batch = {
        k: v.to(device, dtype=model.dtype if v.is_floating_point() else None)
        for k, v in batch.items()
    }
    names = list(batch)
    wrapper = first_output_module(model, names)
    started = time.perf_counter()
    with torch.no_grad():
        output = wrapper(*batch.values())
    with warnings.catch_warnings():  # the exporter's deprecation and the tracer's warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(batch.values()),
            str(folder / MODEL_FILE),
            dynamo=False,
            input_names=names,
            output_names=[OUTPUT],
            dynamic_axes=_dynamic_axes(batch, output, task_of(cell.model).text),
            opset_version=opset,
        )
    meta = {
        "inputs": names,
        "output": OUTPUT,
        "params": sum(p.numel() for p in model.parameters()),
        "export_s": round(time.perf_counter() - started, 3),
        **export_spec(cell, dtype, opset),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
