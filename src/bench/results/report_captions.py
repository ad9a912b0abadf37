"""Each report plot's words: its alt text (what it shows) and its caption (that, then how to
read it), found from the plot's file name, which names its kind and its subject (a model, a
base sweep). A plot the table does not know gets a sentence saying so, never its file name."""

from __future__ import annotations

from dataclasses import dataclass

# Said of every plot that draws one point per batch size
BEST_THREADS = (
    "Each batch size is drawn at its best client-thread count (the one with the highest "
    "throughput), and the t beside each point says which."
)


@dataclass(frozen=True)
class Kind:
    prefix: str  # the file name is prefix + subject + suffix
    suffix: str
    shows: str  # what the plot shows; {subject} is the model or the base sweep
    read: str  # how to read it


KINDS = (  # the more specific suffix first: "-cost-vs-batch-size" ends like "-vs-batch-size"
    Kind(
        "",
        "-throughput-vs-p99.png",
        "{subject}: throughput against P99 latency per request, one line per instance type "
        "and precision, its points the batch sizes (b).",
        f"{BEST_THREADS} Up and to the left is better. The bar through a point is its P99's "
        "95% interval; a dotted arrow instead means the interval is open above (too few "
        "requests to bound the P99). The dashed line is the SLA, the star the recommended "
        "configuration (hollow: provisional).",
    ),
    Kind(
        "",
        "-throughput-vs-p95.png",
        "{subject}: throughput against P95 latency, one panel per instance type and precision, "
        "one curve per batch size through its client-thread counts (t1, t2, ...).",
        "Up and to the left is better; where a curve turns flat and runs right, more clients "
        "add only latency. The panels share their axes: compare instance types across a row.",
    ),
    Kind(
        "",
        "-cost-vs-batch-size.png",
        "{subject}: dollars per million inferences at the on-demand price against batch size, "
        "one line per instance type and precision.",
        f"{BEST_THREADS} Lower is cheaper: the lowest line at a batch size is the instance "
        "type and precision that serve it for least.",
    ),
    Kind(
        "",
        "-vs-batch-size.png",
        "{subject}: throughput (left) and P95 latency (right) against batch size, one line per "
        "instance type and precision.",
        f"{BEST_THREADS} The same row is drawn on both sides. Where throughput stops rising "
        "(the knee), a larger batch adds only latency: a latency-bound service picks its batch "
        "from the P95 side, a throughput-bound one at the knee.",
    ),
    Kind(
        "",
        "-ramp.png",
        "{subject}: P99 (solid) and P50 (dashed) latency, and throughput, against concurrent "
        "clients, one line per ramp.",
        "Where P99 crosses the SLA line, or the first failed request (x) appears, is the most "
        "concurrency this configuration takes.",
    ),
    Kind(
        "load-time-per-engine",
        ".png",
        "Load time per model and engine: checkpoint to device (load_s), with the engine's own "
        "preparation (init_s: compile, inject, quantise) stacked on it.",
        "Mean over the sweep's cells; a shorter bar is ready to serve sooner.",
    ),
    Kind(
        "compared-with-",
        ".png",
        "The relative change of P50, P99 and throughput per matched configuration against "
        "{subject}, each with its 95% interval.",
        "Red is worse, green better, grey no significant change; the dotted lines are the "
        "regression threshold. The table above lists every configuration.",
    ),
    Kind(
        "fleet-cost",
        ".png",
        "The monthly bill of the fleet each configuration needs for the target load, on "
        "demand (with Spot beside it where the catalog has Spot).",
        "The cheapest is on top, outlined; xN after a configuration is its number of instances.",
    ),
)


def _kind(name: str) -> tuple[Kind, str] | None:
    """The plot's kind and subject, by its file name."""
    for kind in KINDS:
        if name.startswith(kind.prefix) and name.endswith(kind.suffix):
            subject = name[len(kind.prefix) : len(name) - len(kind.suffix)]
            if subject or "{subject}" not in kind.shows:
                return kind, subject
    return None


def plot_alt(name: str) -> str:
    """What the plot shows, one sentence (the image's alt text)."""
    found = _kind(name)
    if found is None:
        return "A plot of this sweep's results."
    kind, subject = found
    return kind.shows.format(subject=subject)


def plot_caption(name: str) -> str:
    """What the plot shows, then how to read it."""
    found = _kind(name)
    return f"{plot_alt(name)} {found[0].read}" if found else plot_alt(name)
