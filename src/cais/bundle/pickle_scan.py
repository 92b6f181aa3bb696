"""What a pickle or joblib file needs, read without importing the libraries it names.

A model pickled years ago names its classes by the module paths of the scikit-learn that wrote
it (`sklearn.linear_model.logistic` became `sklearn.linear_model._logistic` in 0.22), so the
installed scikit-learn cannot be trusted to load it, and loading runs whatever code it names.
This scan unpickles *symbolically*: every global the file names becomes an inert stub that
keeps its arguments and state, except a short allow-list needed to rebuild numpy arrays and
joblib's array bytes, which sit between the pickle opcodes.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import copyreg
import importlib
import inspect
import io
import os
import pickle
import sys
import warnings
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from cais.bundle.allowlist import BUILTINS
from cais.errors import BundleError

try:
    import numpy as np
    from joblib.compressor import _COMPRESSORS
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    from joblib.numpy_pickle_compat import read_zfile
except ImportError:  # plain pickles can still be scanned; numpy is stubbed like the rest
    np = NumpyArrayWrapper = None
    NumpyUnpickler = pickle._Unpickler

__all__ = ["PickleFacts", "scan_pickle"]

_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "copyreg", "_codecs"}
# joblib's magic numbers (joblib.compressor); "ZF" is the zfile format of joblib before 0.10.
_MAGIC = {b"ZF": "zfile", b"\x78": "zlib", b"\x1f\x8b": "gzip", b"BZ": "bz2", b"\x5d\x00": "lzma"}
_MAGIC.update({b"\xfd7zXZ": "xz", b"\x04\x22\x4d\x18": "lz4"})
_WRAPPERS = ("NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper")  # joblib's, all versions


@dataclass(frozen=True)
class PickleFacts:
    """What a model file needs, as far as its pickle stream tells."""

    format: str  # "pickle", "joblib", "joblib (zlib)", "joblib (gzip)", ...
    modules: frozenset[str]  # top-level modules named by the file, standard library excluded
    classes: frozenset[str]  # "module.QualName" of every global the file names
    globals: frozenset[tuple[str, str]]  # the same, as (module, name): names may hold dots
    top_class: str  # class of the top-level object, "" if the file does not name it
    sklearn_version: str | None  # `_sklearn_version` in the estimators' state
    pickle_protocol: int  # 0 for protocols 0 and 1, which do not record it


class _Stub:
    """Stands for a class or function the file names: takes any arguments, keeps what it gets."""

    def __new__(cls, *args: object, **kwargs: object) -> _Stub:
        self = object.__new__(cls)
        self._stub_args, self._stub_state, self._stub_items = (args, kwargs), None, []
        return self  # object.__init__ takes any arguments once __new__ is overridden

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        return type(self)(*args, **kwargs)

    def __setstate__(self, state: object) -> None:
        self._stub_state = state

    def __setitem__(self, key: object, value: object) -> None:
        self._stub_items.append((key, value))

    def append(self, item: object) -> None:
        self._stub_items.append(item)

    def extend(self, items: object) -> None:
        self._stub_items.extend(items)

    add = append


def _is_stub(cls: object) -> bool:
    return isinstance(cls, type) and issubclass(cls, _Stub)


def _reconstructor(cls: object, base: object, state: object) -> object:
    """copyreg's, except for stubs (protocols 0 and 1 rebuild every object with it)."""
    return cls(base, state) if _is_stub(cls) else copyreg._reconstructor(cls, base, state)


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """How protocol 2 writes bytes; other codecs could import modules."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"the codec {encoding!r} is not one pickle uses")
    return codecs.encode(text, encoding)


def _allowed() -> dict[tuple[str, str], object]:
    """What is safe to run and needed to rebuild data: numpy arrays, joblib's wrappers."""
    allowed: dict[tuple[str, str], object] = {
        ("builtins", name): getattr(builtins, name) for name in BUILTINS.split()
    }
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("collections", "defaultdict")] = defaultdict
    allowed[("_codecs", "encode")] = _encode
    allowed[("copyreg", "_reconstructor")] = _reconstructor
    if np is None:
        return allowed
    core = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
    multiarray = importlib.import_module(f"{core}.multiarray")
    numeric = importlib.import_module(f"{core}.numeric")

    def array(cls: object, *args: object) -> object:
        return cls(*args) if _is_stub(cls) else multiarray._reconstruct(cls, *args)

    for old in ("numpy.core", "numpy._core"):  # numpy 1 wrote the first, numpy 2 the second
        allowed[(f"{old}.multiarray", "_reconstruct")] = array
        allowed[(f"{old}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{old}.numeric", "_frombuffer")] = numeric._frombuffer
    for name in ("dtype", "ndarray", "matrix"):  # not memmap: calling it opens files
        allowed[("numpy", name)] = getattr(np, name)
    allowed[("numpy.matrixlib.defmatrix", "matrix")] = np.matrix
    for module in ("joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle"):
        allowed[(module, "NumpyArrayWrapper")] = NumpyArrayWrapper
    return allowed


