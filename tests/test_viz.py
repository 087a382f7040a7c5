"""Plots are written as real PNG files."""

from __future__ import annotations

import networkx as nx
import pytest

from mapograph.viz import plot_interdependence, plot_learning_curves


def test_interdependence_png(tmp_path):
    g = nx.DiGraph()
    g.add_weighted_edges_from([(0, 1, 0.9), (1, 2, 0.4), (0, 2, 0.01)])
    out = tmp_path / "g.png"
    plot_interdependence(
        g, batches=[[0], [1], [2]], path=out, true_dag=nx.DiGraph([(0, 1), (1, 2)])
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curves_png(tmp_path):
    out = tmp_path / "c.png"
    hist = {"a": [{"step": 1, "return_mean": 0.1}, {"step": 2, "return_mean": 0.5}]}
    plot_learning_curves(hist, path=out, reference={"optimum": 1.0})
    assert out.stat().st_size > 1000


def test_graphs_and_batches_that_cannot_be_drawn_are_named():
    shifted = nx.DiGraph()
    shifted.add_nodes_from([1, 2, 3])
    three = nx.DiGraph([(0, 1)])
    three.add_node(2)
    cases = [
        ({"graph": shifted}, r"graph nodes must be exactly 0..2"),
        (
            {"graph": three, "batches": [[0], [1]]},
            r"batches must hold every agent 0..2 exactly once",
        ),
        ({"graph": three, "batches": [[0], [1, 1, 2]]}, r"exactly once"),
        ({"graph": three, "true_dag": nx.DiGraph([(0, 5)])}, r"true_dag has nodes \[5\]"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            plot_interdependence(**kwargs)


def test_batches_as_index_tensors_and_bad_batches_or_histories(tmp_path):
    import torch

    g = nx.DiGraph([(0, 1), (1, 2)])
    out = tmp_path / "new" / "folder" / "t.png"
    # a plan's batches as tensors (KeyError 0 before: 0-d tensors are no dict keys of 0)
    plot_interdependence(g, batches=[torch.tensor([0]), torch.tensor([1, 2])], path=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="batches must be a list of lists of int agent ids"):
        plot_interdependence(g, batches=[0, 1, 2])  # TypeError: 'int' object is not iterable
    with pytest.raises(ValueError, match="run 'a': a history row has no 'step'"):
        plot_learning_curves({"a": [{"return_mean": 1.0}]})  # KeyError 'step'
    with pytest.raises(ValueError, match="run 'a': return_mean must be a number, got 'x'"):
        plot_learning_curves({"a": [{"step": 1, "return_mean": "x"}]})
    # None (a value that was not measured, as NaN) is skipped, not a TypeError
    plot_learning_curves({"a": [{"step": 1, "return_mean": None}, {"step": 2, "return_mean": 1}]})


def test_a_plot_on_the_callers_axes_leaves_their_figure_open(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    g = nx.DiGraph([(0, 1)])
    assert plot_interdependence(g, ax=ax, path=tmp_path / "on_mine.png") is fig
    assert plt.fignum_exists(fig.number)  # it was closed under the caller
    own = plot_interdependence(g, path=tmp_path / "own.png")
    assert not plt.fignum_exists(own.number)  # a figure of its own is closed once saved
    plt.close(fig)
