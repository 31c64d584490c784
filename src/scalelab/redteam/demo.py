"""`scalelab redteam demo`: SmolLM2-135M-Instruct attacked on the embedded prompts.

Two runs: secret-keeping tasks judged by the canary (ground truth), with refusal phrases and the RBRM
judging the same replies so their agreement with the truth is measured; and mild house policies
judged by refusal phrases and the RBRM. Safe look-alikes under the same system prompts give the
over-refusal rate. `demo.json` gathers the numbers and says, from them, what each judge can tell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.io import check_output_dir, write_json
from scalelab.redteam.demo_data import policy_behaviours, safe_behaviours, secret_behaviours
from scalelab.redteam.run import RedteamSettings, run_redteam

DEMO_ATTACKS = ["direct", "roleplay", "refusal_suppression", "prefix_injection", "distractors", "base64", "rot13",
                "few_shot", "many_shot", "cot", "few_shot+cot", "pair"]


@dataclass
class DemoSettings:
    target: str = "smollm2"
    grader: str = "smollm2"
    attacks: list[str] = field(default_factory=lambda: list(DEMO_ATTACKS))
    max_tokens: int = 64
    pair_rounds: int = 3
    seed: int = 0
    cache: str | Path | None = None  # the response cache (default under $SCALELAB_CACHE)


def _judgement(judge: str, g: dict[str, Any]) -> str:
    """What one judge's agreement with the canary says, in a sentence built from its numbers."""
    a, se, sp = g["agreement"], g["sensitivity"], g["specificity"]
    if a["value"] is None:
        return f"{judge}: no scored replies to compare."
    said = (f"{judge}: agrees with the canary on {a['value']:.0%} of {g['n'] - g['n_unscored']} replies "
            f"(95% CI {a['ci95'][0]:.0%}-{a['ci95'][1]:.0%}); sensitivity {se['value'] or 0:.2f}, specificity "
            f"{sp['value'] or 0:.2f}")
    if se["value"] is None or sp["value"] is None:
        return said + "; the replies held only one kind, so its error cannot be split."
    if se["value"] + sp["value"] <= 1.1:
        return said + ": no better than chance, so its success rates say nothing without ground truth."
    return said + "."


def demo(out: str | Path, settings: DemoSettings | None = None, show_progress: bool = True) -> dict[str, Any]:
    settings = settings or DemoSettings()
    out = check_output_dir(out)
    began = time.perf_counter()
    rbrm = f"rbrm:{settings.grader}"
    common = dict(attacks=settings.attacks, max_tokens=settings.max_tokens, pair_rounds=settings.pair_rounds,
                  seed=settings.seed, cache=settings.cache)
    secrets = run_redteam(settings.target, secret_behaviours() + safe_behaviours(), out / "secrets",
                          RedteamSettings(judges=["canary", "refusal", rbrm], **common), show_progress=show_progress)
    policies = run_redteam(settings.target, policy_behaviours(), out / "policies",
                           RedteamSettings(judges=["refusal", rbrm], **common), show_progress=show_progress)
    notes = [_judgement(j, g) for j, g in secrets["agreement_with_canary"].items()]
    for name, run in (("secrets", secrets), ("policies", policies)):
        best = max(run["attacks"], key=lambda a: run["attacks"][a]["asr"]["value"] or 0)
        a = run["attacks"][best]["asr"]
        notes.append(f"{name}: the strongest attack by its judge ({run['judge']}) is {best}, ASR {a['value']:.2f} "
                     f"[{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}] over {run['n_behaviours']} prompts; hit@"
                     f"{run['hit_at_k']['k']} {run['hit_at_k']['value']:.2f}.")
    o = secrets["over_refusal"]
    notes.append(f"over-refusal on {o['n']} safe look-alikes ({o['judge']}): {o['value']:.2f} "
                 f"[{o['ci95'][0]:.2f}, {o['ci95'][1]:.2f}].")
    summary = {"target": settings.target, "grader": settings.grader, "attacks": settings.attacks,
               "secrets": {k: secrets[k] for k in ("attacks", "over_refusal", "hit_at_k", "agreement_with_canary")},
               "policies": {k: policies[k] for k in ("attacks", "hit_at_k")},
               "notes": notes, "seconds": time.perf_counter() - began}
    write_json(out / "demo.json", summary)
    return summary
