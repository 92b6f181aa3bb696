"""Requirements as people write them: includes, local packages, pyproject versions, lock files
(cais.requirements, and how cais.project and the Dockerfile use them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cais.build import dockerfile_for
from cais.builders.dockerfile import SecretsMode, render_dockerfile
from cais.cli import app
from cais.errors import ProjectError
from cais.plan import plan_project
from cais.project import DependencyKind, load_project
from cais.requirements import LockFile, read_requirements
from tests.support import assert_one_error


def error_of(path) -> ProjectError:
    with pytest.raises(ProjectError) as caught:
        load_project(path)
    return caught.value


# --- includes -------------------------------------------------------------------------------


def test_included_files_are_followed_relative_to_the_file_that_includes_them(tmp_path, write):
    write(
        tmp_path,
        {
            "reqs/prod.txt": "-r base.txt\n--constraint ../constraints.txt\nrich\n",
            "reqs/base.txt": "-r common/shared.txt\nsix\n",
            "reqs/common/shared.txt": "-c ../../constraints.txt\nhumanize\n",
            "constraints.txt": "six<2\n",
        },
    )
    found = read_requirements(tmp_path, "reqs/prod.txt")
    # each file once, the first one first (a file included twice is read once)
    assert found.files == (
        "reqs/prod.txt",
        "reqs/base.txt",
        "constraints.txt",
        "reqs/common/shared.txt",
    )
    assert found.folders == ()


def test_included_files_are_in_the_dependency_layer(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "-r reqs/base.txt\n-c constraints.txt\n",
            "reqs/base.txt": "six\n",
            "constraints.txt": "six<2\n",
            "script.py": "",
        },
    )
    _, text = dockerfile_for(tmp_path)
    lines = text.splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    copies = [line for line in lines[:install] if line.startswith("COPY")]
    assert copies == [
        "COPY requirements.txt constraints.txt ./",
        "COPY reqs/base.txt ./reqs/base.txt",
    ]
    assert "rebuilt only when requirements.txt or reqs/base.txt or constraints.txt" in " ".join(
        line.lstrip("# ") for line in lines
    )


def test_an_include_from_the_web_is_left_to_pip(tmp_path, write):
    write(tmp_path, {"requirements.txt": "-r https://example.com/base.txt\nsix\n"})
    assert read_requirements(tmp_path, "requirements.txt").files == ("requirements.txt",)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"requirements.txt": "six\n-r base.txt\n"},
            "`base.txt`, included by `requirements.txt` (line 2), does not exist",
        ),
        (
            {"requirements.txt": "--requirement=reqs/x.txt\n"},
            "`reqs/x.txt`, included by `requirements.txt` (line 1), does not exist",
        ),
        (
            {"requirements.txt": "-c constraints.txt\n"},
            "`constraints.txt`, included by `requirements.txt` (line 1), does not exist",
        ),
        (
            {"requirements.txt": "-r base.txt\n", "base.txt": "six\n-r extra.txt\n"},
            "`extra.txt`, included by `base.txt` (line 2), does not exist",
        ),
    ],
)
def test_a_missing_included_file_is_one_sentence(tmp_path, write, files, expected):
    write(tmp_path, {**files, "script.py": ""})
    error = error_of(tmp_path)
    assert error.message == expected
    assert error.hint == "create it, or remove that line"


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        ({"requirements.txt": "-r requirements.txt\n"}, "`requirements.txt` → `requirements.txt`"),
        (
            {"requirements.txt": "-r base.txt\n", "base.txt": "-r requirements.txt\n"},
            "`requirements.txt` → `base.txt` → `requirements.txt`",
        ),
        (
            {
                "requirements.txt": "-r a/one.txt\n",
                "a/one.txt": "-c ../b/two.txt\n",
                "b/two.txt": "-r ../a/one.txt\n",
            },
            "`requirements.txt` → `a/one.txt` → `b/two.txt` → `a/one.txt`",
        ),
    ],
)
def test_included_files_in_a_cycle_are_one_sentence(tmp_path, write, files, cycle):
    write(tmp_path, {**files, "script.py": ""})
    error = error_of(tmp_path)
    assert error.message == f"The requirement files include each other in a cycle: {cycle}"


@pytest.mark.parametrize(
    "line", ["-r ../shared/base.txt", "-c ../constraints.txt", "-r ../project/../shared/base.txt"]
)
def test_an_included_file_outside_the_project_is_one_sentence(tmp_path, write, line):
    write(tmp_path, {"shared/base.txt": "six\n", "constraints.txt": "six\n"})
    project = write(tmp_path / "project", {"requirements.txt": f"{line}\n", "script.py": ""})
    error = error_of(project)
    assert error.message.endswith(f"is outside the project folder `{project}`")
    assert error.message.startswith(f"`{line.split()[1]}`, included by `requirements.txt`")


def test_a_requirement_file_named_outside_the_project_is_one_sentence(tmp_path, write):
    write(tmp_path, {"outside.txt": "six\n"})
    project = write(
        tmp_path / "project", {"script.py": "", "cais.yaml": "requirements: ../outside.txt\n"}
    )
    assert error_of(project).message == (
        f"`../outside.txt` is outside the project folder `{project}`"
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not a requirement ===", "Expected semicolon (after name with no version specifier)"),
        ("https://example.com/x.whl", "x.whl is not a valid wheel filename"),
    ],
)
def test_a_line_pip_cannot_read_is_one_sentence(tmp_path, write, line, reason):
    write(tmp_path, {"requirements.txt": f"six\n{line}\n", "script.py": ""})
    error = error_of(tmp_path)
    assert error.message == f"Line 2 of `requirements.txt` is not a valid requirement: `{line}`"
    assert error.hint.startswith(f"pip reads it as: {reason}")
    assert "\n" not in error.hint and not error.hint.endswith(".")


# --- local packages -------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["./mypkg", "-e ./mypkg", "file:mypkg", "./mypkg[extra]"])
def test_a_local_package_folder_is_copied_and_installed(tmp_path, write, line):
    write(
        tmp_path,
        {"requirements.txt": f"six\n{line}\n", "mypkg/pyproject.toml": "", "script.py": ""},
    )
    project = load_project(tmp_path)
    assert project.dependencies.folders == ("mypkg",)
    text = render_dockerfile(plan_project(project))
    lines = text.splitlines()
    install = next(i for i, text_line in enumerate(lines) if "pip install" in text_line)
    assert "COPY mypkg ./mypkg/" in lines[:install]
    assert "COPY requirements.txt ./" in lines[:install]
    # in the throw-away stage too, where it is found from the same folder
    staged = render_dockerfile(plan_project(project), secrets=SecretsMode.STAGE)
    stage = staged.split("\nFROM ")[1]
    assert "WORKDIR /app" in stage and "COPY mypkg ./mypkg/" in stage


def test_a_local_wheel_is_copied_as_a_file(tmp_path, write):
    write(
        tmp_path,
        {
            "requirements.txt": "./dist/pkg-1.0-py3-none-any.whl\n",
            "dist/pkg-1.0-py3-none-any.whl": "",
            "script.py": "",
        },
    )
    deps = load_project(tmp_path).dependencies
    assert deps.files == ("requirements.txt", "dist/pkg-1.0-py3-none-any.whl")
    assert deps.folders == ()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("./mypkg", "`./mypkg`, named in `requirements.txt` (line 1), does not exist"),
        ("-e ./libs/x", "`./libs/x`, named in `requirements.txt` (line 1), does not exist"),
        ("../lib", "`../lib`, named in `requirements.txt` (line 1), is outside the project folder"),
        (
            "-e ../lib",
            "`../lib`, named in `requirements.txt` (line 1), is outside the project folder",
        ),
        (
            "file:///srv/pkg",
            "`/srv/pkg`, named in `requirements.txt` (line 1), is an absolute path, which does "
            "not exist inside the image",
        ),
        (
            "pkg @ file:///srv/pkg",
            "`/srv/pkg`, named in `requirements.txt` (line 1), is an absolute path, which does "
            "not exist inside the image",
        ),
    ],
)
def test_a_local_package_that_cannot_reach_the_image_is_one_sentence(
    tmp_path, write, line, expected
):
    write(tmp_path, {"lib/setup.py": ""})
    project = write(tmp_path / "project", {"requirements.txt": f"{line}\n", "script.py": ""})
    assert error_of(project).message.startswith(expected)


# --- pyproject.toml ---------------------------------------------------------------------------


def test_the_pyproject_version_is_the_default_tag(tmp_path, write):
    pyproject = '[project]\nname = "x"\nversion = "2.3.1"\n'
    project = load_project(write(tmp_path, {"script.py": "", "pyproject.toml": pyproject}))
    assert project.version == "2.3.1"
    plan = plan_project(project)
    assert plan.tag == "2.3.1"
    assert plan.labels["org.opencontainers.image.version"] == "2.3.1"
    assert plan_project(project, tag="9").tag == "9"  # -t wins


def test_the_cais_yaml_version_wins_over_pyproject(tmp_path, write):
    write(
        tmp_path,
        {
            "script.py": "",
            "cais.yaml": "version: 0.1.0\n",
            "pyproject.toml": '[project]\nname = "x"\nversion = "2.3.1"\n',
        },
    )
    assert load_project(tmp_path).version == "0.1.0"


def test_a_dynamic_version_is_named_in_a_note(tmp_path, write):
    pyproject = '[project]\nname = "x"\ndynamic = ["version"]\n'
    project = load_project(write(tmp_path, {"script.py": "", "pyproject.toml": pyproject}))
    assert project.version == "0.1.0"
    assert project.notes == (
        "the version in pyproject.toml is dynamic, which cais does not compute: the image is "
        "tagged `0.1.0` (give `-t NAME:TAG`, or `version:` in cais.yaml)",
    )


def test_poetry_dependencies_without_a_lock_file_are_one_sentence(tmp_path, write):
    write(
        tmp_path,
        {"script.py": "", "pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\n'},
    )
    error = error_of(tmp_path)
    assert "lists its packages under `[tool.poetry]`" in error.message
    assert "poetry lock" in error.hint


# --- lock files -------------------------------------------------------------------------------

PYPROJECT = '[project]\nname = "x"\nversion = "1.0"\ndependencies = ["six"]\n'


@pytest.mark.parametrize("lock", list(LockFile))
def test_a_lock_file_is_installed_as_locked(tmp_path, write, lock):
    write(tmp_path, {"script.py": "", "pyproject.toml": PYPROJECT, lock.value: ""})
    deps = load_project(tmp_path).dependencies
    assert deps.kind is DependencyKind.PYPROJECT
    assert deps.lock is lock
    assert deps.files == ("pyproject.toml", lock.value)
    for mode in SecretsMode:
        text = render_dockerfile(plan_project(load_project(tmp_path)), secrets=mode)
        install = next(block for block in text.split("\nRUN ")[1:] if "cais-locked" in block)
        assert "--frozen" in install if lock is LockFile.UV else "--only main" in install
        assert "hashes" not in install  # pip checks the locked hashes
        # the tool and the exported file are gone by the end of the same step
        assert "rm -rf /tmp/cais-lock-tool /tmp/cais-locked.txt" in install
        assert "pip install --no-cache-dir" in install and "-r /tmp/cais-locked.txt" in install
        # the unlocked `dependencies` of pyproject.toml are not installed on their own
        assert " six" not in text


def test_requirements_txt_wins_over_a_lock_file(tmp_path, write):
    write(
        tmp_path,
        {"script.py": "", "requirements.txt": "six\n", "pyproject.toml": PYPROJECT, "uv.lock": ""},
    )
    assert load_project(tmp_path).dependencies.lock is None


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("Pipfile.lock", "a Pipenv lock file"),
        ("Pipfile", "a Pipenv file"),
        ("pdm.lock", "a PDM lock file"),
        ("environment.yml", "a conda environment"),
        ("conda-lock.yml", "a conda lock file"),
        ("pixi.lock", "a pixi lock file"),
    ],
)
def test_an_unsupported_lock_file_is_one_sentence(tmp_path, write, name, what):
    # even beside a pyproject.toml whose unlocked dependencies cais could install
    write(tmp_path, {"script.py": "", "pyproject.toml": PYPROJECT, name: ""})
    error = error_of(tmp_path)
    assert error.message == f"`{name}` is {what}, which cais does not install"
    assert error.hint.startswith("write a requirements.txt instead")


def test_two_lock_files_are_one_sentence(tmp_path, write):
    write(
        tmp_path, {"script.py": "", "pyproject.toml": PYPROJECT, "uv.lock": "", "poetry.lock": ""}
    )
    assert "has both `uv.lock` and `poetry.lock`" in error_of(tmp_path).message


def test_a_lock_file_without_pyproject_is_one_sentence(tmp_path, write):
    write(tmp_path, {"script.py": "", "uv.lock": ""})
    assert (
        error_of(tmp_path).message == f"`uv.lock` in `{tmp_path}` has no pyproject.toml beside it"
    )


# --- on the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {"requirements.txt": "-r missing.txt\n"},
        {"requirements.txt": "-r requirements.txt\n"},
        {"requirements.txt": "../outside\n"},
        {"requirements.txt": "six\nnot a requirement ===\n"},
        {"requirements.txt": "git+https://github.com/benjaminp/six\n"},
        {"Pipfile.lock": "{}"},
    ],
)
@pytest.mark.parametrize("command", ["dockerfile", "build"])
def test_the_command_line_says_it_in_one_sentence(tmp_path, write, files, command):
    write(tmp_path / "outside", {"setup.py": ""})
    project = write(tmp_path / "project", {**files, "script.py": ""})
    assert_one_error(CliRunner().invoke(app, [command, str(project)]))


def test_the_command_line_shows_the_note_on_a_dynamic_version(tmp_path, write):
    pyproject = '[project]\nname = "x"\ndynamic = ["version"]\n'
    write(tmp_path, {"script.py": "", "pyproject.toml": pyproject})
    done = CliRunner().invoke(app, ["dockerfile", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "the version in pyproject.toml is dynamic" in done.output
    assert 'org.opencontainers.image.version="0.1.0"' in done.output


# --- what the build context leaves out ------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "path"),
    [
        ({"requirements.txt": "-r reqs/base.txt\n", "reqs/base.txt": "six\n"}, "reqs/base.txt"),
        (
            {"requirements.txt": "./dist/pkg-1.0-py3-none-any.whl\n"},
            "dist/pkg-1.0-py3-none-any.whl",
        ),
        ({"requirements.txt": "-e ./mypkg\n", "mypkg/setup.py": ""}, "mypkg"),
    ],
)
def test_a_file_the_install_needs_that_dockerignore_leaves_out_is_one_sentence(
    tmp_path, write, files, path
):
    write(tmp_path, {**files, "script.py": "", ".dockerignore": "reqs\ndist/\nmypkg\n"})
    (tmp_path / "dist").mkdir(exist_ok=True)
    (tmp_path / "dist/pkg-1.0-py3-none-any.whl").touch()
    with pytest.raises(ProjectError) as caught:
        dockerfile_for(tmp_path)
    assert caught.value.message == (
        f"`{path}` is needed to install the packages, but .dockerignore keeps it out of the build"
    )
    assert caught.value.hint.startswith(f"add `!{path}` to .dockerignore")


def test_a_file_cais_default_ignore_list_leaves_out_is_one_sentence(tmp_path, write):
    write(tmp_path, {"requirements.txt": "./pkg-1.0.tar.gz\n", "script.py": ""})
    (tmp_path / "pkg-1.0.tar.gz").touch()  # an sdist: `*.tar.gz` is on cais's list
    output = assert_one_error(CliRunner().invoke(app, ["dockerfile", str(tmp_path)]))
    assert "`pkg-1.0.tar.gz` is needed to install the packages, but cais's default" in output
    # with a .dockerignore of its own, the project decides
    (tmp_path / ".dockerignore").write_text(".git\n")
    assert CliRunner().invoke(app, ["dockerfile", str(tmp_path)]).exit_code == 0


def _uv_lock(*sources: tuple[str, str]) -> str:
    """A uv.lock of packages from these sources (name, TOML source table)."""
    packages = (f'[[package]]\nname = "{n}"\nversion = "1"\nsource = {s}\n' for n, s in sources)
    return "version = 1\n\n" + "\n".join(packages)


UV_LOCK_WITH_LOCAL_PACKAGES = _uv_lock(
    ("x", '{ editable = "." }'),
    ("member", '{ editable = "packages/member" }'),
    ("wheeled", '{ path = "dist/wheeled-1.0-py3-none-any.whl" }'),
    ("six", '{ registry = "https://pypi.org/simple" }'),
)
POETRY_LOCK_WITH_LOCAL_PACKAGES = """\
[[package]]
name = "member"
version = "0.1"

