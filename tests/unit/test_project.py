"""cais.project.load_project: Python version, dependencies, entrypoint, config errors, git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cais.bases
import cais.project as project_module
from cais.bases import Bases
from cais.errors import ProjectError
from cais.project import (
    CONFIG_FILE,
    KNOWN_PYTHONS,
    Dependencies,
    DependencyKind,
    image_name_from,
    load_project,
    running_python,
)

SCRIPT = {"requirements.txt": "", "script.py": "print('hi')\n"}


@pytest.fixture
def running_311(monkeypatch: pytest.MonkeyPatch) -> str:
    """Pretend the running interpreter is 3.11, whatever runs the tests."""
    monkeypatch.setattr(project_module, "running_python", lambda: "3.11")
    return "3.11"


@pytest.fixture(autouse=True)
def site_pythons(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Pythons whose base image this site has (every known one unless a test removes
    some); the pythons asked about are recorded as the list's `asked` attribute."""
    have = _Have(KNOWN_PYTHONS)

    def available(pythons):
        have.asked.append(list(pythons))
        return Bases(tuple(p for p in pythons if p in have), ("the Docker Engine", "Docker Hub"))

    monkeypatch.setattr(cais.bases, "available_pythons", available)
    return have


class _Have(list):
    def __init__(self, pythons) -> None:
        super().__init__(pythons)
        self.asked: list[list[str]] = []


def error_of(path: Path) -> ProjectError:
    with pytest.raises(ProjectError) as caught:
        load_project(path)
    return caught.value


# --- Python version -------------------------------------------------------------------------


def test_python_from_cais_yaml(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'python: "3.12"\n', ".python-version": "3.10\n"})
    project = load_project(tmp_path)
    assert (project.python, project.python_source) == ("3.12", "cais.yaml")


def test_python_from_cais_yaml_drops_the_patch_release(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'python: "3.12.4"\n'})
    assert load_project(tmp_path).python == "3.12"


def test_python_version_file_keeps_major_minor(tmp_path, write):
    write(tmp_path, {**SCRIPT, ".python-version": "3.10.4\n"})
    project = load_project(tmp_path)
    assert (project.python, project.python_source) == ("3.10", ".python-version")


def test_python_version_file_wins_over_requires_python(tmp_path, write, running_311):
    write(
        tmp_path,
        {
            **SCRIPT,
            ".python-version": "3.12\n",
            "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.9"\n',
        },
    )
    assert load_project(tmp_path).python == "3.12"


@pytest.mark.parametrize("text", ["pypy\n", "\n", "3\n", "latest\n"])
def test_bad_python_version_file(tmp_path, write, text):
    write(tmp_path, {**SCRIPT, ".python-version": text})
    error = error_of(tmp_path)
    assert ".python-version" in error.message
    assert "does not hold a Python version" in error.message
    assert error.hint


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        (">=3.9", "3.11"),  # the running interpreter fits
        (">=3.10,<3.12", "3.11"),
        ("<3.11", "3.10"),  # the highest known release that fits
        (">=3.12,<3.14", "3.13"),
        ("==3.9.*", "3.9"),
        (">=3.12", KNOWN_PYTHONS[-1]),
    ],
)
def test_python_from_requires_python(tmp_path, write, running_311, requires, expected):
    write(
        tmp_path,
        {
            **SCRIPT,
            "pyproject.toml": f'[project]\nname = "x"\nrequires-python = "{requires}"\n',
        },
    )
    project = load_project(tmp_path)
    assert (project.python, project.python_source) == (expected, "pyproject.toml requires-python")


