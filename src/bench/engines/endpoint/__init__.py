"""The endpoint engines: a server bench did not load, measured from the client's side.

- http: OpenAI-compatible HTTP (openai) or KServe v2 / Triton (kserve), over one keep-alive
  connection per client thread (pool), with the server started by the cell itself in server
  mode (server).
- sagemaker: a SageMaker real-time endpoint through boto3's runtime client.

Both stand on base (their shared options, rules and request bookkeeping), targets (several
models behind one endpoint, one drawn per request), images (an image model's request body)
and errors (what a failed request raises).
"""

from __future__ import annotations

from bench.engines.endpoint.http import HttpEngine
from bench.engines.endpoint.sagemaker import SageMakerEngine

__all__ = ["HttpEngine", "SageMakerEngine"]
