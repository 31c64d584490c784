"""Judges measured against human labels, and attack success rates corrected for the judge's error.

Labels: XSTest's completions layout (`id, type, prompt, completion, ..., final_label`, with
`1_full_compliance`, `2_full_refusal`, `3_partial_refusal`) or plain `prompt, completion, label` rows
(`refusal`, `partial_refusal`, `compliance`), CSV or JSONL. Refusal is the positive class and a
partial refusal counts as one (XSTest's own reading); the judge's `no` (the attack failed) is its
refusal. Sensitivity = P(judge no | human refusal), specificity = P(judge yes | human compliance),
each with a Wilson 95% CI; unscored verdicts are counted apart, not in these rates.

Correction (Rogan & Gladen 1978): the judge's observed success rate p relates to the true rate π by
p = π·spec + (1 − π)·(1 − sens), so π = (p + sens − 1) / (sens + spec − 1), clipped to [0, 1]. The
interval draws p, sens and spec from their Beta posteriors (Jeffreys priors on the run's and the
calibration's counts), so it carries the calibration's uncertainty as well as the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scalelab.errors import UserError
from scalelab.evals.stats import proportion
from scalelab.io import read_csv_records, read_jsonl
from scalelab.redteam.behaviours import Behaviour
from scalelab.redteam.judges import Item, Judge

HUMAN_LABELS = {"1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": "partial_refusal",
                "compliance": "compliance", "refusal": "refusal", "partial_refusal": "partial_refusal"}
REFUSALS = ("refusal", "partial_refusal")


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Rows {id, prompt, completion, label, type} of a human-labelled completions file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file {path} not found")
    rows = [(f"{path}:{n}", r) for n, r in (read_csv_records(path)[1] if path.suffix == ".csv" else read_jsonl(path))]
    out = []
    for i, (where, row) in enumerate(rows):
        for key in ("prompt", "completion"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{where}: missing field '{key}'")
        raw = row.get("final_label", row.get("label"))
        if raw is None:
            raise UserError(f"{where}: missing field 'label' (or XSTest's 'final_label')")
        label = HUMAN_LABELS.get(str(raw).strip())
        if label is None:
            raise UserError(f"{where}: label '{raw}' is not one of {', '.join(HUMAN_LABELS)}")
        out.append({"id": str(row.get("id") or i), "prompt": row["prompt"], "completion": row["completion"],
                    "label": label, "type": str(row.get("type") or "")})
    if not out:
        raise UserError(f"{path}: no labelled rows")
    return out


def label_items(rows: list[dict[str, Any]]) -> list[Item]:
    """Labelled rows as judge items: the prompt as a harmful behaviour (the judge asks whether the reply
    carried it out), the completion as the reply."""
    return [Item(Behaviour(id=r["id"], goal=r["prompt"], category=r["type"] or "uncategorised", harmful=True,
                           source="labels", canary=r.get("canary", "")), r["completion"], r["completion"])
            for r in rows]


def agreement(human_refusal: list[bool], verdicts: list[str]) -> dict[str, Any]:
    """Agreement, sensitivity and specificity (refusal positive) of verdicts against human truth."""
    scored = [(h, v == "no") for h, v in zip(human_refusal, verdicts, strict=True) if v != "unscored"]
    tp = sum(h and j for h, j in scored)
    fn = sum(h and not j for h, j in scored)
    tn = sum(not h and not j for h, j in scored)
    fp = sum(not h and j for h, j in scored)
    return {"n": len(verdicts), "n_unscored": len(verdicts) - len(scored),
            "agreement": proportion(tp + tn, len(scored)), "sensitivity": proportion(tp, tp + fn),
            "specificity": proportion(tn, tn + fp), "counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp}}


def calibrate(judge: Judge, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """judge.json's numbers, and each row with the judge's verdict."""
    verdicts = judge.judge(label_items(rows))
    result = agreement([r["label"] in REFUSALS for r in rows], [v.verdict for v in verdicts])
    confusion = {label: {"refusal": 0, "compliance": 0, "unscored": 0} for label in
                 ("refusal", "partial_refusal", "compliance")}
    for r, v in zip(rows, verdicts, strict=True):
        said = {"no": "refusal", "yes": "compliance"}.get(v.verdict, "unscored")
        confusion[r["label"]][said] += 1
    samples = [{**r, "judge": v.as_json()} for r, v in zip(rows, verdicts, strict=True)]
    return {"judge": judge.spec, "positive_class": "refusal (partial refusals included); the judge's 'no'",
            **result, "confusion": confusion}, samples


def corrected_rate(yes: int, n: int, calibration: dict[str, Any], draws: int = 20000, seed: int = 0) -> dict[str, Any]:
    """The success rate corrected for the judge's sensitivity and specificity, with a 95% interval
    from Beta posteriors of all three counts."""
    c = calibration["counts"]
    if n == 0 or min(c["tp"] + c["fn"], c["tn"] + c["fp"]) == 0:
        return {"value": None, "ci95": [None, None], "method": "rogan-gladen",
                "reason": "no scored items" if n == 0 else "the calibration lacks refusals or compliances"}
    sens = c["tp"] / (c["tp"] + c["fn"])
    spec = c["tn"] / (c["tn"] + c["fp"])
    if sens + spec <= 1:
        return {"value": None, "ci95": [None, None], "method": "rogan-gladen",
                "reason": f"the judge does no better than chance (sensitivity {sens:.2f} + specificity {spec:.2f} "
                          "<= 1)"}

    def rate(p, se, sp):
        return np.clip((p + se - 1) / np.where(se + sp - 1 > 0, se + sp - 1, np.nan), 0, 1)

    rng = np.random.default_rng(seed)
    p_draw = rng.beta(yes + 0.5, n - yes + 0.5, draws)
    se_draw = rng.beta(c["tp"] + 0.5, c["fn"] + 0.5, draws)
    sp_draw = rng.beta(c["tn"] + 0.5, c["fp"] + 0.5, draws)
    drawn = rate(p_draw, se_draw, sp_draw)
    drawn = drawn[np.isfinite(drawn)]
    lo, hi = np.percentile(drawn, [2.5, 97.5])
    return {"value": float(rate(yes / n, sens, spec)), "ci95": [float(lo), float(hi)], "method": "rogan-gladen",
            "sensitivity": sens, "specificity": spec}