def test_requires_python_that_nothing_satisfies(tmp_path, write, running_311):
    write(
        tmp_path, {**SCRIPT, "pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=4"\n'}
    )
    error = error_of(tmp_path)
    assert "No known Python release satisfies" in error.message
    assert ">=4" in error.message


@pytest.mark.parametrize(
    ("requires", "have", "expected"),
    [
        (">=3.9", ["3.9", "3.11"], "3.11"),  # the running Python, which the site has
        (">=3.9", ["3.9", "3.10"], "3.10"),  # else the newest the site has
        ("<3.11", ["3.9", "3.11"], "3.9"),  # 3.10 fits but cannot be had
        (">=3.10,<3.13", ["3.12"], "3.12"),
    ],
)
def test_requires_python_picks_a_python_whose_base_image_can_be_had(
    tmp_path, write, running_311, site_pythons, requires, have, expected
):
    site_pythons[:] = have
    write(tmp_path, {**SCRIPT, "pyproject.toml": f'[project]\nrequires-python = "{requires}"\n'})
    assert load_project(tmp_path).python == expected


def test_the_running_python_is_asked_for_first_then_the_newest(
    tmp_path, write, running_311, site_pythons
):
    write(tmp_path, {**SCRIPT, "pyproject.toml": '[project]\nrequires-python = ">=3.10"\n'})
    load_project(tmp_path)
    newest_first = [p for p in reversed(KNOWN_PYTHONS) if p not in ("3.9", "3.11")]
    assert site_pythons.asked == [["3.11", *newest_first]]


@pytest.mark.parametrize(
    ("requires", "images"),
    [
        (">=3.12", "`python:3.14-slim`, `python:3.13-slim`, `python:3.12-slim`"),
        ("==3.10.*", "`python:3.10-slim`"),
    ],
)
def test_requires_python_with_no_base_image_here_is_one_sentence(
    tmp_path, write, running_311, site_pythons, requires, images
):
    site_pythons[:] = ["3.9", "3.11"]
    write(tmp_path, {**SCRIPT, "pyproject.toml": f'[project]\nrequires-python = "{requires}"\n'})
    error = error_of(tmp_path)
    assert error.message == (
        f"None of the base images {images} that `requires-python = {requires!r}` allows is in "
        "the Docker Engine or Docker Hub"
    )
    for remedy in ("docker pull python:", "CAIS_BASE_REGISTRY", "CAIS_PYTHONS", "`python:`"):
        assert remedy in error.hint


@pytest.mark.parametrize(
    "files",
    [
        {CONFIG_FILE: "base_image: registry.example/py:3.13\n"},  # brings its own Python
        {"Dockerfile": "FROM scratch\n"},
    ],
)
def test_an_own_base_image_needs_no_python_base_here(tmp_path, write, site_pythons, files):
    site_pythons[:] = []
    write(
        tmp_path, {**SCRIPT, **files, "pyproject.toml": '[project]\nrequires-python = ">=3.13"\n'}
    )
    assert load_project(tmp_path).python in ("3.13", "3.14")
    assert site_pythons.asked == []


def test_cais_pythons_names_the_site_s_pythons(
    tmp_path, write, running_311, site_pythons, monkeypatch
):
    site_pythons[:] = []  # not asked: CAIS_PYTHONS is the user's word
    write(tmp_path, {**SCRIPT, "pyproject.toml": '[project]\nrequires-python = ">=3.10"\n'})
    monkeypatch.setenv("CAIS_PYTHONS", "3.9, 3.10,3.12")
    assert load_project(tmp_path).python == "3.12"
    assert site_pythons.asked == []
    monkeypatch.setenv("CAIS_PYTHONS", "3.9")
    error = error_of(tmp_path)
    assert error.message == (
        "None of the Pythons CAIS_PYTHONS names (3.9) satisfies `requires-python = '>=3.10'`"
    )
    assert "CAIS_PYTHONS" in error.hint


def test_an_explicit_python_is_not_second_guessed(tmp_path, write, site_pythons):
    site_pythons[:] = []
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'python: "3.12"\n'})
    assert load_project(tmp_path).python == "3.12"
    assert site_pythons.asked == []


def test_invalid_requires_python(tmp_path, write):
    write(
        tmp_path, {**SCRIPT, "pyproject.toml": '[project]\nname = "x"\nrequires-python = "three"\n'}
    )
    error = error_of(tmp_path)
    assert "requires-python" in error.message
    assert "invalid" in error.message


def test_requires_python_with_a_patch_level_lower_bound(tmp_path, write):
    major, minor = sys.version_info[:2]
    spec = f">={major}.{minor}.1,<{major}.{minor + 1}"
    write(
        tmp_path,
        {**SCRIPT, "pyproject.toml": f'[project]\nname = "x"\nrequires-python = "{spec}"\n'},
    )
    assert load_project(tmp_path).python == f"{major}.{minor}"


