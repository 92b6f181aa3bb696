"""Requirements as people write them, built on the real engine: included files, local
packages, lock files, pyproject versions, and the Dockerfile cais writes under plain
`docker build`. Packages come from PyPI through this machine's proxy (`--ca-cert`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from cais.builders.buildkit import find_buildkit_cli
from tests.support import unavailable

pytestmark = pytest.mark.engine

# Projects with lock files made by uv and Poetry (see the README there).
PROJECTS = Path(__file__).parent / "projects"

SCRIPT = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(name, importlib.import_module(name).VALUE)\n"


@pytest.fixture(params=["buildkit", "classic"])
def builder(request) -> str:
    if request.param == "buildkit" and find_buildkit_cli() is None:
        unavailable("no docker CLI that can build with BuildKit")
    return request.param


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _package(folder: str, name: str, value: str) -> dict[str, str]:
    """A local package folder built with setuptools."""
    return {
        f"{folder}/pyproject.toml": '[build-system]\nrequires = ["setuptools>=64"]\n'
        'build-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n',
        f"{folder}/{name}/__init__.py": f"VALUE = {value!r}\n",
    }


def _run(engine, tag: str, *command: str) -> str:
    return engine.containers.run(tag, list(command), remove=True).decode()


def test_included_files_and_local_packages_are_installed(
    tmp_path, cais, engine, base_image, image_name, builder, proxy
):
    project = _write(
        tmp_path / "app",
        {
            # (an editable package's folder is not named as the package: the program's
            # folder would hold a namespace package of that name)
            "requirements.txt": "-r reqs/base.txt\n./mypkg\n-e ./editable-src\n",
            "reqs/base.txt": "-c ../constraints.txt\nsix\n",
            "constraints.txt": "six==1.16.0\n",
            "script.py": SCRIPT,
            **_package("mypkg", "mypkg", "local"),
            **_package("editable-src", "edited", "editable"),
        },
    )
    tag = f"{image_name}:1"
    done = cais("build", str(project), "-t", tag, "--builder", builder, *proxy)
    assert done.returncode == 0, done.stderr
    said = _run(engine, tag, "python", "script.py", "mypkg", "edited")
    assert said == "mypkg local\nedited editable\n"
    six = "import six; print(six.__version__)"
    assert _run(engine, tag, "python", "-c", six).strip() == "1.16.0"  # the constraint held

    # An edit of an included file reaches the dependency layer (it is part of its COPY).
    (project / "constraints.txt").write_text("six==1.15.0\n")
    again = cais("build", str(project), "-t", f"{image_name}:2", "--builder", builder, *proxy)
    assert again.returncode == 0, again.stderr
    assert _run(engine, f"{image_name}:2", "python", "-c", six).strip() == "1.15.0"


@pytest.mark.parametrize("example", ["uv-locked", "poetry-locked"])
def test_a_lock_file_is_installed_as_locked_and_the_version_is_the_tag(
    tmp_path, cais, engine, base_image, image_name, builder, proxy, example
):
    project = tmp_path / image_name  # the image's name
    shutil.copytree(PROJECTS / example, project)
    done = cais("build", str(project), "--builder", builder, *proxy)
    assert done.returncode == 0, done.stderr
    tag = f"{image_name}:1.2.0"  # and pyproject.toml's version
    assert done.stdout.strip() == tag
    assert _run(engine, tag, "python", "main.py").strip() == "1.16.0"
    # The lock tool and the exported file were only there for the install step.
    left = "ls -A /tmp; pip list 2>/dev/null | grep -ci -e '^uv ' -e '^poetry' || true"
    assert _run(engine, tag, "sh", "-c", left).split() == ["0"]


def test_a_uv_lock_with_a_local_package_installs_it(
    tmp_path, cais, engine, base_image, image_name, builder, proxy
):
    project = tmp_path / "app"
    shutil.copytree(PROJECTS / "uv-local", project)
    done = cais("build", str(project), "-t", f"{image_name}:1", "--builder", builder, *proxy)
    assert done.returncode == 0, done.stderr
    assert _run(engine, f"{image_name}:1", "python", "main.py") == "locked local 1.16.0\n"


def _wheel(path: Path, name: str, value: str) -> None:
    """A wheel written by hand: installing it needs no index, which a plain `docker build`
    here cannot reach."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as wheel:
        for name_in_wheel, text in files.items():
            wheel.writestr(name_in_wheel, text)


@pytest.mark.parametrize(
    ("requirements", "imports"),
    [("", ()), ("./dist/wheeled-1.0-py3-none-any.whl\n", ("wheeled",))],
    ids=["no packages", "a local wheel"],
)
def test_the_dockerfile_cais_writes_builds_with_plain_docker_build(
    tmp_path, cais, engine, base_image, image_name, requirements, imports
):
    docker = "/usr/bin/docker"
    if not os.access(docker, os.X_OK):
        unavailable(f"no docker CLI at {docker}")
    project = _write(tmp_path / "app", {"requirements.txt": requirements, "script.py": SCRIPT})
    _wheel(project / "dist/wheeled-1.0-py3-none-any.whl", "wheeled", "from a wheel")
    (project / "cais.yaml").write_text(
        f"entrypoint: [{', '.join(['python', 'script.py', *imports])}]\n"
    )
    expected = "".join(f"{name} from a wheel\n" for name in imports)
    written = tmp_path / "written" / "Dockerfile"
    written.parent.mkdir()
    assert cais("dockerfile", str(project), "-o", str(written)).returncode == 0

    # docker itself, with nothing of cais (nor the proxy settings: pip needs no index here)
    plain = subprocess.run(
        [docker, "build", "-f", str(written), "-t", f"{image_name}:plain", str(project)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert plain.returncode == 0, plain.stderr
    assert engine.containers.run(f"{image_name}:plain", remove=True).decode() == expected

    done = cais("build", str(project), "-t", f"{image_name}:cais")
    assert done.returncode == 0, done.stderr
    assert engine.containers.run(f"{image_name}:cais", remove=True).decode() == expected

    # Kept in the project, it is the project's own Dockerfile, and `cais build` builds it too.
    written.rename(project / "Dockerfile")
    own = cais("build", str(project), "-t", f"{image_name}:own")
    assert own.returncode == 0, own.stderr
    assert "built with the project's own `Dockerfile`" in own.stderr
    assert engine.containers.run(f"{image_name}:own", remove=True).decode() == expected
