"""cais: from a notebook to a published, running, monitored container."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `cais` starts fast

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__", "load_model", "save_model"]

if TYPE_CHECKING:
    from cais.bundle.predictor import Predictor
    from cais.models import load_model, save_model


def __getattr__(name: str) -> object:
    # Imported on first use, so that the command line starts without the model libraries.
    if name == "Predictor":
        from cais.bundle.predictor import Predictor

        return Predictor
    if name in ("save_model", "load_model"):
        from cais import models

        return getattr(models, name)
    raise AttributeError(f"module 'cais' has no attribute {name!r}")
