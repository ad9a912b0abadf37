"""A real NVIDIA Triton Inference Server on loopback, CPU only, serving tiny stand-in models
through PyTriton (nvidia-pytriton ships the tritonserver binary and its Python backend): N
text models `model-{i}` taking `input_ids` and `attention_mask` (INT64) and an image model
`image` taking `pixel_values` (FP32, channels first), each answering FP32 `logits` [batch, 10]
(zeros: the server and its protocol are what is tested, not a model).

Run with the python of tests/support/triton_env.py's environment, not bench's (PyTriton pins
numpy < 2). It prints `listening on HTTP_PORT METRICS_PORT` once every model is ready.

    $TRITON_PY tests/support/triton_models.py [--models 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import sysconfig

# Triton's Python backend stub links libpython3.X.so: the one of this interpreter must come
# first, or a system libpython of another patch release runs this interpreter's stdlib
# (seen: Debian's 3.11.2 under pyenv's 3.11.7). The server and its stubs inherit this.
os.environ["LD_LIBRARY_PATH"] = ":".join(
    p for p in (sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")) if p
)

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

CLASSES = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@batch
def classify_text(input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
    return {"logits": np.zeros((input_ids.shape[0], CLASSES), dtype=np.float32)}


@batch
def classify_image(pixel_values: np.ndarray) -> dict[str, np.ndarray]:
    return {"logits": np.zeros((pixel_values.shape[0], CLASSES), dtype=np.float32)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    http, grpc, metrics = free_port(), free_port(), free_port()
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http,
        grpc_address="127.0.0.1",
        grpc_port=grpc,
        metrics_port=metrics,
    )
    logits = [Tensor(name="logits", dtype=np.float32, shape=(CLASSES,))]
    with Triton(config=config) as triton:
        for i in range(args.models):
            triton.bind(
                model_name=f"model-{i}",
                infer_func=classify_text,
                inputs=[
                    Tensor(name="input_ids", dtype=np.int64, shape=(-1,)),
                    Tensor(name="attention_mask", dtype=np.int64, shape=(-1,)),
                ],
                outputs=logits,
                config=ModelConfig(max_batch_size=16),
            )
        triton.bind(
            model_name="image",
            infer_func=classify_image,
            inputs=[Tensor(name="pixel_values", dtype=np.float32, shape=(3, -1, -1))],
            outputs=logits,
            config=ModelConfig(max_batch_size=16),
        )
        print(f"listening on {http} {metrics}", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
