"""`cais models import`: adopt a pickle made elsewhere, possibly years ago.

The file is read without being unpickled (the scikit-learn that made it is usually not the one
installed here); what it refers to and the scikit-learn version its estimators recorded give
the packages to pin. An old scikit-learn needs its whole contemporary stack, not only itself:
its wheels were built against the numpy of their day, so each other package is pinned to its
newest release from before that scikit-learn came out; a pickle made by the scikit-learn
installed here is pinned to the stack installed here instead, and to the Python running here
(those packages are its own). Otherwise the Python is the newest one, among the base images a
site can have, for which all of them install from wheels.

Unpickling calls every global the file names, so a file naming any outside the allowlist
(`bundle/allowlist.py`) is refused unless the user trusts it.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cais.bundle.allowlist import outside
from cais.bundle.pickle_scan import PickleFacts, scan_pickle
from cais.errors import BundleError
from cais.server import RUNTIME_PYTHON_MIN

if TYPE_CHECKING:
    from cais.bundle.pins import Index

__all__ = ["Adoption", "plan_adoption"]

# Top-level modules found in pickles → their distributions on PyPI.
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "joblib": "joblib",
    "pandas": "pandas",
    "threadpoolctl": "threadpoolctl",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "imblearn": "imbalanced-learn",
    "category_encoders": "category-encoders",
    "nltk": "nltk",
    "unidecode": "Unidecode",
}


@dataclass(frozen=True)
class Adoption:
    """What was read from a pickle and what was chosen to serve it."""

    facts: PickleFacts
    python: str  # X.Y
    python_from: str  # why that Python, in words
    packages: dict[str, str]  # the whole stack, exact versions
    anchor: str  # what the stack's date comes from, such as "scikit-learn 0.24.2"
    cutoff: datetime | None
    pinned_by: str  # how the packages were chosen, in words
    trusted: list[str]  # globals outside the allowlist that the user trusted
    # Where the chosen Python's base image was looked for and not found: a Python the user
    # named (--python, CAIS_PYTHONS) whose `python:X.Y-slim` this site cannot have yet.
    base_missing_from: tuple[str, ...] = ()


def _pins(facts: PickleFacts, requirements: list[str], own_modules: set[str]) -> dict:
    pins: dict[str, str | None] = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        if not name.strip() or any(c in requirement for c in "<>!~;[ "):
            raise BundleError(
                f"`{requirement}` is not a package or an exact pin",
                hint="write `--requirement pandas` or `--requirement pandas==1.2.4`",
            )
        pins[name.strip()] = version.strip() or None
    unknown = sorted(m for m in facts.modules - own_modules if m not in _DISTRIBUTIONS)
    if unknown and not requirements:
        raise BundleError(
            f"The pickle needs {', '.join(f'`{m}`' for m in unknown)}, which cais cannot map "
            "to packages",
            hint="name the packages with --requirement NAME==VERSION, or pass the .py file "
            "that defines your own classes with --predictor",
        )
    for module in sorted(facts.modules - own_modules):
        distribution = _DISTRIBUTIONS.get(module)
        if distribution and distribution not in pins:
            pins[distribution] = None
    if facts.sklearn_version:
        recorded = facts.sklearn_version
        if pins.get("scikit-learn") not in (None, recorded):
            raise BundleError(
                f"The pickle was made with scikit-learn {recorded}, not "
                f"{pins['scikit-learn']}: it must be served with the version that made it",
                hint=f"drop the scikit-learn requirement, or pin scikit-learn=={recorded}",
            )
        pins["scikit-learn"] = recorded
    pins.setdefault("joblib", None)  # the server loads bundles with joblib
    return pins


def _check_globals(facts: PickleFacts, file: Path, own: set[str], trust: bool) -> list[str]:
    """The globals outside the allowlist, when the user trusts them; else a refusal."""
    found = outside(facts.globals, own)
    if found and not trust:
        raise BundleError(
            f"`{file.name}` would run {', '.join(f'`{g}`' for g in found)} when loaded, "
            "which is outside the model stack cais allows",
            hint="pass the .py file that defines your own classes with --predictor; if you "
            "trust where the file comes from, import it with --trust",
        )
    return found


def _running_stack(facts: PickleFacts, pins: dict) -> dict[str, str] | None:
    """The installed versions of the pickle's stack, when the installed scikit-learn made it."""
    import importlib.metadata

    from cais.bundle.introspect import packages_of_modules

    try:
        running = importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return None
    if facts.sklearn_version != running:
        return None
    installed = packages_of_modules(facts.modules | {"joblib"})
    chosen = {name: version for name, version in pins.items() if version}  # the user's pins win
    return {**{name: installed.get(name) for name in pins}, **installed, **chosen}


