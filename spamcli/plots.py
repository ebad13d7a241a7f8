"""Figures of models' scores on labelled mail: ROC, precision-recall, score
histograms. Takes labels and scores, never reads mail or models.

matplotlib is imported inside the functions that draw (importing it costs
0.3 s, which `predict` must never pay), and only through its object-oriented
API with the Agg canvas: no pyplot state and no display are involved, so the
figures are the same on a desktop, over ssh and on a CI machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROC_FILE = "roc.png"
PRECISION_RECALL_FILE = "precision_recall.png"
SCORES_FILE = "scores.png"
LEARNING_CURVE_FILE = "learning_curve.png"
# 8 x 6 inches at 100 dots per inch: 800 x 600 pixels, readable on a
# laptop screen and in a README.
FIGURE_SIZE = (8.0, 6.0)
DOTS_PER_INCH = 100
# Score histogram bins: 50 of width 0.02 over [0, 1].
SCORE_BINS = 50
# Each model draws in its own colour, the same in every figure.
MODEL_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
HAM_COLOUR = "tab:green"
SPAM_COLOUR = "tab:red"


@dataclass(frozen=True)
class PlotSeries:
    """One model's scores on labelled messages, and the cut-offs it was judged by."""

    name: str
    is_spam: Sequence[bool] | np.ndarray
    scores: Sequence[float] | np.ndarray
    spam_cutoff: float
    ham_cutoff: float


def write_plots(plots_dir: str | Path, series: Sequence[PlotSeries]) -> list[Path]:
    """Write roc.png, precision_recall.png and scores.png into ``plots_dir``
    (created if need be) and return their paths. The ROC and precision-recall
    figures need both ham and spam and are left out otherwise."""
    if not series:
        raise ValueError("nothing to plot: no model's scores")
    directory = Path(plots_dir)
    directory.mkdir(parents=True, exist_ok=True)
    figures = []
    if all(_has_both_classes(item) for item in series):
        figures.append((ROC_FILE, roc_figure(series)))
        figures.append((PRECISION_RECALL_FILE, precision_recall_figure(series)))
    figures.append((SCORES_FILE, scores_figure(series)))
    written = []
    for file_name, figure in figures:
        path = directory / file_name
        figure.savefig(path, dpi=DOTS_PER_INCH)
        written.append(path)
    return written


def write_learning_curve(plots_dir: str | Path, curve: Sequence[dict[str, int]]) -> Path:
    """Write learning_curve.png: the errors per 100 messages of a replay
    (spamcli.replay.learning_curve), false positives and false negatives
    stacked, window by window."""
    directory = Path(plots_dir)
    directory.mkdir(parents=True, exist_ok=True)
    figure, axes = _figure()
    starts = [window["first"] for window in curve]
    widths = [window["messages"] for window in curve]
    per_hundred = [100 / max(window["messages"], 1) for window in curve]
    false_positives = [w["false_positives"] * k for w, k in zip(curve, per_hundred, strict=True)]
    false_negatives = [w["false_negatives"] * k for w, k in zip(curve, per_hundred, strict=True)]
    axes.bar(
        starts, false_positives, widths, align="edge", color=HAM_COLOUR, label="false positives"
    )
    axes.bar(
        starts,
        false_negatives,
        widths,
        bottom=false_positives,
        align="edge",
        color=SPAM_COLOUR,
        label="false negatives",
    )
    axes.set_xlabel("message, in arrival order")
    axes.set_ylabel("errors per 100 messages")
    axes.set_title("Learning curve: verdicts given before each message was learned")
    axes.legend(loc="upper right")
    path = directory / LEARNING_CURVE_FILE
    figure.savefig(path, dpi=DOTS_PER_INCH)
    return path


def roc_figure(series: Sequence[PlotSeries]) -> Any:
    """True-positive rate against false-positive rate, the latter on a log
    axis: the part of the curve a spam filter lives in, below one ham in a
    hundred, is a sliver at the left edge of a linear axis."""
    import numpy as np
    from sklearn.metrics import roc_curve

    figure, axes = _figure()
    ham_count = min(int(np.sum(~_truth(item))) for item in series)
    lowest_recall = 1.0
    for colour, item in zip(_colours(series), series, strict=False):
        truth, scores = _truth(item), np.asarray(item.scores, dtype=np.float64)
        false_positive_rates, true_positive_rates, _ = roc_curve(truth, scores)
        axes.plot(false_positive_rates, true_positive_rates, color=colour, label=item.name)
        for cutoff, marker, kind in _cutoff_markers(item):
            rate, recall = _rates(truth, scores, cutoff)
            lowest_recall = min(lowest_recall, recall)
            _mark_point(
                axes,
                rate,
                recall,
                marker,
                colour,
                f"{kind} {cutoff:.4f}: false-positive rate {rate:.4f}, recall {recall:.4f}",
            )
        positive = false_positive_rates > 0
        if positive.any():
            lowest_recall = min(lowest_recall, float(true_positive_rates[positive][0]))
    # Symmetric log: logarithmic from one ham in the corpus up, linear below
    # it, so that a false-positive rate of 0 (no ham flagged) still shows.
    axes.set_xscale("symlog", linthresh=1.0 / max(ham_count, 1), linscale=0.3)
    # A little room left of 0, so that a point there is not cut in half.
    axes.set_xlim(-0.2 / max(ham_count, 1), 1.0)
    # The curve hugs the top of the axes for any usable filter; start the
    # recall axis a little below the lowest recall the curve shows at a
    # non-zero false-positive rate, so the differences stay visible.
    axes.set_ylim(max(0.0, np.floor((lowest_recall - 0.05) * 20) / 20), 1.005)
    axes.set_xlabel(f"false-positive rate: ham flagged as spam (log scale; {ham_count} ham)")
    axes.set_ylabel("true-positive rate: spam recall")
    axes.set_title("ROC curve")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return figure


