import torch

from scalelab.model import GPT, ModelConfig, count_params, forward_flops_per_token, train_flops_per_token
from scalelab.model.gpt import apply_rope


def test_counts_for_two_shapes_match_hand_computation():
    # d=64, 2 layers, head 16, ffn 8/3·64 = 170.7 -> 192 (multiple of 32), vocab 300, T=64
    cfg = ModelConfig(vocab_size=300, d_model=64, n_layer=2, head_dim=16, seq_len=64)
    assert cfg.d_ffn == 192
    per_layer = 4 * 64 * 64 + 3 * 64 * 192 + 2 * 64  # q,k,v,o + gate,up,down + 2 norms
    assert count_params(cfg).non_embedding == 2 * per_layer + 64
    assert count_params(cfg).total == 2 * per_layer + 64 + 2 * 300 * 64
    fwd = 2 * (2 * 4 * 64 * 64 + 2 * 3 * 64 * 192 + 2 * 2 * 64 * 64) + 2 * 64 * 300
    assert forward_flops_per_token(cfg) == fwd
    assert train_flops_per_token(cfg) == 3 * fwd

    # d=768, 12 layers, head 64, ffn 2048, vocab 50304, T=1024 (GPT-2-small-like)
    cfg = ModelConfig(vocab_size=50304, d_model=768, n_layer=12, head_dim=64, seq_len=1024)
    assert cfg.d_ffn == 2048
    assert count_params(cfg).non_embedding == 12 * (4 * 768**2 + 3 * 768 * 2048 + 2 * 768) + 768
    assert forward_flops_per_token(cfg) == 12 * (8 * 768**2 + 6 * 768 * 2048 + 4 * 1024 * 768) + 2 * 768 * 50304


def test_param_count_matches_the_module():
    cfg = ModelConfig(vocab_size=300, d_model=96, n_layer=3, head_dim=32, seq_len=32)
    model = GPT(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg).total


def test_mup_learning_rates_scale_with_width():
    groups = GPT(ModelConfig(vocab_size=300, d_model=256, base_d_model=64, head_dim=32)).param_groups(1e-2, 0.1)
    lrs = sorted(g["lr"] for g in groups)
    assert lrs[0] == 1e-2 / 4 and lrs[-1] == 1e-2
    sp = GPT(ModelConfig(vocab_size=300, d_model=256, base_d_model=64, head_dim=32, parametrization="sp"))
    assert {g["lr"] for g in sp.param_groups(1e-2, 0.1)} == {1e-2}


def _trained(cfg: ModelConfig, steps: int = 5, lr: float = 1e-2) -> tuple[GPT, torch.Tensor]:
    """A model after a few Adam steps on random tokens, and those tokens."""
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.Adam(model.param_groups(lr, 0.0), lr=lr)
    data = torch.randint(0, 256, (8, 33), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        loss = model.loss(data[:, :-1], data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, data


def _activation_scale(parametrization: str, width: int) -> dict[str, float]:
    """Coordinate check: mean |activation| of each block's output and the logits after a few Adam steps."""
    model, data = _trained(ModelConfig(vocab_size=256, d_model=width, n_layer=2, head_dim=16, seq_len=32,
                                       base_d_model=64, parametrization=parametrization))
    scales: dict[str, float] = {}
    hooks = [block.register_forward_hook(lambda m, i, o, n=n: scales.__setitem__(n, o.abs().mean().item()))
             for n, block in enumerate(model.layers)]
    with torch.no_grad():
        scales["logits"] = model(data[:, :-1]).abs().mean().item()
    for h in hooks:
        h.remove()
    return scales


def test_coordinate_check_flat_under_mup_and_growing_under_sp():
    growth = {}
    for param in ("mup", "sp"):
        small, large = _activation_scale(param, 64), _activation_scale(param, 512)
        growth[param] = large["logits"] / small["logits"]
        if param == "mup":
            for key in small:
                assert 0.5 < large[key] / small[key] < 2.0, (key, small[key], large[key])
    assert growth["sp"] > 3.0, growth
    assert growth["sp"] > 2 * growth["mup"], growth


def _attention_logit_scale(width: int, base_head_dim: int | None) -> float:
    """Mean |pre-softmax attention logit| of the last layer of a one-head model (head_dim = width)."""
    model, data = _trained(ModelConfig(vocab_size=256, d_model=width, n_layer=2, head_dim=width, seq_len=32,
                                       base_d_model=64, base_head_dim=base_head_dim))
    attn, seen = model.layers[-1].self_attn, {}
    hooks = [getattr(attn, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
             for name in ("q_proj", "k_proj")]
    with torch.no_grad():
        model(data[:, :-1])
    for h in hooks:
        h.remove()
    q, k = (apply_rope(seen[name].unsqueeze(1), model.rope_cos, model.rope_sin) for name in ("q_proj", "k_proj"))
    return (q @ k.transpose(-1, -2) * attn.scale).abs().mean().item()


def test_coordinate_check_of_attention_logits_with_one_widening_head():
    # μP's 1/d_head keeps them from growing with width; Llama's 1/sqrt(d_head) lets them grow.
    mup = _attention_logit_scale(512, base_head_dim=64) / _attention_logit_scale(64, base_head_dim=64)
    plain = _attention_logit_scale(512, base_head_dim=None) / _attention_logit_scale(64, base_head_dim=None)
    assert mup < 1.0 < 1.5 < plain, (mup, plain)


def test_attention_scale_is_mup_one_over_head_dim_anchored_at_the_base():
    base = ModelConfig(vocab_size=8, d_model=64, head_dim=64, base_head_dim=64)
    wide = ModelConfig(vocab_size=8, d_model=512, head_dim=512, base_head_dim=64)
    assert base.attn_scale == 64**-0.5 and wide.attn_scale == 64**0.5 / 512
    assert ModelConfig(vocab_size=8, d_model=512, head_dim=512, base_head_dim=64, parametrization="sp").attn_scale \
        == 512**-0.5
