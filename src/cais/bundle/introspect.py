"""Facts about a model object: the packages its pickle needs and its input/output signature."""

from __future__ import annotations

import importlib.metadata
import pickle
from collections.abc import Iterable

from cais.bundle.metadata import Tensor

__all__ = [
    "module_paths_of_object",
    "modules_of_object",
    "packages_of_modules",
    "signature_of",
    "top_levels",
]

# Standard-library modules are never packages to pin.
_STDLIB = frozenset(getattr(__import__("sys"), "stdlib_module_names", ())) | {
    "__main__",
    "builtins",
}


class _Discard:
    def write(self, data: bytes) -> int:
        return memoryview(data).nbytes  # protocol 5 hands over PickleBuffers too


class _ModuleRecorder(pickle.Pickler):
    """Pickles into nothing, noting the module of every object, class and function met."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: object) -> object:
        self.modules.add(getattr(type(obj), "__module__", "") or "")
        if isinstance(obj, type) or callable(obj):
            self.modules.add(getattr(obj, "__module__", "") or "")
        return NotImplemented


def module_paths_of_object(obj: object) -> set[str]:
    """Dotted names of the modules whose code unpickling `obj` will import (the standard
    library left out): what a serving image byte-compiles ahead of time."""
    recorder = _ModuleRecorder()
    recorder.dump(obj)
    outside = _STDLIB - {"__main__"}
    return {m for m in recorder.modules if m and m.split(".", 1)[0] not in outside}


def modules_of_object(obj: object) -> set[str]:
    """Top-level modules whose code unpickling `obj` will import."""
    return top_levels(module_paths_of_object(obj))


def top_levels(paths: Iterable[str]) -> set[str]:
    return {path.split(".", 1)[0] for path in paths}


def packages_of_modules(modules: Iterable[str]) -> dict[str, str]:
    """The installed distributions (name → exact version) that provide these top-level
    modules, with everything they require in turn: the model's whole stack, pinned."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    provided = importlib.metadata.packages_distributions()
    pending = [d for module in modules for d in provided.get(module, [])]
    found: dict[str, str] = {}
    seen: set[str] = set()
    while pending:
        distribution = pending.pop()
        key = canonicalize_name(distribution)
        if key in seen:
            continue
        seen.add(key)
        try:
            meta = importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[meta.metadata["Name"]] = meta.version
        for line in meta.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


_NUMPY_KINDS = {"b": "BOOL", "U": "BYTES", "S": "BYTES", "O": "BYTES"}


def _datatype_of_dtype(dtype) -> str:
    if dtype.kind in _NUMPY_KINDS:
        return _NUMPY_KINDS[dtype.kind]
    prefix = {"i": "INT", "u": "UINT", "f": "FP"}.get(dtype.kind)
    if prefix is None:
        return "BYTES"
    return f"{prefix}{dtype.itemsize * 8}"


def signature_of(example: object, predictions: object | None) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs from an input example, outputs from the model's predictions of it."""
    import numpy as np

    inputs: list[Tensor] = []
    columns = getattr(example, "columns", None)
    if columns is not None and hasattr(example, "dtypes"):  # a pandas DataFrame
        for column in columns:
            dtype = example[column].dtype
            if not isinstance(dtype, np.dtype):  # pandas extension dtypes (strings, nullable ints)
                dtype = getattr(dtype, "numpy_dtype", np.dtype("O"))
            inputs.append(Tensor(name=str(column), datatype=_datatype_of_dtype(dtype), shape=[-1]))
    else:
        array = np.asarray(example)
        shape = [-1, *array.shape[1:]] if array.ndim else [-1]
        inputs.append(Tensor(name="input", datatype=_datatype_of_dtype(array.dtype), shape=shape))
    outputs: list[Tensor] = []
    if predictions is not None:
        array = np.asarray(predictions)
        shape = [-1, *array.shape[1:]] if array.ndim else [-1]
        outputs.append(
            Tensor(name="predict", datatype=_datatype_of_dtype(array.dtype), shape=shape)
        )
    return inputs, outputs