def plan_adoption(
    file: Path,
    *,
    python: str | None = None,
    pythons: list[str] | None = None,
    requirements: list[str] | None = None,
    own_globals: set[str] | None = None,
    trust: bool = False,
    index: Index | None = None,
) -> Adoption:
    """Read `file`, check what it would run, and choose the Python and exact packages that
    can load it. `own_globals` (`module.Name`) are defined by the user's predictor file;
    `pythons`, when given, are the candidates instead of CAIS_PYTHONS or the base images
    this site can have."""
    from cais.bundle.pins import Index, Target, choose_python, compile_pins, release_date
    from cais.project import running_python

    facts = scan_pickle(file)
    own = set(own_globals or ())
    trusted = _check_globals(facts, file, own, trust)
    pins = _pins(facts, list(requirements or []), {g.partition(".")[0] for g in own})
    index = index or Index.from_settings()
    running = _running_stack(facts, pins)
    if running is not None:
        pins, anchor, cutoff = running, None, None
        pinned_by = (
            f"cais: the stack installed here, since its scikit-learn {facts.sklearn_version} "
            "made the file"
        )
    else:
        exact = {name: version for name, version in pins.items() if version}
        dates = {name: release_date(name, version, index=index) for name, version in exact.items()}
        anchor = max(dates, key=dates.get) if dates else None
        cutoff = dates[anchor] if anchor else None
        pinned_by = (
            f"cais: each package's newest release before {cutoff:%Y-%m-%d}, when "
            f"{anchor} {exact[anchor]} came out"
            if anchor
            else "cais: the newest releases with wheels for the chosen Python"
        )
    machine = platform.machine()
    # The stack installed here is the running interpreter's: its Python comes first.
    here = running_python() if running is not None else None
    missing: tuple[str, ...] = ()
    if python is not None:
        if not re.fullmatch(r"\d+\.\d+", python):
            raise BundleError(f"`{python}` is not a Python version", hint="such as --python 3.9")
        if _version(python) < RUNTIME_PYTHON_MIN:
            raise BundleError(
                f"cais's server needs Python 3.9 or newer, not {python}",
                hint="pass --python 3.9 or newer",
            )
        packages = compile_pins(pins, Target(python, machine), cutoff=cutoff, index=index)
        chosen, python_from = python, "as asked"
        missing = _missing_base(chosen)
    else:
        candidates, among, named = _candidates(pythons)
        chosen, packages = choose_python(
            pins, candidates, machine=machine, cutoff=cutoff, index=index, prefer=here
        )
        if chosen == here:
            python_from = f"the Python running here, whose packages made the file, among {among}"
        else:
            python_from = f"the newest of {among} with wheels for all of it"
            if here is not None:
                why = "is not among them" if here not in candidates else "has no wheels for it"
                python_from += f" (Python {here}, running here, {why})"
        if named:  # the user's list, which no base image lookup has checked
            missing = _missing_base(chosen)
    return Adoption(
        facts=facts,
        python=chosen,
        python_from=python_from,
        packages=packages,
        anchor=f"{anchor} {pins[anchor]}" if anchor else "",
        cutoff=cutoff,
        pinned_by=pinned_by,
        trusted=trusted,
        base_missing_from=missing,
    )


def _missing_base(python: str) -> tuple[str, ...]:
    """The places asked for `python:X.Y-slim` when none has it, else nothing."""
    from cais.bases import available_pythons

    bases = available_pythons([python])
    return () if bases.pythons else bases.asked


def _version(python: str) -> tuple[int, ...]:
    return tuple(int(x) for x in python.split("."))


def _candidates(pythons: list[str] | None) -> tuple[list[str], str, bool]:
    """The Pythons to choose among, where they come from in words, and whether the user named
    them: those given, those CAIS_PYTHONS names, or those whose base image this site can
    have."""
    from cais.bases import available_pythons
    from cais.bundle.pins import default_pythons
    from cais.project import KNOWN_PYTHONS

    given = pythons or default_pythons()
    if given is not None:
        candidates = [p for p in given if _version(p) >= RUNTIME_PYTHON_MIN]
        if not candidates:
            raise BundleError(
                "None of the Pythons to choose from can run cais's server (3.9 or newer)",
                hint="set CAIS_PYTHONS to include 3.9 or newer, or pass --python",
            )
        among = "CAIS_PYTHONS" if pythons is None else ", ".join(candidates)
        return candidates, among, True
    known = [p for p in KNOWN_PYTHONS if _version(p) >= RUNTIME_PYTHON_MIN]
    bases = available_pythons(known)
    if not bases.pythons:
        raise BundleError(
            f"None of the base images {bases.images(known)} is in {' or '.join(bases.asked)}",
            hint="pull or load one (`docker pull python:3.11-slim`), set CAIS_BASE_REGISTRY "
            "to a registry that mirrors Docker Hub, or name the Pythons your site has with "
            "CAIS_PYTHONS or --python",
        )
    among = f"the base images this site has ({bases.images(bases.pythons)})"
    return list(bases.pythons), among, False
