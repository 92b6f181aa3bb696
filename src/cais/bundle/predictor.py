"""`cais.Predictor`: a model with its own pre- and post-processing."""

from __future__ import annotations

from typing import Any

__all__ = ["Predictor"]


class Predictor:
    """Subclass it in a .py file, set up what you need in `load`, answer in `predict`.

    cais saves the instance with joblib and copies the file that defines the subclass into
    the bundle, so the image that serves it can import it.  `load()` runs once after the
    instance is unpickled; `predict(batch)` receives a list of inputs and returns one
    prediction per input.
    """

    def load(self) -> None:
        """Prepare anything not kept in the pickle (caches, lookups)."""

    def predict(self, batch: list[Any]) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__}.predict(batch) is not written yet")
