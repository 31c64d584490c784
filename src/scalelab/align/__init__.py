"""Post-training: instruction tuning, reward models, GPT-4's rule-based reward models, RLAIF, RL through TRL."""

from scalelab.align.data import read_instructions, read_preferences
from scalelab.align.rbrm import Rubric, grade
from scalelab.align.reward_model import RewardModel, RewardSettings, pairwise_accuracy, train_reward_model
from scalelab.align.rlaif import direct_rewards, label_pairs
from scalelab.align.sft import SFTSettings, sft

__all__ = ["RewardModel", "RewardSettings", "Rubric", "SFTSettings", "direct_rewards", "grade", "label_pairs",
           "pairwise_accuracy", "read_instructions", "read_preferences", "sft", "train_reward_model"]
