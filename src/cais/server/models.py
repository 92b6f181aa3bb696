"""The models a server holds: loaded bundles by name and version, and how to call them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cais.bundle.metadata import BundleMetadata
from cais.bundle.store import Bundle, ModelStore, _version_key

__all__ = ["LoadedModel", "ModelSet", "NotFound"]


class NotFound(LookupError):
    """No such model or version in this server (the HTTP layer answers 404)."""


@dataclass
class LoadedModel:
    bundle: Bundle
    model: object
    load_seconds: float

    @property
    def metadata(self) -> BundleMetadata:
        return self.bundle.metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def classes(self) -> list:
        classes = getattr(self.model, "classes_", None)
        return [] if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]

    @cached_property
    def methods(self) -> list[str]:
        """What the loaded object can do (an imported model's bundle cannot know it)."""
        return [m for m in ("predict", "predict_proba") if callable(getattr(self.model, m, None))]

    def predict(self, batch: object, *, method: str = "predict") -> list:
        """One call of the model for the whole batch; returns plain Python values."""
        if method not in self.methods:
            raise ValueError(f"the model `{self.name}` has no `{method}`")
        result = getattr(self.model, method)(batch)
        return result.tolist() if hasattr(result, "tolist") else list(result)


@dataclass
class ModelSet:
    """Every model a server serves; the first one given is the default."""

    models: dict[str, dict[str, LoadedModel]] = field(default_factory=dict)
    default: str | None = None

    @classmethod
    def load(cls, references: list[str], *, home: Path | None = None) -> ModelSet:
        return cls.of(_bundles(references, home))

    @classmethod
    def of(cls, bundles: list[Bundle]) -> ModelSet:
        """Load each bundle (verified first) into a new set."""
        served = cls()
        for bundle in bundles:
            started = time.perf_counter()
            model = bundle.load()
            loaded = LoadedModel(bundle, model, time.perf_counter() - started)
            served.models.setdefault(loaded.name, {})[loaded.version] = loaded
            served.default = served.default or loaded.name
        return served

    def get(self, name: str | None = None, version: str | None = None) -> LoadedModel:
        name = name or self.default
        versions = self.models.get(name or "")
        if not versions:
            raise NotFound(f"no model named `{name}` is served here")
        if version is None:
            return versions[max(versions, key=_version_key)]
        if version not in versions:
            raise NotFound(f"the model `{name}` has no version `{version}` here")
        return versions[version]

    def all(self) -> list[LoadedModel]:
        return [m for versions in self.models.values() for m in versions.values()]


def _bundles(references: list[str], home: Path | None) -> list[Bundle]:
    store = ModelStore(home)
    return [Bundle.from_folder(Path(r)) if Path(r).is_dir() else store.get(r) for r in references]
