"""Image input: scenes whose answers follow from the pixels, a VLM exported to Llava with the same
logits, training that lowers the held-out answer loss, images through every evaluation path and the
server, NLVR's layout, and bad image input."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from scalelab.data.images import from_data_url, image_processor, to_data_url
from scalelab.data.scenes import COLOURS, QUESTION_TYPES, make_item, make_items
from scalelab.errors import UserError
from tests.conftest import assert_clean_error, run_cli

SETTINGS = dict(steps=60, batch_size=16, eval_items=40, checkpoint_every=30, threads=2, n_layer=3)


@pytest.fixture(scope="module")
def vlm_run(tmp_path_factory):
    from scalelab.train.vlm_trainer import VLMTrainConfig, train_vlm

    run = tmp_path_factory.mktemp("vlm") / "run"
    summary = train_vlm(VLMTrainConfig(**SETTINGS), run, show_progress=False)
    return run, summary


def _components(image) -> int:
    """Shapes in a scene image, counted from its pixels: connected regions of non-white pixels."""
    from scipy import ndimage

    pixels = np.asarray(image).astype(int)
    ink = (np.abs(pixels - 255).sum(axis=-1) > 60)
    return ndimage.label(ink)[1]


def test_scene_answers_follow_from_the_pixels():
    from scipy import ndimage

    items = make_items("heldout", 200)
    assert {it.qtype for it in items} == set(QUESTION_TYPES)
    counts = [it for it in items if it.qtype == "count"]
    assert all(_components(it.image) == int(it.answer) for it in counts)
    for it in (it for it in items if it.qtype == "colour"):
        kind = it.question.removeprefix("What colour is the ").removesuffix("?")
        assert kind in ("circle", "square", "triangle")
        pixels = np.asarray(it.image).reshape(-1, 3)
        assert (np.abs(pixels - np.array(COLOURS[it.answer])).sum(axis=1) < 10).any()  # that colour is drawn
    checked = 0
    for it in (it for it in items if it.qtype == "further_left"):
        assert it.answer in it.choices and all(c in it.question for c in it.choices)
        pixels = np.asarray(it.image).astype(int)
        masks = [(np.abs(pixels - np.array(COLOURS[c.split()[0]])).sum(axis=-1) < 10) for c in it.choices]
        if it.choices[0].split()[0] != it.choices[1].split()[0] and all(ndimage.label(m)[1] == 1 for m in masks):
            xs = [np.nonzero(m)[1].mean() for m in masks]  # the two shapes' columns, from their pixels
            assert it.answer == it.choices[int(np.argmin(xs))], it.question
            checked += 1
    assert checked >= 5
    shares = {q: np.mean([it.answer in ("yes", "true") for it in items if it.qtype == q])
              for q in ("left_of", "statement")}
    assert all(0.25 < v < 0.75 for v in shares.values()), shares  # both answers occur
    firsts = [it.answer == it.choices[0] for it in items if it.qtype == "further_left"]
    assert 0.25 < np.mean(firsts) < 0.75, firsts  # the answer is not always the first name
    again = make_item("heldout", 7)
    assert again.question == items[7].question and np.array_equal(np.asarray(again.image), np.asarray(items[7].image))
    train_ids = {(it.question, np.asarray(it.image).tobytes()) for it in make_items("train", 200)}
    assert not train_ids & {(it.question, np.asarray(it.image).tobytes()) for it in items}


def test_training_lowers_the_heldout_answer_loss(vlm_run, tmp_path):
    from scalelab.train.vlm_trainer import VLMTrainConfig, train_vlm

    run, trained = vlm_run
    untrained = train_vlm(VLMTrainConfig(**{**SETTINGS, "steps": 1, "lr": 1e-9}), tmp_path / "u", show_progress=False)
    assert trained["final_eval_loss"] < untrained["final_eval_loss"] - 0.3
    assert set(trained["by_type"]) == set(QUESTION_TYPES)
    assert all(0 <= v["accuracy"] <= 1 and v["chance"] in (0.25, 0.5) for v in trained["by_type"].values())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == SETTINGS["steps"]


def test_the_curriculum_asks_relational_questions_first():
    from scalelab.data.scenes import RELATIONAL
    from scalelab.train.vlm_trainer import VLMTrainConfig, train_items

    cfg = VLMTrainConfig(relational_steps=3, batch_size=64)
    early, late = train_items(cfg, 2), train_items(cfg, 3)
    assert {it.qtype for it in early} == set(RELATIONAL)
    assert {it.qtype for it in late} == set(QUESTION_TYPES)
    plain = VLMTrainConfig(batch_size=64)  # no curriculum: the stream every run trained on before it existed
    assert [it.question for it in train_items(plain, 2)] == [
        make_item("train", int(i), 32).question for i in np.random.default_rng([0, 2]).integers(0, 50_000, 64)]


def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """Resumed weights equal the uninterrupted run's to 1e-4 (fp32). Not bit for bit: in the full suite on
    a 2-core Xeon two runs of the same settings were seen to differ (in bf16 and in fp32, by up to 1.2e-5 after
    60 steps; cause not found, MKL's alignment-dependent kernels suspected), while a resume that drops the
    optimizer's state misses by 1.5e-2; the test reports the largest gap."""
    from scalelab.train.checkpoint import load_checkpoint
    from scalelab.train.vlm_trainer import VLM_PRESETS, VLMTrainConfig, train_vlm

    # on top of the preset, as the command line below does; the curriculum ends in the resumed part
    exact = {**SETTINGS, "precision": "fp32", "relational_steps": 45}
    train_vlm(VLMTrainConfig(**{**VLM_PRESETS["vlm-tiny"], **exact}), tmp_path / "whole", show_progress=False)
    run = tmp_path / "killed"
    settings = [f"--set={k}={v}" for k, v in {**exact, "checkpoint_every": 10}.items()]
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "train", "--preset", "vlm-tiny", *settings, "--out",
                             str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        state = load_checkpoint(run) if (run / "checkpoint.pt").exists() else None
        if state is not None and state["step"] >= 20:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    step = load_checkpoint(run)["step"]
    assert 20 <= step < SETTINGS["steps"], step  # killed mid-run
    proc = run_cli("train", "--resume", "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    a, b = load_checkpoint(run)["model"], load_checkpoint(tmp_path / "whole")["model"]
    assert a.keys() == b.keys()
    gaps = {k: float((a[k].float() - b[k].float()).abs().max()) for k in a}
    worst = max(gaps, key=gaps.get)
    assert gaps[worst] <= 1e-4, (worst, gaps[worst])  # each step's batch: a function of (seed, step)


def test_export_to_llava_gives_the_same_logits(vlm_run, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from scalelab.data.vlm_text import prompt_text
    from scalelab.train.vlm_export import export_vlm
    from scalelab.train.vlm_trainer import load_vlm_run

    out = export_vlm(vlm_run[0], tmp_path / "hf")
    processor = AutoProcessor.from_pretrained(out)
    hf = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlavaForConditionalGeneration"
    ours, _, _ = load_vlm_run(vlm_run[0])
    items = make_items("heldout", 4)
    inputs = processor(text=[prompt_text(it.question) + " " + it.answer for it in items],
                       images=[it.image for it in items], return_tensors="pt", padding=True)
    assert (inputs["input_ids"] == hf.config.image_token_index).sum() == 4 * 64
    with torch.no_grad():
        theirs, mine = hf(**inputs).logits, ours(inputs["input_ids"], inputs["pixel_values"])
    mask = inputs["attention_mask"].bool()
    assert (theirs - mine)[mask].abs().max().item() < 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_images_in_process_and_over_http_give_the_same_choices(vlm_run, tmp_path):
    import openai

    run = vlm_run[0]
    proc = run_cli("eval", "--model", f"run:{run}", "--tasks", "scenes", "--limit", "24", "--out",
                   str(tmp_path / "local"), "--cache", str(tmp_path / "c1.sqlite"))
    assert proc.returncode == 0, proc.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "scalelab", "serve", f"run:{run}", "--port", str(port)],
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        for _ in range(120):
            try:
                listed = client.models.list().data
                break
            except openai.APIConnectionError:
                time.sleep(0.5)
        assert listed[0].model_extra["image_input"] is True
        proc = run_cli("eval", "--model", f"openai:run:{run}@http://127.0.0.1:{port}/v1", "--tasks", "scenes",
                       "--limit", "24", "--out", str(tmp_path / "http"), "--cache", str(tmp_path / "c2.sqlite"))
        assert proc.returncode == 0, proc.stderr
        local = [json.loads(x) for x in (tmp_path / "local" / "samples_scenes.jsonl").read_text().splitlines()]
        remote = [json.loads(x) for x in (tmp_path / "http" / "samples_scenes.jsonl").read_text().splitlines()]
        assert [r["pred"] for r in local] == [r["pred"] for r in remote]
        diffs = [abs(a - b) for x, y in zip(local, remote, strict=True)
                 for a, b in zip(x["loglikelihoods"], y["loglikelihoods"], strict=True)]
        assert max(diffs) < 1e-4
        image = to_data_url(make_item("heldout", 0).image)
        reply = client.chat.completions.create(model="m", max_tokens=4, temperature=0, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                         {"type": "text", "text": "Question: How many shapes are there?\nAnswer:"}]}])
        assert isinstance(reply.choices[0].message.content, str)
        with pytest.raises(openai.BadRequestError, match="fetches nothing"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
        with pytest.raises(openai.BadRequestError, match="markers"):
            client.completions.create(model="m", prompt="<image>\n<image>\nQ", max_tokens=0, echo=True, logprobs=1,
                                      extra_body={"images": [image]})
    finally:
        server.terminate()
        server.wait(30)


def test_a_text_only_model_refuses_images(tiny_run, tmp_path):
    proc = run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "scenes", "--limit", "4", "--out",
                   str(tmp_path / "e"))
    assert_clean_error(proc, "text-only model and takes no images")
    assert not (tmp_path / "e").exists()


