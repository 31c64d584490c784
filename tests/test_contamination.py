import gzip
import json
import random
import zlib

import pytest

from scalelab.contamination import Example, check
from scalelab.contamination import sources as sources_module
from scalelab.contamination.normalize import normalize
from scalelab.contamination.scan import substrings
from tests.conftest import assert_clean_error, run_cli

WORDS = ("river stone quantum ledger violet anchor harvest beacon orbit cipher meadow lantern "
         "summit falcon thistle copper").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 999)) for _ in range(n))


def _examples(rng: random.Random, n: int = 60) -> list[Example]:
    out = [Example("qa", str(i), _sentence(rng, rng.randint(8, 20)) + "?") for i in range(n)]
    out.append(Example("qa", "ru", "Какой город является столицей Норвегии и почему, объясните подробно?"))
    out.append(Example("qa", "zh", "请解释为什么天空在白天是蓝色的，并说明光的散射原理以及它与波长的关系。"))
    out.append(Example("qa", "short", "What is 7 x 6?"))
    return out


def _disguise(text: str, rng: random.Random) -> str:
    """The same example as a scraper might have kept it: case, spacing, punctuation, line breaks."""
    words = text.split(" ")
    out = []
    for w in words:
        w = w.upper() if rng.random() < 0.3 else w
        out.append(w + rng.choice([" ", "  ", "\n", " - ", ", ", "\t", "...\n"]))
    return "".join(out)


def _corpus(rng: random.Random, planted: list[Example]) -> list[str]:
    """Documents: filler text with the planted examples inside some of them."""
    parts = [_sentence(rng, 400) for _ in range(30)]
    for ex in planted:
        i = rng.randrange(len(parts))
        parts[i] = parts[i] + "\n" + _disguise(ex.text, rng) + "\n" + _sentence(rng, 20)
    return parts


def test_normalisation_keeps_letters_and_digits_of_every_script():
    assert normalize("Hello, World! 42_x") == b"helloworld42x"
    assert normalize("ДОБРЫЙ — день") == "добрыйдень".encode()
    assert normalize("漢字。かな、") == "漢字かな".encode()
    assert normalize("’Quote’ – “x”") == b"quotex"
    assert normalize("é é, Ǆ ß") == "ééǆß".encode()  # runs of other scripts joined by deleted ASCII


def test_file_slices_normalise_from_their_bytes(tmp_path):
    from scalelab.contamination.normalize import normalize_utf8
    from scalelab.contamination.sources import FileSlice

    text = "Ünïcödé façade — naïve café; 東京は日本の首都です。 " * 40
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    raw = path.read_bytes()
    cut = next(i for i in range(100, len(raw)) if 0x80 <= raw[i] < 0xC0)  # inside a character
    for start, end in ((0, cut), (cut, len(raw))):
        block = FileSlice(str(path), start, end).load()
        assert block.utf8 is not None and block.utf8.decode() == block.text
        assert normalize_utf8(block.utf8) == normalize(block.text)


def test_substrings_are_seeded_and_50_characters():
    text = "The quick brown fox jumps over the lazy dog " * 3
    a = substrings(text, seed=1, key="t/1")
    assert len(a) == 3 and all(len(s) == 50 for s in a)
    assert a == substrings(text, seed=1, key="t/1") and a != substrings(text, seed=2, key="t/1")
    assert substrings("Short one?", 0, "k") == [b"shortone"]


def test_index_finds_patterns_of_every_length_at_every_position():
    import random

    from scalelab.contamination.matcher import SubstringIndex

    rng = random.Random(0)
    text = bytes(rng.choice(b"abcdefghij") for _ in range(20_000))
    patterns, where = [], []
    for length in (5, 11, 12, 16, 23, 24, 31, 49, 50, 50, 64):  # Aho-Corasick, then each sampled tier
        for _ in range(6):
            begin = rng.randrange(len(text) - length)
            patterns.append(text[begin:begin + length])
            where.append(text.find(patterns[-1]))
    patterns.append(b"k" * 40)  # absent: no 'k' in the text
    found = SubstringIndex(patterns).find(text)
    assert found == dict(enumerate(where))


@pytest.mark.parametrize("layout", ["text", "gz", "zst", "jsonl", "folder", "cut"])
def test_planted_examples_are_all_found_and_a_clean_corpus_gives_none(tmp_path, layout, monkeypatch):
    rng = random.Random(zlib.crc32(layout.encode()))  # stable across processes, so a failure replays
    examples = _examples(rng)
    planted = examples[::3] + examples[-3:]
    text = _corpus(rng, planted)
    clean_text = _corpus(random.Random(7), [])
    if layout == "cut":  # blocks far smaller than the corpus: examples fall across block cuts
        monkeypatch.setattr(sources_module, "BLOCK_CHARS", 997)
        monkeypatch.setattr(sources_module, "OVERLAP_CHARS", 400)
    paths = []
    for name, docs in (("dirty", text), ("clean", clean_text)):
        body = "\n".join(docs)
        if layout in ("text", "cut"):
            path = tmp_path / f"{name}.txt"
            path.write_text(body)
        elif layout == "gz":
            path = tmp_path / f"{name}.txt.gz"
            with gzip.open(path, "wt") as f:
                f.write(body)
        elif layout == "zst":
            import zstandard

            path = tmp_path / f"{name}.txt.zst"
            path.write_bytes(zstandard.ZstdCompressor().compress(body.encode()))
        elif layout == "jsonl":
            path = tmp_path / f"{name}.jsonl"
            path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        else:
            path = tmp_path / name
            (path / "sub").mkdir(parents=True)
            (path / "a.txt").write_text("\n".join(docs[:15]))
            (path / "sub" / "b.md").write_text("\n".join(docs[15:]))
        paths.append(str(path))
    dirty = check(examples, [paths[0]], show_progress=False, jobs=1)
    found = {c["id"] for c in dirty["tasks"]["qa"]["contaminated"]}
    assert found == {e.id for e in planted}  # 100% recall and nothing else
    for c in dirty["tasks"]["qa"]["contaminated"]:
        assert c["source"] and c["offset"] is not None and normalize(c["snippet"])
    clean = check(examples, [paths[1]], show_progress=False, jobs=1)
    assert clean["tasks"]["qa"]["n_contaminated"] == 0 and clean["tasks"]["qa"]["n"] == len(examples)