def test_python_defaults_to_the_running_interpreter(tmp_path, write):
    write(tmp_path, SCRIPT)
    project = load_project(tmp_path)
    assert project.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert project.python == running_python()
    assert project.python_source == "the running Python"


# --- dependencies ---------------------------------------------------------------------------


def test_requirements_txt(tmp_path, write):
    write(tmp_path, {"requirements.txt": "requests\n", "script.py": ""})
    assert load_project(tmp_path).dependencies == Dependencies(
        DependencyKind.REQUIREMENTS, "requirements.txt", files=("requirements.txt",)
    )


def test_requirements_named_in_cais_yaml(tmp_path, write):
    write(
        tmp_path,
        {
            "reqs/prod.txt": "requests\n",
            "requirements.txt": "ignored\n",
            "script.py": "",
            CONFIG_FILE: "requirements: reqs/prod.txt\n",
        },
    )
    assert load_project(tmp_path).dependencies == Dependencies(
        DependencyKind.REQUIREMENTS, "reqs/prod.txt", files=("reqs/prod.txt",)
    )


def test_requirements_named_in_cais_yaml_must_exist(tmp_path, write):
    write(
        tmp_path, {"script.py": "", "requirements.txt": "", CONFIG_FILE: "requirements: prod.txt\n"}
    )
    error = error_of(tmp_path)
    assert "`prod.txt` named in cais.yaml does not exist" in error.message
    assert "requirements:" in error.hint


def test_pyproject_dependencies(tmp_path, write):
    write(
        tmp_path,
        {
            "script.py": "",
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["requests>=2", "rich"]\n',
        },
    )
    deps = load_project(tmp_path).dependencies
    assert deps == Dependencies(
        DependencyKind.PYPROJECT,
        "pyproject.toml",
        packages=("requests>=2", "rich"),
        installable=False,
        files=("pyproject.toml",),
    )


def test_pyproject_with_build_system_is_installable(tmp_path, write):
    write(
        tmp_path,
        {
            "script.py": "",
            "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
            '[project]\nname = "x"\ndependencies = ["rich"]\n',
        },
    )
    deps = load_project(tmp_path).dependencies
    assert deps.kind is DependencyKind.PYPROJECT
    assert deps.installable is True
    assert deps.packages == ("rich",)


def test_pyproject_without_dependencies(tmp_path, write):
    write(tmp_path, {"script.py": "", "pyproject.toml": '[project]\nname = "x"\n'})
    deps = load_project(tmp_path).dependencies
    assert deps.kind is DependencyKind.PYPROJECT
    assert deps.packages == ()


def test_requirements_txt_wins_over_pyproject(tmp_path, write):
    write(
        tmp_path,
        {
            **SCRIPT,
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["rich"]\n',
        },
    )
    assert load_project(tmp_path).dependencies.kind is DependencyKind.REQUIREMENTS


def test_pyproject_dependencies_must_be_strings(tmp_path, write):
    write(
        tmp_path,
        {"script.py": "", "pyproject.toml": '[project]\nname = "x"\ndependencies = "rich"\n'},
    )
    assert "must be a list of strings" in error_of(tmp_path).message


def test_invalid_pyproject(tmp_path, write):
    write(tmp_path, {**SCRIPT, "pyproject.toml": "[project\n"})
    assert "is not valid TOML" in error_of(tmp_path).message


@pytest.mark.parametrize(
    "files",
    [
        {"script.py": ""},
        {"script.py": "import json, os\nfrom pathlib import Path\n"},
        {
            "main.py": "import helpers\nfrom pkg import tool\n",
            "helpers.py": "import csv\n",
            "pkg/__init__.py": "",
            "pkg/tool.py": "import sqlite3\n",
        },
        {"main.py": "import os\n", "tests/test_main.py": "import pytest\n"},
    ],
)
def test_a_program_of_the_standard_library_needs_no_requirements(tmp_path, write, files):
    write(tmp_path, files)
    assert load_project(tmp_path).dependencies == Dependencies(DependencyKind.NONE, "")


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"script.py": "import numpy as np\n"}, "`numpy` (script.py)"),
        (
            {"main.py": "import helpers\n", "helpers.py": "from flask import Flask\n"},
            "`flask` (helpers.py)",
        ),
        ({"script.py": "import requests\nimport yaml\n"}, "`requests` (script.py), `yaml`"),
    ],
)
def test_no_requirements_for_a_program_that_imports_packages(tmp_path, write, files, named):
    write(tmp_path, files)
    error = error_of(tmp_path)
    assert error.message.startswith(f"`{tmp_path.resolve()}` has no requirements.txt, and its")
    assert named in error.message
    assert "requirements.txt" in error.hint


