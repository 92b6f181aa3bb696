"""`cais push` and `cais pull`: failures found before any engine or registry is asked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cais.cli import app
from tests.support import assert_one_error


@pytest.fixture
def no_engine(monkeypatch, tmp_path) -> str:
    host = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "cache"))
    return host


@pytest.mark.parametrize("tag", ["x:1", "127.0.0.1:5000/team/app:2", "team/app"])
def test_a_push_of_what_cais_does_not_hold_without_an_engine_is_one_sentence(no_engine, tag):
    output = assert_one_error(CliRunner().invoke(app, ["push", tag]))
    assert "is not an image cais built or pulled, and no Docker Engine answers at" in output
    assert f"`{no_engine}` to push it from" in output
    assert "hint: build it with `cais build -t" in output


@pytest.mark.parametrize("platform", ["linux", "linux/", "a/b/c/d", ""])
def test_a_pull_for_a_platform_that_is_no_platform_is_one_sentence(no_engine, platform):
    output = assert_one_error(CliRunner().invoke(app, ["pull", "--platform", platform, "x:1"]))
    assert f"The platform `{platform}` is not of the form OS/ARCH[/VARIANT]" in output
