"""The decoder LM and its accounting."""

from scalelab.model.flops import ParamCount, count_params, forward_flops_per_token, train_flops_per_token
from scalelab.model.gpt import GPT, ModelConfig

__all__ = ["GPT", "ModelConfig", "ParamCount", "count_params", "forward_flops_per_token", "train_flops_per_token"]
