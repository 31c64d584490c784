"""Training: config and presets, LR schedule, atomic checkpoints, the loop, and HF export."""

from scalelab.train.config import PRESETS, TrainConfig, build_config, validate_config
from scalelab.train.trainer import TrainingDiverged, evaluate, train

__all__ = ["PRESETS", "TrainConfig", "TrainingDiverged", "build_config", "evaluate", "train", "validate_config"]
