"""Small generated data for the workload tests: a ShareGPT-shaped conversation file and a
Mooncake-shaped request trace, seeded (tests/fixtures/ holds the ShareGPT one as written by
`python -m tests.support.datasets`; a test checks they still agree).

Nothing here is real text: words are drawn from a short list, lengths from a lognormal, so
the files exercise the readers, the length filters and the shared-block hashing."""

from __future__ import annotations

import json
import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHAREGPT = FIXTURES / "sharegpt_tiny.json"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def _text(rng: random.Random, mean_words: float) -> str:
    count = max(1, int(rng.lognormvariate(0, 0.6) * mean_words))
    return " ".join(rng.choice(WORDS) for _ in range(count))


def sharegpt(conversations: int = 40, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k in range(conversations):
        turns = [
            {"from": "human", "value": _text(rng, 24)},
            {"from": "gpt", "value": _text(rng, 12)},
        ]
        if k % 5 == 0:
            turns = [{"from": "system", "value": "be brief"}, *turns]
        out.append({"id": f"c{k}", "conversations": turns})
    out.append({"id": "empty", "conversations": []})  # skipped by the reader
    return out


def trace(requests: int, mean_gap_ms: float, seed: int = 11) -> list[dict]:
    """Poisson arrivals; a third of the requests share their first hash blocks."""
    rng = random.Random(seed)
    at, out = 0.0, []
    for k in range(requests):
        at += rng.expovariate(1 / mean_gap_ms)
        hashes = [0, 1] if k % 3 == 0 else [100 + 2 * k, 101 + 2 * k]
        out.append(
            {
                "timestamp": round(at, 3),
                "input_length": rng.randint(20, 60),
                "output_length": rng.randint(2, 6),
                "hash_ids": hashes,
            }
        )
    return out


def write_jsonl(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


if __name__ == "__main__":
    FIXTURES.mkdir(exist_ok=True)
    SHAREGPT.write_text(json.dumps(sharegpt(), indent=1) + "\n")
    print(SHAREGPT)