@pytest.mark.parametrize(
    "files",
    [
        {"script.py": "def (:\n"},  # what it imports is unknown
        {"script.py": "", CONFIG_FILE: "entrypoint: [gunicorn, app:app]\n"},  # a package
    ],
)
def test_no_dependencies_at_all(tmp_path, write, files):
    write(tmp_path, files)
    error = error_of(tmp_path)
    assert error.message == f"`{tmp_path.resolve()}` has no requirements.txt"
    assert "requirements.txt" in error.hint
    assert "empty file" in error.hint


# --- entrypoint -----------------------------------------------------------------------------


def test_entrypoint_string_from_cais_yaml(tmp_path, write):
    write(tmp_path, {**SCRIPT, "other.py": "", CONFIG_FILE: "entrypoint: other.py --fast\n"})
    assert load_project(tmp_path).entrypoint == ("python", "other.py", "--fast")


def test_entrypoint_list_from_cais_yaml(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'entrypoint: ["uvicorn", "app:api", "--port", "80"]\n'})
    assert load_project(tmp_path).entrypoint == ("uvicorn", "app:api", "--port", "80")


def test_entrypoint_list_starting_with_a_script(tmp_path, write):
    write(
        tmp_path, {**SCRIPT, CONFIG_FILE: "entrypoint:\n  - script.py\n  - --name\n  - Ana Maria\n"}
    )
    assert load_project(tmp_path).entrypoint == ("python", "script.py", "--name", "Ana Maria")


def test_entrypoint_string_keeps_quoted_arguments(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "entrypoint: script.py --greeting 'good morning'\n"})
    assert load_project(tmp_path).entrypoint == (
        "python",
        "script.py",
        "--greeting",
        "good morning",
    )


def test_entrypoint_script_must_exist(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "entrypoint: missing.py\n"})
    error = error_of(tmp_path)
    assert "The entrypoint `missing.py` named in cais.yaml does not exist" in error.message
    assert "entrypoint:" in error.hint


def test_the_one_script(tmp_path, write):
    write(tmp_path, {"requirements.txt": "", "train.py": ""})
    assert load_project(tmp_path).entrypoint == ("python", "train.py")


@pytest.mark.parametrize("conventional", ["main.py", "app.py", "script.py"])
def test_conventional_script_among_several(tmp_path, write, conventional):
    write(tmp_path, {"requirements.txt": "", "helpers.py": "", "zz.py": "", conventional: ""})
    assert load_project(tmp_path).entrypoint == ("python", conventional)


def test_main_py_comes_before_app_py_and_script_py(tmp_path, write):
    write(tmp_path, {"requirements.txt": "", "script.py": "", "app.py": "", "main.py": ""})
    assert load_project(tmp_path).entrypoint == ("python", "main.py")


def test_tests_and_setup_py_are_not_entrypoints(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "",
            "train.py": "",
            "test_train.py": "",
            "setup.py": "",
            "conftest.py": "",
        },
    )
    assert load_project(tmp_path).entrypoint == ("python", "train.py")


def test_several_scripts_without_a_conventional_one(tmp_path, write):
    write(tmp_path, {"requirements.txt": "", "train.py": "", "serve.py": "", "test_x.py": ""})
    error = error_of(tmp_path)
    assert "has several scripts (serve.py, train.py)" in error.message
    assert "cannot tell which to run" in error.message
    assert "entrypoint:" in error.hint


def test_no_script(tmp_path, write):
    write(tmp_path, {"requirements.txt": "", "setup.py": "", "test_a.py": ""})
    error = error_of(tmp_path)
    assert "has no Python script to run" in error.message
    assert "entrypoint:" in error.hint


