import json

import numpy as np
import pytest
from transformers import PreTrainedTokenizerFast

from scalelab.data import CorpusSpec, iter_documents, prepare, split_documents
from scalelab.data.tokens import fingerprint
from scalelab.errors import UserError


def test_split_is_deterministic_and_disjoint(corpus_spec):
    train = [d.source for d in split_documents(corpus_spec, "train")]
    heldout = [d.source for d in split_documents(corpus_spec, "heldout")]
    assert heldout and train
    assert not set(train) & set(heldout)
    assert len(train) + len(heldout) == len(list(iter_documents(corpus_spec)))
    assert heldout == [d.source for d in split_documents(corpus_spec, "heldout")]


def test_stdlib_corpus_is_the_default():
    docs = iter_documents(CorpusSpec())
    first = next(docs)
    assert first.source.endswith(".py") and "site-packages" not in first.source


def test_fingerprint_changes_with_content(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 100)
    spec = CorpusSpec(str(tmp_path))
    before = fingerprint(iter_documents(spec))
    (tmp_path / "a.txt").write_text("hello world\n" * 99 + "hello there\n")
    assert fingerprint(iter_documents(spec))[0] != before[0]


def test_jsonl_corpus_and_bad_rows(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "a b c"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(UserError, match=r"c.jsonl:2: no string field 'text'"):
        list(iter_documents(CorpusSpec(str(path))))
    path.write_text(json.dumps({"text": "a b c"}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"c.jsonl:2: not valid JSON"):
        list(iter_documents(CorpusSpec(str(path))))


def test_single_text_file_is_chunked_so_it_has_a_heldout_part(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("".join(f"line {i} of a long book\n" for i in range(40_000)))
    docs = list(iter_documents(CorpusSpec(str(path))))
    assert len(docs) > 20
    assert "".join(d.text for d in docs) == path.read_text()


def test_hf_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": [f"doc {i}" for i in range(10)]}).save_to_disk(tmp_path / "ds")
    assert [d.text for d in iter_documents(CorpusSpec(str(tmp_path / "ds")))][:2] == ["doc 0", "doc 1"]


def test_tokenizer_loads_in_transformers_and_tokens_are_memmapped(token_data, corpus_spec):
    tok = PreTrainedTokenizerFast(tokenizer_file=str(token_data.tokenizer_path))
    text = "def compute_1(value, count=None):\n    return value + count\n"
    assert tok.decode(tok(text).input_ids) == text
    assert tok.vocab_size == token_data.vocab_size == 300
    train = token_data.tokens("train")
    assert isinstance(train, np.memmap) and train.dtype == np.uint16
    assert token_data.meta["train_tokens"] == len(train)
    assert train.max() < 300
    # cached: the same corpus and vocab give the same folder without re-encoding
    assert prepare(corpus_spec, 300).root == token_data.root


def test_vocab_too_small_is_a_user_error(corpus_spec):
    with pytest.raises(UserError, match="too small"):
        prepare(corpus_spec, 100)


def test_missing_corpus_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="corpus not found"):
        list(iter_documents(CorpusSpec(str(tmp_path / "nope"))))


def test_parquet_corpus_with_its_text_field_and_bad_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [f"document {i}" for i in range(5)], "id": list(range(5))}),
                   tmp_path / "c.parquet")
    docs = list(iter_documents(CorpusSpec(str(tmp_path / "c.parquet"), text_field="body")))
    assert [d.text for d in docs] == [f"document {i}" for i in range(5)]
    with pytest.raises(UserError, match=r"c.parquet: no column 'text' \(columns: body, id\)"):
        list(iter_documents(CorpusSpec(str(tmp_path / "c.parquet"))))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match="bad.parquet: cannot read as parquet"):
        list(iter_documents(CorpusSpec(str(tmp_path / "bad.parquet"))))


def test_corpus_glob_picks_files_and_jsonl_uses_text_field(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "a.md").write_text("kept text")
    (tmp_path / "b.txt").write_text("not matched")
    (tmp_path / "keep" / "c.jsonl").write_text(json.dumps({"content": "from jsonl"}) + "\n")
    docs = list(iter_documents(CorpusSpec(str(tmp_path), glob="keep/*", text_field="content")))
    assert sorted(d.text for d in docs) == ["from jsonl", "kept text"]
    with pytest.raises(UserError, match="no text files matching"):
        list(iter_documents(CorpusSpec(str(tmp_path), glob="nothing/*")))
