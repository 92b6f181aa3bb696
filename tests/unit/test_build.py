"""cais.build and cais.builders: choosing a builder, the secrets mode, and the build request."""

from __future__ import annotations

import pytest

import cais.build as build_module
import cais.builders.buildkit as buildkit
import cais.builders.select as builders
from cais.build import BuildOptions, build_project, default_tag, dockerfile_for
from cais.builders.base import BuilderChoice, BuildResult, SilentProgress
from cais.builders.buildkit import BuildKitBuilder, BuildKitCLI
from cais.builders.classic import ClassicBuilder
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE, SecretsMode
from cais.builders.pip_settings import PipSettings
from cais.builders.proof import check_in_engine, discard
from cais.builders.select import secrets_mode_for, select_builder
from cais.errors import BuildError, PlanError
from cais.project import load_project

CLI = BuildKitCLI("/opt/docker", True, "28.2.2")


@pytest.fixture
def no_cli(monkeypatch):
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: None)


@pytest.fixture
def with_cli(monkeypatch):
    monkeypatch.setattr(buildkit, "find_buildkit_cli", lambda: CLI)


def test_auto_prefers_buildkit(with_cli):
    builder = select_builder(lambda: object(), BuilderChoice.AUTO)
    assert isinstance(builder, BuildKitBuilder)
    assert builder.cli == CLI
    assert builder.name == "buildkit"


def test_auto_falls_back_to_classic(no_cli):
    client = object()
    builder = select_builder(lambda: client)
    assert isinstance(builder, ClassicBuilder)
    assert builder.client is client
    assert builder.name == "classic"


def test_classic_on_request(with_cli):
    assert isinstance(select_builder(lambda: object(), BuilderChoice.CLASSIC), ClassicBuilder)


def test_buildkit_on_request_without_a_cli(no_cli):
    with pytest.raises(BuildError) as caught:
        select_builder(lambda: object(), BuilderChoice.BUILDKIT)
    assert caught.value.message == "No docker CLI that can build with BuildKit was found"
    assert "--builder classic" in caught.value.hint


@pytest.mark.parametrize(
    ("name", "has_pip", "mode"),
    [
        ("buildkit", True, SecretsMode.BUILDKIT),
        ("classic", True, SecretsMode.STAGE),
        ("buildkit", False, SecretsMode.NONE),
        ("classic", False, SecretsMode.NONE),
    ],
)
def test_secrets_mode_for(name, has_pip, mode):
    class Named:
        pass

    builder = Named()
    builder.name = name
    assert secrets_mode_for(builder, has_pip) is mode


@pytest.fixture
def project(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "",
            "script.py": "",
            "cais.yaml": 'name: hello\nversion: "2.1"\npython: "3.12"\n',
        },
    )
    return load_project(tmp_path)


def test_default_tag(project):
    assert default_tag(project) == "hello:2.1"


def test_dockerfile_for(project):
    loaded, text = dockerfile_for(project.path, tags=("127.0.0.1:5000/team/app:3",))
    assert loaded.name == "hello"
    assert 'org.opencontainers.image.title="127.0.0.1:5000/team/app"' in text
    assert 'org.opencontainers.image.version="3"' in text
    assert "FROM python:3.12-slim" in text
    assert "--mount=type=secret" not in text
    assert "--mount=type=secret" in dockerfile_for(project.path, secrets=SecretsMode.BUILDKIT)[1]


def test_dockerfile_for_a_bad_tag(project):
    with pytest.raises(PlanError, match="`Bad:1` has capital letters"):
        dockerfile_for(project.path, tags=("Bad:1",))
    with pytest.raises(PlanError, match="is not a valid image name"):
        dockerfile_for(project.path, tags=("bad!:1",))


class RecordingBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = []

    def build(self, request, progress):
        self.requests.append(request)
        return BuildResult("sha256:" + "0" * 64, request.tags, self.name, 0.1)


