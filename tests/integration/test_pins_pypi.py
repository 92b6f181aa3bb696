"""cais.bundle.pins against the real PyPI (or the index PIP_INDEX_URL / UV_INDEX_URL name): a
model pickled with scikit-learn 0.24.2 gets the stack of April 2021, on the newest Python it
has wheels for."""

from __future__ import annotations

from packaging.version import Version

from cais.bundle.pins import Target, choose_python, compile_pins, release_date
from cais.errors import StackError
from tests.support import unavailable


def test_scikit_learn_0_24_2_gets_its_contemporary_stack_on_python_3_9():
    try:
        cutoff = release_date("scikit-learn", "0.24.2")
    except StackError as exc:
        unavailable(f"the package index cannot be read ({exc})")
    assert (cutoff.year, cutoff.month, cutoff.day) == (2021, 4, 28)
    python, stack = choose_python({"scikit-learn": "0.24.2"}, ["3.9", "3.11"], cutoff=cutoff)

    assert python == "3.9"  # 0.24.2 has no wheels for 3.11
    assert set(stack) == {"joblib", "numpy", "scikit-learn", "scipy", "threadpoolctl"}
    assert stack["scikit-learn"] == "0.24.2"
    assert Version(stack["numpy"]).release[:2] == (1, 20)
    assert Version(stack["scipy"]).release[:2] == (1, 6)
    assert Version(stack["joblib"]) <= Version("1.0.1")
    assert Version(stack["threadpoolctl"]) >= Version("2.0.0")


def test_the_serving_runtime_resolves_for_another_python_and_machine():
    try:
        stack = compile_pins({"uvicorn": None, "pydantic": None}, Target("3.9", "arm64"))
    except StackError as exc:
        if "could not resolve" in exc.message:
            unavailable(f"the package index cannot be read ({exc})")
        raise
    assert {"uvicorn", "pydantic", "pydantic-core"} <= set(stack)
