"""cais.bundle.wheels against the real PyPI (or CAIS_PYPI_JSON_URL): a model pickled with
scikit-learn 0.24.2 gets the stack of April 2021, on the newest Python it has wheels for."""

from __future__ import annotations

import time

from packaging.version import Version

from cais.bundle.wheels import PackageIndex, choose_python
from cais.errors import StackError
from tests.support import unavailable


def test_scikit_learn_0_24_2_gets_its_contemporary_stack_on_python_3_9():
    with PackageIndex() as index:
        started = time.perf_counter()
        try:
            cutoff = index.release_date("scikit-learn", "0.24.2")
        except StackError as exc:
            unavailable(f"PyPI cannot be read ({exc})")
        python, stack = choose_python(
            index, {"scikit-learn": "0.24.2"}, ["3.9", "3.11"], cutoff=cutoff
        )
        elapsed = time.perf_counter() - started
    print(f"\ncutoff {cutoff.isoformat()}: Python {python}, {stack} in {elapsed:.2f} s")

    assert python == "3.9"  # 0.24.2 has no wheels for 3.11
    assert set(stack) == {"joblib", "numpy", "scikit-learn", "scipy", "threadpoolctl"}
    assert stack["scikit-learn"] == "0.24.2"
    assert Version(stack["numpy"]).release[:2] == (1, 20)
    assert Version(stack["scipy"]).release[:2] == (1, 6)
    assert Version(stack["joblib"]) <= Version("1.0.1")
    assert Version(stack["threadpoolctl"]) >= Version("2.0.0")
