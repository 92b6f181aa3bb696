"""cais.registry.reference: parse_reference and registry_key."""

from __future__ import annotations

import pytest

from cais.errors import PlanError
from cais.registry.reference import (
    DOCKER_HUB,
    DOCKER_HUB_CONFIG_KEY,
    Reference,
    parse_reference,
    registry_key,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "name", "explicit", "shown"),
    [
        ("hello", "docker.io", "library/hello", "latest", None, "hello", False, "hello:latest"),
        ("hello:1.0", "docker.io", "library/hello", "1.0", None, "hello", False, "hello:1.0"),
        ("user/app:1.0", "docker.io", "user/app", "1.0", None, "user/app", False, "user/app:1.0"),
        (
            "docker.io/library/python:3.11",
            "docker.io",
            "library/python",
            "3.11",
            None,
            "python",
            False,
            "python:3.11",
        ),
        (
            "docker.io/python",
            "docker.io",
            "library/python",
            "latest",
            None,
            "python",
            False,
            "python:latest",
        ),
        (
            "index.docker.io/user/app",
            "docker.io",
            "user/app",
            "latest",
            None,
            "user/app",
            False,
            "user/app:latest",
        ),
        (
            "127.0.0.1:5000/x/y:2",
            "127.0.0.1:5000",
            "x/y",
            "2",
            None,
            "127.0.0.1:5000/x/y",
            True,
            "127.0.0.1:5000/x/y:2",
        ),
        (
            "localhost/app",
            "localhost",
            "app",
            "latest",
            None,
            "localhost/app",
            True,
            "localhost/app:latest",
        ),
        (
            "localhost:5000/app:v1",
            "localhost:5000",
            "app",
            "v1",
            None,
            "localhost:5000/app",
            True,
            "localhost:5000/app:v1",
        ),
        (
            "ghcr.io/org/team/app:1.2.3-rc_1",
            "ghcr.io",
            "org/team/app",
            "1.2.3-rc_1",
            None,
            "ghcr.io/org/team/app",
            True,
            "ghcr.io/org/team/app:1.2.3-rc_1",
        ),
        (
            f"hello@{DIGEST}",
            "docker.io",
            "library/hello",
            None,
            DIGEST,
            "hello",
            False,
            f"hello@{DIGEST}",
        ),
        (
            f"reg.example:443/a/b:1@{DIGEST}",
            "reg.example:443",
            "a/b",
            "1",
            DIGEST,
            "reg.example:443/a/b",
            True,
            f"reg.example:443/a/b:1@{DIGEST}",
        ),
        (
            "a.b_c__d-e--f",
            "docker.io",
            "library/a.b_c__d-e--f",
            "latest",
            None,
            "a.b_c__d-e--f",
            False,
            "a.b_c__d-e--f:latest",
        ),
        (
            "localhost:5000",
            "docker.io",
            "library/localhost",
            "5000",
            None,
            "localhost",
            False,
            "localhost:5000",
        ),
    ],
)
def test_parse(text, registry, repository, tag, digest, name, explicit, shown):
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, digest, explicit)
    assert ref.name == name
    assert str(ref) == shown


def test_no_default_tag():
    ref = parse_reference("hello", default_tag=None)
    assert ref.tag is None
    assert str(ref) == "hello"


def test_round_trip_through_str():
    for text in ("hello:1", "user/app:2", "127.0.0.1:5000/x/y:3", f"ghcr.io/o/a@{DIGEST}"):
        assert str(parse_reference(str(parse_reference(text)))) == str(parse_reference(text))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("index.docker.io/python", id="index.docker.io"),
        pytest.param("registry-1.docker.io/python", id="registry-1.docker.io"),
    ],
)
def test_docker_hub_aliases_get_the_library_prefix(text):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.name) == ("docker.io", "library/python", "python")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "`` is not an image reference"),
        (" hello", "` hello` is not an image reference"),
        ("hello\n", "`hello\n` is not an image reference"),
        ("https://reg.example/app", "`https://reg.example/app` is not an image reference"),
        ("Hello", "`Hello` has capital letters, and image names are lowercase"),
        ("user/App:1", "`user/App:1` has capital letters, and image names are lowercase"),
        (
            "reg.example/UPPER",
            "`reg.example/UPPER` has capital letters, and image names are lowercase",
        ),
        ("Bad_Name-", "`Bad_Name-` is not a valid image name"),
        ("-app", "`-app` is not a valid image name"),
        ("app-", "`app-` is not a valid image name"),
        ("a//b", "`a//b` is not a valid image name"),
        ("app/", "`app/` is not a valid image name"),
        ("a b", "`a b` is not a valid image name"),
        ("app:", "`` is not a valid tag"),
        ("app:-x", "`-x` is not a valid tag"),
        ("app:.x", "`.x` is not a valid tag"),
        ("app:a+b", "`a+b` is not a valid tag"),
        ("app:" + "x" * 129, f"`{'x' * 129}` is not a valid tag"),
        ("app@sha256:abc", "`app@sha256:abc` has a malformed digest"),
        ("app@md5:" + "0" * 32, f"`app@md5:{'0' * 32}` has a malformed digest"),
        ("app@sha256:" + "A" * 64, f"`app@sha256:{'A' * 64}` has a malformed digest"),
    ],
)
def test_invalid(text, message):
    with pytest.raises(PlanError) as caught:
        parse_reference(text)
    assert caught.value.message == message
    assert caught.value.hint


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Hello:1", "use `hello:1`"),
        ("Hello:Hello", "use `hello:Hello`"),
        ("127.0.0.1:5000/Team/App:v1", "use `127.0.0.1:5000/team/app:v1`"),
        ("App@sha256:" + "a" * 64, f"use `app@sha256:{'a' * 64}`"),
    ],
)
def test_capitals_get_the_lowercase_name_as_hint(text, hint):
    with pytest.raises(PlanError) as caught:
        parse_reference(text)
    assert "has capital letters" in caught.value.message
    assert caught.value.hint == hint


def test_longest_tag_is_accepted():
    assert parse_reference("app:" + "x" * 128).tag == "x" * 128


@pytest.mark.parametrize(
    "registry",
    [
        None,
        "",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
    ],
)
def test_registry_key_of_docker_hub(registry):
    assert registry_key(registry) == DOCKER_HUB_CONFIG_KEY == "https://index.docker.io/v1/"


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://reg.example:5000/", "reg.example:5000"),
        ("http://localhost:5000", "localhost:5000"),
        ("ghcr.io", "ghcr.io"),
    ],
)
def test_registry_key_of_other_registries(registry, key):
    assert registry_key(registry) == key


def test_docker_hub_constant():
    assert DOCKER_HUB == "docker.io"