[package.source]
type = "directory"
url = "packages/member"

[[package]]
name = "wheeled"
version = "1.0"

[package.source]
type = "file"
url = "dist/wheeled-1.0-py3-none-any.whl"
"""


@pytest.mark.parametrize(
    ("lock", "text"),
    [
        (LockFile.UV, UV_LOCK_WITH_LOCAL_PACKAGES),
        (LockFile.POETRY, POETRY_LOCK_WITH_LOCAL_PACKAGES),
    ],
)
def test_local_packages_of_a_lock_file_are_copied_beside_it(tmp_path, write, lock, text):
    write(
        tmp_path,
        {
            "script.py": "",
            "pyproject.toml": PYPROJECT,
            lock.value: text,
            "packages/member/pyproject.toml": "",
            "dist/wheeled-1.0-py3-none-any.whl": "",
        },
    )
    deps = load_project(tmp_path).dependencies
    assert deps.files == ("pyproject.toml", lock.value, "dist/wheeled-1.0-py3-none-any.whl")
    assert deps.folders == ("packages/member",)
    text = render_dockerfile(plan_project(load_project(tmp_path)))
    export = text.index("cais-locked")
    assert text.index("COPY packages/member ./packages/member/") < export
    # pip cannot hash a local package: the locked versions are installed without hashes
    assert ("--no-hashes" if lock is LockFile.UV else "--without-hashes") in text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            '{ editable = "packages/gone" }',
            "`packages/gone`, a local package in `uv.lock`, does not exist",
        ),
        (
            '{ directory = "../lib" }',
            "`../lib`, a local package in `uv.lock`, is outside the project",
        ),
        (
            '{ path = "/srv/x.whl" }',
            "`/srv/x.whl`, a local package in `uv.lock`, is an absolute path",
        ),
    ],
)
def test_a_local_package_of_a_lock_file_that_cannot_reach_the_image_is_one_sentence(
    tmp_path, write, source, expected
):
    lock = _uv_lock(("p", source))
    write(tmp_path, {"lib/setup.py": ""})
    project = write(
        tmp_path / "app", {"script.py": "", "pyproject.toml": PYPROJECT, "uv.lock": lock}
    )
    assert error_of(project).message.startswith(expected)


def test_a_lock_file_that_is_not_toml_is_one_sentence(tmp_path, write):
    write(tmp_path, {"script.py": "", "pyproject.toml": PYPROJECT, "poetry.lock": "[[package\n"})
    error = error_of(tmp_path)
    assert error.message.startswith("`poetry.lock` cannot be read: ")
    assert error.hint == "make it again with `poetry lock`"


# --- packages from the web and from version control --------------------------------------

SIX = "https://files.pythonhosted.org/packages/b7/ce/149a/six-1.17.0"


@pytest.mark.parametrize(
    "line",
    [
        f"{SIX}-py2.py3-none-any.whl",  # a wheel
        f"{SIX}.tar.gz",  # an sdist
        f"six @ {SIX}-py2.py3-none-any.whl",
        "pkg @ https://example.com/pkg-1.0.zip",
        "http://example.com/pkg-1.0.tar.gz",
    ],
)
def test_a_package_from_the_web_is_left_to_pip(tmp_path, write, line):
    write(tmp_path, {"requirements.txt": f"{line}\n", "script.py": ""})
    project = load_project(tmp_path)
    assert project.dependencies.files == ("requirements.txt",)
    assert project.dependencies.folders == ()
    assert "pip install --no-cache-dir -r requirements.txt" in render_dockerfile(
        plan_project(project)
    )


@pytest.mark.parametrize(
    ("line", "tool", "release"),
    [
        ("git+https://github.com/benjaminp/six", "git", "a release"),
        ("six @ git+https://github.com/benjaminp/six@1.17.0", "git", "`six==VERSION`"),
        ("git+ssh://git@github.com/benjaminp/six.git#egg=six", "git", "`six==VERSION`"),
        ("-e git+https://github.com/benjaminp/six#egg=six", "git", "`six==VERSION`"),
        ("git+file:///srv/six#egg=six", "git", "`six==VERSION`"),
        ("hg+https://hg.example.com/repo#egg=x", "hg", "`x==VERSION`"),
        ("svn+https://svn.example.com/repo#egg=y", "svn", "`y==VERSION`"),
        ("bzr+https://bzr.example.com/repo#egg=z", "bzr", "`z==VERSION`"),
    ],
)
def test_a_package_from_version_control_is_one_sentence(tmp_path, write, line, tool, release):
    write(tmp_path, {"requirements.txt": f"six\n{line}\n", "script.py": ""})
    error = error_of(tmp_path)
    assert error.message == (
        f"`{line}`, named in `requirements.txt` (line 2), is fetched with `{tool}`, which the "
        "slim Python base image does not have"
    )
    assert error.hint == (
        f"install {release} from the package index or the URL of a wheel instead; or set "
        f"`base_image:` in cais.yaml to an image that has `{tool}`"
    )


UV_GIT_LOCK = _uv_lock(("six", '{ git = "https://github.com/benjaminp/six?rev=1.17.0#ebd9b39" }'))
POETRY_GIT_LOCK = """\
[[package]]
name = "six"
version = "1.17.0"

