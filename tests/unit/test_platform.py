"""cais.image.platform: a platform parsed once, compared as containerd does."""

from __future__ import annotations

import pytest

from cais.errors import PlanError
from cais.image.platform import Platform


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64", "v8")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("Linux/ARM64", Platform("linux", "arm64", "v8")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64", "v8")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/arm", Platform("linux", "arm", "v7")),
    ],
)
def test_parse(text, expected):
    assert Platform.parse(text) == expected


@pytest.mark.parametrize("text", ["", "linux", "linux/", "/amd64", "linux/arm/v7/extra", "a//b"])
def test_malformed_platforms_are_one_sentence(text):
    with pytest.raises(PlanError) as caught:
        Platform.parse(text)
    assert caught.value.message == f"The platform `{text}` is not of the form OS/ARCH[/VARIANT]"
    assert "linux/amd64" in caught.value.hint


def test_printed_as_written_in_references():
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    assert str(Platform.parse("linux/arm64")) == "linux/arm64/v8"


def test_json_round_trip():
    for text in ("linux/amd64", "linux/arm64/v8", "windows/amd64"):
        platform = Platform.parse(text)
        assert Platform.from_json(platform.to_json()) == platform
    assert Platform.parse("linux/amd64").to_json() == {"architecture": "amd64", "os": "linux"}


def test_matches_index_entries():
    arm = Platform.parse("linux/arm64")
    assert arm.matches({"os": "linux", "architecture": "arm64"})
    assert arm.matches({"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert not arm.matches({"os": "linux", "architecture": "amd64"})
    assert not arm.matches({"os": "linux", "architecture": "arm64", "variant": "v7"})
    assert not arm.matches({"os": "unknown", "architecture": "unknown"})
    assert not arm.matches({})  # attestation entries have no platform


def test_host_is_a_known_go_name(monkeypatch):
    import platform as stdlib

    monkeypatch.setattr(stdlib, "machine", lambda: "aarch64")
    monkeypatch.setattr(stdlib, "system", lambda: "Linux")
    assert Platform.host() == Platform("linux", "arm64", "v8")
    monkeypatch.setattr(stdlib, "machine", lambda: "x86_64")
    assert Platform.host() == Platform("linux", "amd64")
