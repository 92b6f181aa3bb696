"""`cais models import`: adopt a pickle made elsewhere, possibly years ago.

The file is read without being unpickled (the scikit-learn that made it is usually not the one
installed here); what it refers to and the scikit-learn version its estimators recorded give
the packages to pin. An old scikit-learn needs its whole contemporary stack, not only itself:
its wheels were built against the numpy of their day, so each other package is pinned to its
newest release from before that scikit-learn came out. The Python is the newest one, among
the base images a site can have, for which all of them install from wheels.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cais.bundle.pickle_scan import PickleFacts, scan_pickle
from cais.errors import BundleError
from cais.server import RUNTIME_PYTHON_MIN

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
    packages: dict[str, str]  # the whole stack, exact versions
    anchor: str  # what the stack's date comes from, such as "scikit-learn 0.24.2"
    cutoff: datetime | None


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


def plan_adoption(
    file: Path,
    *,
    python: str | None = None,
    pythons: list[str] | None = None,
    requirements: list[str] | None = None,
    own_modules: set[str] | None = None,
    index: object | None = None,
) -> Adoption:
    """Read `file` and choose the Python and exact packages that can load it."""
    from cais.bundle.wheels import PackageIndex, choose_python, default_pythons, resolve

    facts = scan_pickle(file)
    pins = _pins(facts, list(requirements or []), set(own_modules or ()))
    index = index or PackageIndex()
    exact = {name: version for name, version in pins.items() if version}
    dates = {name: index.release_date(name, version) for name, version in exact.items()}
    anchor = max(dates, key=dates.get) if dates else None
    cutoff = dates[anchor] if anchor else None
    machine = platform.machine()
    if python is not None:
        if not re.fullmatch(r"\d+\.\d+", python):
            raise BundleError(f"`{python}` is not a Python version", hint="such as --python 3.9")
        if tuple(int(x) for x in python.split(".")) < RUNTIME_PYTHON_MIN:
            raise BundleError(
                f"cais's server needs Python 3.9 or newer, not {python}",
                hint="pass --python 3.9 or newer",
            )
        packages = resolve(index, pins, python, cutoff=cutoff, machine=machine)
        chosen = python
    else:
        candidates = [
            p
            for p in (pythons or default_pythons())
            if tuple(int(x) for x in p.split(".")) >= RUNTIME_PYTHON_MIN
        ]
        if not candidates:
            raise BundleError(
                "None of the Pythons to choose from can run cais's server (3.9 or newer)",
                hint="set CAIS_PYTHONS to include 3.9 or newer, or pass --python",
            )
        chosen, packages = choose_python(index, pins, candidates, cutoff=cutoff, machine=machine)
    return Adoption(
        facts=facts,
        python=chosen,
        packages=packages,
        anchor=f"{anchor} {exact[anchor]}" if anchor else "",
        cutoff=cutoff,
    )
