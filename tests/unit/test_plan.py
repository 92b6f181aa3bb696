"""cais.plan: plan_project and parse_platform."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from cais import __version__
from cais.errors import PlanError
from cais.plan import (
    APP_DIR,
    RUNTIME_USER,
    AppStep,
    DependencyStep,
    ImagePlan,
    LayerKind,
    default_base_image,
    parse_platform,
    plan_project,
)
from cais.project import load_project

CREATED = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)


@pytest.fixture
def project(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "requests\n",
            "script.py": "",
            "cais.yaml": 'name: hello\nversion: 1.2.3\npython: "3.11"\nenv:\n  A: b\nports: [8000, 9000]\n',
        },
    )
    return load_project(tmp_path)


def test_plan_of_a_requirements_project(project):
    plan = plan_project(project, created=CREATED)
    assert plan.name == "hello"
    assert plan.tag == "1.2.3"
    assert plan.reference == "hello:1.2.3"
    assert plan.base_image == "python:3.11-slim"
    assert plan.python == "3.11"
    assert plan.python_source == "cais.yaml"
    assert plan.platform is None
    assert plan.workdir == APP_DIR == "/app"
    assert plan.user == RUNTIME_USER
    assert plan.user.spec == "1000:1000"
    assert plan.env == {"A": "b"}
    assert plan.ports == (8000, 9000)
    assert plan.entrypoint == ("python", "script.py")
    assert plan.dependencies == DependencyStep(
        files=("requirements.txt",), requirements="requirements.txt"
    )
    assert plan.app == AppStep(install_project=False)
    assert plan.layers == (LayerKind.DEPENDENCIES, LayerKind.APP)


def test_name_and_tag_overrides(project):
    plan = plan_project(project, name="user/other", tag="9", created=CREATED)
    assert (plan.name, plan.tag, plan.reference) == ("user/other", "9", "user/other:9")
    assert plan.labels["org.opencontainers.image.title"] == "user/other"
    assert plan.labels["org.opencontainers.image.version"] == "9"


def test_labels_without_git(project):
    plan = plan_project(project, created=CREATED)
    assert plan.labels == {
        "org.opencontainers.image.title": "hello",
        "org.opencontainers.image.version": "1.2.3",
        "org.opencontainers.image.created": "2024-05-01T12:30:45Z",
        "dev.cais.version": __version__,
    }


def test_labels_with_git_revision_and_source(project):
    with_git = dataclasses.replace(project, revision="a" * 40, source_url="https://host/x.git")
    labels = plan_project(with_git, created=CREATED).labels
    assert labels["org.opencontainers.image.revision"] == "a" * 40
    assert labels["org.opencontainers.image.source"] == "https://host/x.git"


def test_created_defaults_to_now_in_utc(project):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    created = plan_project(project).labels["org.opencontainers.image.created"]
    after = datetime.now(timezone.utc)
    assert created.endswith("Z")
    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    assert before <= when <= after


def test_created_in_another_zone_keeps_its_offset(project):
    zone = timezone(timedelta(hours=2))
    created = plan_project(project, created=CREATED.astimezone(zone)).labels[
        "org.opencontainers.image.created"
    ]
    assert created == "2024-05-01T14:30:45+02:00"


def test_base_image_from_cais_yaml(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "",
            "script.py": "",
            "cais.yaml": "base_image: mirror.local/py:3.11\n",
        },
    )
    assert plan_project(load_project(tmp_path)).base_image == "mirror.local/py:3.11"


@pytest.mark.parametrize("python", ["3.9", "3.12", "3.14"])
def test_default_base_image(python):
    assert default_base_image(python) == f"python:{python}-slim"


def test_pyproject_project_without_dependencies(tmp_path, write):
    write(tmp_path, {"script.py": "", "pyproject.toml": '[project]\nname = "x"\n'})
    plan = plan_project(load_project(tmp_path))
    assert plan.dependencies is None
    assert plan.layers == (LayerKind.APP,)
    assert plan.app.install_project is False


def test_pyproject_project_with_dependencies(tmp_path, write):
    write(
        tmp_path,
        {
            "script.py": "",
            "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\n'
            '[project]\nname = "x"\ndependencies = ["rich", "httpx>=0.27"]\n',
        },
    )
    plan = plan_project(load_project(tmp_path))
    assert plan.dependencies == DependencyStep(
        files=("pyproject.toml",), packages=("rich", "httpx>=0.27")
    )
    assert plan.app.install_project is True


def test_project_with_own_dockerfile_has_no_plan(tmp_path, write):
    write(tmp_path, {"Dockerfile": "FROM scratch\n"})
    with pytest.raises(PlanError) as caught:
        plan_project(load_project(tmp_path))
    assert "has its own Dockerfile" in caught.value.message
    assert caught.value.hint == "remove it to let cais write one"


@pytest.mark.parametrize(
    "value", ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "windows/amd64"]
)
def test_good_platforms(project, value):
    assert parse_platform(value) == value
    assert plan_project(project, platform=value).platform == value


def test_no_platform():
    assert parse_platform(None) is None


@pytest.mark.parametrize(
    "value", ["amd64", "linux", "linux/x86_64", "Linux/amd64", "linux/arm/v9", "", "linux/amd64 "]
)
def test_bad_platform(project, value):
    with pytest.raises(PlanError) as caught:
        parse_platform(value)
    assert caught.value.message == f"`{value}` is not a platform cais knows"
    assert "linux/amd64" in caught.value.hint
    with pytest.raises(PlanError):
        plan_project(project, platform=value)


def test_plan_is_frozen(project):
    plan = plan_project(project)
    with pytest.raises(Exception, match="frozen"):
        plan.tag = "other"  # type: ignore[misc]
    assert isinstance(plan, ImagePlan)


def test_platform_with_a_trailing_newline_is_refused():
    with pytest.raises(PlanError):
        parse_platform("linux/amd64\n")


# --- web apps and programs of the standard library --------------------------------------------


def web_project(tmp_path, write, source, requirements="flask\n", config=""):
    write(tmp_path, {"app.py": source, "requirements.txt": requirements, "cais.yaml": config})
    return load_project(tmp_path)


FLASK = "from flask import Flask\napp = Flask(__name__)\n"
FASTAPI = "from fastapi import FastAPI\napp = FastAPI()\n"


@pytest.mark.parametrize(
    ("source", "config", "command", "ports"),
    [
        (FLASK, "", ("gunicorn", "--bind", "0.0.0.0:8000", "app:app"), (8000,)),
        (
            FLASK,
            "ports: [5000, 9100]\n",
            ("gunicorn", "--bind", "0.0.0.0:5000", "app:app"),
            (5000, 9100),
        ),
        (
            "from flask import Flask\ndef create_app():\n    return Flask(__name__)\n",
            "",
            ("gunicorn", "--bind", "0.0.0.0:8000", "app:create_app()"),
            (8000,),
        ),
        (FASTAPI, "", ("uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"), (8000,)),
        (
            "from fastapi import FastAPI\ndef create_app():\n    return FastAPI()\n",
            "ports: 80\n",
            ("uvicorn", "app:create_app", "--host", "0.0.0.0", "--port", "80", "--factory"),
            (80,),
        ),
    ],
)
def test_a_web_app_is_served_by_a_production_server(
    tmp_path, write, source, config, command, ports
):
    plan = plan_project(web_project(tmp_path, write, source, config=config), created=CREATED)
    assert plan.entrypoint == command
    assert plan.ports == ports
    assert f"port {ports[0]}" in plan.entrypoint_about
    assert f"-p {ports[0]}:{ports[0]}" in plan.entrypoint_about
    assert (
        plan.notes[0] == f"`app.py` defines a {'Flask' if 'flask' in source else 'FastAPI'} "
        f"app: {command[0]} serves it on port {ports[0]}"
    )


@pytest.mark.parametrize(
    ("source", "requirements", "server"),
    [(FLASK, "flask\n", "gunicorn"), (FASTAPI, "fastapi==0.115\n", "uvicorn")],
)
def test_a_server_the_requirements_do_not_list_is_installed_and_said(
    tmp_path, write, source, requirements, server
):
    plan = plan_project(web_project(tmp_path, write, source, requirements), created=CREATED)
    assert plan.dependencies.requirements == "requirements.txt"
    assert plan.dependencies.packages == plan.dependencies.added == (server,)
    assert plan.notes[1] == (
        f"`{server}` is not in requirements.txt: the image installs its newest release "
        f"(add `{server}` to requirements.txt to pin it)"
    )


def test_a_server_the_requirements_list_is_not_added(tmp_path, write):
    plan = plan_project(web_project(tmp_path, write, FLASK, "flask\ngunicorn==27.0.1\n"))
    assert plan.dependencies.packages == plan.dependencies.added == ()
    assert len(plan.notes) == 1


def test_a_pyproject_web_app_gets_its_server_beside_its_packages(tmp_path, write):
    write(
        tmp_path,
        {"app.py": FASTAPI, "pyproject.toml": "[project]\nname='x'\ndependencies=['fastapi']\n"},
    )
    plan = plan_project(load_project(tmp_path))
    assert plan.dependencies.packages == ("fastapi", "uvicorn")
    assert plan.dependencies.added == ("uvicorn",)


def test_warnings_of_the_project_reach_the_plan(tmp_path, write):
    write(
        tmp_path,
        {"main.py": "from web import app\napp.run()\n", "requirements.txt": "", "cais.yaml": ""},
    )
    plan = plan_project(load_project(tmp_path))
    assert plan.entrypoint == ("python", "main.py")
    assert plan.warnings and plan.warnings[0].startswith("`main.py` line 2: `app.run()`")


def test_a_program_of_the_standard_library_has_no_dependency_step(tmp_path, write):
    write(tmp_path, {"script.py": "import json\n"})
    plan = plan_project(load_project(tmp_path))
    assert plan.dependencies is None
    assert not plan.uses_pip
    assert plan.layers == (LayerKind.APP,)
