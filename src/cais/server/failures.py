"""What a client hears when the model raised on its request: the failure said in the request's
terms (which instance, which value, what the model takes), never the model's own words about
its arrays (`Input X contains NaN`, `dtype('float32')`).

Only a failed request pays for this: nothing here runs before the model has raised.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cais.server.models import LoadedModel

__all__ = ["model_failure"]

# scikit-learn's and numpy's sentences about the values they were given, as they word them.
_MISSING = re.compile(r"\bNaN\b|missing values", re.IGNORECASE)
_TOO_LARGE = re.compile(r"infinity or a value too large for dtype\('(float\d+)'\)")
_FEATURES = re.compile(r"X has (\d+) features?, but \w+ is expecting (\d+) features?")
_DIMENSIONS = re.compile(r"Found array with dim (\d+)")
_NOT_A_NUMBER = re.compile(r"could not convert string to float: (.*)")
_FEATURE_NAMES = re.compile(r"feature names should match")
# Words of a message that speaks of the model's insides rather than of the request.
_INTERNALS = re.compile(r"\b(?:X|array|ndarray|dtype|numpy|reshape)\b|shape=|Error\b")


def model_failure(model: LoadedModel, batch: Any, exc: Exception) -> str:
    """The sentence for a client whose `batch` made `model` raise `exc`; the server's log
    gets the model's own words."""
    print(
        f"cais: the model `{model.name}:{model.version}` raised {type(exc).__name__}: {exc}",
        file=sys.stderr,
    )
    if isinstance(exc, ValueError) and not isinstance(exc, UnicodeError):
        said = _value_error(model, batch, str(exc).strip())
        if said is not None:
            return said
    expected = model.expects
    takes = f": it takes {expected.describe()}" if expected is not None else ""
    return f"the model `{model.name}` cannot predict this input{takes}"


def _value_error(model: LoadedModel, batch: Any, text: str) -> str | None:
    """A ValueError (what scikit-learn raises about values) in the request's terms, or None
    when it cannot be said without the model's insides."""
    name = f"`{model.name}`"
    if _MISSING.search(text):  # said of the batch's first missing value, if it has one
        where = _first(batch, _missing(batch))
        if where is None:
            return None
        return (
            f"{_instance(where)} has a missing value{_column(where)} (null or NaN), which the "
            f"model {name} cannot take"
        )
    found = _TOO_LARGE.search(text)
    if found:
        import numpy as np

        dtype = np.dtype(found.group(1))
        limit = float(np.finfo(dtype).max)
        where = _first(batch, _larger(batch, limit))
        who = _instance(where) if where is not None else "an instance"
        return (
            f"{who} has a value{_column(where)} too large for the model {name}, which computes "
            f"with {dtype.itemsize * 8}-bit floats (at most {limit:.4g} in size)"
        )
    found = _FEATURES.search(text)
    if found:
        given, wanted = found.groups()
        return f"instances have {given} values, but the model {name} takes {wanted}"
    if _DIMENSIONS.search(text):
        shape = list(getattr(batch, "shape", ())[1:])
        return f"instances are arrays of shape {shape}, but the model {name} takes rows of numbers"
    found = _NOT_A_NUMBER.search(text)
    if found:
        value = found.group(1).strip().strip("'\"")
        column = _text_column(batch, value)
        at = f" for `{column}`" if column is not None else ""
        return f"`{value}`{at} is not a number, which the model {name} needs there"
    if _FEATURE_NAMES.search(text):
        trained = getattr(model.model, "feature_names_in_", None)
        given = getattr(batch, "columns", None)
        if trained is not None and given is not None:
            return (
                f"the model {name} takes objects with {_ticked(trained)}, not objects with "
                f"{_ticked(given)}"
            )
    first = text.splitlines()[0].strip() if text else ""
    if first and not _INTERNALS.search(first):  # a model's (or predictor's) own sentence
        return f"the model {name} cannot predict this input: {first.rstrip('.')}"
    return None


def _ticked(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _instance(where: tuple[int, str | None]) -> str:
    return f"instance {where[0]}"


def _column(where: tuple[int, str | None] | None) -> str:
    return f" for `{where[1]}`" if where is not None and where[1] is not None else ""


def _first(batch: Any, mask: Any) -> tuple[int, str | None] | None:
    """(instance, column of a table) of the first True in `mask`, one row per instance."""
    import numpy as np

    if mask is None:
        return None
    found = np.argwhere(mask.reshape(len(mask), -1))
    if not len(found):
        return None
    row, column = (int(i) for i in found[0])
    columns = getattr(batch, "columns", None)
    return row, (str(columns[column]) if columns is not None else None)


def _numbers(batch: Any) -> Any:
    """The batch's values as floats (a table's non-numbers as NaN), or None for text."""
    import numpy as np

    if hasattr(batch, "columns"):
        import pandas as pd

        return batch.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biuf" and batch.size:
        return batch.astype(float)
    return None


def _missing(batch: Any) -> Any:
    import numpy as np

    if hasattr(batch, "isna"):  # a table: None and NaN, in columns of any type
        return batch.isna().to_numpy()
    numbers = _numbers(batch)
    return None if numbers is None else np.isnan(numbers)


def _larger(batch: Any, limit: float) -> Any:
    import numpy as np

    numbers = _numbers(batch)
    return None if numbers is None else np.abs(np.nan_to_num(numbers)) > limit


def _text_column(batch: Any, value: str) -> str | None:
    """The table column holding `value` where a number was wanted."""
    if not hasattr(batch, "columns"):
        return None
    from pandas.api.types import is_numeric_dtype

    for name in batch.columns:
        column = batch[name]
        if not is_numeric_dtype(column) and (column.astype(str) == value).any():
            return str(name)
    return None