@pytest.mark.parametrize(
    ("name", "mode_text"), [("buildkit", "--mount=type=secret"), ("classic", "AS dependencies")]
)
def test_build_project_request(project, monkeypatch, name, mode_text):
    builder = RecordingBuilder(name)
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    pip = PipSettings(index_url="https://i.example/simple")
    options = BuildOptions(
        tags=("hello", "user/hello:2"), platform="linux/arm64", build_args={"A": "1"}, no_cache=True
    )
    result = build_project(object(), project, options, SilentProgress(), pip)
    (request,) = builder.requests
    assert request.tags == ("hello:latest", "user/hello:2")
    assert result.tags == request.tags
    assert request.context == project.path
    assert request.platform == "linux/arm64"
    assert request.build_args == {"A": "1"}
    assert request.no_cache is True
    assert request.pip == pip
    assert request.default_ignore == DEFAULT_DOCKERIGNORE
    assert request.dockerfile is None
    assert mode_text in request.dockerfile_text
    assert 'org.opencontainers.image.title="hello"' in request.dockerfile_text
    assert 'org.opencontainers.image.version="latest"' in request.dockerfile_text


def test_build_project_default_tag_and_no_pip(project, monkeypatch):
    builder = RecordingBuilder("buildkit")
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    build_project(object(), project, BuildOptions(), SilentProgress(), PipSettings())
    (request,) = builder.requests
    assert request.tags == ("hello:2.1",)
    assert request.build_args == {}
    assert "secret" not in request.dockerfile_text.lower()


def test_build_project_with_its_own_dockerfile(tmp_path, write, monkeypatch):
    write(tmp_path, {"Dockerfile": "FROM scratch\n"})
    own = load_project(tmp_path)
    builder = RecordingBuilder("classic")
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    build_project(object(), own, BuildOptions(tags=("own:1",)), SilentProgress(), PipSettings())
    (request,) = builder.requests
    assert request.dockerfile == tmp_path.resolve() / "Dockerfile"
    assert request.dockerfile_text is None
    assert request.pip == PipSettings()
    assert request.default_ignore is None


MOUNTS = (
    "RUN --mount=type=secret,id=cais-pip.conf --mount=type=secret,id=cais-ca.pem \\\n"
    "    PIP_CONFIG_FILE=/run/secrets/cais-pip.conf pip install -r requirements.txt\n"
)
PIP = PipSettings(ca_bundle=b"pem", ca_sources=("proxy.pem",), index_url="https://i.example/s")


def _own(tmp_path, write, dockerfile: str):
    write(tmp_path, {"Dockerfile": f"FROM python:3.11-slim\n{dockerfile}"})
    return load_project(tmp_path)


@pytest.mark.parametrize(
    "dockerfile",
    [
        MOUNTS,
        "RUN --mount=type=secret,id=cais-ca.pem PIP_CERT=/run/secrets/cais-ca.pem pip install x\n",
        "RUN --mount=id=cais-pip.conf,type=secret,required=true \\\n    pip install x\n",
    ],
)
def test_a_projects_own_dockerfile_that_mounts_pip_settings_gets_them(
    tmp_path, write, monkeypatch, dockerfile
):
    builder = RecordingBuilder("buildkit")
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    own = _own(tmp_path, write, dockerfile)
    build_project(object(), own, BuildOptions(tags=("own:1",)), SilentProgress(), PIP)
    assert builder.requests[0].pip == PIP
    assert build_module.pip_settings_unused(own, PIP) is None


@pytest.mark.parametrize(
    "dockerfile",
    [
        "RUN pip install -r requirements.txt\n",
        "RUN --mount=type=secret,id=token cat /run/secrets/token\n",
        "RUN --mount=type=cache,id=cais-pip.conf,target=/root/.cache pip install x\n",
    ],
)
@pytest.mark.parametrize("name", ["buildkit", "classic"])
def test_a_projects_own_dockerfile_that_mounts_no_pip_settings_is_told_so(
    tmp_path, write, monkeypatch, dockerfile, name
):
    builder = RecordingBuilder(name)
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    own = _own(tmp_path, write, dockerfile)
    build_project(object(), own, BuildOptions(tags=("own:1",)), SilentProgress(), PIP)
    assert builder.requests[0].pip == PipSettings()
    assert build_module.pip_settings_unused(own, PIP) == (
        "`Dockerfile` mounts no pip settings (the build secrets `cais-pip.conf` and "
        "`cais-ca.pem`), so its pip steps run without CA certificates from `proxy.pem` and "
        "a package index"
    )
    assert build_module.pip_settings_unused(own, PipSettings()) is None


