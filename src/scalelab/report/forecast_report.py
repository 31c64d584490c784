"""The forecast's report: GPT-4 Figure 1 and 2 style PNGs, report.md and report.html rendered from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalelab.report.capability_plots import extrapolation_text, plot_capability
from scalelab.report.page import write_page
from scalelab.report.plots import plot_loss_vs_compute
from scalelab.scaling.fit import floor_status
from scalelab.scaling.forecast import ladder_points


def loss_figure(forecast: dict, path: Path) -> None:
    """GPT-4's Figure 1 for a forecast: ladder, fit and band, the pre-registered prediction, the actual."""
    fit = forecast["fit"]
    vlm = forecast.get("kind") == "vlm"
    points = ladder_points(forecast["ladder"]) if not vlm else None
    flops = np.array([e["flops"] for e in forecast["ladder"]]) if vlm else points.flops
    loss = np.array([e["final_eval_loss"] for e in forecast["ladder"]]) if vlm else points.loss
    band = fit["band"]
    plot_loss_vs_compute(
        path, flops, loss, fit["params"],
        "Held-out answer loss of image questions" if vlm else "Predicted vs actual held-out loss",
        band=(np.array(band["flops"]), np.array(band["lo"]), np.array(band["hi"])),
        predicted=(forecast["target_flops"], forecast["predicted_loss"], forecast["interval_90"]),
        actual=(forecast["target_flops"], forecast["actual_loss"]),
        runs=None if vlm else (np.array([e["flops"] for e in forecast["ladder"]]),
                               np.array([e["final_eval_loss"] for e in forecast["ladder"]])),
    )


def floor_lines(f: dict) -> list[str]:
    """A limitation line when the loss fit's floor sits at a bound (computed for folders older than the key)."""
    floor = f["fit"].get("floor") or floor_status(f["fit"]["params"], [e["final_eval_loss"] for e in f["ladder"]])
    return ["", f"**Limitation**: {floor['note']}."] if floor["at_bound"] else []


