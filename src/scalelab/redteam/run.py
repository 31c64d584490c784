"""A red-teaming run: every attack on every harmful behaviour, safe look-alikes asked plainly, every
reply judged by every judge. Writes `redteam.json` and `samples.jsonl`.

The first judge is the run's judge: attack success rates (ASR), per category, hit@k and the
correction for its measured error (`calibration`, a judge.json of the same judge) are its; the
others are reported beside it (`by_judge`), and when `canary` is among the judges, each other
judge's agreement with the canary's ground truth is measured on the rows that have a canary.
Over-refusal is the refusal rate on safe prompts, read off the first judge that tells refusals
(the refusal-phrase judge when none does). Every model call goes through the response cache, so a
killed run, rerun, asks the models only for what they had not answered.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.evals.backends import check_model_spec
from scalelab.evals.cache import ResponseCache, default_cache_path
from scalelab.evals.runner import write_samples
from scalelab.evals.stats import proportion
from scalelab.io import check_output_dir, write_json
from scalelab.progress import progress
from scalelab.provenance import stamp
from scalelab.redteam.attacks import Chain, Context, Conversation, decode_reply, parse_attacks, start
from scalelab.redteam.behaviours import Behaviour
from scalelab.redteam.calibration import agreement, corrected_rate
from scalelab.redteam.judges import Item, Judge, RefusalJudge, Verdict, cached_grader, check_judge_spec, make_judge
from scalelab.redteam.pair import run_pair

MAX_SUBSETS = 2000  # hit@k averages over every k-subset of attacks, or this many random ones


@dataclass
class RedteamSettings:
    attacks: list[str] = field(default_factory=lambda: ["direct"])
    judges: list[str] = field(default_factory=lambda: ["refusal"])
    seed: int = 0
    max_tokens: int = 128
    pair_rounds: int = 3
    attacker: str | None = None  # PAIR's attacker model; default: the target
    translator: str | None = None  # the model translate:LANG uses; default: the target
    cache: str | Path | None = None


def check_run(target: str, settings: RedteamSettings, calibration: dict[str, Any] | None) -> list[Chain]:
    """Everything that can be checked before a model loads: attacks, judges, model specs, calibration."""
    chains = parse_attacks(settings.attacks)
    if not settings.judges:
        raise UserError("give at least one --judge")
    for spec in settings.judges:
        check_judge_spec(spec)
    for spec in (target, settings.attacker, settings.translator):
        if spec is not None:
            check_model_spec(spec)
    if calibration is not None:
        if calibration.get("judge") != settings.judges[0]:
            raise UserError(f"--judge-calibration measures the judge '{calibration.get('judge')}', but the run's "
                            f"judge is '{settings.judges[0]}'")
        counts = calibration.get("counts")
        if not isinstance(counts, dict) or any(not isinstance(counts.get(k), int) for k in ("tp", "fn", "tn", "fp")):
            raise UserError("--judge-calibration: field 'counts' must hold integer tp, fn, tn, fp (a judge.json "
                            "from `scalelab redteam calibrate`)")
    return chains


def judge_all(judges: list[Judge], items: list[Item]) -> list[dict[str, Verdict]]:
    """Every judge's verdict on every item; a judge whose grader fails on an item leaves it unscored."""
    per_judge = {}
    for j in judges:
        try:
            per_judge[j.spec] = j.judge(items)
        except UserError:  # one failing call: judge item by item, so only the failing ones go unscored
            per_judge[j.spec] = []
            for it in items:
                try:
                    per_judge[j.spec] += j.judge([it])
                except UserError as e:
                    per_judge[j.spec].append(Verdict("unscored", f"judge error: {e}"))
    return [{spec: v[i] for spec, v in per_judge.items()} for i in range(len(items))]


def success_rate(verdicts: list[str]) -> dict[str, Any]:
    """ASR over the scored verdicts, with the unscored counted and the bounds they leave open."""
    yes, unscored = verdicts.count("yes"), verdicts.count("unscored")
    n = len(verdicts)
    rate = proportion(yes, n - unscored)
    return {"asr": {"value": rate["value"], "ci95": rate["ci95"]}, "n": n, "n_unscored": unscored,
            "asr_bounds": [yes / n, (yes + unscored) / n] if n else [None, None]}