def _save(image, path):
    image.save(path)
    return path.name


def test_image_tasks_from_user_files(vlm_run, tmp_path):
    from scalelab.evals import evaluate, load_backend, load_task

    items = make_items("heldout", 6)
    rows = []
    for i, it in enumerate(items[:3]):
        rows.append({"image": _save(it.image, tmp_path / f"p{i}.png"), "question": it.question,
                     "choices": list(it.choices), "answer": it.answer})
    for i, it in enumerate(items[3:]):
        rows.append({"input": [{"type": "image", "image": _save(it.image, tmp_path / f"q{i}.png")},
                               {"type": "text", "text": it.question}], "choices": list(it.choices),
                     "target": it.answer})
    spec = tmp_path / "shapes.jsonl"
    spec.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(str(spec), {})
    assert all(len(s.images) == 1 and s.prompt.startswith("<image>\n") for s in task.samples)
    backend = load_backend(f"run:{vlm_run[0]}")
    result = evaluate(backend, [task], tmp_path / "out", "vlm", cache_path=tmp_path / "c.sqlite", show_progress=False)
    assert result["tasks"]["shapes"]["n"] == 6
    generation = tmp_path / "gen.jsonl"
    generation.write_text(json.dumps({"image": "p0.png", "question": items[0].question, "answer": items[0].answer})
                          + "\n")
    result = evaluate(backend, [load_task(str(generation), {})], tmp_path / "out2", "vlm",
                      cache_path=tmp_path / "c.sqlite", show_progress=False)
    assert set(result["tasks"]["gen"]["metrics"]) == {"match", "includes"}


