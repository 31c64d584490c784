"""The one interface every model backend implements."""

from __future__ import annotations

from typing import Protocol

from scalelab.evals.requests import Generation, Loglikelihood


class Backend(Protocol):
    """A model that scores continuations and generates text.

    `identity` names the model and its weights; the response cache keys on it.
    """

    identity: str

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[float]: ...

    def generate(self, requests: list[Generation]) -> list[list[str]]: ...