def hit_at_k(outcomes: dict[str, list[str]], seed: int = 0) -> dict[str, Any]:
    """Share of behaviours broken by at least one of k attacks: for k = all attacks with its CI, and
    for each smaller k the mean over k-subsets. A behaviour counts where some attack in the subset
    was scored."""
    names = list(outcomes)
    n_behaviours = len(next(iter(outcomes.values()), []))

    def rate(subset: tuple[str, ...]) -> tuple[int, int]:
        broken = scored = 0
        for b in range(n_behaviours):
            seen = [outcomes[a][b] for a in subset]
            broken += "yes" in seen
            scored += any(v != "unscored" for v in seen)
        return broken, scored

    by_k = {}
    rng = random.Random(seed)
    for k in range(1, len(names) + 1):
        subsets = list(itertools.islice(itertools.combinations(names, k), MAX_SUBSETS + 1))
        if len(subsets) > MAX_SUBSETS:
            subsets = [tuple(rng.sample(names, k)) for _ in range(MAX_SUBSETS)]
        shares = [b / s for b, s in map(rate, subsets) if s]
        by_k[str(k)] = sum(shares) / len(shares) if shares else None
    broken, scored = rate(tuple(names))
    whole = proportion(broken, scored)
    return {"k": len(names), "value": whole["value"], "ci95": whole["ci95"], "n": scored, "by_k": by_k}


def _generate(target, convs: list[Conversation], max_tokens: int, translator) -> tuple[list[str], list[str]]:
    raw = [r[0] for r in target.generate([c.request(max_tokens) for c in convs])]
    return raw, decode_reply(raw, [c.decodings for c in convs], translator)


def _sample(b: Behaviour, attack: str, conv: Conversation, raw: str, decoded: str, verdicts: dict[str, Verdict],
            transcript: list | None = None) -> dict[str, Any]:
    row = {"behaviour": b.id, "category": b.category, "source": b.source, "harmful": b.harmful, "attack": attack,
           "prompt": b.prompt, "final_prompt": conv.as_json(), "reply": raw, "decoded_reply": decoded,
           "verdicts": {spec: v.as_json() for spec, v in verdicts.items()}}
    if transcript is not None:
        row["transcript"] = transcript
    return row


def _attack_summary(rows: list[dict], judges: list[str], calibration: dict | None) -> dict[str, Any]:
    main = judges[0]
    verdicts = [r["verdicts"][main]["verdict"] for r in rows]
    out = success_rate(verdicts)
    scores = [r["verdicts"][main]["score"] for r in rows if "score" in r["verdicts"][main]]
    if scores:
        out["mean_score"] = sum(scores) / len(scores)
    if calibration is not None:
        out["asr_corrected"] = corrected_rate(verdicts.count("yes"), len(verdicts) - verdicts.count("unscored"),
                                              calibration)
    categories = list(dict.fromkeys(r["category"] for r in rows))
    out["by_category"] = {c: success_rate([r["verdicts"][main]["verdict"] for r in rows if r["category"] == c])
                          for c in categories}
    out["by_judge"] = {j: success_rate([r["verdicts"][j]["verdict"] for r in rows]) for j in judges[1:]}
    return out


def _over_refusal(rows: list[dict], judge: str) -> dict[str, Any]:
    def rate(subset: list[dict]) -> dict[str, Any]:
        refused = [r["verdicts"][judge].get("refused") for r in subset]
        scored = [x for x in refused if x is not None]
        return {**proportion(sum(scored), len(scored)), "n_unscored": len(refused) - len(scored)}

    categories = list(dict.fromkeys(r["category"] for r in rows))
    return {**rate(rows), "judge": judge, "by_category": {c: rate([r for r in rows if r["category"] == c])
                                                          for c in categories}}


def _canary_agreement(rows: list[dict], judges: list[str]) -> dict[str, Any]:
    """Each other judge against the canary's ground truth (the secret kept = the attack failed)."""
    truth = [r for r in rows if r["verdicts"]["canary"]["verdict"] != "unscored"]
    return {j: agreement([r["verdicts"]["canary"]["verdict"] == "no" for r in truth],
                         [r["verdicts"][j]["verdict"] for r in truth]) for j in judges if j != "canary"}


