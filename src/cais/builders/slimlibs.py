"""Shrink the shared libraries of installed Python packages, without binutils.

Run inside a serving image's dependency step (`python slimlibs.py DIR …`), on the image's own
Python with nothing but the standard library (so it keeps to Python 3.9). Two things:

- Strip debugging information and the static symbol table. Many wheels ship their extension
  modules unstripped (uvloop's loop module is 13.6 MB, 2 MB without its DWARF sections). Only
  sections that no program header maps are dropped, and every byte the dynamic loader reads
  keeps its offset modulo the page size: the gaps between loaded runs shrink by whole pages
  and the other sections are packed after them. A file whose layout is unusual (bytes no
  header accounts for, a kept section that refers to a dropped one) is left as it is.
- Link identical copies. auditwheel vendors the same libgfortran into numpy.libs and
  scipy.libs; hard links keep one copy in the layer, and the loader maps it once.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import struct
import sys
import tempfile
from dataclasses import dataclass

__all__ = ["link_duplicates", "strip_file", "strip_tree"]

_MAGIC = b"\x7fELF"
_SHT_NOBITS = 8
_SHT_SYMTAB = 2
_SHT_STRTAB = 3
_SHF_ALLOC = 0x2
_SHN_LORESERVE = 0xFF00
_ET_EXEC, _ET_DYN = 2, 3
_PT_LOAD = 1
_FOUR_KIB_PAGES = {3, 62}  # e_machine: i386, x86-64


@dataclass
class _Format:
    """Struct layouts of one ELF class (32 or 64 bits) in one byte order."""

    header: struct.Struct
    program: struct.Struct
    section: struct.Struct
    word: int  # alignment of the section header table

    @classmethod
    def of(cls, data: bytes) -> _Format | None:
        if len(data) < 52 or data[:4] != _MAGIC or data[4] not in (1, 2) or data[5] not in (1, 2):
            return None
        order = "<" if data[5] == 1 else ">"
        if data[4] == 2:
            return cls(
                struct.Struct(order + "16sHHIQQQIHHHHHH"),
                struct.Struct(order + "IIQQQQQQ"),
                struct.Struct(order + "IIQQQQIIQQ"),
                8,
            )
        return cls(
            struct.Struct(order + "16sHHIIIIIHHHHHH"),
            struct.Struct(order + "IIIIIIII"),
            struct.Struct(order + "IIIIIIIIII"),
            4,
        )


# Indices into an unpacked section header (the same in both classes).
_NAME, _TYPE, _FLAGS, _ADDR, _OFFSET, _SIZE, _LINK, _INFO, _ALIGN, _ENTSIZE = range(10)


def strip_file(path: str) -> int:
    """Strip `path` in place when it is an ELF shared library or executable with something to
    drop; returns the bytes saved (0 when the file was left alone: any doubt keeps it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 64 or f.read(4) != _MAGIC:
                return 0
            # Mapped, not read: CUDA libraries in some wheels are gigabytes; the new file is
            # written in slices of the mapping.
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                layout = _stripped(data)
                if layout is None or layout.size >= size:
                    return 0
                _replace(path, layout, data)
    except Exception:  # truncated, inconsistent, unwritable: not ours to fix
        return 0
    return size - layout.size


def _replace(path: str, layout: _Layout, data: mmap.mmap) -> None:
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".slimlibs-")
    try:
        with os.fdopen(fd, "wb") as out:
            layout.write(out, data)
        os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class _Layout:
    """The stripped file as pieces: spans of the original, zeros, and new bytes laid over
    what was copied (the ELF header and the program headers, rewritten)."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, int] | bytes] = []  # (start, end) of the original, or bytes
        self.size = 0
        self.patches: dict[int, bytes] = {}  # offset in the new file → bytes laid over it

    def copy(self, start: int, end: int) -> None:
        self.pieces.append((start, end))
        self.size += end - start

    def add(self, content: bytes) -> None:
        self.pieces.append(content)
        self.size += len(content)

    def pad(self, alignment: int) -> None:
        self.add(bytes(-self.size % alignment))

    def write(self, out, data: mmap.mmap) -> None:
        view = memoryview(data)
        applied = 0
        try:
            position = 0
            for piece in self.pieces:
                if isinstance(piece, bytes):
                    out.write(piece)
                    position += len(piece)
                    continue
                start, end = piece
                for offset, content in sorted(self.patches.items()):
                    inside = offset - position
                    if inside >= 0 and inside + len(content) <= end - start:
                        out.write(view[start : start + inside])
                        out.write(content)
                        position += inside + len(content)
                        start += inside + len(content)
                        applied += 1
                out.write(view[start:end])
                position += end - start
        finally:
            view.release()
        if applied != len(self.patches) or position != self.size:
            raise ValueError("the new headers do not lie inside what was copied")


def _stripped(data: mmap.mmap) -> _Layout | None:
    fmt = _Format.of(data)
    if fmt is None:
        return None
    header = list(fmt.header.unpack_from(data))
    e_type, e_phoff, e_shoff = header[1], header[5], header[6]
    e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = header[8:14]
    if (
        e_type not in (_ET_EXEC, _ET_DYN)
        or e_shoff == 0
        or e_shnum == 0  # 0 with a table means more than 0xff00 sections: leave those alone
        or e_shstrndx >= _SHN_LORESERVE
        or e_shentsize != fmt.section.size
        or (e_phnum and e_phentsize != fmt.program.size)
        or e_shoff + e_shnum * e_shentsize > len(data)
        or e_phoff + e_phnum * e_phentsize > len(data)
    ):
        return None
    sections = [
        list(fmt.section.unpack_from(data, e_shoff + i * e_shentsize)) for i in range(e_shnum)
    ]
    programs = [
        list(fmt.program.unpack_from(data, e_phoff + i * e_phentsize)) for i in range(e_phnum)
    ]
    # p_type, p_offset, p_filesz and p_align sit at other places in the two classes.
    p_offset, p_filesz, p_align = (2, 5, 7) if fmt.word == 8 else (1, 4, 7)

    drop = _droppable(data, sections, e_shstrndx)
    if not drop:
        return None
    for index, section in enumerate(sections):
        if (
            index
            and index not in drop
            and (section[_LINK] in drop or (_info_is_section(section) and section[_INFO] in drop))
        ):
            return None  # a kept section refers to one that would go

    # What the loader reads must keep its offset modulo the page size: the ELF header, the
    # program headers, every segment's bytes and the sections in them. The gaps between
    # those runs shrink by whole pages; what else was there moves after the last run.
    fixed = [(0, e_ehsize), (e_phoff, e_phoff + e_phnum * e_phentsize)]
    fixed += [(p[p_offset], p[p_offset] + p[p_filesz]) for p in programs if p[p_filesz]]
    fixed += [
        (s[_OFFSET], s[_OFFSET] + s[_SIZE])
        for s in sections
        if s[_FLAGS] & _SHF_ALLOC and s[_TYPE] != _SHT_NOBITS and s[_SIZE]
    ]
    runs = _merged(fixed)
    if runs[0][0] != 0 or not all(_usable_alignment(s[_ALIGN]) for s in sections):
        return None
    # x86 kernels use 4 KiB pages; others may use up to 64 KiB, and map a file whose segments
    # say 4 KiB only when its offsets happen to agree: keep those agreeing.
    smallest = 0x1000 if header[2] in _FOUR_KIB_PAGES else 0x10000
    page = max([smallest] + [p[p_align] for p in programs if p[0] == _PT_LOAD])
    movable = [
        i
        for i, s in enumerate(sections)
        if i and not s[_FLAGS] & _SHF_ALLOC and s[_TYPE] != _SHT_NOBITS and s[_SIZE]
    ]
    described = [(e_shoff, e_shoff + e_shnum * e_shentsize)]
    described += [
        (sections[i][_OFFSET], sections[i][_OFFSET] + sections[i][_SIZE]) for i in movable
    ]
    if not _only_described(data, runs, _merged(described)):
        return None  # bytes that no header accounts for: not safe to move

    out = _Layout()
    starts: list[int] = []  # each run's old start, and how far it moved
    shifts: list[int] = []
    for number, (start, end) in enumerate(runs):
        if number:
            gap = start - runs[number - 1][1]
            out.add(bytes(gap % page))
        starts.append(start)
        shifts.append(start - out.size)
        out.copy(start, end)

    def moved(offset: int) -> int:
        run = bisect.bisect_right(starts, offset) - 1
        return offset - shifts[max(run, 0)]

    for program in programs:
        program[p_offset] = moved(program[p_offset])
    for index, section in enumerate(sections):
        if index in drop:
            sections[index] = [section[_NAME], 0, 0, 0, 0, 0, 0, 0, 0, 0]  # SHT_NULL, inactive
        elif index and (section[_FLAGS] & _SHF_ALLOC or index not in movable):
            section[_OFFSET] = moved(section[_OFFSET])
    for index in sorted(movable, key=lambda i: sections[i][_OFFSET]):
        section = sections[index]
        if index in drop:
            continue
        if any(a <= section[_OFFSET] < b for a, b in runs):
            section[_OFFSET] = moved(section[_OFFSET])  # inside a loaded run: it moved with it
            continue
        out.pad(max(section[_ALIGN], 1))
        start = section[_OFFSET]
        section[_OFFSET] = out.size
        out.copy(start, start + section[_SIZE])
    out.pad(fmt.word)
    header[5], header[6] = moved(e_phoff), out.size
    out.add(b"".join(fmt.section.pack(*section) for section in sections))
    out.patches[header[5]] = b"".join(fmt.program.pack(*program) for program in programs)
    out.patches[0] = fmt.header.pack(*header)
    return out


def _usable_alignment(alignment: int) -> bool:
    """A section alignment this can honour (0 and 1 mean none; more than a page is odd)."""
    return alignment <= 1 or (alignment & (alignment - 1) == 0 and alignment <= 0x10000)


def _droppable(data: mmap.mmap, sections: list[list[int]], shstrndx: int) -> set[int]:
    """Indices of the debugging sections and the static symbol table (with its strings when
    nothing else uses them); never a section the loader maps."""
    names = sections[shstrndx][_OFFSET]

    def name(section: list[int]) -> bytes:
        start = names + section[_NAME]
        end = data.find(b"\0", start)
        if end < 0:
            raise ValueError("a section name without its end")
        return data[start:end]

    drop = {
        index
        for index, section in enumerate(sections)
        if index
        and not section[_FLAGS] & _SHF_ALLOC
        and (section[_TYPE] == _SHT_SYMTAB or name(section).startswith((b".debug", b".zdebug")))
    }
    for index in [i for i in drop if sections[i][_TYPE] == _SHT_SYMTAB]:
        strings = sections[index][_LINK]
        if (
            0 < strings < len(sections)
            and strings != shstrndx
            and sections[strings][_TYPE] == _SHT_STRTAB
            and not sections[strings][_FLAGS] & _SHF_ALLOC
            and not any(s[_LINK] == strings for i, s in enumerate(sections) if i not in drop)
        ):
            drop.add(strings)
    return drop


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _only_described(
    data: mmap.mmap, runs: list[tuple[int, int]], described: list[tuple[int, int]]
) -> bool:
    """Whether every non-zero byte outside `runs` lies in one of the `described` ranges."""
    covered = _merged(runs + described)
    position = 0
    for start, end in [*covered, (len(data), len(data))]:
        for chunk in range(position, start, 1 << 20):  # a MiB at a time: no large copies
            if data[chunk : min(chunk + (1 << 20), start)].strip(b"\0"):
                return False
        position = max(position, end)
    return True


def _info_is_section(section: list[int]) -> bool:
    """sh_info names a section in relocation sections and where SHF_INFO_LINK says so."""
    return section[_TYPE] in (4, 9) or bool(section[_FLAGS] & 0x40)


def _libraries(roots: tuple[str, ...]):
    for root in roots:
        for directory, _, files in os.walk(root):
            for filename in sorted(files):
                path = os.path.join(directory, filename)
                if (filename.endswith(".so") or ".so." in filename) and not os.path.islink(path):
                    yield path


def strip_tree(*roots: str) -> tuple[int, int]:
    """Strip every shared library (`*.so`, `*.so.N`) under `roots`; returns (files stripped,
    bytes saved)."""
    count = saved = 0
    for path in _libraries(roots):
        gained = strip_file(path)
        count += gained > 0
        saved += gained
    return count, saved


def link_duplicates(*roots: str) -> tuple[int, int]:
    """Replace each shared library under `roots` whose bytes, mode and owner equal an earlier
    one's with a hard link to it; returns (files linked, bytes saved)."""
    alike: dict[tuple[int, int, int, int, int], list[str]] = {}
    seen: set[tuple[int, int]] = set()
    for path in _libraries(roots):
        info = os.stat(path)
        if (info.st_dev, info.st_ino) not in seen:  # not a link to one seen before
            seen.add((info.st_dev, info.st_ino))
            key = (info.st_dev, info.st_size, info.st_mode, info.st_uid, info.st_gid)
            alike.setdefault(key, []).append(path)
    count = saved = 0
    for (_, size, *_), paths in alike.items():
        if len(paths) < 2:
            continue  # only files of the same size are read
        first: dict[str, str] = {}
        for path in paths:
            original = first.setdefault(_sha256(path), path)
            if original != path:
                temporary = f"{path}.slimlibs-{os.getpid()}"
                os.link(original, temporary)
                os.replace(temporary, path)
                count += 1
                saved += size
    return count, saved


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python slimlibs.py DIR …", file=sys.stderr)
        return 2
    stripped, saved = strip_tree(*argv)
    linked, shared = link_duplicates(*argv)
    print(
        f"slimlibs: {stripped} shared libraries stripped ({saved / 1e6:.1f} MB), "
        f"{linked} identical copies linked ({shared / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
