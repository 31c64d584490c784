"""Contamination: which evaluation examples occur in training corpora, and scores without them."""

from scalelab.contamination.clean import add_clean_scores, attach_clean_scores, clean_scores, examples_of
from scalelab.contamination.scan import Example, check

__all__ = ["Example", "add_clean_scores", "attach_clean_scores", "check", "clean_scores", "examples_of"]