def test_pyproject_script_of_an_installable_project(tmp_path, write):
    write(
        tmp_path,
        {
            "a.py": "",
            "b.py": "",
            "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
            '[project]\nname = "x"\ndependencies = []\n[project.scripts]\nserve = "x:main"\n',
        },
    )
    assert load_project(tmp_path).entrypoint == ("serve",)


# --- a project with its own Dockerfile ------------------------------------------------------


def test_own_dockerfile_needs_no_requirements_or_script(tmp_path, write):
    write(tmp_path, {"Dockerfile": "FROM scratch\n", "a.py": "", "b.py": ""})
    project = load_project(tmp_path)
    assert project.dockerfile == tmp_path.resolve() / "Dockerfile"
    assert project.entrypoint == ()
    assert project.dependencies.file == ""


def test_without_own_dockerfile(tmp_path, write):
    write(tmp_path, SCRIPT)
    project = load_project(tmp_path)
    assert project.dockerfile is None
    assert project.has_dockerignore is False
    (tmp_path / ".dockerignore").write_text(".git\n")
    assert load_project(tmp_path).has_dockerignore is True


# --- cais.yaml ------------------------------------------------------------------------------


def test_settings_of_cais_yaml(tmp_path, write):
    write(
        tmp_path,
        {
            **SCRIPT,
            CONFIG_FILE: "name: hello\nversion: 2.0.1\nbase_image: debian:12\nports: [8080]\n"
            "env:\n  A: 1\n  B:\n  C: text\n",
        },
    )
    project = load_project(tmp_path)
    assert project.name == "hello"
    assert project.config.version == "2.0.1"
    assert project.config.base_image == "debian:12"
    assert project.config.ports == [8080]
    assert project.config.env == {"A": "1", "B": "", "C": "text"}


def test_empty_cais_yaml_means_defaults(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "# nothing yet\n"})
    project = load_project(tmp_path)
    assert project.config.version == "0.1.0"
    assert project.name == image_name_from(tmp_path.name)


def test_malformed_yaml_names_the_line(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'name: app\npython: "3.11"\n  bad: indent\n'})
    error = error_of(tmp_path)
    assert error.message == f"`{tmp_path.resolve() / CONFIG_FILE}` is not valid YAML at line 3"
    assert "cais init" in error.hint


def test_yaml_that_is_not_a_mapping(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "- name\n- python\n"})
    error = error_of(tmp_path)
    assert "must be a mapping of settings" in error.message


def test_unknown_setting_is_named(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "name: app\ncolour: red\n"})
    error = error_of(tmp_path)
    assert error.message.endswith("has a setting cais does not know: `colour`")
    assert "entrypoint" in error.hint and "python" in error.hint


@pytest.mark.parametrize("value", ['"three"', '"3"', '"3.x"', '"py3.11"'])
def test_wrong_python_value(tmp_path, write, value):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"python: {value}\n"})
    error = error_of(tmp_path)
    assert "has a wrong value for `python`" in error.message
    assert "is not a Python version like 3.11" in error.message
    assert "Value error" not in error.message


@pytest.mark.parametrize("name", ["My_App", "-app", "app!", "user/app", "UPPER"])
def test_invalid_image_name(tmp_path, write, name):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"name: '{name}'\n"})
    error = error_of(tmp_path)
    assert "has a wrong value for `name`" in error.message
    assert f"`{name}` is not a valid image name" in error.message


def test_image_name_with_a_trailing_newline(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: 'name: "app\\n"\n'})
    error = error_of(tmp_path)
    assert "has a wrong value for `name`" in error.message


@pytest.mark.parametrize(
    ("text", "where", "shown"),
    [
        ("env: [A=1]\n", "env", "`env` must be a mapping"),
        ("env: {A: {b: 1}}\n", "env", "`A` has a list or mapping as its value"),
        ("entrypoint: {a: 1}\n", "entrypoint", '`{"a": 1}` is not a list'),
        ("requirements: [a.txt]\n", "requirements", '`["a.txt"]` is not text'),
        ("base_image: 3\n", "base_image", "`3` is not text"),
        ("entrypoint: python 'a\n", "entrypoint", "`python 'a` has a quote that is never closed"),
    ],
)
def test_wrong_type_of_a_setting(tmp_path, write, text, where, shown):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: text})
    error = error_of(tmp_path)
    assert error.message.startswith(f"`{tmp_path.resolve() / CONFIG_FILE}` has a wrong value")
    assert f"for `{where}`: {shown}" in error.message
    assert error.hint and "\n" not in error.message


