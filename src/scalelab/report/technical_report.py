"""`scalelab report`: a technical report in the GPT-4 report's shape, from the project's result folders.

Sections in the report's order: predictable scaling (loss and capability forecasts with their
pre-registration), capabilities (every benchmark with its interval and, where a contamination check
ran, the clean score beside it), alignment, adversarial testing, limitations found in the numbers
themselves, and reproducibility (the command, code, machine and data behind every figure and table).
The Markdown comes from a Jinja2 template filled with numbers; the page is that Markdown rendered by
markdown-it-py in the shared page template, figures inlined. A PDF is printed by headless Chromium
where it is installed (`chromium --print-to-pdf`): the browser the page is checked in is the engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from scalelab.io import check_output_dir
from scalelab.report.capability_plots import plot_capability
from scalelab.report.collect import Result, collect
from scalelab.report.forecast_report import loss_figure
from scalelab.report.page import write_page
from scalelab.report.redteam_report import plot_heatmap
from scalelab.scaling.fit import floor_status

FEW_ITEMS = 100  # a benchmark number on fewer items than this is flagged
LOW_AGREEMENT = 0.8  # a judge agreeing with humans less often than this is flagged

TEMPLATE = r"""# {{ title }}

{{ results|length }} result folders: {{ summary }}.

## 1. Predictable scaling

{% if not forecasts %}
No forecast folder was given.

{% endif %}
{% for f in forecasts %}
### {{ f.label }}: {{ f.metric }}

![{{ f.label }}: {{ f.metric }} against compute]({{ f.figure }})

Predicted **{{ "%.4f"|format(f.predicted) }}** (90% interval {{ "%.4f"|format(f.lo) }} – {{ "%.4f"|format(f.hi) }}),
pre-registered at {{ f.prereg }} (ladder hash `{{ f.ladder_hash[:12] }}`) before the target run started;
actual **{{ "%.4f"|format(f.actual) }}**, error {{ "%+.2f"|format(100 * f.error) }}%,
{{ "inside" if f.within else "outside" }} the interval. Fit {{ f.fit }} on ladder runs of at most
{{ "%.3g"|format(f.max_fraction) }} of the target's {{ "%.3g"|format(f.target_flops) }} FLOPs, spanning
{{ "%.2f"|format(f.span) }} orders of magnitude.

| backtest: refit without the k largest budgets | relative errors on them |
|---|---|
{% for b in f.backtest %}
{{ row(["k = %d"|format(b.k), b.errors]) }}
{% endfor %}

{% if f.capabilities %}
| capability | metric | form | predicted [90%] | actual | error | inside | verdict |
|---|---|---|---|---|---|---|---|
{% for c in f.capabilities %}
{{ row([c.task, c.metric, c.form, c.predicted, c.actual, c.error, c.inside, c.verdict]) }}
{% endfor %}

{% for c in f.capabilities if c.figure %}
![{{ c.task }} against compute]({{ c.figure }})

{% endfor %}
{% endif %}
{% endfor %}
## 2. Capabilities

{% if not benchmarks %}
No evaluation folder was given.

{% else %}
| model | benchmark | metric | value | 95% CI | n | shots | precision | contaminated | clean value [95% CI] |
|---|---|---|---|---|---|---|---|---|---|
{% for b in benchmarks %}
{{ row([b.model, b.task, b.metric, "%.4f"|format(b.value), b.ci, b.n, b.shots, b.precision, b.contaminated,
        b.clean]) }}
{% endfor %}

{% endif %}
{% if contamination %}
| contamination check | task | examples | contaminated | share | method |
|---|---|---|---|---|---|
{% for c in contamination %}
{{ row([c.label, c.task, c.n, c.k, "%.2f%%"|format(100 * c.share), c.method]) }}
{% endfor %}

{% endif %}
## 3. Alignment

{% if not alignment %}
No alignment folder was given.

{% endif %}
{% for a in alignment %}
### {{ a.label }}

