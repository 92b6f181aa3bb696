"""A monitoring check in the Nagios plugin convention: post a known input, compare the answer.

The check speaks to a cais server (no options needed: the model's recorded input example),
to any Open Inference Protocol V2 server (MLServer, KServe, Triton), or to a plain JSON API
(`field` says where its answer is). nagiosplugin evaluates the outcome and writes the line
Nagios and Icinga read (`CAIS OK - products:3 answered "livro" in 12 ms | time=0.012s;0.5;1;0`)
with the exit codes of the plugin guidelines: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
A wrong answer, an HTTP error, a refused connection or a timeout is CRITICAL (the service does
not do its job); arguments the check cannot use are UNKNOWN (the check could not tell).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import nagiosplugin

__all__ = [
    "NAME",
    "Answer",
    "Target",
    "UsageProblem",
    "check",
    "parse_input",
    "parse_url",
    "threshold",
]

NAME = "CAIS"  # the first word of the plugin's line
_SHOWN = 60  # characters of an answer or a server's message shown at most


class UsageProblem(ValueError):
    """Arguments the check cannot use: the plugin answers UNKNOWN."""


@dataclass(frozen=True)
class Target:
    """What to ask: `url` of a server (or of a plain JSON API's endpoint, with `field`)."""

    url: str
    model: str | None = None
    input: Any = None  # None: the model's recorded input example (cais servers only)
    field: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class Answer:
    """What the server answered (`value`, in `seconds`), or why there is no answer."""

    label: str  # `products:3`, or the endpoint of a plain JSON API
    value: Any = None
    seconds: float | None = None
    problem: str | None = None  # set: no usable answer (CRITICAL)
    unknown: bool = False  # the problem lies with the check's arguments (UNKNOWN)


def parse_url(text: str) -> str:
    """The URL to check, refused early when it cannot be one."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageProblem(f"`{text}` is no http:// or https:// URL such as http://host:8080")
    return text


def parse_input(text: str) -> Any:
    """`--input` as JSON, or as text when it is not JSON (`livro azul`); text that opens like
    a JSON object or list must be valid JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip().startswith(("{", "[")):
            raise UsageProblem(f"`--input` is not valid JSON: {exc}") from None
        return text


def threshold(text: str, option: str) -> nagiosplugin.Range:
    """A Nagios threshold range (`0.5`, `10:`, `~:1`, `@0.2:0.5`) in seconds."""
    try:
        return nagiosplugin.Range(text)
    except ValueError:
        raise UsageProblem(
            f"`{option} {text}` is not a Nagios range of seconds such as `0.5`, `0.2:`, "
            "`~:1` or `@0.2:0.5`"
        ) from None


def check(
    target: Target,
    *,
    warning: nagiosplugin.Range | None = None,
    critical: nagiosplugin.Range | None = None,
    expect: str | None = None,
) -> nagiosplugin.Check:
    """The check, ready to run (`check()` for the state, `check.main()` to print and exit)."""
    ran = nagiosplugin.Check(
        _Probe(target),
        nagiosplugin.ScalarContext("time", warning, critical),
        _AnswerContext(expect),
        _Summary(),
    )
    ran.name = NAME
    return ran


class _Probe(nagiosplugin.Resource):
    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def name(self) -> str:
        return NAME

    def probe(self) -> list[nagiosplugin.Metric]:
        answer = _ask(self.target)
        metrics = [nagiosplugin.Metric("answer", answer, context="answer")]
        if answer.problem is None and answer.seconds is not None:
            seconds = round(answer.seconds, 4)
            metrics.append(nagiosplugin.Metric("time", seconds, "s", min=0, context="time"))
        return metrics


class _AnswerContext(nagiosplugin.Context):
    def __init__(self, expect: str | None) -> None:
        super().__init__("answer")
        self.expect = expect

    def evaluate(self, metric: nagiosplugin.Metric, resource: object) -> nagiosplugin.Result:
        answer: Answer = metric.value
        if answer.problem is not None:
            state = nagiosplugin.Unknown if answer.unknown else nagiosplugin.Critical
            return self.result_cls(state, answer.problem, metric)
        if self.expect is not None and not _matches(answer.value, self.expect):
            return self.result_cls(
                nagiosplugin.Critical,
                f"{answer.label} answered {_shown(answer.value)} instead of {_shown(self.expect)}",
                metric,
            )
        return self.result_cls(nagiosplugin.Ok, None, metric)


class _Summary(nagiosplugin.Summary):
    def ok(self, results: nagiosplugin.Results) -> str:
        return _answered(results["answer"].metric.value)

    def problem(self, results: nagiosplugin.Results) -> str:
        worst = results.first_significant
        if worst.context is not None and worst.context.name == "time":  # slow, but right
            return f"{_answered(results['answer'].metric.value)} ({worst.hint})"
        return str(worst)


def _answered(answer: Answer) -> str:
    return f"{answer.label} answered {_shown(answer.value)} in {answer.seconds * 1000:.0f} ms"


def _shown(value: Any) -> str:
    return _clip(json.dumps(value, ensure_ascii=False))


def _matches(value: Any, expected: str) -> bool:
    """`--expect` against the answer: as numbers when the answer is one, else as text (an
    answer that is a list or an object as its JSON)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(expected) == value
        except ValueError:
            return False
    if isinstance(value, str):
        return value == expected
    try:
        return json.loads(expected) == value
    except ValueError:
        return False


# -- asking ----------------------------------------------------------------------------------


class _Failed(Exception):
    def __init__(self, problem: str, *, unknown: bool = False, status: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.unknown = unknown
        self.status = status


def _ask(target: Target) -> Answer:
    label = target.model or _endpoint(target.url)
    try:
        with httpx.Client(follow_redirects=True) as client:
            session = _Session(client, target.timeout)
            if target.field is not None:
                return _ask_plain(session, target)
            try:
                server = session.get(f"{_base(target.url)}/v2")
            except _Failed as exc:
                if exc.status == 404:
                    exc.problem += ": no V2 server here (for a plain JSON API, give `--field`)"
                raise
            if isinstance(server, dict) and server.get("name") == "cais":
                return _ask_cais(session, target)
            return _ask_v2(session, target)
    except _Failed as exc:
        return Answer(label, problem=exc.problem, unknown=exc.unknown)


def _ask_plain(session: _Session, target: Target) -> Answer:
    if target.input is None:
        raise _Failed("a plain JSON API needs a known input: give it with `--input`", unknown=True)
    label = _endpoint(target.url)
    body, seconds = session.post(target.url, target.input)
    return Answer(label, _dig(body, target.field or "", target.url), seconds)


def _ask_cais(session: _Session, target: Target) -> Answer:
    base = _base(target.url)
    listing = session.get(f"{base}/models")
    served = listing.get("models", []) if isinstance(listing, dict) else []
    name, _, version = (target.model or "").partition(":")
    if not name:
        names = sorted({m.get("name") for m in served})
        if len(names) > 1:
            raise _Failed(
                f"`{target.url}` serves several models ({', '.join(names)}): "
                "name one with `--model`",
                unknown=True,
            )
        if not names:
            raise _Failed(f"`{base}/models` lists no model")
        name = names[0]
    path = f"/models/{name}" + (f"/versions/{version}" if version else "")
    instance = target.input
    if instance is None:
        instance = _example(served, name, version)
    body, seconds = session.post(f"{base}{path}/predict", {"instances": [instance]})
    predictions = _dig(body, "predictions.0", f"{base}{path}/predict")
    label = f"{body.get('model', name)}:{body.get('version', version)}"
    return Answer(label, predictions, seconds)


def _example(served: list[dict], name: str, version: str) -> Any:
    """The first instance of the model's recorded input example."""
    for model in served:
        if model.get("name") == name and (not version or model.get("version") == version):
            example = model.get("input_example")
            if isinstance(example, dict):  # a table, by columns: its first row
                return {column: values[0] for column, values in example.items() if values}
            if isinstance(example, list) and example:
                return example[0]
            raise _Failed(
                f"the model `{name}` has no recorded input example: give one with `--input`",
                unknown=True,
            )
    return None  # not served: the server's own answer says so


def _ask_v2(session: _Session, target: Target) -> Answer:
    if not target.model:
        raise _Failed(
            f"`{target.url}` is no cais server: name the model with `--model`, or give "
            "`--field` for a plain JSON API",
            unknown=True,
        )
    if target.input is None:
        raise _Failed(
            f"`{target.url}` is no cais server: give a known input with `--input`", unknown=True
        )
    name, _, version = target.model.partition(":")
    path = f"{_base(target.url)}/v2/models/{name}" + (f"/versions/{version}" if version else "")
    request = target.input
    if not (isinstance(request, dict) and "inputs" in request):  # one instance: a tensor of it
        metadata = session.get(path)
        declared = (metadata.get("inputs") or [{}])[0] if isinstance(metadata, dict) else {}
        request = {"inputs": [_tensor(request, declared)]}
    body, seconds = session.post(f"{path}/infer", request)
    value = _dig(body, "outputs.0.data.0", f"{path}/infer")
    label = f"{body.get('model_name', name)}:{body.get('model_version') or version or '-'}"
    return Answer(label.removesuffix(":-"), value, seconds)


def _tensor(instance: Any, declared: dict) -> dict:
    """One instance as a V2 input tensor of the model's first declared input."""
    name = declared.get("name", "input")
    if isinstance(instance, str):
        return {"name": name, "shape": [1], "datatype": "BYTES", "data": [instance]}
    row = instance if isinstance(instance, list) else [instance]
    datatype = declared.get("datatype")
    if datatype in (None, "BYTES"):
        datatype = "FP64"
    return {"name": name, "shape": [1, len(row)], "datatype": datatype, "data": row}


class _Session:
    """An HTTP client whose requests all end within the check's one timeout."""

    def __init__(self, client: httpx.Client, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def get(self, url: str) -> Any:
        return _json(self._send("GET", url), url)

    def post(self, url: str, body: Any) -> tuple[Any, float]:
        """The JSON answer to `body`, and the seconds it took."""
        started = time.perf_counter()
        response = self._send("POST", url, json=body)
        return _json(response, url), time.perf_counter() - started

    def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        late = f"no answer from `{url}` within {self.timeout:g} s"
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Failed(late)
        try:
            response = self.client.request(method, url, timeout=left, **options)
        except httpx.TimeoutException:
            raise _Failed(late) from None
        except httpx.ConnectError as exc:
            raise _Failed(f"cannot connect to `{url}`: {_reason(exc)}") from None
        except httpx.InvalidURL as exc:
            raise _Failed(f"`{url}` is no URL: {exc}", unknown=True) from None
        except httpx.HTTPError as exc:
            raise _Failed(f"`{method} {url}` failed: {_reason(exc)}") from None
        if response.is_error:
            message = _server_message(response)
            raise _Failed(
                f"`{method} {url}` answered HTTP {response.status_code}: {message}",
                status=response.status_code,
            )
        return response


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1].lower()  # `[Errno 111] Connection refused`


def _server_message(response: httpx.Response) -> str:
    """The error a server gave: `error` (cais, MLServer, KServe), `detail` (FastAPI) or
    `message`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key]
    text = " ".join(response.text.split())
    return _clip(text) if text else response.reason_phrase


def _json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        text = " ".join(response.text.split())
        raise _Failed(f"`{url}` answered no JSON: {_clip(text) or 'an empty body'}") from None


def _dig(body: Any, path: str, url: str) -> Any:
    """The value at a dotted `path` (`predictions.0`, `result.label`) of a JSON answer."""
    value = body
    for key in path.split(".") if path else []:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise _Failed(f"the answer of `{url}` has no `{path}`: {_shown(body)}")
    return value


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _base(url: str) -> str:
    return url.rstrip("/")


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}" or url
