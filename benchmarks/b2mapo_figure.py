"""The figure of the "B2MAPO explained" page: one iteration, from DAG to batches to updates.

    python benchmarks/b2mapo_figure.py [--out docs/img/b2mapo_iteration.png]

Left: a DAG on six agents (the kind the upper layer samples) drawn in columns by
the batches ``mapograph.partition.generations`` gives it. Middle: the update of
one iteration, batch by batch, each batch's advantage corrected by the clipped
product of the new/old ratios of the batches already updated. Right: how the two
policies act: ``pi_seq`` batch by batch (children read their parents' actions),
``pi_ind`` in one forward for all agents.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

import mapograph as mg  # noqa: E402
from mapograph.viz import plot_interdependence  # noqa: E402

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")


def example_dag() -> nx.DiGraph:
    """Six agents: 0 leads 1 and 2; 1 and 2 lead 3 and 4; 4 leads 5."""
    dag = nx.DiGraph()
    dag.add_nodes_from(range(6))
    dag.add_edges_from([(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (4, 5)], weight=0.9)
    return dag


def box(ax, x, y, w, h, text, colour, size=9):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02",
            facecolor=colour,
            alpha=0.25,
            edgecolor=colour,
            linewidth=1.5,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="0.3"))


def draw(path: Path) -> Path:
    dag = example_dag()
    batches = mg.partition.generations(dag)
    fig = plt.figure(figsize=(11, 9))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1], width_ratios=[1, 1.35], hspace=0.3)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    plot_interdependence(dag, batches=batches, ax=axes[0], title="sampled DAG -> batches")

    ax = axes[1]
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("update of one iteration")
    height = 0.8 / len(batches)
    for k, batch in enumerate(batches):
        y = 0.9 - (k + 1) * height
        product = "·".join(f"ρ{i + 1}" for i in range(k))
        label = (
            f"batch {k + 1}: agents {batch}\nPPO on clip({product}) · A"
            if k
            else f"batch 1: agents {batch}\nPPO on A (no correction)"
        )
        box(ax, 0.02, y, 0.6, height * 0.75, label, COLOURS[k % len(COLOURS)], 10)
        if k:
            arrow(ax, (0.32, y + height), (0.32, y + height * 0.75))
        rho = f"ρ{k + 1} = Π new/old ratio of batch {k + 1}"
        ax.text(0.64, y + height * 0.37, rho, fontsize=9, va="center", color="0.3")
    ax.text(
        0.05,
        0.02,
        "agents outside the batch do not move;\nA: advantage (trace-corrected)",
        fontsize=8,
        color="0.3",
    )

    ax = axes[2]
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("acting: pi_seq (training) and pi_ind (execution)")
    width = 0.8 / len(batches)
    for k, batch in enumerate(batches):
        x = 0.05 + k * width
        box(
            ax, x, 0.6, width * 0.8, 0.22, f"forward\nagents {batch}", COLOURS[k % len(COLOURS)], 10
        )
        if k:
            arrow(ax, (x - width * 0.2, 0.71), (x, 0.71))
    ax.text(
        0.05, 0.88, "pi_seq: one forward per batch, children read parents' actions", fontsize=10
    )
    box(ax, 0.05, 0.18, 0.8, 0.22, "one batched forward, all agents at once", "#8172b3", 10)
    ax.text(0.05, 0.46, "pi_ind: distilled from pi_seq, no messages", fontsize=10)
    arrow(ax, (0.45, 0.58), (0.45, 0.42))
    ax.text(0.47, 0.49, "KL(pi_seq || pi_ind)", fontsize=10, color="0.3")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/img/b2mapo_iteration.png")
    args = parser.parse_args()
    print(f"wrote {draw(Path(args.out))}")


if __name__ == "__main__":
    main()