| metric | before | after | change [95% CI] |
|---|---|---|---|
{% for m in a.rows %}
{{ row([m.name, m.before, m.after, m.change]) }}
{% endfor %}

{{ a.note }}

{% endfor %}
## 4. Adversarial testing

{% if not redteams and not judges and not judge_attacks %}
No red-teaming folder was given.

{% endif %}
{% for r in redteams %}
### {{ r.label }}: {{ r.target|cell }}, judged by {{ r.judge|cell }}

{% if r.figure %}
![attack success by attack and category]({{ r.figure }})

{% endif %}
| attack | attack success rate [95% CI] | n | unscored | corrected for the judge [95% CI] |
|---|---|---|---|---|
{% for a in r.attacks %}
{{ row([a.name, a.asr, a.n, a.unscored, a.corrected]) }}
{% endfor %}

Over-refusal on safe prompts, from the same run: {{ r.over_refusal }}. Hit@{{ r.k }}: {{ r.hit }}.

{% endfor %}
{% if judges %}
| judge against human labels | labels | n | unscored | agreement [95% CI] | sensitivity | specificity |
|---|---|---|---|---|---|---|
{% for j in judges %}
{{ row([j.judge, j.labels, j.n, j.unscored, j.agreement, j.sensitivity, j.specificity]) }}
{% endfor %}

{% endif %}
{% if judge_attacks %}
| judge attacked | wrapper | verdicts flipped [95% CI] | reward gained [95% CI] |
|---|---|---|---|
{% for j in judge_attacks %}
{{ row([j.judge, j.wrapper, j.flip, j.gain]) }}
{% endfor %}

{% endif %}
## 5. Limitations

{% if not limitations %}
None of the checks found anything: fit parameters inside their bounds, every interval covering,
judges measured, no contamination found, at least {{ few }} items behind every number.
{% endif %}
{% for item in limitations %}
- {{ item }}
{% endfor %}

## 6. Reproducibility

