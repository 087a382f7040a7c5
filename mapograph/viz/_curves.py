"""Learning curves from training histories."""

from __future__ import annotations

import math
from pathlib import Path

from mapograph.viz._graph import _pyplot


def plot_learning_curves(
    histories: dict[str, list[dict]],
    key: str = "return_mean",
    path: str | Path | None = None,
    title: str | None = None,
    reference: dict[str, float] | None = None,
):
    """Plot ``key`` against ``step`` for several runs; return the figure.

    Args:
        histories: label -> list of per-iteration dicts (``TrainResult.history``).
        key: the value to plot.
        path: save a PNG there when given.
        title: figure title.
        reference: horizontal lines, e.g. ``{"optimum": 1.0, "random": 0.5}``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, history in histories.items():
        points = [(h["step"], h[key]) for h in history if key in h and math.isfinite(float(h[key]))]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=label)
    for label, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", color="0.5", linewidth=1)
        ax.annotate(label, (ax.get_xlim()[0], value), fontsize=8, color="0.4", va="bottom")
    ax.set_xlabel("env steps")
    ax.set_ylabel(key)
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
