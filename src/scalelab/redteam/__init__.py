"""Adversarial testing: prompt sets as published, attacks as composable parts, judges measured against
human labels, attack success and over-refusal from one run, and attacks on the judge itself."""

from scalelab.redteam.attacks import ATTACKS, Chain, Conversation, parse_attacks
from scalelab.redteam.behaviours import Behaviour, load_behaviours
from scalelab.redteam.calibration import calibrate, corrected_rate, read_labels
from scalelab.redteam.judge_attack import WRAPPERS, attack_judge
from scalelab.redteam.judges import JUDGE_HELP, Verdict, make_judge
from scalelab.redteam.run import RedteamSettings, run_redteam

__all__ = ["ATTACKS", "JUDGE_HELP", "WRAPPERS", "Behaviour", "Chain", "Conversation", "RedteamSettings", "Verdict",
           "attack_judge", "calibrate", "corrected_rate", "load_behaviours", "make_judge", "parse_attacks",
           "read_labels", "run_redteam"]
