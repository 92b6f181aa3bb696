"""Which globals a pickle may name: unpickling calls them, so a pickle is code.

A global is allowed when it belongs to the model stack (scikit-learn, numpy, scipy, joblib,
pandas) or is one of the few builtins and standard-library helpers real scikit-learn pickles
need, or is defined by the user's own predictor file. Within the stack, the parts that read or
write files, reach the network, start processes, load libraries or compile and run code are
left out, by module and by name, since a pickle can call any function with arguments of its
choice. A name with dots inside an allowed module is refused too: `sklearn.base` + `os.system`
would reach `os` through the module's own imports.

The import refuses such a file after reading it without running it; loading an imported bundle
enforces the same verdict in the real unpickler (`only_allowed`), through the audit event
every unpickler raises before it resolves a global (`pickle.find_class`), whatever the joblib
or numpy version that reads the file. Kept to the standard library and Python 3.9: the server
inside an image loads bundles with it.
"""

from __future__ import annotations

import _compat_pickle
import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from cais.errors import BundleError

__all__ = ["BUILTINS", "STACK", "defined_globals", "only_allowed", "outside"]

STACK = ("sklearn", "numpy", "scipy", "joblib", "pandas")

# What real pickles of the installed scikit-learn, numpy and pandas name outside them
# (pipelines with TF-IDF, forests, boosting, a ColumnTransformer, a DataFrame; protocols 0
# to 5, joblib with and without compression), and the plain data types beside them.
BUILTINS = "object set frozenset slice complex bytearray bytes int float str bool range"
_STANDARD = {
    ("_codecs", "encode"),  # bytes, as protocol 2 writes them
    ("copyreg", "_reconstructor"),  # every object, in protocols 0 and 1
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    *(("builtins", name) for name in BUILTINS.split()),
}

# Parts of the stack that touch the machine rather than compute (module prefixes).
_UNSAFE_MODULES = (
    "numpy.testing",  # runstring() is exec
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",  # load_library() loads any shared library
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib._datasource",
    "numpy.lib.utils",
    "numpy.core.memmap",
    "numpy._core.memmap",
    "scipy.io",
    "scipy.weave",  # compiled C code given as text (old scipy)
    "scipy.datasets",
    "scipy._lib._testutils",
    "scipy._lib._ccallback",  # LowLevelCallable: raw function pointers
    "pandas.io",
    "pandas.core.computation",  # pandas.eval
    "pandas.testing",
    "pandas._testing",
    "pandas.util",
    "pandas.plotting",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "joblib.externals",  # cloudpickle rebuilds functions from code objects; loky spawns
    "joblib.memory",
    "joblib.parallel",
    "joblib._parallel_backends",
    "joblib.pool",
    "joblib.executor",
    "joblib.disk",
    "joblib.logger",
    "joblib.backports",
    "joblib._store_backends",
    "joblib.compressor",
    "joblib.numpy_pickle_compat",
    "sklearn.externals.joblib",  # joblib as old scikit-learn vendored it: same rules
)
# Names that do the same whatever module exports them (`numpy.load`, `pandas.read_pickle`).
_UNSAFE_NAMES = frozenset(
    [
        "eval",
        "exec",
        "system",
        "memmap",
        "DataSource",
        "LowLevelCallable",
        "ExcelWriter",
        "ExcelFile",
        "HDFStore",
        "Memory",
        "Parallel",
        "delayed",
        "fromfile",
        "fromregex",
        "genfromtxt",
    ]
)
_UNSAFE_PREFIXES = ("load", "save", "dump", "read_", "to_", "fetch_", "write", "open", "run")
# What stays allowed in a module left out above: joblib's array wrapper, in both homes.
_WRAPPER = "NumpyArrayWrapper"


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _in_stack(module: str, name: str) -> bool:
    if "." in name or not name.isidentifier():
        return False
    if name == _WRAPPER and module.endswith("joblib.numpy_pickle"):
        return True
    bare = name.lstrip("_")
    return (
        _under(module, STACK)
        and not _under(module, _UNSAFE_MODULES)
        and name not in _UNSAFE_NAMES
        and not bare.lower().startswith(_UNSAFE_PREFIXES)
    )


def outside(names: Iterable[tuple[str, str]], own: Iterable[str] = ()) -> list[str]:
    """The globals, as `module.name`, that fall outside the allowlist; `own` holds the
    `module.Name` of what the user's predictor file defines."""
    own = set(own)
    found = set()
    for module, name in names:
        full = f"{module}.{name}"
        mine = f"{module}.{name.partition('.')[0]}" in own
        if not (mine or (module, name) in _STANDARD or _in_stack(module, name)):
            found.add(full)
    return sorted(found)


def defined_globals(source: Path) -> set[str]:
    """`module.Name` of every class and function a predictor file defines at its top level
    (read, not run)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {f"{source.stem}.{node.name}" for node in tree.body if isinstance(node, kinds)}


# The check of the load running in this context, if any. An audit hook cannot be removed, so
# one is added, once, and does nothing outside `only_allowed`.
_CHECK: ContextVar[Callable[[str, str], None] | None] = ContextVar(
    "cais_pickle_check", default=None
)
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    if event == "pickle.find_class":
        check = _CHECK.get()
        if check is not None:
            check(*args)


@contextmanager
def only_allowed(reference: str, own: Iterable[str], trusted: Iterable[str]) -> Iterator[None]:
    """Within the block, unpickling a global outside the allowlist and not in `trusted`
    (`module.name`) raises a BundleError instead of importing or calling it."""
    own, trusted = set(own), set(trusted)

    def check(module: str, name: str) -> None:
        # Python 2 names are mapped after the event, as pickle does for protocols 0 to 2.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if outside([(module, name)], own) and f"{module}.{name}" not in trusted:
            raise BundleError(
                f"The pickle of `{reference}` names `{module}.{name}`, which it did not name "
                "when it was imported: it was not loaded",
                hint="the file was replaced after the import; import it again from its source",
            )

    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)
