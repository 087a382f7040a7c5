"""Plots: learned interdependence graphs with their batches, learning curves.

``viz`` may import anything in mapograph; nothing imports ``viz``. matplotlib is
imported inside the functions (Agg backend when no display is set).
"""

from mapograph.viz._curves import plot_learning_curves
from mapograph.viz._graph import batch_layout, plot_interdependence

__all__ = ["batch_layout", "plot_interdependence", "plot_learning_curves"]