def precision_recall_figure(series: Sequence[PlotSeries]) -> Any:
    """Precision (the share of flagged mail that is spam) against recall."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    figure, axes = _figure()
    for colour, item in zip(_colours(series), series, strict=False):
        truth, scores = _truth(item), np.asarray(item.scores, dtype=np.float64)
        precisions, recalls, _ = precision_recall_curve(truth, scores)
        axes.plot(recalls, precisions, color=colour, drawstyle="steps-post", label=item.name)
        for cutoff, marker, kind in _cutoff_markers(item):
            flagged = scores >= cutoff
            recall = float(np.mean(flagged[truth]))
            precision = float(np.mean(truth[flagged])) if flagged.any() else 1.0
            _mark_point(
                axes,
                recall,
                precision,
                marker,
                colour,
                f"{kind} {cutoff:.4f}: precision {precision:.4f}, recall {recall:.4f}",
            )
    axes.set_xlim(0.0, 1.005)
    axes.set_ylim(top=1.005)
    axes.set_xlabel("recall: share of spam flagged")
    axes.set_ylabel("precision: share of flagged mail that is spam")
    axes.set_title("Precision and recall")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    return figure


def scores_figure(series: Sequence[PlotSeries]) -> Any:
    """Histograms of the ham's and the spam's scores, one panel per model,
    with the cut-offs as vertical lines. Counts are on a log axis: a good
    model piles almost all mail into the end bins, and the few messages in
    between are the ones that matter."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = FIGURE_SIZE
    figure = Figure(figsize=(width, max(height, 3.0 * len(series) + 1.0)), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    bins = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    for axes, item in zip(panels, series, strict=True):
        truth, scores = _truth(item), np.asarray(item.scores, dtype=np.float64)
        for label, colour, rows in (("ham", HAM_COLOUR, ~truth), ("spam", SPAM_COLOUR, truth)):
            if rows.any():
                axes.hist(
                    scores[rows],
                    bins=bins,
                    color=colour,
                    alpha=0.55,
                    label=f"{label} ({int(rows.sum())})",
                )
        axes.axvline(
            item.spam_cutoff,
            color="black",
            linestyle="--",
            label=f"spam cut-off {item.spam_cutoff:.4f}",
        )
        if item.ham_cutoff < item.spam_cutoff:
            axes.axvline(
                item.ham_cutoff,
                color="dimgray",
                linestyle=":",
                label=f"ham cut-off {item.ham_cutoff:.4f}",
            )
        axes.set_yscale("log")
        axes.set_xlim(0.0, 1.0)
        axes.set_ylabel("messages (log scale)")
        axes.set_title(f"Scores: {item.name}" if len(series) > 1 else "Scores of ham and spam")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper center", fontsize="small")
    panels[-1].set_xlabel("score (spam probability)")
    return figure


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _truth(item: PlotSeries) -> np.ndarray:
    import numpy as np

    return np.asarray(item.is_spam, dtype=bool)


def _has_both_classes(item: PlotSeries) -> bool:
    truth = _truth(item)
    return bool(truth.any() and not truth.all())


def _colours(series: Sequence[PlotSeries]) -> list[str]:
    return [MODEL_COLOURS[index % len(MODEL_COLOURS)] for index in range(len(series))]


def _cutoff_markers(item: PlotSeries) -> list[tuple[float, str, str]]:
    """(cut-off, marker, name) of the points to mark: the spam cut-off, and
    the ham cut-off when the two make an unsure band."""
    markers = [(item.spam_cutoff, "o", "spam cut-off")]
    if item.ham_cutoff < item.spam_cutoff:
        markers.append((item.ham_cutoff, "s", "unsure or spam from ham cut-off"))
    return markers


def _rates(truth: np.ndarray, scores: np.ndarray, cutoff: float) -> tuple[float, float]:
    """False-positive rate and recall when ``score >= cutoff`` is flagged."""
    import numpy as np

    flagged = scores >= cutoff
    return float(np.mean(flagged[~truth])), float(np.mean(flagged[truth]))


def _mark_point(axes: Any, x: float, y: float, marker: str, colour: Any, label: str) -> None:
    """A model's operating point at one cut-off, as a single outlined marker."""
    axes.plot(
        [x],
        [y],
        marker=marker,
        color=colour,
        markeredgecolor="black",
        markersize=9,
        linestyle="none",
        label=label,
    )