_ALLOWED = _allowed()
# joblib 1.5 added the byte-order argument to NumpyArrayWrapper.read.
_READ_ARGS = ()
if (
    np is not None
    and "ensure_native_byte_order" in inspect.signature(NumpyArrayWrapper.read).parameters
):
    _READ_ARGS = (False,)


class _SymbolicUnpickler(NumpyUnpickler):
    """joblib's unpickler (array bytes between opcodes) with every global replaced by a stub."""

    dispatch = dict(NumpyUnpickler.dispatch)

    def __init__(self, file: io.IOBase, path: Path) -> None:
        pickle._Unpickler.__init__(self, file, encoding="latin1")  # latin1: Python 2 arrays
        self.file_handle, self.filename, self.path, self.mmap_mode = file, str(path), path, None
        self.compat_mode = self.ensure_native_byte_order = self.wrapped = False
        self.np, self.modules, self.classes, self.globals = np, set(), set(), set()
        self.stubs: dict[str, type] = {}
        self.names: dict[object, str] = {}  # what the file calls each class it named

    def find_class(self, module: str, name: str) -> object:
        if self.proto < 3:  # Python 2 names, mapped as pickle itself does
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if not all(part.isidentifier() for part in full.split(".")):
            raise pickle.UnpicklingError(f"{full!r} is not the name of a global")
        self.modules.add(module)
        self.classes.add(full)
        self.globals.add((module, name))
        if "joblib" in module and name in _WRAPPERS:
            self.wrapped = True
            if np is None:
                raise _needs_joblib(self.path, "holds numpy arrays the joblib way")
        found = _ALLOWED.get((module, name)) or self.stubs.get(full)
        if found is None:
            namespace = {"__module__": module, "__qualname__": name}
            found = self.stubs[full] = type(name.rpartition(".")[2], (_Stub,), namespace)
        self.names[found] = full
        return found

    def load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(target, type):  # would set attributes of a class, for the whole process
            raise pickle.UnpicklingError("the file sets the state of a class")
        pickle._Unpickler.load_build(self)
        if np is not None and isinstance(target, np.dtype) and _lies(target):
            raise pickle.UnpicklingError(
                "the file describes a numpy dtype that is not what it says"
            )
        wrapper = self.stack[-1]
        if np is None or not isinstance(wrapper, NumpyArrayWrapper):
            return
        if wrapper.dtype.hasobject:  # a nested pickle: read it with the same find_class
            inner = pickle._Unpickler(self.file_handle, encoding="latin1")
            inner.find_class = self.find_class
            self.stack[-1] = inner.load()
        else:
            wrapper.subclass = np.ndarray  # what subclass it was does not matter here
            self.stack[-1] = wrapper.read(self, *_READ_ARGS)

    dispatch[pickle.BUILD[0]] = load_build


def _holds_objects(dtype: object) -> bool:
    """From the dtype's structure, not from the flags its pickled state sets."""
    if dtype.kind == "O":
        return True
    if dtype.subdtype is not None:
        return _holds_objects(dtype.subdtype[0])
    return any(_holds_objects(field[0]) for field in (dtype.fields or {}).values())


def _lies(dtype: object) -> bool:
    """A dtype whose state claims no Python objects while its fields hold some would let raw
    bytes become object pointers: a crafted file, never one numpy wrote."""
    return _holds_objects(dtype) and not dtype.hasobject


def _needs_joblib(path: Path, what: str) -> BundleError:
    return BundleError(
        f"`{path}` {what}, which needs joblib and numpy to read", hint="pip install joblib numpy"
    )


def _sklearn_version(top: object) -> str | None:
    """The version in the top object's state, else the most common one in the estimators'."""
    found: list[str] = []
    todo, seen = deque([top]), set()
    while todo:
        obj = todo.popleft()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, _Stub):
            todo.extend((obj._stub_args, obj._stub_state, obj._stub_items))
            state = obj._stub_state
            state = state[0] if isinstance(state, tuple) and state else state  # (dict, slots)
            version = state.get("_sklearn_version") if isinstance(state, dict) else None
            if isinstance(version, str) and obj is top:
                return version
            found += [version] if isinstance(version, str) else []
        elif isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        elif np is not None and isinstance(obj, np.ndarray) and obj.dtype.hasobject:
            todo.extend(obj.ravel().tolist())
    return Counter(found).most_common(1)[0][0] if found else None