def _markdown(f: dict) -> str:
    p = f["fit"]["params"]
    lo, hi = f["interval_90"]
    lines = [
        "# scalelab forecast",
        "",
        f"Predicted held-out loss **{f['predicted_loss']:.4f}** (90% interval {lo:.4f} – {hi:.4f}), "
        f"pre-registered at {f['prediction_timestamp']} before the target run started.",
        f"Actual: **{f['actual_loss']:.4f}**; relative error {100 * f['relative_error']:+.2f}%; "
        f"{'inside' if f['within_interval'] else 'OUTSIDE'} the interval.",
        "",
        f"Fit: L(C) = {p['a']:.4g}·C^{p['b']:.4f} + {p['c']:.4f} on {f['fit']['n_points']} ladder budgets; "
        f"largest ladder run {f['max_ladder_compute_fraction']:.4f} of the target's "
        f"{f['target_flops']:.3g} FLOPs; ladder spans {f['ladder_span_decades']:.2f} orders of magnitude.",
        *floor_lines(f),
        "",
        "![loss vs compute](forecast.png)",
        "",
        "| run | seed | d_model | layers | params | tokens | FLOPs | held-out loss | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in f["ladder"] + [f["target"] | {"name": "target"}]:
        lines.append(f"| {e['name']} | {e['seed']} | {e['d_model']} | {e['n_layer']} | {e['params']:,} | "
                     f"{e['tokens']:,} | {e['flops']:.3g} | {e['final_eval_loss']:.4f} | {e['wall_seconds']:.1f} |")
    lines += ["", "Leave-largest-out backtest (refit without the k largest budgets, predict them):", ""]
    for row in f["fit"]["backtest"]:
        errs = ", ".join(f"{100 * r:+.2f}%" for r in row["relative_errors"])
        lines.append(f"- k={row['k']}: {errs}")
    lines += _capability_lines(f)
    lines += ["", f"Ladder {f['ladder_seconds']:.0f} s, whole forecast {f['wall_seconds']:.0f} s on "
              f"{f['target']['device']} ({f['target']['precision']})."]
    return "\n".join(lines) + "\n"


METRIC_NAMES = {"accuracy": "accuracy", "neg_mean_log_pass_rate": "-E[log pass rate]"}


def _capability_lines(f: dict) -> list[str]:
    caps = f.get("capabilities")
    if not caps:
        return []
    suite = f["capability_suite"]
    sizes = ", ".join(f"{t}: {n} items" for t, n in suite["n_items"].items())
    hits = ", ".join(f"{t} {n} hits" for t, n in suite["contamination_hits"].items())
    lines = ["", "## Capabilities", "",
             f"Suite cut from the held-out split before the ladder trained ({sizes}); contamination against the "
             f"training split: {hits}.",
             "", "| task | metric | form | predicted | 90% interval | actual | error | inside | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, c in caps.items():
        if c["verdict"] == "ok":
            lo, hi = c["interval_90"]
            lines.append(f"| {task} | {METRIC_NAMES[c['metric']]} | {c['form']} | {c['predicted']:.4f} | "
                         f"{lo:.4f} – {hi:.4f} | {c['actual']:.4f} | {c['abs_error']:.4f} | "
                         f"{'yes' if c['within_interval'] else 'NO'} | ok |")
        else:
            actual = "" if c.get("actual") is None else f"{c['actual']:.4f}"
            lines.append(f"| {task} | {METRIC_NAMES[c['metric']]} | {c['form']} | | | {actual} | | | {c['verdict']} |")
    lines.append("")
    lines += [f"- {task}'s interval includes the extrapolation error its backtest measured: "
              f"{extrapolation_text(c['fit'])}." for task, c in caps.items()
              if (c.get("fit") or {}).get("extrapolation")]
    lines += [f"- **Limitation**, {task}: step 1's {c['fit']['step1_floor']['note']}." for task, c in caps.items()
              if ((c.get("fit") or {}).get("step1_floor") or {}).get("at_bound")]
    lines += ["", *(f"![{task}](capability_{task}.png)" for task, c in caps.items() if c.get("fit"))]
    return lines


def write_forecast_report(forecast: dict, out: str | Path) -> None:
    out = Path(out)
    loss_figure(forecast, out / "forecast.png")
    for task, c in (forecast.get("capabilities") or {}).items():
        if c.get("fit"):
            plot_capability(out / f"capability_{task}.png", task, c["fit"], actual=c.get("actual"))
    write_page(_markdown(forecast), out, "scalelab forecast")


def write_vlm_forecast_report(forecast: dict, out: str | Path) -> None:
    """The vision-language forecast's figure and page: answer loss against compute, as Figure 1."""
    out = Path(out)
    loss_figure(forecast, out / "forecast.png")
    lo, hi = forecast["interval_90"]
    p = forecast["fit"]["params"]
    lines = ["# scalelab forecast: a vision-language ladder", "",
             f"Predicted held-out answer loss **{forecast['predicted_loss']:.4f}** (90% interval {lo:.4f} – {hi:.4f}), "
             f"pre-registered at {forecast['prediction_timestamp']}; actual **{forecast['actual_loss']:.4f}**, "
             f"relative error {100 * forecast['relative_error']:+.2f}%, "
             f"{'inside' if forecast['within_interval'] else 'OUTSIDE'} the interval.", "",
             f"Fit: L(C) = {p['a']:.4g}·C^{p['b']:.4f} + {p['c']:.4f}; largest ladder run "
             f"{forecast['max_ladder_compute_fraction']:.3f} of the target's {forecast['target_flops']:.3g} FLOPs.",
             *floor_lines(forecast), "", "![answer loss vs compute](forecast.png)", "",
             "| run | seed | width | steps | params | FLOPs | answer loss | accuracy | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in forecast["ladder"] + [{**forecast["target"], "name": "target", "seed": forecast["config"]["seed"]}]:
        lines.append(f"| {e['name']} | {e['seed']} | {e['d_model']} | {e['steps']} | {e['params']:,} | "
                     f"{e['flops']:.3g} | {e['final_eval_loss']:.4f} | {e['accuracy']:.3f} | "
                     f"{e['wall_seconds']:.0f} |")
    lines += ["", f"Ladder {forecast['ladder_seconds']:.0f} s, whole forecast {forecast['wall_seconds']:.0f} s."]
    write_page("\n".join(lines) + "\n", out, "scalelab forecast (vision-language)")
