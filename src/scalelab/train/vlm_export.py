"""Export a VLM run as a Hugging Face `LlavaForConditionalGeneration` folder with its processor.

The vision tower is already transformers' `SiglipVisionModel` and the projector is Llava's, so the
export copies weights under Llava's names; the decoder goes in as `LlamaForCausalLM`'s weights (our
GPT's, with the μP attention scale folded into q as for text runs, or the pretrained text model's
own). The processor is `LlavaProcessor`: the SigLIP image processor the run trained with, the run's
tokenizer, and `<image>` expanded to one token per patch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scalelab.data.images import image_processor
from scalelab.data.tokens import EOS
from scalelab.data.vlm_text import IMAGE_TOKEN
from scalelab.model.vlm import VLM
from scalelab.train.export import hf_config, hf_state_dict, staged_folder
from scalelab.train.vlm_trainer import load_vlm_run


def llava_config(model: VLM, eos_id: int):
    from transformers import LlamaConfig, LlavaConfig

    if model.ours:
        text = hf_config(model.cfg.text, eos_id)
        text = LlamaConfig(**{k: v for k, v in text.items() if k not in ("architectures", "model_type",
                                                                          "torch_dtype")})
    else:
        text = model.text.config
    return LlavaConfig(vision_config=model.cfg.vision.siglip(), text_config=text,
                       image_token_index=model.cfg.image_token_id, image_seq_length=model.cfg.vision.n_patches,
                       projector_hidden_act="gelu", vision_feature_select_strategy="full", vision_feature_layer=-1,
                       multimodal_projector_bias=True, tie_word_embeddings=False)


def llava_state_dict(model: VLM) -> dict[str, torch.Tensor]:
    """Our weights under LlavaForConditionalGeneration's names."""
    state = {f"model.vision_tower.{k}": v for k, v in model.vision_tower.state_dict().items()}
    state |= {f"model.multi_modal_projector.{k}": v for k, v in model.projector.state_dict().items()}
    text = hf_state_dict(model.text) if model.ours else {k.removeprefix("model."): v for k, v in
                                                        model.text.state_dict().items()}
    state |= {(k if k == "lm_head.weight" else f"model.language_model.{k}"): v for k, v in text.items()}
    return state


def export_vlm(run_dir: str | Path, out_dir: str | Path) -> Path:
    from transformers import LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast

    model, tokenizer, cfg = load_vlm_run(run_dir)
    with staged_folder(out_dir) as tmp:
        if isinstance(tokenizer, PreTrainedTokenizerFast) and model.ours:
            tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token=EOS,
                                                bos_token=EOS, pad_token=EOS, extra_special_tokens={
                                                    "image_token": IMAGE_TOKEN})
        eos_id = tokenizer.eos_token_id
        hf = LlavaForConditionalGeneration(llava_config(model, eos_id))
        missing, unexpected = hf.load_state_dict(llava_state_dict(model), strict=False)
        if missing or unexpected:
            raise RuntimeError(f"export names do not match Llava's: missing {missing[:3]}, unexpected {unexpected[:3]}")
        hf.generation_config.eos_token_id = eos_id
        hf.generation_config.pad_token_id = eos_id
        hf.save_pretrained(tmp)
        processor = LlavaProcessor(image_processor=image_processor(cfg.image_size), tokenizer=tokenizer,
                                   patch_size=cfg.patch_size, vision_feature_select_strategy="full",
                                   num_additional_image_tokens=0, image_token=IMAGE_TOKEN)
        processor.save_pretrained(tmp)
    return Path(out_dir)
