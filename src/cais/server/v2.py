"""The Open Inference Protocol V2 data plane: request and response models, tensor codecs."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BINARY_HEADER_LENGTH",
    "InferenceRequest",
    "InferenceResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "TensorError",
    "attach_binary_inputs",
    "check_parameters",
    "decode_inputs",
    "encode_output",
    "flatten",
    "split_binary_body",
]

# The binary tensor data extension: this header gives the length of the JSON part of a body
# whose tensors follow as raw bytes (what KServe's and Triton's clients send by default).
BINARY_HEADER_LENGTH = "inference-header-content-length"

# V2 datatype → numpy dtype name (BYTES stays Python strings).
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": None,
}


class TensorError(ValueError):
    """A tensor that does not match its own datatype or shape (the HTTP layer answers 400)."""


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None  # None when the tensor comes as binary data


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    # Not in the protocol's request, but KServe's client sends them; checked against the path.
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


def flatten(data: Any) -> list[Any]:
    """The leaves of nested lists, in order (without recursion: any depth is safe)."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def split_binary_body(body: bytes | bytearray, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, tensor bytes) of a request body; all JSON without the extension's header."""
    if header_length is None:
        return bytes(body), b""
    digits = header_length.strip()
    is_count = 0 < len(digits) <= 12 and all("0" <= c <= "9" for c in digits)  # not ², not 10⁵⁰⁰⁰
    if not is_count or int(digits) > len(body):
        raise TensorError(
            f"the {BINARY_HEADER_LENGTH} header must be the length of the JSON part of the "
            f"body (at most {len(body)}), not `{header_length}`"
        )
    split = int(digits)
    return bytes(body[:split]), bytes(body[split:])


def _from_bytes(tensor: RequestInput, chunk: bytes) -> Any:
    import numpy as np

    if tensor.datatype == "BYTES":  # each element: a 4-byte little-endian length, then bytes
        values, offset = [], 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise TensorError(f"input `{tensor.name}`: its BYTES data is cut short")
            size = int.from_bytes(chunk[offset : offset + 4], "little")
            element = chunk[offset + 4 : offset + 4 + size]
            if len(element) != size:
                raise TensorError(f"input `{tensor.name}`: its BYTES data is cut short")
            try:
                values.append(element.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise TensorError(f"input `{tensor.name}`: an element is not UTF-8 text") from exc
            offset += 4 + size
        return values
    dtype = np.dtype(DATATYPES[tensor.datatype]).newbyteorder("<")
    if len(chunk) % dtype.itemsize:
        raise TensorError(
            f"input `{tensor.name}`: {len(chunk)} bytes are not a whole number of "
            f"{tensor.datatype} values"
        )
    return np.frombuffer(chunk, dtype=dtype)


def attach_binary_inputs(request: InferenceRequest, tensors: bytes) -> None:
    """Give each input that declares `binary_data_size` its bytes, in the inputs' order."""
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if tensor.datatype not in DATATYPES:
            raise TensorError(f"input `{tensor.name}` has the unknown datatype `{tensor.datatype}`")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise TensorError(f"input `{tensor.name}`: binary_data_size must be a byte count")
        if offset + size > len(tensors):
            raise TensorError(
                f"input `{tensor.name}` declares {size} bytes of binary data, but the body "
                f"holds only {len(tensors) - offset} more"
            )
        tensor.data = _from_bytes(tensor, tensors[offset : offset + size])
        offset += size
    if offset != len(tensors):
        raise TensorError(
            f"the body holds {len(tensors) - offset} bytes after the JSON part that no "
            "input declares (parameters.binary_data_size)"
        )


def _decode_one(tensor: RequestInput) -> Any:
    import numpy as np

    if tensor.datatype not in DATATYPES:
        raise TensorError(
            f"input `{tensor.name}` has the unknown datatype `{tensor.datatype}` "
            f"(known: {', '.join(DATATYPES)})"
        )
    if not tensor.shape or any(d < 0 for d in tensor.shape):
        raise TensorError(f"input `{tensor.name}` needs a shape of non-negative sizes")
    if tensor.data is None:
        raise TensorError(f"input `{tensor.name}` has no data")
    if isinstance(tensor.data, np.ndarray):  # binary data, already of its datatype
        expected = math.prod(tensor.shape)
        if tensor.data.size != expected or expected == 0:
            raise TensorError(
                f"input `{tensor.name}` has {tensor.data.size} values but its shape "
                f"{tensor.shape} needs {expected}"
            )
        _check_finite(tensor, tensor.data)
        return tensor.data.astype(tensor.data.dtype.newbyteorder("=")).reshape(tensor.shape)
    flat = _leaves(tensor)
    expected = math.prod(tensor.shape)
    if len(flat) != expected:
        raise TensorError(
            f"input `{tensor.name}` has {len(flat)} values but its shape {tensor.shape} "
            f"needs {expected}"
        )
    if expected == 0:
        raise TensorError(f"input `{tensor.name}` is empty: send at least one instance")
    if tensor.datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise TensorError(f"input `{tensor.name}` is BYTES: every value must be a string")
        array = np.array(flat, dtype=object)
    elif tensor.datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise TensorError(f"input `{tensor.name}` is BOOL: every value must be true or false")
        array = np.array(flat, dtype=bool)
    else:
        array = _numbers(tensor, flat)
    return array.reshape(tensor.shape)


def _leaves(tensor: RequestInput) -> list[Any]:
    """The tensor's values in row-major order: its data flat, as the protocol writes it, or
    nested lists that are rectangular and of its shape, sizes of 1 aside (`[[1, 2]]` serves
    the shape [2], two lists of three the shape [1, 2, 3])."""
    data = tensor.data
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(value, list) for value in data):
        return data
    nested = []  # the nesting's own shape, read down its first items
    probe: Any = data
    while isinstance(probe, list):
        nested.append(len(probe))
        probe = probe[0] if probe else None
    level = [data]
    for size in nested:
        if not all(isinstance(item, list) and len(item) == size for item in level):
            break
        level = [value for item in level for value in item]
    if any(isinstance(value, list) for value in level) or len(level) != math.prod(nested):
        raise TensorError(
            f"input `{tensor.name}` has ragged data: the lists at one depth of its nesting "
            f"must all hold as many values (its shape is {tensor.shape})"
        )
    if [s for s in nested if s != 1] != [s for s in tensor.shape if s != 1]:
        raise TensorError(
            f"input `{tensor.name}` has data nested as the shape {nested}, not its shape "
            f"{tensor.shape}"
        )
    return level


