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