def test_offsets_point_at_the_example_in_the_source(tmp_path):
    ex = Example("qa", "0", "Which planet in the solar system has the longest day of all, and why is that so?")
    body = "x" * 5000 + "\n" + ex.text + "\n" + "y" * 100
    (tmp_path / "c.txt").write_text(body)
    hit = check([ex], [str(tmp_path / "c.txt")], show_progress=False, jobs=2)["tasks"]["qa"]["contaminated"][0]
    assert normalize(body[hit["offset"]:hit["offset"] + 200]).find(normalize(hit["snippet"])[:20]) == 0
    assert 5001 <= hit["offset"] < 5001 + len(ex.text)


def test_ngram_overlap_and_threshold(tmp_path):
    rng = random.Random(3)
    examples = _examples(rng)[:20]
    half = " ".join(examples[0].text.split()[:10])  # 10 words of 8+: a partial copy
    body = _sentence(rng, 300) + "\n" + examples[1].text.upper().replace(" ", " , ") + "\n" + half
    (tmp_path / "c.txt").write_text(body)
    out = check(examples, [str(tmp_path / "c.txt")], method="ngram", show_progress=False)
    ids = {c["id"]: c["overlap"] for c in out["tasks"]["qa"]["contaminated"]}
    assert ids["1"] == 1.0 and out["method"] == "ngram"
    strict = check(examples, [str(tmp_path / "c.txt")], method="ngram", threshold=1.0, show_progress=False)
    assert {c["id"] for c in strict["tasks"]["qa"]["contaminated"]} == {"1"}


def _mmlu_task(tmp_path):
    from tests.conftest import write_mmlu

    return write_mmlu(tmp_path / "mmlu", header=False)


def test_cli_writes_contamination_json_and_clean_scores(tmp_path):
    mmlu = _mmlu_task(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("intro text\nIN BASIC_MATH QUESTION 3, what is 3 + 3?\nmore text\n" * 3)
    results = tmp_path / "res"
    results.mkdir()
    rows = [{"id": f"basic_math/{i}", "scores": {"acc": float(i % 2)}} for i in range(6)]
    rows += [{"id": f"python_code/{i}", "scores": {"acc": 1.0}} for i in range(6)]
    (results / "samples_mmlu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (results / "results.json").write_text(json.dumps({"model": "m", "tasks": {"mmlu": {"n": 12, "metrics": {}}}}))
    proc = run_cli("contamination", "--corpus", str(corpus), "--data", f"mmlu={mmlu}", "--out", str(tmp_path / "c"),
                   "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "c" / "contamination.json").read_text())
    assert {"method", "bytes_scanned", "seconds", "tasks"} <= set(report)
    entry = report["tasks"]["mmlu"]
    assert entry["n"] == 12 and entry["n_contaminated"] == 1 and entry["fraction"] == pytest.approx(1 / 12)
    assert entry["contaminated"][0]["id"] == "basic_math/3"
    assert set(entry["contaminated"][0]) >= {"id", "snippet", "source", "offset"}
    res = json.loads((results / "results.json").read_text())["tasks"]["mmlu"]["contamination"]
    acc = res["metrics"]["acc"]
    assert acc["contaminated"]["value"] == 1.0 and acc["clean"]["value"] == pytest.approx(8 / 11)
    assert acc["all"]["value"] == pytest.approx(9 / 12)
    assert acc["contaminated_minus_clean"]["value"] == pytest.approx(1 - 8 / 11)


def test_bad_input(tmp_path):
    mmlu = _mmlu_task(tmp_path)
    out = str(tmp_path / "o")
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    assert_clean_error(run_cli("contamination", "--corpus", str(broken), "--data", f"mmlu={mmlu}", "--out", out),
                       "broken.txt.gz")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_clean_error(run_cli("contamination", "--corpus", str(empty), "--data", f"mmlu={mmlu}", "--out", out),
                       "empty")
    assert_clean_error(run_cli("contamination", "--corpus", str(empty), "--data", f"nosuch={mmlu}", "--out", out),
                       "unknown task")
    assert_clean_error(run_cli("contamination", "--corpus", str(tmp_path / "missing"), "--data", f"mmlu={mmlu}",
                               "--out", out), "corpus not found")


def test_eval_with_contamination_corpus_reports_clean_scores(tiny_run, tmp_path):
    mmlu = _mmlu_task(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Python-Code: which function returns its input, case 2?\n" + "filler words " * 500)
    out = tmp_path / "res"
    proc = run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "mmlu", "--data", f"mmlu={mmlu}", "--shots", "1",
                   "--out", str(out), "--contamination-corpus", str(corpus))
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    block = res["tasks"]["mmlu"]["contamination"]
    assert block["n_contaminated"] == 1 and set(block["metrics"]["acc"]) == {
        "all", "clean", "contaminated", "contaminated_minus_clean"}
    report = json.loads((out / "contamination.json").read_text())
    assert [c["id"] for c in report["tasks"]["mmlu"]["contaminated"]] == ["python_code/2"]
