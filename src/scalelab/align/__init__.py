"""Post-training: instruction tuning (TRL SFT), GPT-4's rule-based reward models, RLAIF labelling."""

from scalelab.align.data import read_instructions, read_preferences
from scalelab.align.rbrm import Rubric, grade
from scalelab.align.rlaif import direct_rewards, label_pairs
from scalelab.align.sft import SFTSettings, sft

__all__ = ["Rubric", "SFTSettings", "direct_rewards", "grade", "label_pairs", "read_instructions", "read_preferences",
           "sft"]