def test_the_classic_builder_refuses_an_own_dockerfile_that_mounts_pip_settings(
    tmp_path, write, monkeypatch
):
    builder = RecordingBuilder("classic")
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    own = _own(tmp_path, write, MOUNTS)
    with pytest.raises(BuildError) as caught:
        build_project(object(), own, BuildOptions(tags=("own:1",)), SilentProgress(), PIP)
    assert caught.value.message == (
        "`Dockerfile` mounts the pip settings as build secrets, which the classic builder "
        "cannot pass"
    )
    assert "--builder buildkit" in caught.value.hint
    assert builder.requests == []
    # without settings there is nothing to pass: the build goes ahead
    build_project(object(), own, BuildOptions(tags=("own:1",)), SilentProgress(), PipSettings())
    assert builder.requests[0].pip == PipSettings()


def test_build_project_bad_platform(project, monkeypatch):
    builder = RecordingBuilder("buildkit")
    monkeypatch.setattr(builders, "select_builder", lambda client, choice: builder)
    with pytest.raises(PlanError, match="is not a platform cais knows"):
        build_project(
            object(), project, BuildOptions(platform="amd64"), SilentProgress(), PipSettings()
        )
    assert builder.requests == []


# --- the serving image's check, with a fake engine ---------------------------------------------


class FakeContainer:
    def __init__(self, status: int = 0, stderr: bytes = b"", interrupt: bool = False) -> None:
        self.status, self.stderr, self.interrupt = status, stderr, interrupt
        self.removed = False

    def start(self) -> None:
        pass

    def wait(self) -> dict:
        if self.interrupt:
            raise KeyboardInterrupt
        return {"StatusCode": self.status}

    def logs(self, *, stdout: bool, stderr: bool) -> bytes:
        assert stderr and not stdout
        return self.stderr

    def remove(self, *, force: bool) -> None:
        self.removed = force


class FakeImage:
    def __init__(self, tags: list[str]) -> None:
        self.tags = tags


class FakeEngine:
    def __init__(self, container: FakeContainer | None = None, tags: list[str] | None = None):
        self.container = container
        self.image_tags = tags or []
        self.removed: list[str] = []
        self.containers = self.images = self

    def create(self, image: str, command: list[str]) -> FakeContainer:
        assert command[-1] == "--check"
        self.command = command
        return self.container  # type: ignore[return-value]

    def get(self, image_id: str) -> FakeImage:
        return FakeImage(self.image_tags)

    def remove(self, image_id: str) -> None:
        self.removed.append(image_id)


def test_a_model_that_fails_in_the_image_is_named_and_its_container_removed():
    container = FakeContainer(1, b"loading\nerror: `m:2` cannot predict its input example\n")
    with pytest.raises(BuildError) as caught:
        check_in_engine(FakeEngine(container), "sha256:new", "m:2")
    assert caught.value.message == (
        "The model `m:2` does not work inside the image built for it, so the image was not kept"
    )
    assert caught.value.log_tail == ["loading", "error: `m:2` cannot predict its input example"]
    assert container.removed


def test_an_image_of_several_models_checks_them_all_and_names_them_when_one_fails():
    from cais.builders.proof import check_command

    folders = ("/model/m-1", "/model/m-2")
    engine = FakeEngine(FakeContainer(1, b"error: `m:2` cannot predict its input example\n"))
    with pytest.raises(BuildError) as caught:
        check_in_engine(engine, "sha256:new", ("m:1", "m:2"), command=check_command(folders))
    assert engine.command == ["python", "-m", "cais.server", *folders, "--check"]
    assert caught.value.message == (
        "One of the models `m:1`, `m:2` does not work inside the image built for them, so the "
        "image was not kept"
    )
    assert caught.value.log_tail == ["error: `m:2` cannot predict its input example"]


def test_an_interrupted_check_leaves_no_container():
    container = FakeContainer(interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        check_in_engine(FakeEngine(container), "sha256:new", "m:2")
    assert container.removed


def test_a_passing_check_removes_its_container_too():
    container = FakeContainer(0)
    check_in_engine(FakeEngine(container), "sha256:new", "m:2")
    assert container.removed


def test_an_image_that_failed_is_removed_unless_a_tag_holds_it():
    untagged = FakeEngine()
    discard(untagged, "sha256:new")
    assert untagged.removed == ["sha256:new"]
    held = FakeEngine(tags=["m:1"])  # the very image a tag already named: not this build's
    discard(held, "sha256:old")
    assert held.removed == []
