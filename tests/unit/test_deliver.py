"""cais.deliver: the sinks parsed from the options and checked before anything is built, and
`cais build`'s refusals of sinks that cannot work, each one sentence."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from cais.cli import app
from cais.deliver import Sink, SinkKind, parse_output, parse_platforms, plan_delivery
from cais.errors import EngineError, PlanError, SinkError
from cais.image.platform import Platform
from tests.support import assert_one_error

NOWHERE = "unix:///nowhere/docker.sock"
HOST = Platform.host()
OTHER = Platform.parse("linux/arm64" if HOST.architecture == "amd64" else "linux/amd64")
runner = CliRunner()


class FakeEngine:
    """A client of an engine that answered: `cais.engine.client.connect` negotiates the API
    version, so it gives none of an engine that does not answer."""

    def __init__(self, api_version: str = "1.41") -> None:
        self.api = SimpleNamespace(api_version=api_version)


def _unreachable():
    raise EngineError("The Docker Engine is not reachable")


def _never():
    raise AssertionError("the engine was asked")


@pytest.fixture
def silent_engine(tmp_path, monkeypatch):
    """DOCKER_HOST at a socket that listens and never accepts: a request would hang."""
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "docker.sock"))
    listening.listen(1)
    listening.setblocking(False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
    yield listening
    listening.close()


def _asked(listening: socket.socket) -> bool:
    try:
        listening.accept()[0].close()
    except BlockingIOError:
        return False
    return True


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", ["linux/amd64"]),
        ("linux/amd64,linux/arm64", ["linux/amd64", "linux/arm64/v8"]),
        ("linux/arm64/v8, linux/amd64", ["linux/arm64/v8", "linux/amd64"]),
    ],
)
def test_platforms_are_parsed_in_order(text, expected):
    assert [str(p) for p in parse_platforms(text)] == expected


def test_no_platform_means_the_hosts():
    assert parse_platforms(None) == ()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("linux/amd64,linux/mips", "`linux/mips` is not a platform"),
        ("linux/amd64,", "`` is not a platform"),
        ("amd64", "`amd64` is not a platform"),
        ("linux/arm64,linux/arm64/v8", "`linux/arm64/v8` is named twice"),
        ("linux/amd64,linux/amd64", "`linux/amd64` is named twice"),
    ],
)
def test_a_bad_platform_list_is_one_sentence(text, named):
    with pytest.raises(PlanError) as caught:
        parse_platforms(text)
    assert named in caught.value.message
    assert "linux/amd64" in caught.value.hint


@pytest.mark.parametrize(
    ("value", "sink"),
    [
        ("oci:out", Sink(SinkKind.OCI, Path("out"))),
        ("tar:a/b.tar", Sink(SinkKind.TAR, Path("a/b.tar"))),
    ],
)
def test_outputs_are_parsed(value, sink):
    assert parse_output(value) == sink
    assert str(sink) == value


# --- the no-sink rule and the engine --------------------------------------------------------


@pytest.mark.parametrize("load", [False, True])
def test_the_engine_gets_the_image_when_it_answers_and_is_asked_once(load):
    connected: list[FakeEngine] = []
    delivery = plan_delivery(
        tags=["app:1"], load=load, connect=lambda: connected.append(FakeEngine()) or connected[-1]
    )
    assert delivery.sinks == (Sink(SinkKind.LOAD),)
    assert connected == [delivery.engine]  # the one connection, which answered
    assert delivery.engine_only
    assert delivery.tags == ("app:1",)


@pytest.mark.parametrize("version", ["1.41", "1.39"])
def test_the_builders_engine_clients_ask_the_engine_nothing(silent_engine, version):
    """The delivery's client negotiated the API version; the builder's clients take it."""
    delivery = plan_delivery(tags=["app:1"], connect=lambda: FakeEngine(version))
    builder = delivery.builder()
    assert builder.engine is not None
    client = builder.engine()
    try:
        assert client.api.api_version == version
        assert not _asked(silent_engine)
    finally:
        client.close()


def test_with_no_sink_and_no_engine_the_sinks_are_asked_for():
    with pytest.raises(SinkError) as caught:
        plan_delivery(tags=["app:1"], connect=_unreachable)
    assert caught.value.message.startswith("No Docker Engine answers at ")
    assert "`--push`" in caught.value.hint and "`--output oci:DIR`" in caught.value.hint


def test_load_with_no_engine_says_the_engine_is_unreachable():
    with pytest.raises(EngineError):
        plan_delivery(tags=["app:1"], load=True, connect=_unreachable)


@pytest.mark.parametrize(
    ("push", "outputs"),
    [(True, []), (False, ["oci:out"]), (False, ["tar:x.tar"]), (True, ["oci:a", "tar:b"])],
)
def test_push_and_outputs_ask_nothing_of_the_engine(push, outputs):
    delivery = plan_delivery(tags=["r.example/app:1"], push=push, outputs=outputs, connect=_never)
    assert delivery.engine is None and not delivery.engine_only
    assert [sink.kind for sink in delivery.sinks] == (
        [SinkKind.PUSH] * push + [parse_output(o).kind for o in outputs]
    )


def test_a_digest_is_not_a_tag_to_deliver_to():
    with pytest.raises(PlanError):
        plan_delivery(tags=["app@sha256:" + "0" * 64], push=True, connect=_never)


# --- several platforms ----------------------------------------------------------------------


@pytest.mark.parametrize("outputs", [["tar:x.tar"], ["oci:o", "tar:x.tar"]])
def test_several_platforms_do_not_go_into_a_tarball(outputs):
    with pytest.raises(SinkError) as caught:
        plan_delivery(tags=["app:1"], outputs=outputs, platforms=(HOST, OTHER), connect=_never)
    assert "tarball holds one platform" in caught.value.message
    assert "`--output oci:DIR`" in caught.value.hint


@pytest.mark.parametrize("load", [True, False])
def test_the_engine_takes_the_hosts_platform_of_several(load):
    delivery = plan_delivery(tags=["app:1"], load=load, platforms=(OTHER, HOST), connect=FakeEngine)
    assert delivery.sinks == (Sink(SinkKind.LOAD),)


@pytest.mark.parametrize("load", [True, False])
def test_the_engine_refuses_several_platforms_without_the_hosts(load):
    third = Platform.parse("linux/arm/v7")
    with pytest.raises(SinkError) as caught:
        plan_delivery(tags=["app:1"], load=load, platforms=(OTHER, third), connect=FakeEngine)
    assert f"`{HOST}`" in caught.value.message
    assert "`--push`" in caught.value.hint


def test_one_foreign_platform_may_be_loaded():
    delivery = plan_delivery(tags=["app:1"], load=True, platforms=(OTHER,), connect=FakeEngine)
    assert delivery.sinks == (Sink(SinkKind.LOAD),)


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    """The seed project (`cais init`)."""
    assert runner.invoke(app, ["init", str(tmp_path / "hello")]).exit_code == 0
    return tmp_path / "hello"


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.setenv("CAIS_CACHE", str(tmp_path / "cache"))


def _build(project, *options):
    return runner.invoke(app, ["build", str(project), *options])


def _noted_then_one_error(result) -> tuple[str, str]:
    """The notes before the command's one error, and the error with its hint, each unwrapped."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    notes, _, error = result.output.partition("error: ")
    assert error and "error: " not in error, result.output
    return " ".join(notes.split()), " ".join(error.split())


