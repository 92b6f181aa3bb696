"""The OCI builder's serving-image pieces: the runtime and model layers and their cache keys,
the large-file rule, and the slimming on the host (strip, byte-compiling)."""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cais.builders.oci import OCIBuilder, split_model
from cais.builders.packages import (
    _loadable,
    byte_compile,
    compile_imports,
    find_python,
    module_files,
    precompile,
    strip_debug,
)
from cais.bundle.pins import Target
from cais.image.archive import Directory, File
from cais.image.blobs import BlobStore
from cais.plan.serving import plan_bundle


@pytest.fixture
def builder(tmp_path) -> OCIBuilder:
    return OCIBuilder(store=BlobStore(tmp_path / "cache"))


def _bundle(home: Path, coef: float):
    from sklearn.linear_model import LinearRegression

    import cais
    from cais.bundle.store import ModelStore

    model = LinearRegression().fit([[0.0], [1.0]], [0.0, coef])
    return ModelStore(home).get(cais.save_model(model, "scaled", home=home))


def test_the_model_layer_is_cached_by_the_files_and_changes_with_them(builder, tmp_path):
    first = _bundle(tmp_path / "home", 1.0)
    built = builder._model_layers(first, 1)
    again = builder._model_layers(first, 1)
    assert [m.cached for m in built] == [False] and [m.cached for m in again] == [True]
    assert again[0].layer.diff_id == built[0].layer.diff_id
    second = _bundle(tmp_path / "home", 2.0)
    other = builder._model_layers(second, 1)
    assert not other[0].cached and other[0].layer.diff_id != built[0].layer.diff_id
    assert "model scaled:1 in /model" in built[0].about


def test_the_layers_written_are_listed_for_the_sbom_without_reading_them(builder, tmp_path):
    from cais.image import sbom

    [made] = builder._model_layers(_bundle(tmp_path / "home", 1.0), 1)
    for blob in (made.layer.diff_id, made.layer.digest):
        builder.store.path(blob).unlink()  # listed when written: nothing reads the layer
    assert sbom.packages_in_layers([made.layer]) == []


def test_a_model_of_several_is_layered_at_its_own_folder_under_its_own_key(builder, tmp_path):
    import tarfile

    bundle = _bundle(tmp_path / "home", 1.0)
    [alone] = builder._model_layers(bundle, 1)
    [shared] = builder._model_layers(bundle, 1, "/model/scaled-1")
    assert not shared.cached  # the same files elsewhere are another layer, never /model's
    assert shared.about == "model scaled:1 in /model/scaled-1"
    with shared.layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        names = tar.getnames()
    assert "model/scaled-1/cais-model.json" in names
    assert all(n in ("model", "model/scaled-1") or n.startswith("model/scaled-1/") for n in names)
    assert shared.layer.diff_id != alone.layer.diff_id
    [again] = builder._model_layers(bundle, 1, "/model/scaled-1")
    assert again.cached and again.layer.diff_id == shared.layer.diff_id


def test_a_damaged_cached_model_layer_is_built_again(builder, tmp_path):
    bundle = _bundle(tmp_path / "home", 1.0)
    [made] = builder._model_layers(bundle, 1)
    builder.store.path(made.layer.diff_id).write_bytes(b"not the layer")
    [rebuilt] = builder._model_layers(bundle, 1)
    assert not rebuilt.cached and rebuilt.layer.diff_id == made.layer.diff_id


def test_the_runtime_layer_is_keyed_by_its_content(builder, tmp_path):
    plan = plan_bundle(_bundle(tmp_path / "home", 1.0).metadata, name="scaled", tag="1")
    first = builder._runtime_layer(tmp_path / "a" / "cais", plan, 1, None)
    second = builder._runtime_layer(tmp_path / "b" / "cais", plan, 1, None)
    assert not first.cached and second.cached
    assert second.layer.diff_id == first.layer.diff_id
    changed = builder._runtime_layer(tmp_path / "c" / "cais", plan, 2, None)  # another time
    assert not changed.cached


def test_large_model_files_get_layers_of_their_own():
    entries = {
        "model": Directory(),
        "model/cais-model.json": File(b"{}"),
        "model/weights.bin": File(b"x" * 100),
        "model/extra/more.bin": File(b"y" * 300),
        "model/small.txt": File(b"z" * 99),
    }
    groups = split_model(entries, "model", large=100)
    assert [name for name, _ in groups] == ["", "extra/more.bin", "weights.bin"]
    assert set(groups[0][1]) == {"model", "model/cais-model.json", "model/small.txt"}
    assert groups[2][1] == {"model/weights.bin": entries["model/weights.bin"]}
    assert split_model(entries, "model", large=1000) == [("", entries)]


