"""Capability figures laid out like GPT-4's Figure 2: the metric against compute, ladder, fit, band,
prediction and (once the large run is done) the actual value; two-step fits add accuracy against task loss."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from scalelab.io import write_atomic  # noqa: E402
from scalelab.scaling.capability import sigmoid  # noqa: E402

LABELS = {"accuracy": "accuracy", "neg_mean_log_pass_rate": "-E[log pass rate] (lower is better)"}


def plot_capability(path: Path, task: str, result: dict, actual: float | None = None) -> None:
    """One task's figure; `result` is a task entry of `fit_capabilities` (or of prediction.json)."""
    two_step = result["form"] == "two-step" and "task_loss" in result["points"]
    fig, axes = plt.subplots(1, 2 if two_step else 1, figsize=(11 if two_step else 7, 4.5), dpi=120, squeeze=False)
    ax = axes[0, 0]
    pts = result["points"]
    band = result.get("band") or {}
    if band.get("lo"):
        ax.fill_between(band["flops"], band["lo"], band["hi"], color="tab:blue", alpha=0.15, label="90% band")
    if band.get("mid"):
        ax.plot(band["flops"], band["mid"], color="tab:blue", lw=1.5, label=f"{result['form']} fit")
    if pts.get("value"):
        ax.scatter(pts["flops"], pts["value"], s=18, color="black", zorder=3, label="ladder")
    metric = result["metric"]
    for pred in result.get("predictions", [])[:1]:
        value = pred[metric]
        lo, hi = pred.get("neg_mean_log_pass_rate_interval", pred["interval"])
        ax.errorbar([pred["flops"]], [value], yerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]], fmt="D",
                    color="tab:blue", capsize=4, label=f"prediction {value:.3f}")
    if actual is not None and result.get("predictions"):
        ax.scatter([result["predictions"][0]["flops"]], [actual], marker="*", s=160, color="tab:green", zorder=4,
                   label=f"actual {actual:.3f}")
    if metric == "neg_mean_log_pass_rate":
        ax.set_yscale("log")
    elif result.get("params", {}).get("chance") is not None or "step2" in result.get("params", {}):
        chance = result["params"].get("chance", result["params"].get("step2", {}).get("chance"))
        ax.axhline(chance, color="gray", lw=0.8, ls=":", label=f"chance {chance:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel(LABELS[metric])
    verdict = result["verdict"]
    ax.set_title(task if verdict == "ok" else f"{task}: {verdict}"[:90], fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if two_step:
        ax2 = axes[0, 1]
        ax2.scatter(pts["task_loss"], pts["value"], s=18, color="black", label="ladder")
        step2 = result.get("params", {}).get("step2")
        if step2:
            losses = pts["task_loss"] + [p["task_loss"] for p in result.get("predictions", [])[:1]]
            grid = np.linspace(min(losses) * 0.95, max(losses) * 1.05, 200)
            theta = np.array([step2["top"], step2["k"], step2["L0"]])
            ax2.plot(grid, sigmoid(theta, grid, step2["chance"], -1.0), color="tab:blue", label="step 2 sigmoid")
            for pred in result.get("predictions", [])[:1]:
                ax2.scatter([pred["task_loss"]], [pred["accuracy"]], marker="D", color="tab:blue",
                            label="prediction")
        ax2.set_xlabel("task loss")
        ax2.set_ylabel("accuracy")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def extrapolation_text(result: dict) -> str:
    """The backtest's extrapolation error a fit's intervals carry, and how far past the ladder they reach."""
    ex = result["extrapolation"]
    unit = "of the log" if ex["scale"] == "log" else "absolute"
    beyond = max((p["decades_beyond_ladder"] for p in result["predictions"]), default=0.0)
    return (f"sd {ex['per_decade']:.3f} ({unit}) per decade past the ladder, from {ex['n_errors']} backtest "
            f"errors; the prediction lies {beyond:.2f} decades past the largest rung")


def width_text(pred: dict) -> str:
    """An interval's width and what drives it: the refits' spread, the residual scatter, the extrapolation term."""
    d = pred.get("width_drivers")
    if d is None:
        return ""
    return (f"{pred['width']:.3f} = {d['bootstrap']:.3f} boot + {d['scatter']:.3f} scatter "
            f"+ {d['extrapolation']:.3f} extrap")


def limitation_lines(result: dict) -> list[str]:
    """One line per task whose step-1 fit put its floor at a bound (a finding, not a number)."""
    return [f"limitation, {task}: step 1's {r['step1_floor']['note']}" for task, r in result["tasks"].items()
            if (r.get("step1_floor") or {}).get("at_bound")]


def capability_table(result: dict) -> str:
    """The terminal summary of `fit_capabilities`: one row per task and prediction, then its limitations."""
    table = Table(title=f"{result['form']} capability fit on {result['n_points']} rows")
    for col in ("task", "compute", "metric", "prediction", "interval", "width (what drives it)", "backtest k=1",
                "extrapolation sd/decade", "verdict"):
        table.add_column(col)
    for task, r in result["tasks"].items():
        back = r["backtest"][0]["abs_errors"][0] if r.get("backtest") else None
        back_text = "" if back is None else f"{back:.4f}"
        ex = r.get("extrapolation")
        ex_text = "" if ex is None else f"{ex['per_decade']:.4f}" + (" (log)" if ex["scale"] == "log" else "") + \
            (f" pooled over {len(ex['pooled_over'])} tasks" if ex.get("pooled_over") else "")
        if not r["predictions"]:
            table.add_row(task, "", r["metric"], "", "", "", back_text, ex_text, r["verdict"])
        for p in r["predictions"]:
            lo, hi = p.get("neg_mean_log_pass_rate_interval", p["interval"])
            table.add_row(task, f"{p['flops']:.3g}", r["metric"], f"{p[r['metric']]:.4f}", f"[{lo:.4f}, {hi:.4f}]",
                          width_text(p), back_text, ex_text, r["verdict"])
    console = Console(record=True, width=180)
    with console.capture() as capture:
        console.print(table)
        for line in limitation_lines(result):
            console.print(line)
    return capture.get()
