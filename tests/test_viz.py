"""Plots are written as real PNG files."""

from __future__ import annotations

import networkx as nx

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