| result | command | scalelab | machine | data |
|---|---|---|---|---|
{% for r in repro %}
{{ row([r.label, r.command, r.code, r.machine, r.data]) }}
{% endfor %}
"""


def _cell(value: Any) -> str:
    """A value as one Markdown table cell: no pipe or line break can break the row."""
    return " ".join(str(value).split()).replace("|", "\\|")


ENV = Environment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
ENV.filters["cell"] = _cell
ENV.globals["row"] = lambda cells: "| " + " | ".join(_cell(c) for c in cells) + " |"


def _ci(m: dict | None, digits: int = 3) -> str:
    if not m or m.get("value") is None:
        return "–"
    lo, hi = m["ci95"]
    return f"{m['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _forecasts(results: list[Result], out: Path, limits: list[str]) -> list[dict]:
    entries = []
    for i, r in enumerate(x for x in results if x.kind == "forecast"):
        f = r.data
        figure = f"fig{i + 1}-loss.png"
        loss_figure(f, out / figure)
        p = f["fit"]["params"]
        vlm = f.get("kind") == "vlm"
        metric = "held-out answer loss of image questions" if vlm else "held-out loss"
        caps = []
        for task, c in (f.get("capabilities") or {}).items():
            fig = None
            if c.get("fit"):
                fig = f"fig{i + 1}-{task}.png"
                plot_capability(out / fig, task, c["fit"], actual=c.get("actual"))
            ok = c["verdict"] == "ok"
            caps.append({"task": task, "metric": c["metric"], "form": c["form"], "figure": fig,
                         "predicted": f"{c['predicted']:.4f} [{c['interval_90'][0]:.4f}, {c['interval_90'][1]:.4f}]"
                         if ok else "–", "actual": "–" if c.get("actual") is None else f"{c['actual']:.4f}",
                         "error": f"{c['abs_error']:.4f}" if ok else "–",
                         "inside": ("yes" if c["within_interval"] else "no") if ok else "–", "verdict": c["verdict"]})
            if ok and not c["within_interval"]:
                limits.append(f"{r.label}: the {task} prediction ({c['predicted']:.4f}) missed its 90% interval; "
                              f"the target measured {c['actual']:.4f}.")
            if not ok:
                limits.append(f"{r.label}: {task} was not forecast ({c['verdict']}).")
        entries.append({"label": r.label, "metric": metric, "figure": figure, "predicted": f["predicted_loss"],
                        "lo": f["interval_90"][0], "hi": f["interval_90"][1], "actual": f["actual_loss"],
                        "error": f["relative_error"], "within": f["within_interval"],
                        "prereg": f["prediction_timestamp"], "ladder_hash": f["ladder_hash"],
                        "fit": f"L(C) = {p['a']:.4g}·C^{p['b']:.4f} + {p['c']:.4f}",
                        "max_fraction": f["max_ladder_compute_fraction"], "target_flops": f["target_flops"],
                        "span": f["ladder_span_decades"], "capabilities": caps,
                        "backtest": [{"k": b["k"], "errors": ", ".join(f"{100 * e:+.2f}%" for e in
                                                                        b["relative_errors"])}
                                     for b in f["fit"]["backtest"]]})
        floor = f["fit"].get("floor") or floor_status(p, [e["final_eval_loss"] for e in f["ladder"]])
        if floor["at_bound"]:
            limits.append(f"{r.label}: {floor['note']}.")
        if not f["within_interval"]:
            limits.append(f"{r.label}: the {metric} prediction missed its 90% interval (predicted "
                          f"{f['predicted_loss']:.4f}, actual {f['actual_loss']:.4f}).")
    return entries


def _benchmarks(results: list[Result], limits: list[str]) -> tuple[list[dict], list[dict]]:
    rows = []
    for r in (x for x in results if x.kind == "eval"):
        for task, t in r.data["tasks"].items():
            cont = t.get("contamination")
            if cont is None:
                limits.append(f"{r.label}: no contamination check ran for {task}; its score may count items the "
                              "model saw in training.")
            elif cont["n_contaminated"]:
                limits.append(f"{r.label}: {cont['n_contaminated']} of {cont['n']} {task} items were found in the "
                              "training data; the clean score stands beside the full one.")
            for metric, m in t["metrics"].items():
                if t["n"] < FEW_ITEMS:
                    limits.append(f"{r.label}: only {t['n']} items behind {task} {metric}.")
                clean = cont["metrics"].get(metric, {}).get("clean") if cont else None
                rows.append({"model": r.data.get("model", r.label), "task": task, "metric": metric,
                             "value": m["value"], "ci": f"[{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]",
                             "n": t["n"], "shots": t.get("shots", "–"), "precision": r.data.get("precision") or "–",
                             "contaminated": f"{cont['n_contaminated']}/{cont['n']}" if cont else "not checked",
                             "clean": _ci(clean) if clean else "–"})
    checks = []
    for r in (x for x in results if x.kind == "contamination"):
        for task, t in r.data.get("tasks", {}).items():
            checks.append({"label": r.label, "task": task, "n": t["n"], "k": t["n_contaminated"],
                           "share": t["n_contaminated"] / t["n"] if t["n"] else 0.0,
                           "method": r.data.get("method", "gpt4")})
            if t["n_contaminated"]:
                limits.append(f"{r.label}: {t['n_contaminated']} of {t['n']} {task} examples found in the corpus.")
    return rows, checks


def _alignment(results: list[Result], limits: list[str]) -> list[dict]:
    out = []
    for r in (x for x in results if x.kind == "align_demo"):
        d = r.data
        rows = [{"name": name, "before": _ci(d["before"][name]), "after": _ci(d["after"][name]),
                 "change": f"{c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"}
                for name, c in d["change"].items()]
        check = d.get("grader_check", {})
        note = ""
        if check.get("auroc") is not None:
            note = (f"The RBRM grader separates known refusals from known answers with AUROC {check['auroc']:.2f} "
                    "(0.5 is chance).")
            if check["auroc"] < 0.7:
                limits.append(f"{r.label}: the RBRM grader's AUROC is {check['auroc']:.2f}; its rates and rewards "
                              "carry little information.")
        out.append({"label": r.label, "rows": rows, "note": note})
    for r in (x for x in results if x.kind == "align_eval"):
        d = r.data
        names = [n for n in ("refusal_rate", "over_refusal_rate", "refusal_rate_by_phrase",
                             "over_refusal_rate_by_phrase", "reward") if n in d]
        out.append({"label": f"{r.label} ({d.get('policy')})", "note": f"Graded by {d.get('grader')}.",
                    "rows": [{"name": n, "before": "–", "after": _ci(d[n]), "change": "–"} for n in names]})
    return out


def _adversarial(results: list[Result], out: Path, limits: list[str]) -> tuple[list, list, list]:
    runs = []
    for i, r in enumerate(x for x in results if x.kind == "redteam"):
        d = r.data
        figure = None
        if d["attacks"]:
            figure = f"fig-redteam{i + 1}.png"
            plot_heatmap(out / figure, d)
        attacks = [{"name": name, "asr": _ci(a["asr"]), "n": a["n"], "unscored": a["n_unscored"],
                    "corrected": _ci(a["asr_corrected"]) if a.get("asr_corrected") and a["asr_corrected"]["value"]
                    is not None else (a.get("asr_corrected") or {}).get("reason", "no calibration given")}
                   for name, a in d["attacks"].items()]
        o, h = d.get("over_refusal"), d.get("hit_at_k")
        runs.append({"label": r.label, "target": d["target"], "judge": d["judge"], "figure": figure,
                     "attacks": attacks, "over_refusal": f"{_ci(o)} over {o['n']} prompts" if o else "no safe prompts",
                     "k": h["k"] if h else 0, "hit": _ci(h) if h else "–"})
        if d["judge"] != "canary" and "judge_calibration" not in d:
            limits.append(f"{r.label}: the judge {d['judge']} was not measured against human labels in this run; "
                          "its attack success rates are raw.")
        for judge, g in (d.get("agreement_with_canary") or {}).items():
            se, sp = g["sensitivity"]["value"], g["specificity"]["value"]
            if se is not None and sp is not None and se + sp <= 1.1:
                limits.append(f"{r.label}: against the canary's ground truth the judge {judge} does no better than "
                              f"chance (sensitivity {se:.2f}, specificity {sp:.2f}).")
        small = [name for name, a in d["attacks"].items() if a["n"] < 30]
        if small:
            limits.append(f"{r.label}: attack success rates rest on {d['n_behaviours']} prompts each.")
    judges = []
    for r in (x for x in results if x.kind == "judge"):
        d = r.data
        judges.append({"judge": d["judge"], "labels": Path(d.get("labels", r.label)).name, "n": d["n"],
                       "unscored": d["n_unscored"], "agreement": _ci(d["agreement"]),
                       "sensitivity": _ci(d["sensitivity"]), "specificity": _ci(d["specificity"])})
        if d["agreement"]["value"] is not None and d["agreement"]["ci95"][0] < LOW_AGREEMENT:
            limits.append(f"{r.label}: the judge {d['judge']} agrees with the human labels on "
                          f"{d['agreement']['value']:.0%} (95% CI from {d['agreement']['ci95'][0]:.0%}).")
    attacks = []
    for r in (x for x in results if x.kind == "judge_attack"):
        for name, w in r.data["wrappers"].items():
            attacks.append({"judge": r.data["judge"], "wrapper": name, "flip": _ci(w["flip_rate"]),
                            "gain": _ci(w.get("reward_gain"))})
            flip = w["flip_rate"]
            if flip["value"] and flip["ci95"][0] > 0:
                limits.append(f"{r.label}: the wrapper {name} flips the judge {r.data['judge']} on {flip['value']:.0%} "
                              "of the harmful responses it caught; a policy trained on this judge could learn it.")
    return runs, judges, attacks


def _command_of(r: Result) -> str:
    """The command that remakes a result made through the Python API (a forecast's is in its config)."""
    c = r.data.get("config") if r.kind == "forecast" else None
    if c and r.data.get("kind") != "vlm":
        return (f"scalelab forecast --out {r.folder} --target-flops {c['target_flops']:g} --max-fraction "
                f"{c['max_fraction']:g} --runs {c['n_runs']} --span {c['span_decades']:g} --seed {c['seed']}")
    if c:
        return f"scalelab forecast --preset vlm-cpu --out {r.folder} --seed {c['seed']}"
    return f"not recorded (made through the Python API, in {r.folder})"


def _repro(results: list[Result]) -> list[dict]:
    rows = []
    for r in results:
        p = r.data.get("provenance") or {}
        code, machine = p.get("code") or r.data.get("code") or {}, p.get("machine") or r.data.get("machine") or {}
        target = r.data.get("target")
        precision = r.data.get("precision") or (target.get("precision") if isinstance(target, dict) else None) or ""
        if r.kind == "eval":
            data = "; ".join(f"{t} {v['fingerprint'][:12]}" for t, v in r.data["tasks"].items() if "fingerprint" in v)
        elif r.kind == "forecast":
            data = f"corpus {r.data.get('corpus_fingerprint', 'embedded scenes')[:12]}"
        else:
            data = ", ".join(r.data.get("sources", [])) or str(r.data.get("labels", "–"))
        commit = (code.get("commit") or "")[:10]
        rows.append({"label": f"{r.label} ({r.kind})", "command": p.get("command") or _command_of(r),
                     "code": f"{code.get('version', '?')} {commit}{' dirty' if code.get('dirty') else ''}".strip(),
                     "machine": " ".join(x for x in (machine.get("cpu", "?"), precision, machine.get("gpu") or "")
                                         if x), "data": data or "–"})
    return rows


def build_report(folders: list[str | Path], out: str | Path, title: str = "scalelab technical report",
                 pdf: bool = True) -> dict[str, Any]:
    """report.md, report.html (self-contained) and, where Chromium is installed, report.pdf in `out`."""
    out = check_output_dir(out)
    results = collect(folders)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        made = _build(results, staging, title, pdf)
        out.mkdir(exist_ok=True)
        for f in staging.iterdir():  # moved in whole: a failed build leaves `out` as it was
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**made, **{k: str(out / Path(v).name) for k, v in made.items() if k in ("markdown", "html", "pdf") and v}}