@pytest.mark.parametrize(
    ("text", "written", "read"),
    [
        ("python: 3.10\n", "3.10", "3.1"),
        ("python: 3.9\n", "3.9", ""),
        ("python: 3\n", "3", ""),
        ("version: 1.10\n", "1.10", "1.1"),
        ("version: 1.0\n", "1.0", ""),
        ("version: 2\n", "2", ""),
        ("version: 010\n", "010", "8"),
    ],
)
def test_versions_written_as_numbers_are_refused_with_the_quoted_form(
    tmp_path, write, text, written, read
):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: text})
    error = error_of(tmp_path)
    key = text.split(":")[0]
    assert error.message == (
        f"`{tmp_path.resolve() / CONFIG_FILE}` has a wrong value for `{key}`: YAML reads the "
        f"unquoted `{written}` as the number{' ' + read if read else ''}"
    )
    assert error.hint == f'write it in quotes: `{key}: "{written}"`'


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "0"),
        ("70000", "70000"),
        ("[http]", "http"),
        ("[true]", "True"),
        ("['8080/tcp']", "8080/tcp"),
        ("[8080.5]", "8080.5"),
        ("[-1]", "-1"),
    ],
)
def test_ports_are_numbers_from_1_to_65535(tmp_path, write, value, shown):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"ports: {value}\n"})
    error = error_of(tmp_path)
    assert error.message.endswith(f"has a wrong value for `ports`: `{shown}` is not a port number")
    assert "1 to 65535" in error.hint


@pytest.mark.parametrize(
    ("value", "ports"), [("8080", [8080]), ("['8080', 9000, 8080]", [8080, 9000]), ("", [])]
)
def test_ports_in_other_shapes(tmp_path, write, value, ports):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"ports: {value}\n"})
    assert load_project(tmp_path).config.ports == ports


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Python:3.11", "`Python:3.11` has capital letters, and image names are lowercase"),
        ("py&thon:3.11", "`py&thon:3.11` is not a valid image name"),
        ("python:3.11 slim", "`3.11 slim` is not a valid tag"),
        ("https://example.com/python", "is not an image reference"),
        ("python@sha256:abc", "has a malformed digest"),
    ],
)
def test_base_image_is_an_image_reference(tmp_path, write, value, shown):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"base_image: '{value}'\n"})
    error = error_of(tmp_path)
    assert "has a wrong value for `base_image`: " in error.message
    assert shown in error.message
    assert error.hint


@pytest.mark.parametrize("value", ["'1.0 beta'", "'-rc1'", "'.1'", "'v/1'"])
def test_version_is_an_image_tag(tmp_path, write, value):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"version: {value}\n"})
    error = error_of(tmp_path)
    assert "has a wrong value for `version`: " in error.message
    assert "is not a valid tag" in error.message


@pytest.mark.parametrize(
    ("key", "meant"),
    [("port", "ports"), ("enviroment", None), ("base-image", "base_image"), ("pyhton", "python")],
)
def test_unknown_settings_are_named_with_the_closest_known_one(tmp_path, write, key, meant):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"{key}: 1\n"})
    error = error_of(tmp_path)
    assert error.message.endswith(f"has a setting cais does not know: `{key}`")
    assert error.hint == (
        f"did you mean `{meant}`?"
        if meant
        else "known settings: " + ", ".join(project_module.ProjectConfig.model_fields)
    )


def test_yaml_booleans_in_env_are_the_text_a_program_reads(tmp_path, write):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: "env: {DEBUG: true, QUIET: no, N: 1}\n"})
    assert load_project(tmp_path).config.env == {"DEBUG": "true", "QUIET": "false", "N": "1"}


def test_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    error = error_of(missing)
    assert error.message == f"The project folder `{missing}` does not exist"
    assert "cais init" in error.hint


