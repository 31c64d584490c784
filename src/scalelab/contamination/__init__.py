"""Contamination: which evaluation examples occur in training corpora, and scores without them."""

from scalelab.contamination.clean import add_clean_scores, attach_clean_scores, clean_scores, examples_of
from scalelab.contamination.scan import Example, check
from scalelab.contamination.sources import check_corpora

__all__ = ["Example", "add_clean_scores", "attach_clean_scores", "check", "check_corpora", "clean_scores",
           "examples_of"]
