"""Pictures of an interdependence graph with its batches as coloured layers."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import networkx as nx


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def batch_layout(n_agents: int, batches: list[list[int]] | None) -> dict[int, tuple[float, float]]:
    """Positions: batch index on the x axis, agents of a batch spread on the y axis."""
    if not batches:
        batches = [list(range(n_agents))]
    pos = {}
    for k, batch in enumerate(batches):
        for r, agent in enumerate(sorted(batch)):
            pos[agent] = (float(k), (r - (len(batch) - 1) / 2.0))
    return pos


def _agent_ids(batches: Any) -> list[list[int]]:
    """``batches`` as lists of Python ints (numpy ints and 0-d tensors, e.g. a plan's
    index tensors, included); ValueError for anything else."""
    try:
        if isinstance(batches, (str, bytes)):
            raise TypeError
        out = []
        for batch in batches:
            if isinstance(batch, (str, bytes)) or any(isinstance(a, bool) for a in batch):
                raise TypeError
            out.append([operator.index(a) for a in batch])
    except TypeError:
        raise ValueError(
            f"batches must be a list of lists of int agent ids, got {batches!r}"
        ) from None
    return out


def _check_drawable(
    graph: nx.DiGraph, batches: list[list[int]] | None, true_dag: nx.DiGraph | None
) -> int:
    """The number of agents ``n``; ValueError unless the graphs' nodes are ``0..n-1``
    (``true_dag``: within it) and ``batches`` (lists of ints, see :func:`_agent_ids`)
    hold every agent once."""
    if not isinstance(graph, nx.Graph):
        raise ValueError(f"graph must be a networkx graph, got {type(graph).__name__}")
    n = graph.number_of_nodes()
    agents = set(range(n))
    if set(graph.nodes) != agents:
        raise ValueError(
            f"graph nodes must be exactly 0..{n - 1}, got {sorted(graph.nodes, key=str)}"
        )
    if true_dag is not None and not set(true_dag.nodes) <= agents:
        extra = sorted(set(true_dag.nodes) - agents, key=str)
        raise ValueError(f"true_dag has nodes {extra} that the graph (0..{n - 1}) lacks")
    if batches:
        listed = [a for batch in batches for a in batch]
        if sorted(listed, key=str) != sorted(agents, key=str) or len(listed) != n:
            raise ValueError(
                f"batches must hold every agent 0..{n - 1} exactly once, got {batches}"
            )
    return n


def plot_interdependence(
    graph: nx.DiGraph,
    batches: list[list[int]] | None = None,
    path: str | Path | None = None,
    true_dag: nx.DiGraph | None = None,
    ax: Any = None,
    min_weight: float = 0.2,
    title: str | None = None,
):
    """Draw a (learned) interdependence graph; return the matplotlib figure.

    Args:
        graph: DiGraph on ``0..n-1``; edge attribute ``weight`` (probability) sets the
            edge width and opacity (default 1).
        batches: ordered partition; agents are placed in columns by batch and coloured by it.
        path: save a PNG there when given.
        true_dag: draw its edges as dashed grey lines for comparison.
        ax: an existing matplotlib axis.
        min_weight: edges lighter than this are not drawn.
        title: figure title.
    """
    batches = _agent_ids(batches) if batches is not None else None
    n = _check_drawable(graph, batches, true_dag)
    plt = _pyplot()
    own_figure = ax is None
    if ax is None:
        width = 2.0 + 1.6 * max(1, len(batches or [0]))
        fig, ax = plt.subplots(figsize=(width, 1.5 + 0.45 * n))
    else:
        fig = ax.figure
    pos = batch_layout(n, batches)
    colour_of = {}
    cmap = plt.get_cmap("tab10")
    for k, batch in enumerate(batches or [list(range(n))]):
        for agent in batch:
            colour_of[agent] = cmap(k % 10)
    if true_dag is not None:
        nx.draw_networkx_edges(
            true_dag,
            pos,
            ax=ax,
            style="dashed",
            edge_color="0.6",
            arrows=True,
            width=1.0,
            connectionstyle="arc3,rad=0.25",
        )
    edges = [(u, v, float(d.get("weight", 1.0))) for u, v, d in graph.edges(data=True)]
    edges = [e for e in edges if e[2] >= min_weight]
    if edges:
        nx.draw_networkx_edges(
            graph,
            pos,
            ax=ax,
            edgelist=[(u, v) for u, v, _ in edges],
            width=[0.5 + 4.0 * w for _, _, w in edges],
            alpha=None,
            edge_color=[(0.1, 0.2, 0.5, min(1.0, 0.15 + w)) for _, _, w in edges],
            arrows=True,
            arrowsize=12,
            connectionstyle="arc3,rad=0.1",
        )
    nx.draw_networkx_nodes(
        graph,
        pos,
        ax=ax,
        node_color=[colour_of.get(v, "white") for v in range(n)],
        edgecolors="black",
        node_size=420,
    )
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=9)
    if batches:
        ax.set_xticks(range(len(batches)))
        ax.set_xticklabels([f"batch {k + 1}" for k in range(len(batches))])
        # networkx's drawing hides the ticks: show the batch axis again
        ax.tick_params(axis="x", bottom=True, labelbottom=True)
        ax.tick_params(axis="y", left=False, labelleft=False)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    default_title = "interdependence graph: width ~ P(edge), columns = batches in update order"
    if true_dag is not None:
        default_title += "\n(dashed grey: true DAG)"
    ax.set_title(title or default_title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        if own_figure:  # a caller's figure (``ax`` given) stays open
            plt.close(fig)
    return fig
