"""A vision-language model in LLaVA's layout: image patches through a vision transformer, a two-layer
projector into the decoder's embedding space, image tokens placed where the prompt's `<image>`
marker stands (the marker is expanded to one token per patch).

The vision tower is transformers' own `SiglipVisionModel`, built from a small config: our encoder
then *is* the standard one, so export to `LlavaForConditionalGeneration` is a copy of weights and
gives the same logits (features are the last encoder layer's hidden states, every patch kept:
Llava's `vision_feature_layer=-1`, `vision_feature_select_strategy="full"`). The projector is
Llava's (linear, GELU, linear). The decoder is our μP GPT, or any Hugging Face causal LM (the
pretrained-text route, e.g. SmolLM2), frozen or tuned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalelab.model.gpt import GPT, ModelConfig


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 32
    patch_size: int = 4
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def siglip(self):
        from transformers import SiglipVisionConfig

        return SiglipVisionConfig(**asdict(self), vision_use_head=False, hidden_act="gelu_pytorch_tanh",
                                  layer_norm_eps=1e-6)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VLMConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: ModelConfig | None = None  # our decoder; None: a Hugging Face text model is given
    image_token_id: int = 0


class Projector(nn.Module):
    """Llava's multi-modal projector: vision width -> text width, GELU, text width -> text width."""

    def __init__(self, vision_width: int, text_width: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(vision_width, text_width)
        self.linear_2 = nn.Linear(text_width, text_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class VLM(nn.Module):
    """Vision tower + projector + decoder. `forward(ids, pixel_values)` gives next-token logits; every
    `image_token_id` in `ids` takes, in order, one projected patch of the images (one image's patches
    per marker)."""

    def __init__(self, cfg: VLMConfig, text_model: nn.Module | None = None) -> None:
        super().__init__()
        from transformers import SiglipVisionModel

        self.cfg = cfg
        self.vision_tower = SiglipVisionModel(cfg.vision.siglip())
        if text_model is None:
            if cfg.text is None:
                raise ValueError("give the decoder's ModelConfig or a text model")
            text_model = GPT(cfg.text)
        self.text = text_model
        width = cfg.text.d_model if cfg.text is not None else text_model.config.hidden_size
        self.projector = Projector(cfg.vision.hidden_size, width)

    @property
    def ours(self) -> bool:
        """Whether the decoder is our GPT (else a Hugging Face causal LM)."""
        return isinstance(self.text, GPT)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text.embed_tokens(ids) if self.ours else self.text.get_input_embeddings()(ids)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(images, patches, text width): the last encoder layer's patch states, projected."""
        out = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        return self.projector(out.hidden_states[-1])

    def embeddings(self, ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        x = self.embed_tokens(ids)
        slots = ids == self.cfg.image_token_id
        if pixel_values is None or not len(pixel_values):
            if slots.any():
                raise ValueError("the input holds image tokens but no image was given")
            return x
        feats = self.image_features(pixel_values).to(x.dtype)
        if int(slots.sum()) != feats.shape[0] * feats.shape[1]:
            raise ValueError(f"{int(slots.sum())} image tokens for {feats.shape[0]} images of "
                             f"{feats.shape[1]} patches")
        return x.masked_scatter(slots.unsqueeze(-1), feats.reshape(-1, feats.shape[-1]))

    def forward(self, ids: torch.Tensor, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings(ids, pixel_values)
        if self.ours:
            return self.text(ids, embeds=x)
        return self.text(inputs_embeds=x).logits

    def param_groups(self, lr: float, weight_decay: float, train_text: bool = True) -> list[dict]:
        """AdamW groups: the decoder's μP groups (when it is ours and trains), the vision tower and
        projector at the base LR (their width does not change across a ladder's text widths)."""
        groups: list[dict] = []
        if train_text and self.ours:
            groups += self.text.param_groups(lr, weight_decay)
        elif train_text:
            groups.append({"params": list(self.text.parameters()), "lr": lr, "lr_scale": 1.0,
                           "weight_decay": weight_decay})
        rest = list(self.vision_tower.parameters()) + list(self.projector.parameters())
        groups += [{"params": [p for p in rest if p.ndim >= 2], "lr": lr, "lr_scale": 1.0,
                    "weight_decay": weight_decay},
                   {"params": [p for p in rest if p.ndim < 2], "lr": lr, "lr_scale": 1.0, "weight_decay": 0.0}]
        return groups