def test_file_instead_of_folder(tmp_path):
    file = tmp_path / "script.py"
    file.write_text("")
    error = error_of(file)
    assert error.message == f"`{file}` is a file, not a project folder"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("My Project", "my-project"),
        ("hello", "hello"),
        ("__x__", "x"),
        ("!!!", "app"),
        ("a.b_c", "a.b_c"),
    ],
)
def test_image_name_from_folder(folder, expected):
    assert image_name_from(folder) == expected


def test_name_defaults_to_the_folder(tmp_path, write):
    folder = tmp_path / "Iris Classifier"
    folder.mkdir()
    write(folder, SCRIPT)
    assert load_project(folder).name == "iris-classifier"


# --- git ------------------------------------------------------------------------------------


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(folder),
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_git_revision_and_source_without_credentials(tmp_path, write):
    write(tmp_path, SCRIPT)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    git(tmp_path, "remote", "add", "origin", "https://user:tok@host.example/x.git")
    project = load_project(tmp_path)
    assert project.revision == git(tmp_path, "rev-parse", "HEAD")
    assert len(project.revision) == 40
    assert project.source_url == "https://host.example/x.git"
    assert "tok" not in project.source_url


def test_git_without_remote(tmp_path, write):
    write(tmp_path, SCRIPT)
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    project = load_project(tmp_path)
    assert project.revision == git(tmp_path, "rev-parse", "HEAD")
    assert project.source_url is None


def test_git_repository_without_commits(tmp_path, write):
    write(tmp_path, SCRIPT)
    git(tmp_path, "init", "-q")
    project = load_project(tmp_path)
    assert (project.revision, project.source_url) == (None, None)


def test_not_a_git_repository(tmp_path, write):
    write(tmp_path, SCRIPT)
    project = load_project(tmp_path)
    assert (project.revision, project.source_url) == (None, None)


def test_git_not_installed(tmp_path, write, monkeypatch):
    write(tmp_path, SCRIPT)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project = load_project(tmp_path)
    assert (project.revision, project.source_url) == (None, None)


def test_source_date_is_the_newest_source_file(tmp_path, monkeypatch):
    import os
    from datetime import datetime, timezone

    from cais.sources import source_date

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    (tmp_path / "script.py").write_text("print(1)\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_text("changes all the time")
    os.utime(tmp_path / "script.py", (1_700_000_000, 1_700_000_000))
    os.utime(tmp_path / "pkg" / "mod.py", (1_700_000_500, 1_700_000_500))
    os.utime(tmp_path / ".git" / "index", (1_800_000_000, 1_800_000_000))
    assert source_date(tmp_path) == datetime.fromtimestamp(1_700_000_500, timezone.utc)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    assert source_date(tmp_path) == datetime.fromtimestamp(1_600_000_000, timezone.utc)


# --- web apps, servers on 127.0.0.1, notebooks ----------------------------------------------

FLASK_APP = "from flask import Flask\napp = Flask(__name__)\n"


@pytest.mark.parametrize(
    ("files", "script", "server", "listed"),
    [
        (
            {"app.py": FLASK_APP, "requirements.txt": "flask\ngunicorn==27.0.1\n"},
            "app.py",
            "gunicorn",
            True,
        ),
        ({"app.py": FLASK_APP, "requirements.txt": "flask\n"}, "app.py", "gunicorn", False),
        (
            {
                "main.py": "import fastapi\napp = fastapi.FastAPI()\n",
                "requirements.txt": "fastapi[standard]\n",
            },
            "main.py",
            "uvicorn",
            True,
        ),
        (
            {
                "api.py": "from fastapi import FastAPI\napp = FastAPI()\n",
                "requirements.txt": "",
                CONFIG_FILE: "entrypoint: api.py\n",
                "other.py": "",
            },
            "api.py",
            "uvicorn",
            False,
        ),
        (
            {
                "app.py": FLASK_APP,
                "pyproject.toml": "[project]\nname='x'\ndependencies=['flask', 'gunicorn']\n",
            },
            "app.py",
            "gunicorn",
            True,
        ),
    ],
)
def test_a_script_that_defines_a_web_app(tmp_path, write, files, script, server, listed):
    write(tmp_path, files)
    project = load_project(tmp_path)
    assert project.web_app.script == script
    assert project.web_app.server == server
    assert project.server_listed is listed
    assert project.warnings == ()


@pytest.mark.parametrize(
    "config",
    ["entrypoint: [python, app.py]\n", "entrypoint: app.py --debug\n"],
)
def test_a_web_app_asked_to_run_as_a_script_runs_as_one(tmp_path, write, config):
    source = FLASK_APP + "app.run()\n"
    write(tmp_path, {"app.py": source, "requirements.txt": "flask\n", CONFIG_FILE: config})
    project = load_project(tmp_path)
    assert project.web_app is None
    assert project.entrypoint[:2] == ("python", "app.py")
    assert project.warnings == (
        "`app.py` line 3: `app.run()` listens on 127.0.0.1, which nothing outside the "
        'container can reach; pass `host="0.0.0.0"`',
    )


@pytest.mark.parametrize(
    ("entrypoint", "fix"),
    [
        ("flask run", "`--host 0.0.0.0`"),
        ("python -m flask run --port 8000", "`--host 0.0.0.0`"),
        ("uvicorn main:app", "`--host 0.0.0.0`"),
        ("gunicorn app:app", "`--bind 0.0.0.0:8000`"),
        ("python manage.py runserver", "`0.0.0.0:8000` after `runserver`"),
        ("python manage.py runserver 8080", "`0.0.0.0:8000` after `runserver`"),
    ],
)
def test_a_server_command_on_127_0_0_1_is_warned_about(tmp_path, write, entrypoint, fix):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: f"entrypoint: {entrypoint}\n"})
    [warning] = load_project(tmp_path).warnings
    assert warning == (
        f"the entrypoint `{entrypoint}` in cais.yaml listens on 127.0.0.1, which nothing "
        f"outside the container can reach; add {fix}"
    )