@pytest.mark.parametrize("builder", [[], ["--builder", "oci"]])
def test_several_platforms_to_a_tarball_are_refused_before_any_download(
    project, no_engine, tmp_path, builder
):
    out = tmp_path / "image.tar"
    result = _build(
        project, *builder, "--platform", "linux/amd64,linux/arm64", "--output", f"tar:{out}"
    )
    message = assert_one_error(result)
    assert "tarball holds one platform, and `linux/amd64,linux/arm64/v8` names 2" in message
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "platforms",
    ["linux/amd64,linux/s390x", "linux/arm64,linux/riscv64", "linux/amd64,windows/amd64"],
)
def test_a_platform_without_packages_is_refused_before_any_download(
    project, no_engine, tmp_path, platforms
):
    result = _build(project, "--platform", platforms, "--output", f"oci:{tmp_path / 'o'}")
    message = assert_one_error(result)
    refused = platforms.split(",")[1]
    assert f"not `{refused}`" in message and "`--builder docker`" in message
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("sink", [["--output", "oci:o"], ["--push"], []])
def test_several_platforms_need_the_oci_builder(project, no_engine, sink):
    result = _build(project, "--builder", "docker", "--platform", "linux/amd64,linux/arm64", *sink)
    message = assert_one_error(result)
    assert "several platforms" in message or "`--output`" in message
    assert "`--builder oci`" in message