def _decompressed(raw: io.BufferedReader, compression: str | None, path: Path) -> io.IOBase:
    if compression is None:
        return raw
    if np is None:
        raise _needs_joblib(path, f"is compressed with {compression}")
    if compression == "zfile":
        return io.BytesIO(read_zfile(raw))
    try:
        return io.BufferedReader(_COMPRESSORS[compression].decompressor_file(raw))
    except ValueError as exc:  # lz4 not installed, or a Python built without lzma
        raise BundleError(
            f"`{path}` is compressed with {compression}, which this Python cannot read",
            hint="pip install lz4" if compression == "lz4" else f"use a Python with {compression}",
        ) from exc


def _unreadable(path: Path, head: bytes, compressed: bool, exc: Exception) -> BundleError:
    text = str(exc) or type(exc).__name__
    cut = isinstance(exc, EOFError) or any(w in text for w in ("truncated", "EOF", "exhausted"))
    if cut and (compressed or head.startswith(b"\x80")):
        return BundleError(
            f"`{path}` ends before its pickle does, so the file is incomplete",
            hint="copy or download the file again, or save the model again",
        )
    what = "it is a ZIP archive" if head.startswith(b"PK\x03\x04") else f"reading it failed: {text}"
    return BundleError(
        f"`{path}` is not a pickle or joblib file",
        hint=f"{what}; give the file written by pickle.dump or joblib.dump",
    )


def scan_pickle(path: Path) -> PickleFacts:
    """What the pickle or joblib file at `path` needs, without importing any of it.

    The scan runs in a child process with a memory limit: a crafted file that crashes numpy's
    array code or asks for a huge allocation fails that process, not this one."""
    import json
    import subprocess

    path = Path(path)
    _check_file(path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cais.bundle.pickle_scan", str(path.resolve())],
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=_limit_memory if sys.platform.startswith("linux") else None,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])
                ),
            },
        )
    except subprocess.TimeoutExpired as exc:
        raise BundleError(f"Reading `{path}` took over 10 minutes", hint=_CRAFTED) from exc
    answer = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if not answer:
        raise BundleError(
            f"Reading `{path}` made the reader fail ({_ending(done.returncode)})", hint=_CRAFTED
        )
    result = json.loads(answer[0])
    if "error" in result:
        raise BundleError(result["error"], hint=result.get("hint"))
    return PickleFacts(
        **{
            **result,
            "modules": frozenset(result["modules"]),
            "classes": frozenset(result["classes"]),
            "globals": frozenset(tuple(pair) for pair in result["globals"]),
        }
    )


_CRAFTED = "the file is damaged, or was made to attack readers; get it again from its source"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds cais/
_MEMORY_LIMIT = 8 << 30  # bytes of address space the reading process may use


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))


def _ending(code: int) -> str:
    if code < 0:
        import signal

        return f"it was stopped by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BundleError(f"`{path}` does not exist", hint="check the path of the model file")
    if path.is_dir():
        raise BundleError(f"`{path}` is a folder, not a model file", hint="give the file in it")
    if path.stat().st_size == 0:
        raise BundleError(f"`{path}` is empty", hint="the model was never written; save it again")


def _scan_here(path: Path) -> PickleFacts:
    """The scan itself, in this process (`scan_pickle` runs it in a child)."""
    path = Path(path)
    _check_file(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BundleError(f"`{path}` cannot be read", hint=str(exc)) from exc
    with raw, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = raw.peek(8)[:8]
        compression = next((n for m, n in _MAGIC.items() if head.startswith(m)), None)
        try:
            unpickler = _SymbolicUnpickler(_decompressed(raw, compression, path), path)
            top = unpickler.load()
        except BundleError:
            raise
        except MemoryError as exc:
            raise BundleError(
                f"`{path}` asks for more memory than it may use", hint=_CRAFTED
            ) from exc
        except Exception as exc:  # anything a damaged or foreign file makes the unpickler do
            raise _unreadable(path, head, compression is not None, exc) from exc
        version = _sklearn_version(top)
    joblib = compression is not None or unpickler.wrapped
    return PickleFacts(
        format=f"joblib ({compression})" if compression else "joblib" if joblib else "pickle",
        modules=frozenset(m.partition(".")[0] for m in unpickler.modules) - _STDLIB,
        classes=frozenset(unpickler.classes),
        globals=frozenset(unpickler.globals),
        top_class=unpickler.names.get(type(top), ""),
        sklearn_version=version,
        pickle_protocol=unpickler.proto,
    )


def _main(argv: list[str]) -> int:
    import json

    try:
        facts = _scan_here(Path(argv[0]))
    except BundleError as exc:
        print(json.dumps({"error": exc.message, "hint": exc.hint}))
        return 0
    fields = {
        **facts.__dict__,
        "modules": sorted(facts.modules),
        "classes": sorted(facts.classes),
        "globals": sorted(facts.globals),
    }
    print(json.dumps(fields))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
