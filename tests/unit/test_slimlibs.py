"""cais.builders.slimlibs: debugging sections go, everything the loader reads stays."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cais.builders.slimlibs import link_duplicates, strip_file, strip_tree
from tests.support import unavailable

GCC = shutil.which("gcc")
READELF = shutil.which("readelf")

SOURCE = r"""
#include <string.h>
static const char *greeting = "olá";
int answer(int x) { return 6 * x; }
size_t greeting_length(void) { return strlen(greeting); }
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A shared library built with full debugging information."""
    if not (GCC and READELF):
        unavailable("needs gcc and readelf (Debian's gcc and binutils: scripts/test-infra)")
    source = tmp_path / "answer.c"
    source.write_text(SOURCE)
    out = tmp_path / "libanswer.so"
    subprocess.run([GCC, "-g3", "-O1", "-shared", "-fPIC", "-o", out, source], check=True)
    return out


def sections(path: Path) -> dict[str, str]:
    """Section name → type, as binutils' readelf sees them; its warnings fail the test."""
    run = subprocess.run([READELF, "-S", "-W", path], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    found = {}
    for line in run.stdout.splitlines():
        if line.lstrip().startswith("[") and "]" in line and "Nr]" not in line:
            fields = line.split("]", 1)[1].split()
            if len(fields) >= 2:
                found[fields[0]] = fields[1]
    return found


def active(path: Path) -> set[str]:
    return {name for name, kind in sections(path).items() if kind != "NULL"}


def test_debugging_sections_and_static_symbols_go_and_the_library_still_works(library):
    before = library.stat().st_size
    assert {".debug_info", ".symtab", ".strtab"} <= active(library)
    library.chmod(0o755)

    saved = strip_file(str(library))

    assert saved == before - library.stat().st_size > 0
    kept = active(library)
    assert not {name for name in kept if name.startswith(".debug")}
    assert ".symtab" not in kept and ".strtab" not in kept
    assert {".text", ".dynsym", ".dynstr", ".shstrtab"} <= kept
    assert stat.S_IMODE(library.stat().st_mode) == 0o755
    loaded = ctypes.CDLL(str(library))
    assert loaded.answer(7) == 42
    assert loaded.greeting_length() == len("olá".encode())


def test_a_stripped_library_is_left_as_it_is(library):
    strip_file(str(library))
    content = library.read_bytes()
    assert strip_file(str(library)) == 0
    assert library.read_bytes() == content


def test_bytes_no_header_accounts_for_are_never_moved(library):
    with library.open("ab") as f:
        f.write(b"\x01signature appended by some tool\x01")
    content = library.read_bytes()
    assert strip_file(str(library)) == 0
    assert library.read_bytes() == content


def test_files_that_are_not_shared_libraries_are_left_alone(tmp_path):
    cases = {
        "text.so": b"not an ELF file at all",
        "empty.so": b"",
        "truncated.so": b"\x7fELF\x02\x01\x01" + b"\0" * 20,
        "relocatable.so": b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x01\x00" + b"\0" * 46,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert strip_file(str(tmp_path / name)) == 0, name
        assert (tmp_path / name).read_bytes() == content, name
    assert strip_tree(str(tmp_path)) == (0, 0)


def test_a_tree_is_stripped_once_per_file_and_links_are_not_followed(tmp_path, library):
    package = tmp_path / "site-packages" / "pkg"
    package.mkdir(parents=True)
    shutil.copy(library, package / "_ext.cpython-311-x86_64-linux-gnu.so")
    shutil.copy(library, package / "libfoo.so.1.2")
    shutil.copy(library, package / "notes.txt")
    (package / "libfoo.so").symlink_to("libfoo.so.1.2")
    size = library.stat().st_size

    count, saved = strip_tree(str(tmp_path / "site-packages"))

    assert count == 2 and saved > 0
    assert (package / "_ext.cpython-311-x86_64-linux-gnu.so").stat().st_size < size
    assert (package / "libfoo.so.1.2").stat().st_size < size
    assert (package / "notes.txt").stat().st_size == size  # not a library by its name
    assert (package / "libfoo.so").is_symlink()
    assert not list(package.glob(".slimlibs-*"))  # no temporary file left behind


def test_numpy_from_a_wheel_still_computes_after_stripping(tmp_path):
    """numpy's wheel is repaired by auditwheel: patchelf appends segments after the static
    symbol table, which must then be cut out without moving anything the loader maps."""
    import numpy  # a test dependency (through scikit-learn)

    source = Path(numpy.__file__).parent
    target = tmp_path / "site-packages"
    for folder in [source, source.parent / "numpy.libs"]:
        if folder.is_dir():
            shutil.copytree(folder, target / folder.name, ignore=shutil.ignore_patterns("tests"))
    before = sum(f.stat().st_size for f in target.rglob("*.so*"))

    count, saved = strip_tree(str(target))

    after = sum(f.stat().st_size for f in target.rglob("*.so*"))
    assert count > 0 and saved == before - after > 0
    check = (
        "import numpy, sys\n"
        f"assert numpy.__file__.startswith({str(target)!r}), numpy.__file__\n"
        "a = numpy.random.default_rng(0).normal(size=(200, 200)) + 200 * numpy.eye(200)\n"
        "x = numpy.linalg.solve(a, numpy.ones(200))\n"
        "assert numpy.allclose(a @ x, 1)\n"
        "print(numpy.fft.rfft(numpy.arange(8.0))[0].real)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "28.0"


def test_identical_libraries_become_one_file(tmp_path):
    one, two = tmp_path / "numpy.libs", tmp_path / "scipy.libs"
    one.mkdir()
    two.mkdir()
    content = b"\x7fELF same library bytes" * 100
    for folder in (one, two):
        (folder / "libgfortran-1a2b.so.5.0.0").write_bytes(content)
    (one / "libother.so").write_bytes(content + b"!")
    (two / "libother.so").write_bytes(content)
    (two / "libother.so").chmod(0o600)  # same bytes, other mode: not the same file
    (two / "README").write_bytes(content)  # not a library

    linked, saved = link_duplicates(str(tmp_path))

    assert (linked, saved) == (1, len(content))
    assert os.path.samefile(one / "libgfortran-1a2b.so.5.0.0", two / "libgfortran-1a2b.so.5.0.0")
    assert (two / "libgfortran-1a2b.so.5.0.0").read_bytes() == content
    assert not os.path.samefile(one / "libother.so", two / "libother.so")
    assert (two / "libother.so").stat().st_nlink == 1
    assert (two / "README").stat().st_nlink == 1
    assert link_duplicates(str(tmp_path)) == (0, 0)  # a second run finds nothing more
    assert not list(tmp_path.rglob("*slimlibs-*"))


def test_a_section_with_an_alignment_no_linker_makes_keeps_the_file_whole(library):
    from cais.builders.slimlibs import _Format

    data = bytearray(library.read_bytes())
    fmt = _Format.of(bytes(data))
    header = fmt.header.unpack_from(data)
    shoff, shentsize, shnum = header[6], header[11], header[12]
    odd = None
    for index in range(1, shnum):
        section = list(fmt.section.unpack_from(data, shoff + index * shentsize))
        if not section[2] & 0x2:  # not loaded: a section the stripper would move
            section[8] = 3  # sh_addralign, not a power of two
            fmt.section.pack_into(data, shoff + index * shentsize, *section)
            odd = index
            break
    assert odd is not None
    library.write_bytes(bytes(data))
    assert strip_file(str(library)) == 0
    assert library.read_bytes() == bytes(data)
