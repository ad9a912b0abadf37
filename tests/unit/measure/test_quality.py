"""bench.measure.quality's edges: one sequence given flat, shapes that are no token ids,
nothing compared, and logits that are all zeros or empty. (Agreement of tokens and logits
as a cell's check uses it: tests/unit/engines/test_output_agreement.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.quality import TokenAgreement, logits_difference, token_agreement


def test_one_sequence_may_be_given_flat():
    agreement = token_agreement([1, 2, 3], [[1, 2, 4]])
    assert (agreement.sequences, agreement.tokens, agreement.matched) == (1, 3, 2)
    assert agreement.first_mismatch == (0, 2)


def test_token_ids_must_be_sequences_by_tokens():
    with pytest.raises(ValueError, match=r"must be \(sequences, tokens\); got shape \(1, 2, 3\)"):
        token_agreement(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))


def test_nothing_compared_agrees_and_extra_candidate_tokens_do_not_count():
    nothing = token_agreement([[1, 2]], [[9, 9]], first_n=0)
    assert nothing.compared == 0 and nothing.share == 1.0 and nothing.exact
    longer = token_agreement([[1, 2]], [[1, 2, 7, 7], [5, 5, 5, 5]])
    assert longer.exact and longer.compared == 2  # the reference's sequences and tokens only


def test_the_share_is_of_the_positions_compared():
    agreement = TokenAgreement(sequences=2, tokens=5, matched=7, first_mismatch=(1, 0))
    assert agreement.compared == 10 and agreement.share == 0.7 and not agreement.exact


def test_zero_or_empty_logits_compare_without_dividing_by_zero():
    zeros = logits_difference(np.zeros((2, 3)), np.zeros((2, 3)))
    assert zeros.max_abs == 0.0 and zeros.cosine == 1.0 and zeros.within(0.0)
    one_zero = logits_difference(np.zeros(3), np.ones(3))
    assert one_zero.cosine == 0.0 and one_zero.max_abs == 1.0
    empty = logits_difference(np.zeros((0, 4)), np.zeros((0, 4)))
    assert empty.max_abs == 0.0


def test_the_cosine_of_a_vector_with_itself_is_never_above_one():
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = rng.normal(size=97) * 1e3
        assert logits_difference(values, values.copy()).cosine <= 1.0
    opposite = logits_difference(np.array([1.0, 2.0]), np.array([-1.0, -2.0]))
    assert opposite.cosine == pytest.approx(-1.0) and opposite.max_abs == 4.0
