"""cais.cli._listing and cais.cli._each: output for scripts, and commands over several names."""

from __future__ import annotations

import json

import pytest
import typer

from cais.cli._each import each
from cais.cli._listing import Format, print_listing
from cais.errors import ContainerNotFound

RECORDS = [{"id": "aaa", "name": "web"}, {"id": "bbb", "name": "job"}, {"id": "aaa", "name": "x"}]
TABLE = [("web", "aaa"), ("job", "bbb"), ("x", "aaa")]


def test_quiet_prints_each_id_once(capsys):
    print_listing(RECORDS, ("NAME", "ID"), TABLE, quiet=True, format=Format.table)
    assert capsys.readouterr().out == "aaa\nbbb\n"


def test_json_is_one_array_of_the_records(capsys):
    print_listing(RECORDS, ("NAME", "ID"), TABLE, quiet=False, format=Format.json)
    assert json.loads(capsys.readouterr().out) == RECORDS


def test_json_of_nothing_is_an_empty_array(capsys):
    print_listing([], ("NAME", "ID"), [], quiet=False, format=Format.json)
    assert json.loads(capsys.readouterr().out) == []


def test_each_goes_on_past_failures_and_fails_at_the_end(capsys):
    done = []

    def stop(name: str) -> None:
        if name.startswith("missing"):
            raise ContainerNotFound(f"No container is named `{name}`")
        done.append(name)

    with pytest.raises(typer.Exit) as caught:
        each(["a", "missing-1", "b", "missing-2"], stop, "Stopped `{}`")
    assert caught.value.exit_code == 1
    assert done == ["a", "b"]
    err = capsys.readouterr().err
    assert err.count("error: No container is named") == 2
    assert "Stopped `a`" in err and "Stopped `b`" in err


def test_each_succeeds_quietly_when_all_do(capsys):
    each(["a", "b"], lambda name: None, "Removed `{}`")
    assert capsys.readouterr().err.count("Removed") == 2