@pytest.mark.parametrize(
    "config",
    [
        "entrypoint: flask run --host=0.0.0.0\n",
        "entrypoint: flask run -h 0.0.0.0\n",
        "entrypoint: flask run\nenv: {FLASK_RUN_HOST: 0.0.0.0}\n",
        "entrypoint: uvicorn main:app --host 0.0.0.0\n",
        "entrypoint: gunicorn -b 0.0.0.0:80 app:app\n",
        "entrypoint: gunicorn app:app\nenv: {GUNICORN_CMD_ARGS: '--bind=0.0.0.0'}\n",
        "entrypoint: python -m http.server\n",
        "entrypoint: python manage.py runserver 0.0.0.0:8000\n",
        "entrypoint: python manage.py runserver [::]:80 --noreload\n",
    ],
)
def test_server_commands_that_every_interface_reaches(tmp_path, write, config):
    write(tmp_path, {**SCRIPT, CONFIG_FILE: config})
    assert load_project(tmp_path).warnings == ()


def test_a_gunicorn_config_file_may_bind_it(tmp_path, write):
    write(
        tmp_path,
        {
            **SCRIPT,
            "gunicorn.conf.py": "bind = '0.0.0.0:80'\n",
            CONFIG_FILE: "entrypoint: gunicorn app:app\n",
        },
    )
    assert load_project(tmp_path).warnings == ()


@pytest.mark.parametrize("notebooks", [["analysis.ipynb"], ["a.ipynb", "b.ipynb"]])
def test_a_folder_of_notebooks_says_how_to_export_them(tmp_path, write, notebooks):
    write(tmp_path, {"requirements.txt": "", **{name: "{}" for name in notebooks}})
    error = error_of(tmp_path)
    assert error.message == (
        f"`{tmp_path.resolve()}` has notebooks ({', '.join(notebooks)}) but no Python script to run"
    )
    # the notebook as the folder was given: the command works from where it is printed
    assert f"`jupyter nbconvert --to script {tmp_path / notebooks[0]}`" in error.hint


@pytest.mark.parametrize("value", [3.1, 3])
def test_a_python_version_given_as_a_number_in_code_is_refused(value):
    with pytest.raises(ValueError, match="is a number, not a version"):
        project_module.ProjectConfig(python=value)
