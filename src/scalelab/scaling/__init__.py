"""Scaling laws: fits with bootstrap uncertainty, ladder design and the pre-registered forecast.

`scalelab.scaling.fit` and `.points` need nothing of scalelab's; `.forecast` drives the trainer.
"""

from scalelab.scaling.fit import FitResult, FitUntrusted, Points, compute_optimal, fit
from scalelab.scaling.points import read_points

__all__ = ["FitResult", "FitUntrusted", "Points", "compute_optimal", "fit", "read_points"]
