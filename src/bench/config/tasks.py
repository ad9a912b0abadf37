"""What a request of a model is: one home per task.

A task says what inputs one request carries and how they are made (token ids; pixel tensors of
the configured image size; encoder inputs that generation continues in a decoder), whether a
request is one forward pass or a greedy generation of `new_tokens` (which then reports TTFT
and TPOT), which transformers auto classes may build such a model, the units an inference
counts (tokens/s and $ per million tokens use them), and the size of one input the memory
estimate scales by. Engines ask the cell's task for their inputs; adding a task is a new
entry here plus the engines that support it.

Pure at import (no torch): config validation and the planner read the table; `inputs()`
imports torch when a cell runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config.schema import CellConfig, ModelConfig

# Pixels per side of an image model's input when neither the model config nor the
# architecture says (the seeds' image models all take 224 x 224).
DEFAULT_IMAGE_SIZE = 224
# The memory estimate's "tokens" for an image: 16 x 16 patches, as a ViT sees it.
IMAGE_PATCH = 16


def _token_inputs(cell: CellConfig, hf_config: Any) -> dict[str, Any]:
    """batch_size x seq_len random token ids (from 3 up: clear of pad/bos/eos) and a mask."""
    import torch

    generator = torch.Generator().manual_seed(cell.seed)
    vocab = int(hf_config.vocab_size)
    shape = (cell.batch_size, cell.model.seq_len)
    ids = torch.randint(3, vocab, shape, generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


# Token ids drawn below this for a remote or separately installed engine when the model
# config names no vocabulary
DEFAULT_VOCAB = 32000


def token_prompts(cell: CellConfig) -> list[list[int]]:
    """batch_size prompts of seq_len random token ids (from 3 up, clear of pad/bos/eos),
    seeded, without torch: for engines that send ids to another process (http, vllm)."""
    import random

    rng = random.Random(cell.seed)
    vocab = int(cell.model.architecture.get("vocab_size") or DEFAULT_VOCAB)
    return [
        [rng.randrange(3, vocab) for _ in range(cell.model.seq_len)] for _ in range(cell.batch_size)
    ]


def text_prompt(cell: CellConfig) -> str:
    """A prompt of seq_len words, for endpoints that take text, not token ids (chat, TGI's
    inputs): about seq_len tokens; the server's reported usage says how many exactly."""
    return " ".join(["hello"] * cell.model.seq_len)


def image_size(model: ModelConfig, hf_config: Any = None) -> int:
    """Pixels per side: model.image_size, else the architecture's, else 224."""
    size = model.image_size or model.architecture.get("image_size")
    if not size and hf_config is not None:
        size = getattr(hf_config, "image_size", None)
    return int(size or DEFAULT_IMAGE_SIZE)


def _pixel_inputs(cell: CellConfig, hf_config: Any) -> dict[str, Any]:
    """batch_size normalised random images, channels x size x size (the model's own)."""
    import torch

    generator = torch.Generator().manual_seed(cell.seed)
    side = image_size(cell.model, hf_config)
    channels = int(getattr(hf_config, "num_channels", 3) or 3)
    shape = (cell.batch_size, channels, side, side)
    return {"pixel_values": torch.randn(shape, generator=generator)}


@dataclass(frozen=True)
class Task:
    name: str
    generates: bool  # a request is greedy generation of new_tokens (TTFT, TPOT), not a forward
    inputs: Callable[[CellConfig, Any], dict[str, Any]]  # (cell, transformers config) -> tensors
    auto_classes: tuple[str, ...]  # what may build and load such a model
    unit: str  # what tokens_per_s counts: "tokens", or "" when a request has none (images)
    text: bool  # inputs are token ids: seq_len is required

    def tokens_per_inference(self, model: ModelConfig) -> int | None:
        """Tokens one inference stands for: generated ones, else input ones; None for
        images (their throughput is images/s, inferences_per_s)."""
        if not self.text:
            return None
        return model.new_tokens if self.generates else model.seq_len

    def memory_tokens(self, model: ModelConfig) -> int:
        """Per-sequence size the activation and KV-cache estimates scale by."""
        if self.text:
            return model.seq_len + model.new_tokens
        return (image_size(model) // IMAGE_PATCH) ** 2


TEXT_ENCODERS = (
    "AutoModel",
    "AutoModelForQuestionAnswering",
    "AutoModelForSequenceClassification",
    "AutoModelForMaskedLM",
)
TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("encode", False, _token_inputs, TEXT_ENCODERS, "tokens", text=True),
        Task("generate", True, _token_inputs, ("AutoModelForCausalLM",), "tokens", text=True),
        # Encoder-decoder: the encoder reads seq_len ids, the decoder generates new_tokens
        # from its start token (transformers' generate() runs both).
        Task("seq2seq", True, _token_inputs, ("AutoModelForSeq2SeqLM",), "tokens", text=True),
        # Any one forward pass over a batch of images: a classifier, or a detector's
        # set-prediction heads (YOLOS, DETR: no NMS step); images/s either way.
        Task(
            "classify_image",
            False,
            _pixel_inputs,
            ("AutoModelForImageClassification", "AutoModelForObjectDetection", "AutoModel"),
            "",
            text=False,
        ),
    )
}
AUTO_CLASSES = tuple(dict.fromkeys(name for task in TASKS.values() for name in task.auto_classes))


def task_of(model: ModelConfig) -> Task:
    return TASKS[model.task]
