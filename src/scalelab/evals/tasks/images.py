"""Tasks whose items carry images: user JSONL, inspect-style content parts, NLVR, the embedded scenes.

Items with `choices` are scored by the log-likelihood of each choice (what lm-evaluation-harness's
`hf-multimodal` cannot do), the others by greedy generation with exact match. Prompts follow
LLaVA's layout: one `<image>` marker per image before the question, unless the question places its
markers itself (then their count must equal the number of images).

- JSONL rows: `{"image": PATH (relative to the file) or "images": [...], "question" or "prompt",
  "answer", "choices"?}`, or inspect's content parts: `{"input": [{"type": "image", "image": PATH},
  {"type": "text", "text": ...}], "answer" or "target", "choices"?}`.
- `nlvr` (NLVR, Suhr et al. 2017): JSON Lines `sentence, label ("true"/"false"), identifier "n-m",
  directory`; the six images `<split>-<n>-<m>-<k>.png` (k = 0..5, orderings of the same boxes) are
  found by name under the JSON file's folder or `--image-dir`, each scored as an item; items with
  no image found are skipped and counted. Chance is 50%.
- `scenes`: held-out scenes of the embedded generator (never trained on), grouped by question type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.data.images import open_image, to_data_url
from scalelab.data.scenes import make_items
from scalelab.data.vlm_text import IMAGE_TOKEN, prompt_text
from scalelab.errors import UserError
from scalelab.evals.tasks.base import MultipleChoiceTask, Sample, choice_scores, existing
from scalelab.evals.tasks.custom import GenerationTask

NLVR_ORDERINGS = 6


def has_images(row: dict) -> bool:
    """Whether a task row carries images (the JSONL layouts above)."""
    parts = row.get("input", row.get("prompt"))
    return "image" in row or "images" in row or (isinstance(parts, list) and any(
        isinstance(p, dict) and p.get("type") == "image" for p in parts))


def _prompt(question: str, n_images: int, where: str) -> str:
    found = question.count(IMAGE_TOKEN)
    if found == 0:
        return prompt_text(question, n_images)
    if found != n_images:
        raise UserError(f"{where}: {found} {IMAGE_TOKEN} markers for {n_images} images")
    return f"{question}\nAnswer:" if not question.rstrip().endswith(":") else question


def _row_parts(row: dict, where: str) -> tuple[str, list[str]]:
    """(question text, image paths) of one row in either layout."""
    parts = row.get("input", row.get("prompt"))
    if isinstance(parts, list):
        texts, paths = [], []
        for p in parts:
            if not isinstance(p, dict) or p.get("type") not in ("image", "text"):
                raise UserError(f"{where}: content parts are {{'type': 'image', 'image': PATH}} or "
                                "{'type': 'text', 'text': ...}")
            if p["type"] == "image":
                if not isinstance(p.get("image"), str):
                    raise UserError(f"{where}: an image part needs 'image': PATH")
                paths.append(p["image"])
            else:
                texts.append(str(p.get("text", "")))
        return "\n".join(t for t in texts if t), paths
    question = row.get("question", row.get("prompt"))
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: missing field 'question' (or 'prompt')")
    paths = row.get("images", [row["image"]] if "image" in row else [])
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise UserError(f"{where}: 'image' must be a path (or 'images' a list of paths)")
    return question, paths


def image_task(rows: list[tuple[str, dict]], path: Path, name: str) -> MultipleChoiceTask | GenerationTask:
    """A task from rows with images; every image is read (and checked) now, before any model runs."""
    samples = []
    multiple_choice = "choices" in rows[0][1]
    for i, (where, row) in enumerate(rows):
        question, paths = _row_parts(row, where)
        images = tuple(to_data_url(open_image(path.parent / p, where)) for p in paths)
        answer = row.get("answer", row.get("target"))
        if answer is None:
            raise UserError(f"{where}: missing field 'answer' (or 'target')")
        sample = Sample(id=str(row.get("id", i)), prompt=_prompt(question, len(images), where), question=question,
                        images=images, meta={"images": paths}, group=row.get("type"))
        if multiple_choice:
            choices = row.get("choices")
            if not isinstance(choices, list) or len(choices) < 2:
                raise UserError(f"{where}: 'choices' must list at least two answers")
            choices = [str(c) for c in choices]
            if str(answer) not in choices:
                raise UserError(f"{where}: the answer {answer!r} is not one of the choices")
            sample.choices, sample.target = [f" {c}" for c in choices], choices.index(str(answer))
        else:
            sample.target = str(answer)
        samples.append(sample)
    if multiple_choice:
        return MultipleChoiceTask(name, samples, choice_scores)
    return GenerationTask(name, samples, max_tokens=32)


def scenes_task(limit: int | None = None, size: int = 32) -> MultipleChoiceTask:
    """The embedded generator's held-out scenes (400 unless `limit`), grouped by question type."""
    samples = []
    for it in make_items("heldout", limit or 400, size):
        samples.append(Sample(id=it.id, prompt=prompt_text(it.question), question=it.question,
                              choices=[f" {c}" for c in it.choices], target=it.choices.index(it.answer),
                              group=it.qtype, images=(to_data_url(it.image),)))
    return MultipleChoiceTask("scenes", samples, choice_scores, info={"shots": 0})


def nlvr_task(path: str | Path, image_dir: str | Path | None = None) -> tuple[MultipleChoiceTask, dict[str, Any]]:
    """NLVR's JSON Lines and its images; also what was skipped for want of images."""
    from scalelab.io import read_jsonl

    path = existing(path, "nlvr")
    split = path.stem
    roots = [Path(image_dir)] if image_dir else [path.parent]
    for root in roots:
        if not root.is_dir():
            raise UserError(f"--image-dir {root} is not a folder")
    found = {p.name: p for root in roots for p in root.rglob(f"{split}-*.png")}
    samples, skipped = [], 0
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        for key in ("sentence", "label", "identifier"):
            if key not in row:
                raise UserError(f"{where}: missing field '{key}'")
        label = str(row["label"]).lower()
        if label not in ("true", "false"):
            raise UserError(f"{where}: label must be 'true' or 'false', not {row['label']!r}")
        names = [f"{split}-{row['identifier']}-{k}.png" for k in range(NLVR_ORDERINGS)]
        present = [found[n] for n in names if n in found]
        if not present:
            skipped += 1
            continue
        question = f"True or false: {row['sentence']}"
        for image in present:
            samples.append(Sample(id=image.stem, prompt=prompt_text(question), question=question,
                                  choices=[" true", " false"], target=0 if label == "true" else 1,
                                  images=(to_data_url(open_image(image, where)),), meta={"images": [str(image)]}))
    if not samples:
        raise UserError(f"{path}: no image of any item was found under {', '.join(map(str, roots))} "
                        f"(looked for {split}-<n>-<m>-<k>.png)")
    return MultipleChoiceTask("nlvr", samples, choice_scores), {"n_items_skipped_no_image": skipped}
