"""A project's packages, installed on the host for the image's Python and platform with uv.

uv installs wheels only (`--only-binary :all:`) for the target (`--python-version`,
`--python-platform`), so no emulation is needed (only a serving image for this machine's
own platform has its modules imported here, byte-compiling each as it loads).
The proxy's CA certificates and the index settings reach uv through its environment, for the
run only: they never reach the folder that becomes a layer. Then the folder is made fit for
the image: console scripts start the image's interpreter (and their `RECORD` entries say so),
and the packages' test suites and build-only files are left out, by the same rules as the
Docker builder's.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import platform
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cais import __version__
from cais.builders.dockerfile import BUILD_ONLY_SUFFIXES, TEST_SUITE_FOLDER
from cais.builders.pip_settings import PipSettings
from cais.bundle.pins import Target
from cais.errors import BuildError
from cais.image.archive import Entry, File, entries_from_folder
from cais.image.blobs import sha256_digest
from cais.image.image import canonical_json
from cais.plan import DependencyStep
from cais.uv import Index, environment, reason, uv_binary

__all__ = [
    "INTERPRETER",
    "SCRIPTS",
    "byte_compile",
    "check_supported",
    "compile_imports",
    "find_python",
    "install",
    "install_error",
    "module_files",
    "packages_key",
    "precompile",
    "prune",
    "rewrite_scripts",
    "site_packages",
    "split_large",
    "strip_debug",
    "strip_tool",
]

INTERPRETER = "/usr/local/bin/python"  # the python:X.Y-slim images' interpreter
# A distribution at least this large gets a layer of its own: an upgrade of another package
# leaves its layer (and its digest) as it was, so it is neither rebuilt nor pushed again.
LARGE = 16 << 20
SCRIPTS = "usr/local/bin"
_UV_TIMEOUT = 1800
# How uv names a package it found no wheel for: in its hint, and in its explanation.
_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([^`]+)`")
_NO_WHEEL = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==[^\s,]+)? (?:has|have) no (?:usable )?wheels"
)
_SCRIPT_SHEBANG = re.compile(rb"#![^\n]*python[^\n]*\n")
# A launcher for an interpreter path too long for a `#!` line: `/bin/sh` runs the interpreter.
_SH_TRAMPOLINE = re.compile(rb"#!/bin/sh\n'''exec' [^\n]*\n' '''\n")


def site_packages(python: str) -> str:
    """Where the python:X.Y-slim images look for packages (a path inside the image)."""
    return f"usr/local/lib/python{python}/site-packages"


def packages_key(
    deps: DependencyStep, *, project: Path, target: Target, pip: PipSettings, created: int
) -> str:
    """The layer cache's key for these packages: what goes into the layer, and nothing else.

    The requirement files by content (never by date), the packages named, the target, the
    index asked (by a hash: its URL may hold credentials), the layer's time and cais's version.
    """
    files = {}
    for name in deps.files:
        path = project / name
        files[name] = sha256_digest(path.read_bytes()) if path.is_file() else None
    index = Index.from_settings(pip)
    inputs = {
        "layer": "packages",
        "cais": __version__,
        "python": target.python,
        "platform": target.platform,
        "files": files,
        "requirements": deps.requirements,
        "packages": list(deps.packages),
        "index": sha256_digest(canonical_json([index.url, *index.extra_urls])),
        "created": created,
    }
    return sha256_digest(canonical_json(inputs)).removeprefix("sha256:")


def install(
    deps: DependencyStep,
    *,
    project: Path,
    target: Target,
    pip: PipSettings,
    into: Path,
    compile_with: str | None = None,
) -> dict[str, Entry]:
    """Install the packages of `deps` into the folder `into` and return the layer's entries
    (image path → entry): the packages in site-packages, their scripts in /usr/local/bin.
    With `deps.slim`, debugging sections are stripped and, with `compile_with` (a host
    interpreter of the target's Python), the modules byte-compiled."""
    check_supported(deps)
    site = into / "site-packages"
    command = [
        uv_binary(),
        "pip",
        "install",
        "--no-config",  # no uv settings of the project (or of the user) change what is built
        "--python",
        sys.executable,  # not searched for: any interpreter will do, only wheels are installed
        "--target",
        str(site),
        "--python-version",
        target.python,
        "--python-platform",
        target.platform,
        "--only-binary",
        ":all:",
        "--no-progress",
        "--quiet",  # errors only: their explanation becomes the sentence
    ]
    if deps.requirements:
        command += ["-r", str(project / deps.requirements)]
    command += list(deps.packages)
    env_extra = {"UV_INSECURE_HOST": " ".join(pip.trusted_hosts)} if pip.trusted_hosts else {}
    with environment(Index.from_settings(pip)) as env:
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env={**env, **env_extra},
                cwd=project,  # local wheels a requirement names are found from here, as pip does
                timeout=_UV_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(
                f"uv did not finish installing the packages for {target.where} in {_UV_TIMEOUT} s",
                hint="check the network and proxy (`--ca-cert`, `--index-url`)",
            ) from exc
    if done.returncode != 0:
        raise install_error(done.stderr, target)
    (site / ".lock").unlink(missing_ok=True)  # uv's lock of the folder, not a package file
    scripts = into / "bin"
    if (site / "bin").is_dir():
        (site / "bin").rename(scripts)
    rewrite_scripts(site, scripts)
    prune(site)
    if deps.slim:
        # strip rewrites shared objects while the modules are imported (a loader maps the
        # old file or the new one, never half of one): the imports keep one core busy.
        with ThreadPoolExecutor(max_workers=1) as pool:
            stripped = pool.submit(strip_debug, site, target.machine)
            if compile_with:
                precompile(site, deps.precompile, compile_with, target)
            stripped.result()
    entries = entries_from_folder(site, site_packages(target.python))
    if scripts.is_dir():
        entries.update(entries_from_folder(scripts, SCRIPTS))
    return entries


def precompile(site: Path, modules: tuple[str, ...], python: str, target: Target) -> None:
    """Byte-compile the installed packages for the image with `python`: what serving imports
    (`modules` and all they load, as the Docker builder compiles it), else every module."""
    in_image = "/" + site_packages(target.python)
    if not modules:
        byte_compile(site, in_image, python)
        return
    # Another machine's modules cannot be imported here: only the files of those named.
    same = target.machine == platform.machine()
    compiled = set(compile_imports(site, modules, python, in_image) if same else [])
    left = [path for path in module_files(site, modules) if path not in compiled]
    if left:  # named, but failed to import (or hung)
        byte_compile(site, in_image, python, files=left)


def install_error(stderr: str, target: Target) -> BuildError:
    """uv's failure as one sentence: a package with no wheel for the target is named, with the
    builder that can compile it."""
    why = reason(stderr)
    names = sorted({*_WHEELS_REQUIRED.findall(stderr), *_NO_WHEEL.findall(why)})
    if names:
        listed = ", ".join(f"`{name}`" for name in names)
        return BuildError(
            f"{listed} {'has' if len(names) == 1 else 'have'} no wheel for {target.where}, and "
            "the OCI builder installs wheels only",
            hint="build with `--builder docker`, which compiles it inside the image",
            packages=names,
        )
    return BuildError(
        f"uv could not install the packages for {target.where}: {why}",
        hint="check the requirements, the network and proxy (`--ca-cert`, `--index-url`)",
    )


def split_large(
    entries: dict[str, Entry], site: str, *, large: int = LARGE
) -> list[tuple[str, dict[str, Entry]]]:
    """The entries of a packages layer as layers: `("", the rest)` first, then one
    `(distribution, its files)` for each distribution of at least `large` bytes, by name.

    A distribution's files are those its `RECORD` lists; folders stay with the rest (the
    layer writer adds the parents each layer needs)."""
    owned: dict[str, list[str]] = {}
    for path, entry in entries.items():
        folder, _, name = path.rpartition("/")
        if name != "RECORD" or not folder.endswith(".dist-info") or not isinstance(entry, File):
            continue
        text = (
            entry.source.decode() if isinstance(entry.source, bytes) else entry.source.read_text()
        )
        files = [
            posixpath.normpath(posixpath.join(site, row[0]))
            for row in csv.reader(io.StringIO(text))
            if row
        ]
        files = [f for f in files if isinstance(entries.get(f), File)]
        size = sum(_size(entries[f]) for f in files)  # type: ignore[arg-type]
        if size >= large:
            owned[folder.rpartition("/")[2].removesuffix(".dist-info")] = files
    taken = {path for files in owned.values() for path in files}
    rest = {path: entry for path, entry in entries.items() if path not in taken}
    return [("", rest)] + [
        (name, {path: entries[path] for path in owned[name]}) for name in sorted(owned)
    ]


def _size(entry: File) -> int:
    return len(entry.source) if isinstance(entry.source, bytes) else entry.source.stat().st_size


def rewrite_scripts(site: Path, scripts: Path) -> None:
    """Make the console scripts start the image's interpreter, and say so in `RECORD`.

    uv writes the host's interpreter into them; in the image they live in /usr/local/bin,
    so their `RECORD` paths (relative to site-packages) are rewritten to point there too.
    """
    if not scripts.is_dir():
        return
    changed: dict[str, bytes] = {}
    for path in sorted(scripts.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        header = _SH_TRAMPOLINE.match(data) or _SCRIPT_SHEBANG.match(data)
        if header is None:
            continue
        content = f"#!{INTERPRETER}\n".encode() + data[header.end() :]
        _replace(path, content)
        changed[path.name] = content
    for record in site.glob("*.dist-info/RECORD"):
        _rewrite_record(record, site, scripts, changed)


def _rewrite_record(record: Path, site: Path, scripts: Path, changed: dict[str, bytes]) -> None:
    rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
    in_image = os.path.relpath("/" + SCRIPTS, "/" + site_packages("X"))
    touched = False
    for row in rows:
        if not row:
            continue
        where = Path(os.path.normpath(site / row[0]))
        if where.parent not in (scripts, site / "bin"):  # where uv wrote it, or where it is
            continue
        row[0] = f"{in_image}/{where.name}"
        if where.name in changed:
            content = changed[where.name]
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            row[1:3] = [f"sha256={digest.decode()}", str(len(content))]
        touched = True
    if touched:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        _replace(record, text.getvalue().encode())


def prune(site: Path) -> None:
    """Leave out what running never reads: the packages' test suites and build-only files."""
    suffixes = tuple(f".{suffix}" for suffix in BUILD_ONLY_SUFFIXES)
    for root, dirs, files in os.walk(site):
        for name in list(dirs):
            if name == TEST_SUITE_FOLDER:
                shutil.rmtree(Path(root) / name)
                dirs.remove(name)
        for name in files:
            if name.endswith(suffixes):
                (Path(root) / name).unlink()


def strip_tool(machine: str) -> str | None:
    """binutils' strip for objects of `machine` (`x86_64`, `aarch64`): the cross strip of
    that name where installed (Debian's binutils-aarch64-linux-gnu), else the host's own,
    which reads only the host's objects (others are then left as they are). None without
    binutils."""
    return shutil.which(f"{machine}-linux-gnu-strip") or shutil.which("strip")


def strip_debug(folder: Path, machine: str | None = None) -> bool:
    """Drop the debugging sections of the shared objects under `folder` with binutils'
    `strip --strip-debug` (`strip_tool(machine)`), when it is installed (False when not:
    nothing is changed). Many wheels ship them (uvloop's loop module: 13.6 MB, 2 MB without);
    nothing reads them at run time. An object strip cannot read is left as it is."""
    tool = strip_tool(machine) if machine else shutil.which("strip")
    readelf = shutil.which("readelf")
    if tool is None or readelf is None:
        return False
    objects = [
        path
        for path in sorted(folder.rglob("*.so*"))
        if path.is_file() and not path.is_symlink() and _is_elf(path)
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda path: _strip(tool, readelf, path), objects))
    return True


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _strip(tool: str, readelf: str, path: Path) -> None:
    """Strip into a new file, then put it in place: uv may have installed the object as a hard
    link into its cache, which must not change (strip in place keeps the links)."""
    out = path.with_name(f".{path.name}.stripped")
    done = subprocess.run(
        [tool, "--strip-debug", "-o", str(out), str(path)], capture_output=True, check=False
    )
    if done.returncode != 0 or not out.is_file() or not _loadable(readelf, out):
        out.unlink(missing_ok=True)  # one strip cannot read, or would break
        return
    os.chmod(out, path.stat().st_mode & 0o7777)
    os.replace(out, path)


def _loadable(readelf: str, path: Path) -> bool:
    """Whether the loader can still map the object: each loaded segment's file offset and
    address agree modulo its alignment. strip moves the segments patchelf appends (auditwheel
    runs it on every vendored library), and the result then fails to load with `ELF load
    command address/offset not page-aligned`."""
    shown = subprocess.run(
        [readelf, "--program-headers", "--wide", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return False
    for line in shown.stdout.splitlines():
        fields = line.split()
        if fields[:1] != ["LOAD"]:
            continue
        offset, address, align = int(fields[1], 16), int(fields[2], 16), int(fields[-1], 16)
        if align > 1 and offset % align != address % align:
            return False
    return True


def find_python(version: str) -> str | None:
    """A CPython `version` (X.Y) on this machine to byte-compile for an image of that Python:
    uv's answer, else `pythonX.Y` on PATH, else pyenv's newest X.Y. None when there is none."""
    candidates: list[str] = []
    found = subprocess.run(
        [uv_binary(), "python", "find", "--no-config", version],
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        check=False,
    )
    if found.returncode == 0:
        candidates.append(found.stdout.strip())
    candidates.append(shutil.which(f"python{version}") or "")
    pyenv = shutil.which("pyenv")
    if pyenv:  # its shims answer only for the versions selected; ask for the one installed
        latest = subprocess.run([pyenv, "latest", version], capture_output=True, text=True)
        prefix = subprocess.run(
            [pyenv, "prefix", latest.stdout.strip() or version], capture_output=True, text=True
        )
        if latest.returncode == 0 and prefix.returncode == 0:
            candidates.append(f"{prefix.stdout.strip()}/bin/python{version}")
    for candidate in filter(None, candidates):
        said = (
            subprocess.run(
                [
                    candidate,
                    "-c",
                    "import sys; print('%d.%d' % sys.version_info[:2], sys.implementation.name)",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if Path(candidate).is_file()
            else None
        )
        if (
            said is not None
            and said.returncode == 0
            and said.stdout.split() == [version, "cpython"]
        ):
            return candidate
    return None


def byte_compile(
    folder: Path, in_image: str, python: str, *, files: list[Path] | None = None
) -> None:
    """Byte-compile the modules under `folder` (only `files` of them, when given) with `python`
    (of the image's X.Y), recorded as the image path `in_image`. Hash-checked without reading
    the source (`unchecked-hash`): no mtime goes into them, and the image's user could not
    rewrite them anyway. A module that does not compile (written for another Python) is left
    to compile at run time, as pip does."""
    options = ["-q", "--invalidation-mode", "unchecked-hash"]
    if files is None:
        command = [*options, "-j", "0", "-d", in_image, str(folder)]
        listing = None
    else:  # the files' paths under `folder` become paths under `in_image`
        command = [*options, "-s", str(folder), "-p", in_image, "-i", "-"]
        listing = "".join(f"{path}\n" for path in files)
    subprocess.run(
        [python, "-m", "compileall", *command],
        input=listing,
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(),
    )


def _clean_env() -> dict[str, str]:
    """This process's environment without the PYTHON* settings that would change `python`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def module_files(site: Path, modules: tuple[str, ...] | list[str]) -> list[Path]:
    """The source files of the dotted `modules` in the folder `site`, with their parent
    packages' `__init__.py`: `a.b` is `a/b.py` or `a/b/__init__.py`. Extension modules (.so)
    have nothing to compile, namespace packages no `__init__.py`, and a module not installed
    is left out (a bundle may name one its packages import only on some platforms)."""
    found: set[Path] = set()
    for module in modules:
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            base = site.joinpath(*parts[:depth])
            for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
                if candidate.is_file():
                    found.add(candidate)
                    break
    return sorted(found)


# Byte-compiles each file named on stdin as `python -m compileall --invalidation-mode
# unchecked-hash -s SITE -p IN_IMAGE` does, with the same function, in a process that has
# loaded what compileall's own has (marshal marks a string shared when it is interned, and
# some strings are interned by the modules a process loads); says 1 (written) or 0 per file.
_COMPILER = """\
import argparse, compileall, sys
from py_compile import PycInvalidationMode
site, in_image = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    done = compileall.compile_file(
        line.rstrip("\\n"), quiet=2, stripdir=site, prependdir=in_image,
        invalidation_mode=PycInvalidationMode.UNCHECKED_HASH,
    )
    print(int(bool(done)), flush=True)
"""
# Imports the modules from site-packages (argv: the folder, its path in the image,
# `_COMPILER`, the modules). Each module of the folder is compiled once, as it loads, by
# `_COMPILER`, and its .pyc then loaded: compiled here, its code would depend on this
# process's interned strings. Prints the files compiled.
_COMPILE_IMPORTS = """\
import importlib, importlib.machinery as machinery, os, subprocess, sys
site, in_image, source, modules = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
inside = os.path.join(site, "")
compiler = subprocess.Popen(
    [sys.executable, "-c", source, site, in_image],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # as compileall's run
)
compiled = []

class ImageLoader(machinery.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        compiler.stdin.write(path + "\\n")
        compiler.stdin.flush()
        if compiler.stdout.readline().strip() == "1":
            compiled.append(path)
        return super().get_code(fullname)  # the .pyc just written, or the source

def finder(path):
    if not os.path.join(path, "").startswith(inside):
        raise ImportError(path)  # another hook's folder: imported as usual
    return machinery.FileFinder(
        path,
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
        (ImageLoader, machinery.SOURCE_SUFFIXES),
        (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES),
    )

sys.dont_write_bytecode = True  # what does not compile there is not written here either
sys.path_hooks.insert(0, finder)
sys.path_importer_cache.clear()
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException:
        pass
compiler.stdin.close()
compiler.wait()
print("\\n".join(compiled))
"""
_WAIT = 300  # seconds the imports may take


def compile_imports(
    site: Path, modules: tuple[str, ...] | list[str], python: str, in_image: str
) -> list[Path]:
    """Import `modules` with `python` (of the image's X.Y and machine) from `site` alone, in a
    scratch home and folder, and byte-compile each module of `site` as it loads, for its path
    under `in_image`. Each is compiled once, by a compileall process beside the imports, which
    then load its .pyc: the files are those `byte_compile` writes, byte for byte. Returns the
    source files compiled; what fails to import or hangs adds nothing."""
    with tempfile.TemporaryDirectory(prefix="cais-imports-") as scratch:
        env = {**_clean_env(), "HOME": scratch, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
        command = [python, "-c", _COMPILE_IMPORTS, str(site), in_image, _COMPILER, *modules]
        try:
            done = subprocess.run(command, capture_output=True, cwd=scratch, env=env, timeout=_WAIT)
        except subprocess.TimeoutExpired:
            return []
    root = site.resolve()
    files = []
    for line in done.stdout.decode(errors="replace").splitlines():
        path = Path(line)
        if path.suffix == ".py" and path.is_file() and path.resolve().is_relative_to(root):
            files.append(path)
    return sorted(set(files))


def _replace(path: Path, content: bytes) -> None:
    """Write a new file in place of `path`, keeping its mode: uv may have installed it as a
    hard link into its cache, which must not change."""
    mode = path.stat().st_mode & 0o7777
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(name, mode)
    os.replace(name, path)


def check_supported(deps: DependencyStep) -> None:
    """Refuse, in one sentence, what the OCI builder cannot install on the host."""
    if deps.lock is not None:
        raise BuildError(
            f"The OCI builder cannot install a project locked by `{deps.lock.value}`",
            hint="build with `--builder docker`, which exports the lock inside the image",
        )
    if deps.folders:
        raise BuildError(
            f"The local package `{deps.folders[0]}/` must be built, and the OCI builder installs "
            "wheels only",
            hint="build with `--builder docker`, or build a wheel of it and name that instead",
        )