def _locked(project):
    (project / "requirements.txt").unlink()
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'hello'\nversion = '1.0'\ndependencies = ['six']\n"
    )
    (project / "uv.lock").write_text("version = 1\n")


def test_auto_says_in_one_line_why_the_docker_builder_builds(project, no_engine):
    _locked(project)
    said, error = _noted_then_one_error(_build(project))
    assert said == (
        "• building with the Docker builder: the OCI builder cannot install a project locked "
        "by `uv.lock`"
    )
    assert error.startswith("The Docker Engine at `unix:///nowhere")  # none here to build it


@pytest.mark.parametrize(
    "sink", [["--output", "oci:o"], ["--platform", "linux/amd64,linux/arm64", "--push"]]
)
def test_auto_refuses_what_the_docker_builder_cannot_do_and_says_why(project, no_engine, sink):
    _locked(project)
    message = " ".join(assert_one_error(_build(project, *sink)).split())
    assert (
        "hint: cais builds it on the Docker Engine: the OCI builder cannot install a project "
        "locked by `uv.lock`" in message
    )


def test_auto_gives_a_projects_own_dockerfile_to_the_docker_builder(project, no_engine):
    (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
    said, error = _noted_then_one_error(_build(project, "--push"))
    assert said == "• building with the Docker builder: `Dockerfile` is the project's own"
    assert error.startswith("The Docker Engine at `unix:///nowhere")


def test_auto_gives_build_arguments_to_the_docker_builder(project, no_engine):
    said, _ = _noted_then_one_error(_build(project, "--build-arg", "A=1"))
    assert said == "• building with the Docker builder: `--build-arg` is for a Dockerfile"


@pytest.mark.parametrize(
    ("builder", "sink"),
    [("docker", ("--output", "oci:o")), ("buildkit", ("--output", "tar:o.tar")),
     ("docker", ("--platform", "linux/amd64,linux/arm64"))],
)  # fmt: skip
def test_the_docker_builder_writes_no_saved_models_image_as_a_file(home, no_engine, builder, sink):
    import cais
    from tests.support import text_model

    cais.save_model(text_model(), "products", home=home)
    command = ["build", "products", "--builder", builder, *sink]
    message = assert_one_error(runner.invoke(app, command))
    assert "cais assembles itself" in message or "assembled by the OCI builder" in message
    assert "add `--builder oci`" in message


@pytest.fixture
def saved(home):
    import cais
    from tests.support import text_model

    return cais.save_model(text_model(), "products", home=home)


@pytest.mark.parametrize("builder", [[], ["--builder", "oci"]])
def test_a_saved_models_image_goes_to_the_oci_builder_and_asks_for_a_sink(
    saved, no_engine, builder
):
    notes, error = _noted_then_one_error(runner.invoke(app, ["build", saved, *builder]))
    assert "Docker builder" not in notes
    assert error.startswith("No Docker Engine answers at ")
    assert "`--push`" in error and "`--output oci:DIR`" in error


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--build-arg", "A=1"], "• building with the Docker builder: `--build-arg` is for a Dockerfile"),
        (["--builder", "docker"], ""),
        (["--builder", "classic"], ""),
    ],
)  # fmt: skip
def test_a_saved_models_image_goes_to_the_docker_builder_when_asked(
    saved, no_engine, options, said
):
    notes, error = _noted_then_one_error(runner.invoke(app, ["build", saved, *options]))
    assert notes == said
    assert error.startswith("The Docker Engine at `unix:///nowhere")


def test_the_help_names_the_sinks_and_what_auto_chooses():
    import typer.main

    command = typer.main.get_command(app).commands["build"]  # type: ignore[attr-defined]
    helps = {param.name: param.help or "" for param in command.params}
    assert "registry each tag names" in helps["push"]
    assert "no --push or --output" in helps["load"]
    assert "auto: oci for a saved model or a project it can build" in helps["builder"]
    assert "comma-separated" in helps["platform"]