def _shared_object() -> Path:
    """A compiled module of this interpreter's packages (an ELF shared object)."""
    import _ctypes

    return Path(_ctypes.__file__)


def test_nothing_is_stripped_where_strip_is_not_installed(tmp_path, monkeypatch):
    copy = tmp_path / "pkg" / "mod.so"
    copy.parent.mkdir()
    shutil.copyfile(_shared_object(), copy)
    before = copy.read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert strip_debug(tmp_path / "pkg") is False
    assert copy.read_bytes() == before


def test_another_machine_s_objects_are_left_to_its_own_strip(tmp_path, monkeypatch):
    from cais.builders.packages import strip_tool

    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("strip", "aarch64-linux-gnu-strip"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    assert strip_tool("aarch64") == str(tools / "aarch64-linux-gnu-strip")
    assert strip_tool("x86_64") == str(tools / "strip")  # the host's, reading its own objects
    (tools / "strip").unlink()
    (tools / "aarch64-linux-gnu-strip").unlink()
    assert strip_tool("aarch64") is None


def _binutils() -> None:
    if shutil.which("strip") is None or shutil.which("readelf") is None:
        pytest.skip("binutils is not installed: nothing is stripped")


def test_stripped_objects_still_load_and_hard_links_are_left_alone(tmp_path):
    _binutils()
    original = tmp_path / "cache" / "_ctypes.so"
    original.parent.mkdir()
    shutil.copyfile(_shared_object(), original)
    kept = original.read_bytes()
    site = tmp_path / "site"
    site.mkdir()
    linked = site / original.name
    linked.hardlink_to(original)  # as uv installs from its cache
    assert strip_debug(site) is True
    assert original.read_bytes() == kept  # the cache's copy did not change
    assert linked.stat().st_ino != original.stat().st_ino
    loads = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('_ctypes', {str(linked)!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))"
    )
    done = subprocess.run([sys.executable, "-c", loads], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_object_strip_would_make_unloadable_is_left_as_it_is(tmp_path):
    """auditwheel's patchelf appends a segment to the libraries it vendors; Debian's strip
    2.40 moves it off its alignment, and the loader then refuses the library."""
    _binutils()
    numpy = importlib.util.find_spec("numpy")
    assert numpy is not None and numpy.origin is not None
    vendored = sorted((Path(numpy.origin).parent.parent / "numpy.libs").glob("*openblas*.so"))
    if not vendored:
        pytest.skip("this numpy vendors no OpenBLAS")
    site = tmp_path / "site"
    shutil.copytree(vendored[0].parent, site / "numpy.libs")  # with the libraries it needs
    copy = site / "numpy.libs" / vendored[0].name
    before = copy.read_bytes()
    assert _loadable(shutil.which("readelf"), copy)
    assert strip_debug(site) is True
    assert _loadable(shutil.which("readelf"), copy)
    loads = f"import ctypes; ctypes.CDLL({str(copy)!r})"
    done = subprocess.run([sys.executable, "-c", loads], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert copy.read_bytes() == before or len(copy.read_bytes()) < len(before)


def test_modules_are_byte_compiled_hash_checked_for_the_image_path(tmp_path):
    folder = tmp_path / "site"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (folder / "pkg" / "broken.py").write_text("def (:\n")  # compiles at run time, as pip does
    byte_compile(folder, "/usr/local/lib/site", sys.executable)
    [pyc] = (folder / "pkg" / "__pycache__").glob("mod.*.pyc")
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source: no mtime inside
    import marshal

    code = marshal.loads(pyc.read_bytes()[16:])
    assert code.co_filename == "/usr/local/lib/site/pkg/mod.py"
    assert not list((folder / "pkg" / "__pycache__").glob("broken.*"))


def _tree(site: Path, *names: str) -> None:
    for name in names:
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text("import pkg.helper\n" if name == "pkg/sub/mod.py" else "X = 1\n")


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    _tree(
        folder,
        "pkg/__init__.py",
        "pkg/helper.py",
        "pkg/unused.py",
        "pkg/sub/__init__.py",
        "pkg/sub/mod.py",
        "pkg/fast.cpython-311-x86_64-linux-gnu.so",
        "space/inner/__init__.py",  # `space` is a namespace package: no __init__.py
        "space/inner/leaf.py",
        "single.py",
    )
    return folder


@pytest.mark.parametrize(
    ("modules", "files"),
    [
        (["pkg.sub.mod"], ["pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py"]),
        (["pkg.sub"], ["pkg/__init__.py", "pkg/sub/__init__.py"]),
        (["single", "pkg"], ["pkg/__init__.py", "single.py"]),
        (["space.inner.leaf"], ["space/inner/__init__.py", "space/inner/leaf.py"]),
        (["pkg.fast"], ["pkg/__init__.py"]),  # an extension module has nothing to compile
        (["missing.module", "pkg.gone"], ["pkg/__init__.py"]),  # not installed: left out
        ([], []),
    ],
)
def test_module_names_map_to_their_files_and_their_packages(site, modules, files):
    assert module_files(site, modules) == [site / name for name in files]


_IN_IMAGE = "/usr/local/lib/site"


def _pycs(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*.pyc"))}


def test_the_modules_imported_are_compiled_as_they_load(site):
    found = compile_imports(site, ["pkg.sub.mod", "missing.module"], sys.executable, _IN_IMAGE)
    names = {path.relative_to(site).as_posix() for path in found}
    assert names == {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py", "pkg/helper.py"}
    import marshal

    compiled = _pycs(site)
    assert {name.split(".")[0] for name in compiled} == {
        "pkg/__pycache__/__init__",
        "pkg/__pycache__/helper",
        "pkg/sub/__pycache__/__init__",
        "pkg/sub/__pycache__/mod",
    }
    for name, data in compiled.items():
        assert int.from_bytes(data[4:8], "little") == 0b01  # unchecked hash: no mtime inside
        source = name.replace("__pycache__/", "").split(".")[0] + ".py"
        assert marshal.loads(data[16:]).co_filename == f"{_IN_IMAGE}/{source}"


def _copy_packages(names: list[str], into: Path) -> None:
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations
        shutil.copytree(
            spec.submodule_search_locations[0],
            into / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )


def test_modules_compiled_as_they_load_are_those_compileall_writes(tmp_path):
    """On real packages (rich, and Pygments and markdown-it, which it imports): marshal marks
    a string as shared when it is interned, so code compiled in a process that has loaded
    other modules could differ from compileall's by those marks."""
    packages = ["rich", "pygments", "markdown_it", "mdurl"]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _copy_packages(packages, ours)
    _copy_packages(packages, theirs)
    modules = ["rich.console", "rich.syntax", "rich.markdown", "rich.traceback"]
    found = compile_imports(ours, modules, sys.executable, _IN_IMAGE)
    assert len(found) > 50 and any(p.is_relative_to(ours / "pygments") for p in found)
    byte_compile(
        theirs, _IN_IMAGE, sys.executable, files=[theirs / p.relative_to(ours) for p in found]
    )
    assert len(_pycs(ours)) == len(found)
    assert _pycs(ours) == _pycs(theirs)


@pytest.mark.parametrize(
    ("source", "compiled"),
    [
        ("import pkg.helper\nraise RuntimeError('needs the image')\n", True),
        ("import pkg.helper\nimport sys\nsys.exit(3)\n", True),
        ("import pkg.helper\nraise KeyboardInterrupt\n", True),
        ("import pkg.helper\ndef (:\n", False),  # for another Python: compiles at run time
    ],
)
def test_a_module_that_fails_to_import_leaves_what_loaded_compiled(site, source, compiled):
    (site / "pkg" / "bad.py").write_text(source)
    found = compile_imports(site, ["pkg.bad", "single"], sys.executable, _IN_IMAGE)
    names = {path.relative_to(site).as_posix() for path in found}
    assert {"pkg/__init__.py", "single.py"} <= names
    assert ("pkg/bad.py" in names) is compiled
    assert ("pkg/helper.py" in names) is compiled  # a syntax error runs nothing
    assert bool(list((site / "pkg" / "__pycache__").glob("bad.*.pyc"))) is compiled
    assert not list(site.rglob("*.pyc")) or all(
        int.from_bytes(data[4:8], "little") == 0b01 for data in _pycs(site).values()
    )


def test_the_modules_named_are_compiled_when_they_fail_to_import(site):
    (site / "pkg" / "sub" / "mod.py").write_text("raise ImportError('not here')\n")
    precompile(site, ("pkg.sub.mod",), sys.executable, Target("3.11", platform.machine()))
    assert {name.split(".")[0] for name in _pycs(site)} == {
        "pkg/__pycache__/__init__",
        "pkg/sub/__pycache__/__init__",
        "pkg/sub/__pycache__/mod",
    }


def test_another_machine_s_modules_are_compiled_without_being_imported(site):
    """An image for another machine: its packages cannot load here, so only the files of the
    modules named are compiled, and nothing of them runs."""
    ran = site.parent / "ran"
    (site / "pkg" / "sub" / "mod.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    precompile(site, ("pkg.sub.mod",), sys.executable, Target("3.11", other))
    assert not ran.exists()
    assert {name.split(".")[0] for name in _pycs(site)} == {
        "pkg/__pycache__/__init__",
        "pkg/sub/__pycache__/__init__",
        "pkg/sub/__pycache__/mod",
    }


def test_every_module_is_compiled_when_none_is_named(site):
    precompile(site, (), sys.executable, Target("3.11", platform.machine()))
    assert len(_pycs(site)) == 8  # every .py file (the .so has nothing to compile)


def test_only_the_files_named_are_byte_compiled_for_their_image_path(site):
    byte_compile(site, "/usr/local/lib/site", sys.executable, files=module_files(site, ["pkg.sub"]))
    compiled = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.pyc"))
    assert [name.split(".")[0] for name in compiled] == [
        "pkg/__pycache__/__init__",
        "pkg/sub/__pycache__/__init__",
    ]
    import marshal

    pyc = site / compiled[1]
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01
    assert (
        marshal.loads(pyc.read_bytes()[16:]).co_filename
        == "/usr/local/lib/site/pkg/sub/__init__.py"
    )


def test_a_host_python_of_the_image_s_version_is_found_or_none():
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = find_python(running)
    assert found is not None and Path(found).is_file()
    assert find_python("3.2") is None


class _Steps:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, name: str) -> None:
        self.lines.append(name)

    def log(self, line: str) -> None:
        self.lines.append(f"  {line}")


def _beside(builder, monkeypatch, tmp_path, *, packages, base):
    """`build_bundle` with its packages and its base each made by the function given."""
    from cais.builders.oci import _Made
    from cais.builders.pip_settings import PipSettings
    from cais.image.archive import write_layer

    bundle = _bundle(tmp_path / "home", 1.0)
    plan = plan_bundle(bundle.metadata, name="scaled", tag="1")
    runtime = write_layer({"opt/cais/cais/x.py": File(b"")}, store=builder.store, created=1)
    monkeypatch.setattr(builder, "_packages_layers", lambda *a, **k: packages())
    monkeypatch.setattr(builder, "_runtime_layer", lambda *a, **k: _Made(runtime, "rt", False))
    monkeypatch.setattr(builder, "_base_image", lambda *a, **k: base())
    steps = _Steps()
    image = builder.build_bundle({"/model": bundle}, plan, "", PipSettings(), steps)
    return image, steps.lines


def _no_wheel():
    from cais.errors import BuildError

    raise BuildError("`docopt` has no wheel for Python 3.11", packages=["docopt"])


def _unreadable_base():
    from cais.errors import BuildError

    raise BuildError("The base image `python:3.11-slim` could not be read")


@pytest.mark.parametrize("base", [_unreadable_base, lambda: None])
def test_a_package_s_failure_comes_first_whatever_the_base_does_beside_it(
    builder, monkeypatch, tmp_path, base
):
    from cais.errors import BuildError

    with pytest.raises(BuildError, match="`docopt` has no wheel") as raised:
        _beside(builder, monkeypatch, tmp_path, packages=_no_wheel, base=base)
    assert raised.value.packages == ["docopt"]  # what `auto` hands to the Docker builder


def test_the_base_s_failure_is_raised_once_the_packages_are_in(builder, monkeypatch, tmp_path):
    from cais.errors import BuildError

    installed = []
    with pytest.raises(BuildError, match="could not be read"):
        _beside(
            builder,
            monkeypatch,
            tmp_path,
            packages=lambda: installed.append(True) or [],
            base=_unreadable_base,
        )
    assert installed == [True]


def test_the_base_and_user_made_beside_the_packages_are_reported_with_their_times(
    builder, monkeypatch, tmp_path
):
    from cais.image.image import empty
    from cais.image.platform import Platform

    image, lines = _beside(
        builder, monkeypatch, tmp_path, packages=list, base=lambda: empty(Platform.host())
    )
    steps = [line.split("]")[0] + "]" for line in lines if line.startswith("[")]
    assert steps == ["[packages]", "[runtime]", "[base]", "[user]", "[model]"]
    base = lines.index(next(s for s in lines if s.startswith("[base]")))
    user = lines.index(next(s for s in lines if s.startswith("[user]")))
    assert re.fullmatch(r"  read in \d+\.\d+s, beside the packages", lines[base + 1])
    assert re.fullmatch(r"  made in \d+\.\d+s, beside the packages", lines[user + 1])
    history = [entry["created_by"] for entry in image.config["history"]]
    assert history[:2] == ["cais: user app (1000:1000) and its home", "cais: rt"]