def _numbers(tensor: RequestInput, flat: list[Any]) -> Any:
    """`flat` as an array of the tensor's numeric datatype, refusing what it cannot hold
    exactly: fractions in an integer type, values out of its range, NaN and infinity."""
    import numpy as np

    dtype = np.dtype(DATATYPES[tensor.datatype])
    kinds = (int,) if dtype.kind in "iu" else (int, float)
    if not all(type(v) in kinds for v in flat):
        kind = "a whole number" if dtype.kind in "iu" else "a number"
        raise TensorError(f"input `{tensor.name}` is {tensor.datatype}: every value must be {kind}")
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if not all(limits.min <= v <= limits.max for v in flat):
            raise TensorError(
                f"input `{tensor.name}` does not fit {tensor.datatype}: its values must be "
                f"from {limits.min} to {limits.max}"
            )
        return np.array(flat, dtype=dtype)
    try:
        wide = np.array(flat, dtype="float64")
    except OverflowError as exc:  # an integer beyond any float
        raise TensorError(f"input `{tensor.name}` does not fit {tensor.datatype}") from exc
    _check_finite(tensor, wide)
    sizes = np.abs(wide[~np.isnan(wide)])  # NaN, a missing value, fits every float type
    if dtype != wide.dtype and sizes.size and sizes.max() > np.finfo(dtype).max:
        raise TensorError(
            f"input `{tensor.name}` does not fit {tensor.datatype}: its values must be at "
            f"most {float(np.finfo(dtype).max):g} in size"
        )
    return wide.astype(dtype)


def _check_finite(tensor: RequestInput, array: Any) -> None:
    import numpy as np

    if array.dtype.kind == "f" and np.isinf(array).any():  # NaN stands for a missing value
        raise TensorError(f"input `{tensor.name}` holds an infinity: send finite numbers")


def decode_inputs(request: InferenceRequest, input_names: list[str]) -> Any:
    """The batch a model's predict takes: strings for a text model, an array for one input
    (under any name, as MLServer does: clients name it as they please), a table (DataFrame,
    else columns stacked) for one input per column, matched by name."""
    import numpy as np

    given = [tensor.name for tensor in request.inputs]
    if len(input_names) == 1 and len(given) > 1:
        raise TensorError(
            f"the model takes one input, and this request has {len(given)}: "
            + ", ".join(f"`{n}`" for n in given)
        )
    if len(given) == 1 and len(input_names) <= 1:
        if input_names in ([], ["input"]):
            array = _decode_one(request.inputs[0])
            if array.dtype == object and (array.ndim == 1 or array.shape[1:] == (1,)):
                return [str(v) for v in array.reshape(-1)]  # a text model takes strings
            return array.reshape(-1, 1) if array.ndim == 1 else array
        arrays = {input_names[0]: _decode_one(request.inputs[0])}  # a table of one column
    else:
        if len(set(given)) != len(given):
            raise TensorError("each input must have its own name")
        unknown = [n for n in given if input_names and n not in input_names]
        if unknown:
            raise TensorError(
                f"the model has no input `{unknown[0]}` (it has: {', '.join(input_names)})"
            )
        missing = [n for n in input_names if n not in given]
        if missing:
            raise TensorError(f"missing input(s): {', '.join(missing)}")
        arrays = {tensor.name: _decode_one(tensor) for tensor in request.inputs}
    for name, array in arrays.items():
        if array.ndim > 2 or array.shape[1:] not in ((), (1,)):
            raise TensorError(
                f"input `{name}` is one column of a table: give it the shape [rows] or [rows, 1]"
            )
    if len({len(a) for a in arrays.values()}) != 1:
        raise TensorError("inputs given as columns must all have the same number of rows")
    ordered = [n for n in input_names if n in arrays] or list(arrays)
    try:
        import pandas as pd

        return pd.DataFrame({name: arrays[name].reshape(-1) for name in ordered})
    except ImportError:
        return np.column_stack([arrays[name].reshape(-1) for name in ordered])


def check_parameters(request: InferenceRequest) -> None:
    """The request's `parameters` are sent back in the answer: JSON must be able to carry them."""
    import json

    if request.parameters:
        try:
            json.dumps(request.parameters, allow_nan=False)
        except ValueError as exc:
            raise TensorError("`parameters` hold a number that is not finite") from exc


def encode_output(name: str, values: list[Any]) -> ResponseOutput:
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind in "OUS":
        datatype = "BYTES"
        data = [str(v) for v in array.reshape(-1).tolist()]
    elif array.dtype.kind == "b":
        datatype, data = "BOOL", array.reshape(-1).tolist()
    elif array.dtype.kind in "iu":
        datatype, data = (
            ("INT64" if array.dtype.kind == "i" else "UINT64"),
            array.reshape(-1).tolist(),
        )
    else:
        datatype, data = "FP64", array.astype("float64").reshape(-1).tolist()
    return ResponseOutput(name=name, shape=list(array.shape), datatype=datatype, data=data)
