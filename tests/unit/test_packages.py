"""Packages for the OCI builder: scripts made for the image's interpreter, pruning by the Docker
builder's rules, a package with no wheel named in one sentence, and the layer's cache key."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from cais.builders.packages import (
    INTERPRETER,
    install,
    install_error,
    packages_key,
    prune,
    rewrite_scripts,
    split_large,
)
from cais.builders.pip_settings import PipSettings
from cais.bundle.pins import Target
from cais.errors import BuildError
from cais.image.archive import Directory, File
from cais.plan import DependencyStep
from cais.requirements import LockFile


def _record_hash(content: bytes) -> str:
    return (
        "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    )


def _installed(tmp_path: Path, scripts: dict[str, bytes]) -> tuple[Path, Path]:
    """A folder as `uv pip install --target` leaves it: packages, and scripts in `bin/`."""
    site = tmp_path / "site-packages"
    (site / "tool").mkdir(parents=True)
    (site / "tool" / "__init__.py").write_text("VALUE = 1\n")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    rows = [["tool/__init__.py", _record_hash(b"VALUE = 1\n"), "10"]]
    for name, content in scripts.items():
        (bin_folder / name).write_bytes(content)
        (bin_folder / name).chmod(0o755)
        rows.append([f"bin/{name}", _record_hash(content), str(len(content))])
    rows.append(["tool-1.0.dist-info/RECORD", "", ""])
    info = site / "tool-1.0.dist-info"
    info.mkdir()
    with (info / "RECORD").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return site, bin_folder


@pytest.mark.parametrize(
    "header",
    [
        b"#!/home/me/.venv/bin/python\n",
        b"#!/usr/bin/env python3\n",
        b"#!/home/me/a very long path/bin/python3.11 -E\n",
        b"#!/bin/sh\n'''exec' '/home/me/a very long path/bin/python' \"$0\" \"$@\"\n' '''\n",
    ],
)
def test_scripts_start_the_images_interpreter_and_record_says_so(tmp_path, header):
    body = b"import sys\nfrom tool import main\nsys.exit(main())\n"
    site, bin_folder = _installed(tmp_path, {"tool": header + body})
    rewrite_scripts(site, bin_folder)
    content = (bin_folder / "tool").read_bytes()
    assert content == f"#!{INTERPRETER}\n".encode() + body
    assert os.access(bin_folder / "tool", os.X_OK)
    rows = list(csv.reader((site / "tool-1.0.dist-info" / "RECORD").read_text().splitlines()))
    script = [row for row in rows if row[0].endswith("/tool")]
    # From /usr/local/lib/pythonX.Y/site-packages, the script is in /usr/local/bin.
    assert script == [["../../../bin/tool", _record_hash(content), str(len(content))]]
    assert ["tool/__init__.py", _record_hash(b"VALUE = 1\n"), "10"] in rows


def test_a_script_without_a_python_shebang_is_left_as_it_is(tmp_path):
    shell = b"#!/bin/sh\necho hello\n"
    site, bin_folder = _installed(tmp_path, {"hello": shell})
    rewrite_scripts(site, bin_folder)
    assert (bin_folder / "hello").read_bytes() == shell
    rows = (site / "tool-1.0.dist-info" / "RECORD").read_text()
    assert f"../../../bin/hello,{_record_hash(shell)},{len(shell)}" in rows


def test_rewriting_never_changes_a_file_the_install_hard_linked(tmp_path):
    """uv links installed files to its cache: the cache's copy must stay as it was."""
    original = b"#!/home/me/.venv/bin/python\nprint(1)\n"
    site, bin_folder = _installed(tmp_path, {"tool": original})
    cache = tmp_path / "uv-cache-copy"
    os.link(bin_folder / "tool", cache)
    record_cache = tmp_path / "uv-cache-record"
    os.link(site / "tool-1.0.dist-info" / "RECORD", record_cache)
    before = record_cache.read_bytes()
    rewrite_scripts(site, bin_folder)
    assert cache.read_bytes() == original
    assert record_cache.read_bytes() == before
    assert (bin_folder / "tool").read_bytes() != original


