"""The output-agreement helpers (bench.measure.quality) flag what differs and pass what does
not: token ids position by position, logits by their largest difference."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.quality import logits_difference, token_agreement

REFERENCE = np.array([[5, 6, 7, 8], [9, 10, 11, 12]])


def test_identical_tokens_agree_exactly() -> None:
    agreement = token_agreement(REFERENCE, REFERENCE.copy())
    assert agreement.exact and agreement.share == 1.0
    assert agreement.compared == 8 and agreement.first_mismatch is None


def test_a_changed_token_is_found_and_the_earliest_one_named() -> None:
    candidate = REFERENCE.copy()
    candidate[1, 1] = 0
    candidate[0, 3] = 0
    agreement = token_agreement(REFERENCE, candidate)
    assert not agreement.exact
    assert agreement.matched == 6 and agreement.share == 0.75
    assert agreement.first_mismatch == (1, 1)  # token 1 of sequence 1 comes before token 3


def test_only_the_first_n_tokens_count() -> None:
    candidate = REFERENCE.copy()
    candidate[:, 3] = 0
    assert token_agreement(REFERENCE, candidate, first_n=3).exact
    assert not token_agreement(REFERENCE, candidate, first_n=4).exact


def test_a_truncated_candidate_never_passes() -> None:
    agreement = token_agreement(REFERENCE, REFERENCE[:1, :2], first_n=4)
    assert agreement.compared == 8 and agreement.matched == 2
    assert agreement.first_mismatch == (1, 0)


def test_asking_for_more_tokens_than_the_reference_has_is_an_error() -> None:
    with pytest.raises(ValueError, match="4 tokens per sequence"):
        token_agreement(REFERENCE, REFERENCE, first_n=5)


def test_torch_tensors_are_read_as_arrays() -> None:
    torch = pytest.importorskip("torch")
    assert token_agreement(torch.tensor(REFERENCE), REFERENCE).exact
    difference = logits_difference(torch.ones(2, 3), np.ones((2, 3)))
    assert difference.max_abs == 0.0 and difference.cosine == pytest.approx(1.0)


def test_logits_difference() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 16)).astype(np.float32)
    same = logits_difference(logits, logits.copy())
    assert same.max_abs == 0.0 and same.within(0.0)
    noisy = logits_difference(logits, logits + rng.normal(scale=1e-2, size=logits.shape))
    assert 1e-3 < noisy.max_abs < 0.1 and not noisy.within(1e-4)
    assert 0.99 < noisy.cosine < 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        logits_difference(logits, logits[:1])
