"""Post-training: instruction tuning (TRL SFT) and GPT-4's rule-based reward models."""

from scalelab.align.data import read_instructions, read_preferences
from scalelab.align.rbrm import Rubric, grade
from scalelab.align.sft import SFTSettings, sft

__all__ = ["Rubric", "SFTSettings", "grade", "read_instructions", "read_preferences", "sft"]