def _build(results: list[Result], out: Path, title: str, pdf: bool) -> dict[str, Any]:
    limits: list[str] = []
    forecasts = _forecasts(results, out, limits)
    benchmarks, contamination = _benchmarks(results, limits)
    alignment = _alignment(results, limits)
    redteams, judges, judge_attacks = _adversarial(results, out, limits)
    kinds = Counter(r.kind for r in results)
    md = ENV.from_string(TEMPLATE).render(
        title=title, results=results, summary=", ".join(f"{n} {k}" for k, n in kinds.items()), forecasts=forecasts,
        benchmarks=benchmarks, contamination=contamination, alignment=alignment, redteams=redteams, judges=judges,
        judge_attacks=judge_attacks, limitations=list(dict.fromkeys(limits)), few=FEW_ITEMS, repro=_repro(results))
    write_page(md, out, title)
    made = {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "pdf": None,
            "sections": {"forecasts": len(forecasts), "benchmarks": len(benchmarks), "alignment": len(alignment),
                         "redteam": len(redteams), "judges": len(judges)}, "limitations": list(dict.fromkeys(limits))}
    if pdf and (chromium := shutil.which("chromium") or shutil.which("chromium-browser")):
        made["pdf"] = print_pdf(chromium, out / "report.html", out / "report.pdf")
    return made


def print_pdf(chromium: str, html: Path, pdf: Path) -> str | None:
    """The page printed by headless Chromium; None (and no file) if it fails."""
    with tempfile.TemporaryDirectory() as profile:
        try:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                            html.resolve().as_uri()], capture_output=True, timeout=120, check=True)
        except (subprocess.SubprocessError, OSError):
            return None
    return str(pdf) if pdf.exists() and pdf.stat().st_size > 0 else None
