"""Figures: loss against training compute, laid out like GPT-4's Figure 1."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalelab.io import write_atomic  # noqa: E402
from scalelab.scaling.fit import gpt4_predict  # noqa: E402


def plot_loss_vs_compute(path: Path, flops: np.ndarray, loss: np.ndarray, params: dict, title: str,
                         band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                         predicted: tuple[float, float, list[float]] | None = None,
                         actual: tuple[float, float] | None = None,
                         runs: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Ladder points, the fitted a·C^b + c, its band, the prediction and the actual target."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    right = max([flops.max()] + ([predicted[0]] if predicted else []))
    grid = np.logspace(np.log10(flops.min()) - 0.2, np.log10(right) + 0.2, 200)
    if band is not None:
        ax.fill_between(band[0], band[1], band[2], color="tab:blue", alpha=0.15, label="90% band")
    ax.plot(grid, gpt4_predict(params, grid), color="tab:blue", lw=1.5,
            label=f"fit: {params['a']:.3g}·C^{params['b']:.3f} + {params['c']:.3f}")
    if runs is not None:
        ax.scatter(*runs, s=10, color="tab:gray", alpha=0.6, label="ladder runs (seeds)")
    ax.scatter(flops, loss, s=30, color="black", zorder=3, label="ladder (seed mean)")
    if predicted is not None:
        c, p, (lo, hi) = predicted
        ax.errorbar([c], [p], yerr=[[p - lo], [hi - p]], fmt="D", color="tab:blue", capsize=4,
                    label=f"prediction {p:.3f}")
    if actual is not None:
        ax.scatter([actual[0]], [actual[1]], marker="*", s=160, color="tab:green", zorder=4,
                   label=f"actual {actual[1]:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("held-out loss (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
