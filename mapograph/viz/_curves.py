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
    if not isinstance(histories, dict):
        raise ValueError(
            f"histories must be a dict label -> list of per-iteration dicts, "
            f"got {type(histories).__name__}"
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, history in histories.items():
        points = [(_step(label, h), v) for h in history if (v := _value(label, h, key)) is not None]
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


def _value(label: str, row: dict, key: str) -> float | None:
    """``row[key]`` as a float; None where missing, None or NaN (not measured that iteration)."""
    value = row.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"run {label!r}: {key} must be a number, got {value!r}") from None
    return number if math.isfinite(number) else None


def _step(label: str, row: dict) -> float:
    """``row["step"]``; ValueError naming the run when a row has none."""
    if "step" not in row:
        raise ValueError(f"run {label!r}: a history row has no 'step': {sorted(row)}")
    return row["step"]