def test_test_suites_and_build_only_files_are_left_out(tmp_path):
    site = tmp_path / "site-packages"
    keep = [
        "numpy/__init__.py",
        "numpy/core/_multiarray.so",
        "numpy/core/include/numpy/arrayobject.h",  # headers stay: some packages compile them
        "testing_tools/__init__.py",
        "numpy/conftest.py",
    ]
    drop = [
        "numpy/tests/test_basic.py",
        "numpy/core/tests/data/big.npy",
        "scipy/linalg/tests/__init__.py",
        "numpy/random/_generator.pyx",
        "numpy/random/_generator.pxd",
        "numpy/__init__.pyi",
        "numpy/core/lib/libnpymath.a",
        "scipy/_lib/_template.pyx.tp",
    ]
    for name in keep + drop:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text("x")
    prune(site)
    for name in keep:
        assert (site / name).is_file(), name
    for name in drop:
        assert not (site / name).exists(), name
    assert not (site / "numpy" / "tests").exists()


# uv's own explanations (uv 0.13, `--quiet`, NO_COLOR), as `--only-binary :all:` prints them.
_HINT = (
    "\nhint: Wheels are required for `{0}` because building from source is disabled for all "
    "packages (i.e., with `--no-build`)\n"
)
_NO_WHEEL_ERRORS = [
    (
        "error: No solution found when resolving dependencies\n  cause: Because "
        "sklearn==0.0.post12 has no usable wheels and you require sklearn==0.0.post12, we can "
        "conclude that your requirements are unsatisfiable.\n" + _HINT.format("sklearn"),
        ["sklearn"],
    ),
    (
        "error: No solution found when resolving dependencies\n  cause: Because all versions of "
        "pycrypto have no usable wheels and you require pycrypto, we can conclude that your "
        "requirements are unsatisfiable.\n" + _HINT.format("pycrypto"),
        ["pycrypto"],
    ),
    (  # the explanation alone, as a transitive requirement may give it
        "error: No solution found when resolving dependencies\n  cause: Because "
        "numpy==1.21.0 has no usable wheels and tool==1.0 depends on numpy==1.21.0, we can "
        "conclude that tool==1.0 cannot be used.\n",
        ["numpy"],
    ),
]


@pytest.mark.parametrize(("stderr", "names"), _NO_WHEEL_ERRORS)
def test_a_package_without_a_wheel_is_named_with_the_docker_remedy(stderr, names):
    error = install_error(stderr, Target("3.11", "x86_64"))
    assert error.packages == names
    assert error.message.startswith(f"`{names[0]}` has no wheel for Python 3.11 on linux/x86_64")
    assert "`--builder docker`" in (error.hint or "")
    assert "\n" not in error.message


def test_another_uv_failure_keeps_uv_s_reason():
    stderr = (
        "error: No solution found when resolving dependencies\n  cause: Because "
        "no-such-package-cais was not found in the package registry and you require "
        "no-such-package-cais, we can conclude that your requirements are unsatisfiable.\n"
    )
    error = install_error(stderr, Target("3.11", "aarch64"))
    assert error.packages == []
    assert error.message.startswith("uv could not install the packages for Python 3.11 on ")
    assert "no-such-package-cais was not found in the package registry" in error.message


@pytest.mark.parametrize(
    ("step", "named"),
    [
        (DependencyStep(files=("pyproject.toml", "uv.lock"), lock=LockFile.UV), "`uv.lock`"),
        (
            DependencyStep(files=("pyproject.toml", "poetry.lock"), lock=LockFile.POETRY),
            "`poetry.lock`",
        ),
        (
            DependencyStep(files=("requirements.txt",), folders=("mypkg",), requirements="r"),
            "`mypkg/`",
        ),
    ],
)
def test_what_must_be_built_in_the_image_is_refused_before_uv_runs(tmp_path, step, named):
    with pytest.raises(BuildError) as caught:
        install(
            step, project=tmp_path, target=Target("3.11"), pip=PipSettings(), into=tmp_path / "x"
        )
    assert named in caught.value.message
    assert "`--builder docker`" in (caught.value.hint or "")
    assert not (tmp_path / "x").exists()


