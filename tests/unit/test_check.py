"""`cais check`'s logic: Nagios ranges, the state each outcome maps to, and arguments the
plugin cannot use (UNKNOWN, exit 3, one line)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cais import monitor
from cais.cli import app
from cais.monitor import Answer, Target, UsageProblem


@pytest.mark.parametrize(
    "text, inside, outside",
    [
        ("0.5", [0, 0.5], [0.51]),  # 0 to 0.5
        ("0.2:", [0.2, 99], [0.1]),  # 0.2 or more
        ("~:1", [1], [1.5]),  # at most 1
        ("0.1:0.3", [0.1, 0.3], [0.05, 0.4]),
        ("@0.1:0.3", [0.05, 0.4], [0.2]),  # inverted: alert inside
        ("", [0, 1e9], []),  # no threshold
    ],
)
def test_nagios_ranges(text, inside, outside):
    found = monitor.threshold(text, "-w")
    assert all(found.match(v) for v in inside)
    assert not any(found.match(v) for v in outside)


@pytest.mark.parametrize("text", ["abc", "1:0", "x:y", "1::2", "--", "0.5s"])
def test_bad_ranges(text):
    with pytest.raises(UsageProblem, match=f"`-c {text}` is not a Nagios range of seconds"):
        monitor.threshold(text, "-c")


@pytest.mark.parametrize(
    "text, value",
    [("livro azul", "livro azul"), ('"5"', "5"), ("5", 5), ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1})],
)  # fmt: skip
def test_input_is_json_or_text(text, value):
    assert monitor.parse_input(text) == value


@pytest.mark.parametrize("text", ['{"a": ', "[1, 2", " {oops}"])
def test_broken_json_input(text):
    with pytest.raises(UsageProblem, match="`--input` is not valid JSON"):
        monitor.parse_input(text)


def _run(monkeypatch, answer: Answer, **options):
    monkeypatch.setattr(monitor, "_ask", lambda target: answer)
    plugin = monitor.check(Target("http://server"), **options)
    plugin()
    return plugin.exitcode, plugin.summary_str, plugin.perfdata


def test_ok_line_and_perfdata(monkeypatch):
    ranges = {"warning": monitor.threshold("0.5", "-w"), "critical": monitor.threshold("1", "-c")}
    answer = Answer("products:3", "livro", 0.012)
    assert _run(monkeypatch, answer, expect="livro", **ranges) == (
        0,
        'products:3 answered "livro" in 12 ms',
        ["time=0.012s;0.5;1;0"],
    )


@pytest.mark.parametrize(
    "seconds, code",
    [(0.2, 0), (0.6, 1), (1.5, 2)],
)
def test_slow_answers_warn_then_go_critical(monkeypatch, seconds, code):
    ranges = {"warning": monitor.threshold("0.5", "-w"), "critical": monitor.threshold("1", "-c")}
    found, summary, _ = _run(monkeypatch, Answer("m:1", 3, seconds), **ranges)
    assert found == code
    assert summary.startswith("m:1 answered 3 in ")


@pytest.mark.parametrize(
    "value, expect, code",
    [
        ("livro", "livro", 0),
        ("livro", "game", 2),
        (3, "3", 0),
        (3, "3.0", 0),  # numbers compare as numbers
        (0.25, "0.3", 2),
        (True, "true", 0),
        ([0.1, 0.9], "[0.1, 0.9]", 0),
        ({"a": 1}, "a", 2),
    ],
)
def test_expected_answers(monkeypatch, value, expect, code):
    assert _run(monkeypatch, Answer("m:1", value, 0.01), expect=expect)[0] == code


def test_problems_are_critical_or_unknown(monkeypatch):
    failed = Answer("m", problem="cannot connect to `http://server/v2`: connection refused")
    assert _run(monkeypatch, failed)[:2] == (2, failed.problem)
    usage = Answer("m", problem="name one with `--model`", unknown=True)
    assert _run(monkeypatch, usage)[:2] == (3, usage.problem)
    assert _run(monkeypatch, failed)[2] == []  # no time without an answer


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Missing argument `URL`"),
        (["http://h", "-w", "abc"], "`-w abc` is not a Nagios range"),
        (["http://h", "-c", "2:1"], "`-c 2:1` is not a Nagios range"),
        (["http://h", "-t", "0"], "`-t 0` is not a number of seconds above 0"),
        (["http://h", "-t", "soon"], "`-t soon` is not a number of seconds above 0"),
        (["http://h", "-t", "inf"], "`-t inf` is not a number of seconds above 0"),
        (["http://h", "--bogus"], "No such option: --bogus"),
        (["http://h", "-m"], "Option `-m` requires an argument"),
        (["http://h", "-i", "{broken"], "`--input` is not valid JSON"),
        (["ftp://h"], "`ftp://h` is no http:// or https:// URL"),
        (["localhost:8080"], "`localhost:8080` is no http:// or https:// URL"),
    ],
)
def test_bad_arguments_are_unknown(args, message):
    result = CliRunner().invoke(app, ["check", *args])
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("CAIS UNKNOWN - "), lines
    assert message in lines[0]
