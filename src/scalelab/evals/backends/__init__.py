"""Model specs -> backends: `smollm2`, `hf:PATH`, `gguf:PATH`, `run:RUN_DIR`, `openai:MODEL@BASE_URL`."""

from __future__ import annotations

from pathlib import Path

from scalelab.errors import UserError
from scalelab.evals.backends.base import Backend
from scalelab.evals.backends.hf import HFBackend, gguf_folder, run_folder, smollm2_gguf, weights_fingerprint
from scalelab.evals.backends.openai_api import OpenAIBackend
from scalelab.evals.backends.vision import HFVisionBackend, is_vision_folder

SPEC_HELP = "smollm2, hf:PATH, gguf:PATH, run:RUN_DIR or openai:MODEL@BASE_URL"


def hf_folder(spec: str) -> Path:
    """The Hugging Face folder a local spec names (converting GGUF files and runs once)."""
    kind, _, rest = spec.partition(":")
    if spec == "smollm2":
        return gguf_folder(smollm2_gguf())
    if kind == "hf" and rest:
        return Path(rest)
    if kind == "gguf" and rest:
        return gguf_folder(rest)
    if kind == "run" and rest:
        return run_folder(rest)
    raise UserError(f"unknown model spec '{spec}'; use {SPEC_HELP}")


def check_model_spec(spec: str, local: bool = False) -> None:
    """Fail fast, loading nothing, on a spec that names no model: unknown kind, missing file or folder."""
    kind, _, rest = spec.partition(":")
    if spec == "smollm2":
        smollm2_gguf()
    elif kind == "openai" and not local:
        if not rest.partition("@")[0]:
            raise UserError(f"model spec '{spec}' names no model; use openai:MODEL@BASE_URL")
    elif kind == "hf" and rest:
        if not (Path(rest) / "config.json").exists():
            raise UserError(f"{rest} is not a Hugging Face model folder (no config.json)")
    elif kind == "gguf" and rest:
        if not Path(rest).is_file():
            raise UserError(f"GGUF file {rest} does not exist")
    elif kind == "run" and rest:
        if not (Path(rest) / "checkpoint.pt").exists():
            raise UserError(f"{rest} holds no checkpoint.pt; is it a scalelab run folder?")
    else:
        kinds = "smollm2, hf:PATH, gguf:PATH or run:RUN_DIR" if local else SPEC_HELP
        raise UserError(f"unknown model spec '{spec}'; use {kinds}")


def load_backend(spec: str, device: str = "auto", precision: str = "auto", api_key: str | None = None) -> Backend:
    """A backend for a model spec; local models score in `scoring_precision(precision)`."""
    if spec.startswith("openai:"):
        model, _, base_url = spec.removeprefix("openai:").partition("@")
        if not model:
            raise UserError(f"model spec '{spec}' names no model; use openai:MODEL@BASE_URL")
        if precision != "auto":
            raise UserError(f"--precision {precision}: the server of '{spec}' decides its precision "
                            "(scalelab serve --precision)")
        return OpenAIBackend(model, base_url or None, api_key)
    folder = hf_folder(spec)
    if not (folder / "config.json").exists():
        raise UserError(f"{folder} is not a Hugging Face model folder (no config.json)")
    kind = HFVisionBackend if is_vision_folder(folder) else HFBackend
    return kind(folder, identity=f"{spec}|{weights_fingerprint(folder)}", device=device, precision=precision)


__all__ = ["SPEC_HELP", "Backend", "HFBackend", "HFVisionBackend", "OpenAIBackend", "check_model_spec", "hf_folder",
           "is_vision_folder", "load_backend"]
