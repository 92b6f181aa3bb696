"""Every `--help` of cais reads: what to write (`HOST:CONTAINER`, `SECONDS`), never a
Python or click type (`<str>`, `<list[str]>`, `<bool>`, `TEXT`, `INTEGER`, `PATH`)."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from cais.cli import app

# Choices such as <auto|buildkit|classic> read well and stay.
_TYPE = re.compile(r"<(?![^>]*\|)[\w\[\], ]+>|\b(?:TEXT|INTEGER|FLOAT|BOOLEAN|PATH|FILENAME)\b")


def _paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


COMMANDS = list(_paths(typer.main.get_command(app)))


def test_every_command_is_checked():
    names = {" ".join(path) for path in COMMANDS}
    assert {"", "run", "ps", "rm", "exec", "tag", "rmi", "serve", "models import"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "cais")
def test_help_shows_no_bare_types(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert _TYPE.findall(result.output) == [], result.output


def test_options_show_what_to_write():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    for metavar in ("HOST:CONTAINER", "HOST:CONTAINER[:ro]", "KEY=VALUE", "IMAGE", "COMMAND"):
        assert metavar in result.output
    stop = CliRunner().invoke(app, ["stop", "--help"], env={"COLUMNS": "200"}).output
    assert "SECONDS" in stop and "CONTAINER..." in stop


def test_the_pattern_catches_what_typer_shows_by_default():
    for shown in ("<str>", "<list[str]>", "<bool>", "<int>", "<path>", "TEXT", "INTEGER"):
        assert _TYPE.search(f"│ --x  {shown}  help │"), shown
    assert not _TYPE.search("│ --builder  <auto|buildkit|classic>  help │")