# --- the packages layer's cache key -----------------------------------------------------------


@pytest.fixture
def no_index_settings(monkeypatch):
    """The index comes from the test, not from this machine's environment."""
    for name in (
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_INDEX_URL",
        "UV_INDEX",
        "UV_EXTRA_INDEX_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def _key(project: Path, **changes) -> str:
    step = DependencyStep(files=("requirements.txt",), requirements="requirements.txt")
    arguments = {"target": Target("3.11"), "pip": PipSettings(), "created": 1, **changes}
    return packages_key(step, project=project, **arguments)


def test_the_key_follows_what_goes_into_the_layer(tmp_path, no_index_settings):
    project = tmp_path / "a"
    project.mkdir()
    (project / "requirements.txt").write_text("humanize==4.12.3\n")
    key = _key(project)
    assert _key(project, target=Target("3.12")) != key
    assert _key(project, target=Target("3.11", "aarch64")) != key
    assert _key(project, created=2) != key
    assert _key(project, pip=PipSettings(index_url="https://mirror.example/simple")) != key
    (project / "requirements.txt").write_text("humanize==4.12.2\n")
    assert _key(project) != key


def test_the_key_ignores_where_and_when_the_files_are(tmp_path, no_index_settings):
    first = tmp_path / "a"
    first.mkdir()
    (first / "requirements.txt").write_text("humanize==4.12.3\n")
    (first / "script.py").write_text("print(1)\n")
    key = _key(first)
    os.utime(first / "requirements.txt", (1, 1))
    (first / "script.py").write_text("print(2)\n")  # the code is another layer's business
    assert _key(first) == key
    second = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, second, copy_function=shutil.copy)
    assert _key(second) == key
    # A CA certificate changes how uv reaches the index, not what it installs.
    assert _key(first, pip=PipSettings(ca_bundle=b"-----BEGIN CERTIFICATE-----")) == key


def test_large_distributions_get_layers_of_their_own(tmp_path):
    site = "usr/local/lib/python3.11/site-packages"
    big = b"x" * 100
    record = "numpy/__init__.py,,\nnumpy/core/_m.so,,\n../../../bin/f2py,,\nnumpy-2.2.6.dist-info/RECORD,,\n"
    entries = {
        f"{site}/numpy": Directory(),
        f"{site}/numpy/__init__.py": File(big),
        f"{site}/numpy/core/_m.so": File(big),
        "usr/local/bin/f2py": File(b"#!/usr/local/bin/python\n"),
        f"{site}/numpy-2.2.6.dist-info/RECORD": File(record.encode()),
        f"{site}/six.py": File(b"small"),
        f"{site}/six-1.16.0.dist-info/RECORD": File(b"six.py,,\nsix-1.16.0.dist-info/RECORD,,\n"),
    }
    groups = split_large(entries, site, large=150)
    assert [name for name, _ in groups] == ["", "numpy-2.2.6"]
    rest, numpy = groups[0][1], groups[1][1]
    assert sorted(numpy) == sorted(
        [
            f"{site}/numpy/__init__.py",
            f"{site}/numpy/core/_m.so",
            "usr/local/bin/f2py",
            f"{site}/numpy-2.2.6.dist-info/RECORD",
        ]
    )
    assert sorted(rest) == sorted(
        [f"{site}/numpy", f"{site}/six.py", f"{site}/six-1.16.0.dist-info/RECORD"]
    )
    # Nothing is lost and nothing is in two layers.
    assert {**rest, **numpy} == entries and not set(rest) & set(numpy)
    assert [name for name, _ in split_large(entries, site, large=10_000)] == [""]
