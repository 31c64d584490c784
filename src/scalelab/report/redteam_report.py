"""A red-teaming run's page: the attack x category heatmap, success rates with their intervals,
over-refusal beside them, hit@k and the judges' measured agreement."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalelab.io import write_atomic  # noqa: E402
from scalelab.report.page import write_page  # noqa: E402


def plot_heatmap(path: Path, result: dict) -> None:
    """Attack success rate per attack (rows) and category (columns); unscored-only cells are blank."""
    attacks = list(result["attacks"])
    categories = result["categories"]
    grid = np.full((len(attacks), len(categories)), np.nan)
    for i, a in enumerate(attacks):
        for j, c in enumerate(categories):
            cell = result["attacks"][a]["by_category"].get(c)
            if cell and cell["asr"]["value"] is not None:
                grid[i, j] = cell["asr"]["value"]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.6 + 1.1 * len(categories)), 1.2 + 0.45 * len(attacks)), dpi=120)
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="Reds", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                color="white" if v > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(attacks)), attacks, fontsize=8)
    ax.set_title(f"Attack success rate (judge: {result['judge']})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _interval(m: dict) -> str:
    if m.get("value") is None:
        return "–"
    lo, hi = m["ci95"]
    return f"{m['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def _markdown(r: dict) -> str:
    lines = ["# scalelab redteam", "",
             f"Target **{r['target']}**, judged by **{r['judge']}**"
             + (f" (also: {', '.join(r['judges'][1:])})" if len(r["judges"]) > 1 else "")
             + f"; {r['n_behaviours']} harmful prompts, {r['n_safe']} safe look-alikes, from "
             f"{', '.join(r['sources'])}.", ""]
    if r["attacks"]:
        corrected = any("asr_corrected" in a for a in r["attacks"].values())
        lines += ["![attack x category](heatmap.png)", "",
                  "| attack | ASR [95% CI] | n | unscored | if unscored succeeded |"
                  + (" corrected for the judge [95% CI] |" if corrected else ""),
                  "|---|---|---|---|---|" + ("---|" if corrected else "")]
        for name, a in r["attacks"].items():
            row = (f"| {name} | {_interval(a['asr'])} | {a['n']} | {a['n_unscored']} | "
                   f"{a['asr_bounds'][1]:.3f} |")
            if corrected:
                c = a["asr_corrected"]
                row += f" {_interval(c) if c['value'] is not None else c.get('reason', '–')} |"
            lines.append(row)
        h = r["hit_at_k"]
        lines += ["", f"Hit@{h['k']} (share of prompts broken by at least one attack): {_interval(h)} over "
                      f"{h['n']} prompts."]
    if r.get("over_refusal"):
        o = r["over_refusal"]
        lines += ["", f"Over-refusal on safe look-alikes (judge: {o['judge']}): {_interval(o)} over {o['n']} "
                      f"prompts, {o['n_unscored']} unscored."]
    if r.get("agreement_with_canary"):
        lines += ["", "Judges against the canary's ground truth (the secret kept counts as a refusal):", "",
                  "| judge | agreement | sensitivity | specificity | n | unscored |", "|---|---|---|---|---|---|"]
        for judge, g in r["agreement_with_canary"].items():
            lines.append(f"| {judge} | {_interval(g['agreement'])} | {_interval(g['sensitivity'])} | "
                         f"{_interval(g['specificity'])} | {g['n']} | {g['n_unscored']} |")
    p = r["provenance"]
    lines += ["", f"{r['seconds']:.0f} s on {p['machine']['cpu']}; scalelab {p['code']['version']} "
                  f"({p['code']['commit'][:10] if p['code'].get('commit') else 'no commit'})."]
    return "\n".join(lines) + "\n"


def write_redteam_report(result: dict, out: str | Path) -> None:
    """heatmap.png, report.md and report.html beside a run's redteam.json."""
    out = Path(out)
    if result["attacks"]:
        plot_heatmap(out / "heatmap.png", result)
    write_page(_markdown(result), out, "scalelab redteam")
