"""A fit's table for the terminal and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from scalelab.report.plots import plot_loss_vs_compute
from scalelab.scaling.fit import FitResult, Points


def fit_table(result: FitResult, points: Points) -> str:
    table = Table(title=f"{result.form} fit on {result.n_points} runs ({result.n_bootstrap} bootstrap resamples)")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    table.add_column(f"{100 * result.level:.0f}% interval", justify="right")
    for name, value in result.params.items():
        lo, hi = result.intervals[name]
        table.add_row(name, f"{value:.5g}", f"[{lo:.5g}, {hi:.5g}]")
    for p in result.predictions:
        where = f"C={p['flops']:.3g}" if "flops" in p else f"N={p['params']:.3g}, D={p['tokens']:.3g}"
        table.add_row(f"L({where})", f"{p['loss']:.5g}", f"[{p['interval'][0]:.5g}, {p['interval'][1]:.5g}]")
    for row in result.backtest:
        errs = ", ".join(f"{100 * e:+.2f}%" for e in row["relative_errors"])
        table.add_row(f"backtest k={row['k']}", errs, "")
    console = Console(record=True, width=110)
    with console.capture() as capture:
        console.print(table)
        if result.floor.get("at_bound"):
            console.print(f"limitation: {result.floor['note']}")
    return capture.get()


def plot_fit(result: FitResult, points: Points, path: Path) -> None:
    if result.form == "gpt4":
        band = result.band
        pred = result.predictions[0] if result.predictions else None
        plot_loss_vs_compute(path, points.flops, points.loss, result.params, "GPT-4 form fit",
                             band=(np.array(band["flops"]), np.array(band["lo"]), np.array(band["hi"])),
                             predicted=(pred["flops"], pred["loss"], pred["interval"]) if pred else None)
    else:
        import matplotlib.pyplot as plt

        from scalelab.io import write_atomic
        from scalelab.scaling.fit import chinchilla_predict

        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        fitted = chinchilla_predict(result.params, points.params, points.tokens)
        ax.scatter(fitted, points.loss, s=12)
        lims = [min(fitted.min(), points.loss.min()), max(fitted.max(), points.loss.max())]
        ax.plot(lims, lims, color="gray", lw=1)
        ax.set_xlabel("fitted loss E + A/N^α + B/D^β")
        ax.set_ylabel("observed loss")
        ax.set_title("Chinchilla approach 3 fit")
        fig.tight_layout()
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
