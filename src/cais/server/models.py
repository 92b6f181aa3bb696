"""The models a server holds: loaded bundles by name and version, and how to call them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from cais.bundle.metadata import BundleMetadata, Tensor
from cais.bundle.store import Bundle, ModelStore, _version_key

__all__ = ["Expected", "LoadedModel", "ModelSet", "NotFound"]


class NotFound(LookupError):
    """No such model or version in this server (the HTTP layer answers 404)."""


@dataclass(frozen=True)
class Expected:
    """The batch a model takes, read from its recorded signature: text (a list of strings),
    arrays (one numeric array per instance, of `shape`; -1 is any size) or a table (one
    object per instance, with `columns`)."""

    kind: Literal["text", "arrays", "table"]
    shape: tuple[int, ...] = ()
    columns: tuple[str, ...] = ()
    datatypes: tuple[str, ...] = ()  # the columns' V2 datatypes

    @classmethod
    def of(cls, inputs: list[Tensor], example: object = None) -> Expected | None:
        """None when the signature does not say (no input example was recorded, or one
        that is neither text, numbers nor a table, such as a custom predictor's objects)."""
        if len(inputs) == 1 and inputs[0].name == "input":
            tensor = inputs[0]
            if tensor.datatype == "BYTES" and tensor.shape in ([-1], [-1, 1]):
                return cls("text") if _all_text(example) else None
            if tensor.datatype != "BYTES" and len(tensor.shape) >= 2:
                return cls("arrays", shape=tuple(tensor.shape[1:]))
            return None
        if inputs:
            return cls(
                "table",
                columns=tuple(t.name for t in inputs),
                datatypes=tuple(t.datatype for t in inputs),
            )
        return None

    def describe(self) -> str:
        if self.kind == "text":
            return "text (one string per instance)"
        if self.kind == "table":
            return "objects with " + ", ".join(f"`{c}`" for c in self.columns)
        return _describe_arrays(self.shape)

    def mismatch(self, batch: object) -> str | None:
        """What in `batch` does not fit, or None when it fits."""
        if self.kind == "text":
            return None if isinstance(batch, list) else _describe_batch(batch)
        columns = getattr(batch, "columns", None)
        if self.kind == "table":
            if columns is None:
                width = getattr(batch, "shape", (0, 0))[1:]
                return None if width == (len(self.columns),) else _describe_batch(batch)
            missing = [c for c in self.columns if c not in columns]
            extra = [str(c) for c in columns if c not in self.columns]
            if missing or extra:
                return _describe_batch(batch)
            return None
        shape = getattr(batch, "shape", None)
        if columns is not None or shape is None or len(shape) != len(self.shape) + 1:
            return _describe_batch(batch)
        if batch.dtype.kind not in "biuf":  # type: ignore[attr-defined]
            return _describe_batch(batch)
        if any(want not in (-1, got) for want, got in zip(self.shape, shape[1:])):
            return _describe_batch(batch)
        return None

    def schema(self) -> dict:
        """The JSON schema of one instance."""
        if self.kind == "text":
            return {"type": "string"}
        if self.kind == "table":
            return {
                "type": "object",
                "properties": {
                    c: {"type": _json_type(t)} for c, t in zip(self.columns, self.datatypes)
                },
                "required": list(self.columns),
            }
        schema: dict = {"type": ["number", "null"]}  # null: a missing value
        for size in reversed(self.shape):
            schema = {"type": "array", "items": schema}
            if size >= 0:
                schema.update(minItems=size, maxItems=size)
        return schema


def _all_text(example: object) -> bool:
    """A list of strings (or of one-string rows), as a text model's example is recorded."""
    rows = example if isinstance(example, list) else [None]
    return all(isinstance(r[0] if isinstance(r, list) and len(r) == 1 else r, str) for r in rows)


def _json_type(datatype: str) -> str:
    if datatype in ("BYTES", "BOOL"):
        return "string" if datatype == "BYTES" else "boolean"
    return "integer" if datatype.startswith(("INT", "UINT")) else "number"


def _describe_arrays(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return "rows of numbers" if shape[0] < 0 else f"rows of {shape[0]} numbers"
    return f"arrays of numbers of shape {list(shape)}, one per instance"


def _describe_batch(batch: object) -> str:
    columns = getattr(batch, "columns", None)
    if columns is not None:
        return "objects with " + ", ".join(f"`{c}`" for c in columns)
    shape = getattr(batch, "shape", None)
    if shape is None:
        return "text"
    if batch.dtype.kind not in "biuf":  # type: ignore[attr-defined]
        return f"text of shape {list(shape[1:])}" if len(shape) > 1 else "text"
    return _describe_arrays(tuple(shape[1:])) if len(shape) > 1 else "single numbers"


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
    def expects(self) -> Expected | None:
        return Expected.of(self.metadata.inputs, self.metadata.input_example)

    def refuses(self, batch: object) -> str | None:
        """Why the model cannot take `batch`, said of the request; None when it can."""
        expected = self.expects
        found = expected.mismatch(batch) if expected is not None else None
        if found is None:
            return None
        return f"the model `{self.name}` takes {expected.describe()}, not {found}"

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