[package.source]
type = "git"
url = "https://github.com/benjaminp/six"
reference = "1.17.0"
"""


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "pyproject.toml": '[project]\nname = "x"\nversion = "1"\n'
                'dependencies = ["six @ git+https://github.com/benjaminp/six"]\n'
            },
            "`six @ git+https://github.com/benjaminp/six`, a dependency in `pyproject.toml`, "
            "is fetched with `git`",
        ),
        (
            {"pyproject.toml": PYPROJECT, "uv.lock": UV_GIT_LOCK},
            "`six`, locked in `uv.lock` from `https://github.com/benjaminp/six?rev=1.17.0#ebd9b39`,"
            " is fetched with `git`",
        ),
        (
            {"pyproject.toml": PYPROJECT, "poetry.lock": POETRY_GIT_LOCK},
            "`six`, locked in `poetry.lock` from `https://github.com/benjaminp/six`, is fetched "
            "with `git`",
        ),
    ],
    ids=["pyproject", "uv.lock", "poetry.lock"],
)
def test_a_dependency_or_lock_from_version_control_is_one_sentence(tmp_path, write, files, message):
    write(tmp_path, {**files, "script.py": ""})
    error = error_of(tmp_path)
    assert error.message == f"{message}, which the slim Python base image does not have"
    assert "`base_image:` in cais.yaml" in error.hint


@pytest.mark.parametrize(
    "files",
    [
        {"requirements.txt": "six @ git+https://github.com/benjaminp/six@1.17.0\n"},
        {"pyproject.toml": PYPROJECT, "uv.lock": UV_GIT_LOCK},
    ],
)
def test_a_projects_own_base_image_may_fetch_from_version_control(tmp_path, write, files):
    write(tmp_path, {**files, "script.py": "", "cais.yaml": "base_image: my/python-git:3.11\n"})
    text = render_dockerfile(plan_project(load_project(tmp_path)))
    assert "FROM my/python-git:3.11" in text