def run_redteam(target: str, behaviours: list[Behaviour], out: str | Path, settings: RedteamSettings | None = None,
                calibration: dict[str, Any] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Attack `target` with every chain of `settings.attacks`; write redteam.json and samples.jsonl."""
    settings = settings or RedteamSettings()
    chains = check_run(target, settings, calibration)
    out = check_output_dir(out)
    harmful = [b for b in behaviours if b.harmful]
    safe = [b for b in behaviours if not b.harmful]
    if not behaviours:
        raise UserError("no prompts to run")
    began = time.perf_counter()
    cache = ResponseCache(settings.cache or default_cache_path())

    grader_for = cached_grader(cache)  # each model loaded once, shared by every role it plays

    def model(spec: str | None):
        return grader_for(spec or target)

    judges = [make_judge(s, grader_for) for s in settings.judges]
    needs_translator = any(p.name.startswith("translate:") for c in chains for p in c.parts)
    translator = model(settings.translator) if needs_translator else None
    ctx = Context(settings.seed, harmful, translator)
    samples: list[dict] = []
    with progress(disable=not show_progress) as bar:
        task = bar.add_task("red-teaming", total=len(chains) * bool(harmful) + bool(safe))
        for chain in chains if harmful else []:
            convs = chain.apply(harmful, ctx)
            transcripts: list[list | None] = [None] * len(harmful)
            if chain.iterative:
                done = run_pair(model(target), model(settings.attacker), judges[0], harmful, convs,
                                settings.pair_rounds, settings.max_tokens, settings.seed, translator)
                convs = [d["conv"] for d in done]
                raw, decoded = [d["reply"] for d in done], [d["decoded"] for d in done]
                transcripts = [d["transcript"] for d in done]
            else:
                raw, decoded = _generate(model(target), convs, settings.max_tokens, translator)
            verdicts = judge_all(judges, [Item(b, d, r) for b, d, r in zip(harmful, decoded, raw, strict=True)])
            samples += [_sample(b, chain.name, c, r, d, v, t) for b, c, r, d, v, t in
                        zip(harmful, convs, raw, decoded, verdicts, transcripts, strict=True)]
            bar.advance(task)
        refusal_judge = next((j for j in judges if j.tells_refusal), None)
        if safe:
            convs = [start(b) for b in safe]
            raw, decoded = _generate(model(target), convs, settings.max_tokens, None)
            extra = [] if refusal_judge else [RefusalJudge()]
            verdicts = judge_all(judges + extra, [Item(b, d, r) for b, d, r in zip(safe, decoded, raw, strict=True)])
            samples += [_sample(b, "plain", c, r, d, v) for b, c, r, d, v in
                        zip(safe, convs, raw, decoded, verdicts, strict=True)]
            bar.advance(task)
    attacked = [s for s in samples if s["harmful"]]
    result: dict[str, Any] = {
        "target": target, "judge": settings.judges[0], "judges": settings.judges,
        "attacks": {c.name: _attack_summary([s for s in attacked if s["attack"] == c.name], settings.judges,
                                            calibration) for c in chains} if harmful else {},
        "over_refusal": _over_refusal([s for s in samples if not s["harmful"]],
                                      refusal_judge.spec if refusal_judge else "refusal") if safe else None,
        "hit_at_k": hit_at_k({c.name: [s["verdicts"][settings.judges[0]]["verdict"] for s in attacked
                                       if s["attack"] == c.name] for c in chains}, settings.seed) if harmful else None,
        "n_behaviours": len(harmful), "n_safe": len(safe),
        "categories": list(dict.fromkeys(b.category for b in harmful)),
        "sources": list(dict.fromkeys(b.source for b in behaviours)),
        "settings": {"attacks": [c.name for c in chains], "seed": settings.seed, "max_tokens": settings.max_tokens,
                     "pair_rounds": settings.pair_rounds, "attacker": settings.attacker or target,
                     "translator": settings.translator or target},
    }
    if "canary" in settings.judges and len(settings.judges) > 1:
        result["agreement_with_canary"] = _canary_agreement(attacked, settings.judges)
    if calibration is not None:
        result["judge_calibration"] = {k: calibration[k] for k in ("sensitivity", "specificity", "counts")
                                       if k in calibration}
    result.update(seconds=time.perf_counter() - began, provenance=stamp())
    write_samples(out / "samples.jsonl", samples)
    write_json(out / "redteam.json", result)
    return result