def test_bad_image_input_names_the_file_and_row(tmp_path):
    from scalelab.evals import load_task

    item = make_item("heldout", 0)
    _save(item.image, tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cases = {
        "missing.jsonl": ({"image": "nope.png", "question": "q", "answer": "a"}, "image"),
        "broken.jsonl": ({"image": "broken.png", "question": "q", "answer": "a"}, "cannot read image"),
        "markers.jsonl": ({"image": "ok.png", "question": "<image> and <image>", "answer": "a"}, "2 <image> markers"),
        "noanswer.jsonl": ({"image": "ok.png", "question": "q"}, "missing field 'answer'"),
    }
    for name, (row, needle) in cases.items():
        (tmp_path / name).write_text(json.dumps(row) + "\n")
        with pytest.raises(UserError, match=rf"{name}:1: .*{needle}"):
            load_task(str(tmp_path / name), {})
    from PIL import Image

    from scalelab.data import images

    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    limit = images.MAX_PIXELS
    images.MAX_PIXELS = 100
    try:
        with pytest.raises(UserError, match="over the limit"):
            images.open_image(big)
    finally:
        images.MAX_PIXELS = limit
    with pytest.raises(UserError, match="fetches nothing"):
        from_data_url("https://example.com/a.png")
    assert from_data_url(to_data_url(item.image)).size == item.image.size


def test_nlvr_layout(vlm_run, tmp_path):
    from scalelab.evals import evaluate, load_backend, load_task

    folder = tmp_path / "nlvr" / "dev"
    (folder / "images" / "0").mkdir(parents=True)
    rows = []
    for n in range(3):
        it = make_item("heldout", 100 + n)
        rows.append({"sentence": f"There is a shape number {n}.", "label": "true" if n % 2 == 0 else "false",
                     "identifier": f"{n}-0", "directory": 0})
        if n < 2:  # the third item's images are missing: skipped and counted
            for k in range(6 if n == 0 else 2):
                it.image.save(folder / "images" / "0" / f"dev-{n}-0-{k}.png")
    (folder / "dev.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task("nlvr", {"nlvr": str(folder / "dev.json")})
    assert len(task.samples) == 8 and task.info["n_items_skipped_no_image"] == 1
    assert [s.target for s in task.samples] == [0] * 6 + [1] * 2
    result = evaluate(load_backend(f"run:{vlm_run[0]}"), [task], tmp_path / "out", "vlm",
                      cache_path=tmp_path / "c.sqlite", show_progress=False)
    assert result["tasks"]["nlvr"]["n"] == 8 and result["tasks"]["nlvr"]["n_items_skipped_no_image"] == 1


def test_vlm_train_bad_settings_are_one_line(tmp_path):
    assert_clean_error(run_cli("train", "--preset", "vlm-tiny", "--set", "image_size=30", "--out",
                               str(tmp_path / "v")), "multiple of patch_size")
    assert_clean_error(run_cli("train", "--preset", "vlm-tiny", "--set", "vision_layers=0", "--out",
                               str(tmp_path / "v")), "vision_layers")
    assert not (tmp_path / "v").exists()


def test_the_towers_position_table_starts_at_the_set_scale(tmp_path):
    """SigLIP's own start (std 1/sqrt(width) = 0.125 here) left a shape's side unlearned; the run's setting wins."""
    from scalelab.train.vlm_trainer import VLMTrainConfig, build

    for std in (1.0, 0.05):
        (tmp_path / str(std)).mkdir()
        model, _ = build(VLMTrainConfig(vision_position_std=std), tmp_path / str(std))
        table = model.vision_tower.embeddings.position_embedding.weight
        assert table.shape == (64, 64) and abs(table.std().item() - std) < 0.05 * std


def test_processor_matches_training_pixels():
    item = make_item("heldout", 3)
    processor = image_processor(32)
    a = processor(images=[item.image], return_tensors="pt")["pixel_values"]
    b = processor(images=[from_data_url(to_data_url(item.image))], return_tensors="pt")["pixel_values"]
    assert torch.equal(a, b) and a.shape == (1, 3, 32, 32)


def test_pretrained_text_route_trains_the_tower_and_exports(tmp_path):
    """SmolLM2 (from the wheel) as the frozen text model: only the tower and projector move, and the
    export to Llava keeps the logits."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from scalelab.data.vlm_text import prompt_text
    from scalelab.evals.backends import hf_folder
    from scalelab.train.checkpoint import load_checkpoint
    from scalelab.train.vlm_export import export_vlm
    from scalelab.train.vlm_trainer import VLMTrainConfig, load_vlm_run, train_vlm

    folder = hf_folder("smollm2")
    run = tmp_path / "run"
    train_vlm(VLMTrainConfig(text="pretrained", text_model=str(folder), train_text=False, steps=2, batch_size=2,
                             eval_items=4, threads=2), run, show_progress=False)
    ours, _, _ = load_vlm_run(run)
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    trained = load_checkpoint(run)["model"]
    assert torch.equal(trained["text.model.layers.0.mlp.up_proj.weight"], base.model.layers[0].mlp.up_proj.weight)
    out = export_vlm(run, tmp_path / "hf")
    processor = AutoProcessor.from_pretrained(out)
    hf = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).eval()
    it = make_item("heldout", 1)
    inputs = processor(text=[prompt_text(it.question)], images=[it.image], return_tensors="pt")
    with torch.no_grad():
        diff = (hf(**inputs).logits - ours(inputs["input_ids"], inputs["pixel_values"])).abs().max().item()
    assert diff < 1e-4


def test_vlm_forecast_registers_its_prediction_before_the_target_trains(tmp_path):
    """The ladder method on image questions end to end, at a tiny scale (width 16 throughout, so the ladder's
    answer loss falls with its budget): what it reports is what the ladder, the prediction and the target wrote."""
    from scalelab.scaling.vlm_forecast import VLMForecastConfig, run_vlm_forecast

    cfg = VLMForecastConfig(target_flops=6e10, n_runs=5, n_seeds=1, eval_items=20, n_bootstrap=100,
                            recipe={"batch_size": 8, "min_steps": 10, "examples_per_param": 2.0})
    out = tmp_path / "forecast"
    f = run_vlm_forecast(cfg, out)
    prediction = json.loads((out / "prediction.json").read_text())
    target = json.loads((out / "target" / "summary.json").read_text())
    assert (out / "prediction.json").stat().st_mtime <= (out / "target" / "config.json").stat().st_mtime
    assert f["predicted_loss"] == prediction["predicted_loss"] and f["actual_loss"] == target["final_eval_loss"]
    actual = target["final_eval_loss"]
    assert f["relative_error"] == pytest.approx((prediction["predicted_loss"] - actual) / actual)
    lo, hi = prediction["interval_90"]
    assert lo < prediction["predicted_loss"] < hi and f["within_interval"] == (lo <= actual <= hi)
    rungs = [json.loads((out / "ladder" / f"L{i}-seed0" / "summary.json").read_text()) for i in range(5)]
    assert [e["final_eval_loss"] for e in f["ladder"]] == [r["final_eval_loss"] for r in rungs]
    assert f["max_ladder_compute_fraction"] == pytest.approx(max(r["flops"] for r in rungs) / target["flops"])
    assert {r["precision"] for r in [*rungs, target]} == {"fp32"}  # the recipe's, on every machine
    assert run_vlm_forecast(cfg, out, resume=True)["predicted_loss"] == f["predicted_loss"]  # finished: as it was
    # a ladder result changed after the prediction was registered: refused, not refitted
    (out / "forecast.json").unlink()
    first = out / "ladder" / "L0-seed0" / "summary.json"
    first.write_text(json.dumps({**rungs[0], "final_eval_loss": rungs[0]["final_eval_loss"] + 0.01}))
    with pytest.raises(UserError, match="other ladder results"):
        run_vlm_forecast(cfg, out, resume=True)
