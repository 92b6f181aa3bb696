"""`cais.Predictor`: a model with its own pre- and post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Predictor"]


class Predictor:
    """Subclass it in a .py file, set up what you need in `load`, answer in `predict`.

    cais saves the instance with joblib and copies the file that defines the subclass into
    the bundle, so the image that serves it can import it.  `load()` runs once after the
    instance is unpickled; `predict(batch)` receives a list of inputs and returns one
    prediction per input.

    A predictor given to `cais models import FILE --predictor predictor.py` wraps that
    pickle: cais creates the instance, sets `model_file`, and the default `load()` unpickles
    it into `self.model`; the default `predict` calls `self.model.predict`.
    """

    model_file: Path | None = None  # the imported pickle this predictor wraps
    model: Any = None

    def load(self) -> None:
        """Prepare anything not kept in the pickle (caches, lookups)."""
        if self.model_file is not None:
            import joblib

            self.model = joblib.load(self.model_file)

    def predict(self, batch: list[Any]) -> list[Any]:
        if self.model is None:
            raise NotImplementedError(f"{type(self).__name__}.predict(batch) is not written yet")
        return self.model.predict(batch)
