"""cais.errors: one exception family rooted at CaisError."""

from __future__ import annotations

import inspect

import pytest

import cais.errors as errors
from cais.errors import (
    AuthError,
    BlobError,
    BuildError,
    CaisError,
    ContainerNotFound,
    ContainerStartError,
    CredentialsError,
    DigestMismatch,
    EngineError,
    ImageNotFound,
    PlanError,
    ProjectError,
    RegistryError,
    SinkError,
)

ALL = [
    ProjectError,
    PlanError,
    EngineError,
    ImageNotFound,
    ContainerNotFound,
    ContainerStartError,
    BuildError,
    RegistryError,
    AuthError,
    DigestMismatch,
    CredentialsError,
    BlobError,
    SinkError,
]


def test_all_lists_every_error_class():
    defined = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == "cais.errors"
    }
    assert set(errors.__all__) == defined
    assert errors.__all__ == sorted(errors.__all__)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_is_a_cais_error(cls):
    assert issubclass(cls, CaisError)
    assert issubclass(cls, Exception)
    error = cls("something failed", hint="do this")
    assert isinstance(error, CaisError)
    assert error.message == "something failed"
    assert error.hint == "do this"
    assert str(error) == "something failed"
    assert repr(error) == f"{cls.__name__}('something failed', hint='do this')"
    assert error.args == ("something failed",)


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (ImageNotFound, EngineError),
        (ContainerNotFound, EngineError),
        (ContainerStartError, EngineError),
        (AuthError, RegistryError),
        (CredentialsError, RegistryError),
        (DigestMismatch, RegistryError),
    ],
)
def test_hierarchy(child, parent):
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (ProjectError, PlanError),
        (EngineError, RegistryError),
        (BuildError, EngineError),
        (ImageNotFound, ContainerNotFound),
    ],
)
def test_siblings_are_distinct(a, b):
    assert not issubclass(a, b) and not issubclass(b, a)


def test_hint_is_optional():
    error = CaisError("no hint")
    assert error.hint is None
    assert repr(error) == "CaisError('no hint', hint=None)"


def test_hint_is_keyword_only():
    with pytest.raises(TypeError):
        CaisError("message", "hint")  # type: ignore[misc]


def test_build_error_carries_step_and_log_tail():
    error = BuildError(
        "The build failed at step `[2/4] RUN x`",
        step="[2/4] RUN x",
        log_tail=["a", "b"],
        hint="fix it",
    )
    assert error.step == "[2/4] RUN x"
    assert error.log_tail == ["a", "b"]
    assert error.hint == "fix it"
    plain = BuildError("The build failed")
    assert plain.step is None
    assert plain.log_tail == []


def test_start_errors_carry_docker_exit_codes():
    assert ContainerStartError("port busy").exit_code == 125
    assert ContainerStartError("no such command", exit_code=127).exit_code == 127


def test_registry_errors_say_if_a_retry_may_help():
    assert RegistryError("down", temporary=True).temporary is True
    assert RegistryError("refused").temporary is False
    assert AuthError("wrong password").temporary is False
    assert CredentialsError("broken file", hint="fix it").hint == "fix it"
    assert DigestMismatch("wrong bytes").temporary is False


def test_registry_errors_keep_the_status_answered():
    assert RegistryError("refused", status=400).status == 400
    assert RegistryError("no answer", temporary=True).status is None
    assert AuthError("denied", status=403).status == 403


def test_errors_can_be_raised_and_caught_as_the_root():
    with pytest.raises(CaisError) as caught:
        raise ImageNotFound("The image `x` does not exist in the Docker Engine")
    assert isinstance(caught.value, EngineError)
    assert str(caught.value) == "The image `x` does not exist in the Docker Engine"


def test_docstring_draws_the_tree():
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc
