"""bench.results.report_captions: each plot's alt text and caption from its file name (its
kind and its subject), and a sentence, never the file name, for a plot nobody described."""

from __future__ import annotations

import pytest

from bench.results.report_captions import BEST_THREADS, KINDS, plot_alt, plot_caption


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.prefix + kind.suffix)
def test_each_kind_of_plot_names_its_subject_and_says_how_to_read_it(kind):
    name = f"{kind.prefix}bert_base{kind.suffix}" if "{subject}" in kind.shows else None
    name = name or f"{kind.prefix}{kind.suffix}"
    alt, caption = plot_alt(name), plot_caption(name)
    assert ".png" not in caption and caption == f"{alt} {kind.read}"
    assert ("bert_base" in alt) == ("{subject}" in kind.shows)


def test_an_unknown_plot_is_described_without_its_file_name():
    assert ".png" not in plot_caption("mystery.png") and plot_alt("mystery.png")


def test_the_more_specific_suffix_wins():
    """`-cost-vs-batch-size.png` also ends like `-vs-batch-size.png`: it is the cost plot."""
    assert plot_alt("bert_base-cost-vs-batch-size.png").startswith(
        "bert_base: dollars per million inferences"
    )
    assert plot_alt("bert_base-vs-batch-size.png").startswith("bert_base: throughput (left)")


def test_a_subject_is_needed_where_the_words_name_one():
    # "-ramp.png" alone names no model: not a ramp plot of an empty name
    assert plot_alt("-ramp.png") == "A plot of this sweep's results."
    assert plot_alt("opt_tiny-ramp.png").startswith("opt_tiny: P99 (solid)")
    assert plot_alt("compared-with-sweep-7.png").endswith(
        "against sweep-7, each with its 95% interval."
    )
    assert plot_alt("load-time-per-engine.png").startswith("Load time per model and engine")


def test_plots_of_one_point_per_batch_size_say_which_thread_count_is_drawn():
    for name in ("m-throughput-vs-p99.png", "m-vs-batch-size.png", "m-cost-vs-batch-size.png"):
        assert BEST_THREADS in plot_caption(name)
    assert BEST_THREADS not in plot_caption("m-throughput-vs-p95.png")  # it draws every count


def test_every_kind_has_both_sentences():
    for kind in KINDS:
        assert kind.shows.endswith(".") and kind.read.endswith(".")
        assert kind.prefix or kind.suffix != ".png"  # a name must say which kind it is
