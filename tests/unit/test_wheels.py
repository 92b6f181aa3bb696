"""cais.bundle.wheels against a small PyPI served by httpx.MockTransport.

The fixtures follow PyPI's JSON API and real file names; where a fact is invented to make a
case (an upper bound, a yanked or sdist-only release) the comment says so.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from cais.bundle.wheels import (
    PackageIndex,
    choose_python,
    default_pythons,
    linux_platforms,
    resolve,
    supported_tags,
)
from cais.errors import PlanError, StackError
from cais.project import KNOWN_PYTHONS

PYPI = "https://pypi.test/pypi"
FILES = "https://files.test/packages"
X86 = "manylinux_2_17_x86_64.manylinux2014_x86_64"


def cp(dist: str, version: str, pythons: str, platform: str) -> list[str]:
    """CPython wheels of one release: pythons "36 37 38" → cp36m … cp38 file names."""
    return [
        f"{dist}-{version}-cp{py}-cp{py}{'m' if py in ('36', '37') else ''}-{platform}.whl"
        for py in pythons.split()
    ]


def release(
    date: str,
    files: list[str],
    *,
    requires: list[str] | None = None,
    requires_python: str | None = None,
    yanked: bool = False,
) -> dict:
    return {
        "date": datetime.fromisoformat(date).replace(tzinfo=timezone.utc),
        "files": files,
        "requires": requires,
        "requires_python": requires_python,
        "yanked": yanked,
    }


SKLEARN_0_24 = [
    "numpy (>=1.13.3)",
    "scipy (>=0.19.1)",
    "joblib (>=0.11)",
    "threadpoolctl (>=2.0.0)",
    "matplotlib (>=2.1.1) ; extra == 'benchmark'",  # not served: following it would fail
]

PROJECTS: dict[str, tuple[str, dict[str, dict]]] = {
    "scikit-learn": (
        "scikit-learn",
        {
            "0.24.1": release(
                "2021-01-19T15:02:11",
                cp("scikit_learn", "0.24.1", "36 37 38 39", "manylinux2010_x86_64"),
                requires=SKLEARN_0_24,
                requires_python=">=3.6",
            ),
            "0.24.2": release(
                "2021-04-28T11:18:29",
                ["scikit-learn-0.24.2.tar.gz"]
                + cp("scikit_learn", "0.24.2", "36 37 38 39", "manylinux2010_x86_64")
                + cp("scikit_learn", "0.24.2", "39", "manylinux2014_aarch64"),
                requires=SKLEARN_0_24,
                requires_python=">=3.6",
            ),
            "1.3.2": release(
                "2023-10-23T09:14:45",
                cp("scikit_learn", "1.3.2", "38 39 310 311 312", X86),
                requires=[
                    "numpy<2.0,>=1.17.3",
                    "scipy>=1.5.0",
                    "joblib>=1.1.1",
                    "threadpoolctl>=2.0.0",
                ],
                requires_python=">=3.8",
            ),
            "1.4.0rc1": release(  # a pre-release: never chosen unless pinned
                "2024-01-05T13:37:00",
                cp("scikit_learn", "1.4.0rc1", "39 310 311 312", X86),
                requires=[
                    "numpy<2.0,>=1.19.5",
                    "scipy>=1.6.0",
                    "joblib>=1.2.0",
                    "threadpoolctl<3",  # invented bound
                ],
                requires_python=">=3.9",
            ),
        },
    ),
    "numpy": (
        "numpy",
        {
            "1.19.5": release(
                "2021-01-05T22:12:55",
                cp("numpy", "1.19.5", "36 37 38 39", "manylinux2010_x86_64")
                + cp("numpy", "1.19.5", "36 37 38 39", "manylinux2014_aarch64"),
                requires_python=">=3.6",
            ),
            "1.20.2": release(  # no aarch64 wheels in this fixture
                "2021-03-27T22:21:06",
                ["numpy-1.20.2.zip"] + cp("numpy", "1.20.2", "37 38 39", "manylinux2010_x86_64"),
                requires_python=">=3.7",
            ),
            "1.20.3": release(
                "2021-05-10T21:56:38",
                cp("numpy", "1.20.3", "37 38 39", "manylinux_2_12_x86_64.manylinux2010_x86_64"),
                requires_python=">=3.7",
            ),
            "1.21.0": release(
                "2021-06-22T19:51:00",
                cp("numpy", "1.21.0", "37 38 39", "manylinux_2_12_x86_64.manylinux2010_x86_64"),
                requires_python=">=3.7,<3.11",
            ),
            "1.24.4": release(
                "2023-06-26T13:30:22",
                cp("numpy", "1.24.4", "38 39 310 311", X86),
                requires_python=">=3.8",
            ),
            "1.26.2": release(
                "2023-11-12T16:07:04",
                cp("numpy", "1.26.2", "39 310 311 312", X86),
                requires_python=">=3.9",
            ),
        },
    ),
    "scipy": (
        "scipy",
        {
            "1.6.2": release(
                "2021-03-25T00:43:05",
                cp("scipy", "1.6.2", "37 38 39", "manylinux2014_x86_64"),
                requires=["numpy (>=1.16.5)"],
                requires_python=">=3.7",
            ),
            "1.6.3": release(
                "2021-04-25T00:06:14",
                cp("scipy", "1.6.3", "37 38 39", "manylinux2014_x86_64")
                + cp("scipy", "1.6.3", "39", "manylinux2014_aarch64"),
                requires=["numpy (<1.23.0,>=1.16.5)"],
                requires_python=">=3.7",
            ),
            "1.7.0": release(
                "2021-06-20T09:58:24",
                cp("scipy", "1.7.0", "37 38 39", X86),
                requires=["numpy (<1.21.0,>=1.16.5)"],  # invented bound: forces a re-choice
                requires_python=">=3.7,<3.10",
            ),
            "1.11.4": release(
                "2023-11-18T15:46:29",
                cp("scipy", "1.11.4", "39 310 311 312", X86),
                requires=["numpy<1.28.0,>=1.21.6"],
                requires_python=">=3.9",
            ),
        },
    ),
    "joblib": (
        "joblib",
        {
            "1.0.1": release(
                "2021-02-09T15:25:03", ["joblib-1.0.1-py3-none-any.whl"], requires_python=">=3.6"
            ),
            "1.1.0": release(
                "2021-10-07T09:42:24",
                ["joblib-1.1.0-py2.py3-none-any.whl"],
                requires_python=">=3.6",
            ),
            "1.3.1": release(
                "2023-06-29T11:45:37", ["joblib-1.3.1-py3-none-any.whl"], requires_python=">=3.7"
            ),
            "1.3.2": release(  # yanked in this fixture
                "2023-08-08T09:17:09",
                ["joblib-1.3.2-py3-none-any.whl"],
                requires_python=">=3.7",
                yanked=True,
            ),
        },
    ),
    "threadpoolctl": (
        "threadpoolctl",
        {
            "2.1.0": release(
                "2020-06-04T11:02:11",
                ["threadpoolctl-2.1.0-py3-none-any.whl"],
                requires_python=">=3.5",
            ),
            "2.2.0": release(  # invented: an sdist-only release before scikit-learn 0.24.2
                "2021-03-01T08:00:00", ["threadpoolctl-2.2.0.tar.gz"], requires_python=">=3.6"
            ),
            "3.2.0": release(
                "2023-07-13T14:14:16",
                ["threadpoolctl-3.2.0-py3-none-any.whl"],
                requires=['typing-extensions>=4.0; python_version < "3.10"'],  # invented
                requires_python=">=3.8",
            ),
        },
    ),
    "typing-extensions": (
        "typing_extensions",
        {
            "4.7.1": release(
                "2023-07-02T14:20:53",
                ["typing_extensions-4.7.1-py3-none-any.whl"],
                requires_python=">=3.7",
            ),
        },
    ),
    "cryptography": (
        "cryptography",
        {
            "41.0.7": release(
                "2023-11-28T06:54:13",
                [
                    "cryptography-41.0.7-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                    "cryptography-41.0.7-cp37-abi3-manylinux_2_28_x86_64.whl",
                ],
                requires=["cffi>=1.12"],
                requires_python=">=3.7",
            ),
            "43.0.0": release(  # invented: glibc 2.28 wheels only
                "2024-07-20T13:43:50",
                ["cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"],
                requires=["cffi>=1.12; platform_python_implementation != 'PyPy'"],
                requires_python=">=3.7",
            ),
        },
    ),
    "cffi": (
        "cffi",
        {
            "1.16.0": release(
                "2023-09-28T18:01:41",
                cp("cffi", "1.16.0", "38 39 310 311 312", X86),
                requires=["pycparser"],
                requires_python=">=3.8",
            ),
        },
    ),
    "pycparser": (
        "pycparser",
        {
            "2.21": release(
                "2021-11-06T12:50:13",
                ["pycparser-2.21-py2.py3-none-any.whl"],
                requires_python=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*",
            ),
        },
    ),
    "uvicorn": (
        "uvicorn",
        {
            "0.29.0": release(
                "2024-03-20T06:43:25",
                ["uvicorn-0.29.0-py3-none-any.whl"],
                requires=[
                    "click>=7.0",
                    "h11>=0.8",
                    "httptools>=0.5.0; extra == 'standard'",
                ],
                requires_python=">=3.8",
            ),
        },
    ),
    "click": (
        "click",
        {
            "8.1.7": release(
                "2023-08-17T17:29:10", ["click-8.1.7-py3-none-any.whl"], requires_python=">=3.7"
            ),
        },
    ),
    "h11": (
        "h11",
        {
            "0.14.0": release(
                "2022-09-25T15:39:59", ["h11-0.14.0-py3-none-any.whl"], requires_python=">=3.7"
            ),
        },
    ),
    "httptools": (
        "httptools",
        {
            "0.6.1": release(
                "2023-10-16T17:42:36",
                cp("httptools", "0.6.1", "38 39 310 311 312", X86),
                requires_python=">=3.8.0",
            ),
        },
    ),
}


def metadata_text(name: str, version: str, requires: list[str] | None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {line}" for line in requires or []]
    return "\n".join(lines) + "\n\nA long description.\n"


def wheel_bytes(name: str, version: str, requires: list[str] | None) -> bytes:
    """A real wheel with a megabyte of incompressible data ahead of its METADATA."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}/blob.bin", os.urandom(1 << 20))
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA", metadata_text(name, version, requires)
        )
        archive.writestr(f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return buffer.getvalue()


class FakePyPI:
    """PyPI's JSON API, PEP 658 metadata files and wheel downloads, recording requests."""

    def __init__(
        self,
        *,
        version_json: bool = True,
        metadata_files: bool = True,
        whole_wheels: bool = False,
        sdist_first: tuple[str, ...] = (),
    ) -> None:
        self.version_json = version_json
        self.sdist_first = sdist_first  # projects whose per-version JSON says requires_dist: null
        self.metadata_files = metadata_files
        self.whole_wheels = whole_wheels
        self.requests: list[httpx.Request] = []
        self.served_bytes = 0
        self.wheels: dict[str, bytes] = {}
        self.files: dict[str, tuple[str, str, dict]] = {}  # file name → project, version, data
        for key, (display, releases) in PROJECTS.items():
            for version, data in releases.items():
                for filename in data["files"]:
                    self.files[filename] = (key, version, data)
                    if whole_wheels and filename.endswith(".whl"):
                        self.wheels[filename] = wheel_bytes(display, version, data["requires"])

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def index(self, url: str = PYPI) -> PackageIndex:
        return PackageIndex(url, client=httpx.Client(transport=self.transport))

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if match := re.fullmatch(r"/pypi/([^/]+)/json", path):
            return self.project(match.group(1))
        if match := re.fullmatch(r"/pypi/([^/]+)/([^/]+)/json", path):
            return self.version(*match.groups())
        if match := re.fullmatch(r"/packages/(.+)\.metadata", path):
            return self.metadata(match.group(1))
        if match := re.fullmatch(r"/packages/(.+\.whl)", path):
            return self.wheel(match.group(1), request.headers.get("range"))
        return httpx.Response(404)

    def file_entry(self, filename: str, index: int, data: dict) -> dict:
        uploaded = data["date"] + timedelta(minutes=7 * index)  # the first file is the oldest
        wheel = filename.endswith(".whl")
        return {
            "filename": filename,
            "packagetype": "bdist_wheel" if wheel else "sdist",
            "python_version": filename.split("-")[2] if wheel else "source",
            "requires_python": data["requires_python"],
            "size": len(self.wheels[filename]) if filename in self.wheels else 12_062_678,
            "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S"),
            "upload_time_iso_8601": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "url": f"{FILES}/{filename}",
            "yanked": data["yanked"],
            "yanked_reason": "broken wheel" if data["yanked"] else None,
            "core-metadata": self.metadata_files and wheel and {"sha256": "0" * 64},
        }

    def project(self, key: str) -> httpx.Response:
        if key not in PROJECTS:
            return httpx.Response(404, json={"message": "Not Found"})
        display, releases = PROJECTS[key]
        document = {
            "info": {"name": display, "version": list(releases)[-1]},
            "releases": {
                version: [self.file_entry(f, i, data) for i, f in enumerate(data["files"])]
                for version, data in releases.items()
            },
            "urls": [],
        }
        return httpx.Response(200, json=document)

    def version(self, key: str, version: str) -> httpx.Response:
        data = PROJECTS.get(key, ("", {}))[1].get(version)
        if not self.version_json or data is None:
            return httpx.Response(404, json={"message": "Not Found"})
        info = {
            "name": PROJECTS[key][0],
            "version": version,
            "requires_dist": None if key in self.sdist_first else data["requires"],
            "requires_python": data["requires_python"],
        }
        return httpx.Response(200, json={"info": info, "urls": []})

    def metadata(self, filename: str) -> httpx.Response:
        if not self.metadata_files or filename not in self.files:
            return httpx.Response(404)
        key, version, data = self.files[filename]
        return httpx.Response(200, text=metadata_text(PROJECTS[key][0], version, data["requires"]))

    def wheel(self, filename: str, ranged: str | None) -> httpx.Response:
        if filename not in self.wheels:
            return httpx.Response(404)
        content = self.wheels[filename]
        if ranged is None:
            self.served_bytes += len(content)
            return httpx.Response(200, content=content)
        first, last = (int(n) for n in ranged.removeprefix("bytes=").split("-"))
        part = content[first : last + 1]
        self.served_bytes += len(part)
        headers = {"content-range": f"bytes {first}-{first + len(part) - 1}/{len(content)}"}
        return httpx.Response(206, content=part, headers=headers)


@pytest.fixture
def pypi() -> FakePyPI:
    return FakePyPI()


@pytest.fixture
def index(pypi: FakePyPI):
    with pypi.index() as index:
        yield index


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# --- choosing the stack ----------------------------------------------------------------------


def test_a_pinned_release_gets_its_contemporary_stack(index, pypi):
    cutoff = index.release_date("scikit-learn", "0.24.2")
    stack = resolve(index, {"scikit-learn": "0.24.2"}, "3.9", cutoff=cutoff)
    assert stack == {
        "joblib": "1.0.1",
        "numpy": "1.20.2",  # 1.20.3 came out in May
        "scikit-learn": "0.24.2",
        "scipy": "1.6.3",
        "threadpoolctl": "2.1.0",  # 2.2.0 was sdist-only
    }
    assert not any("matplotlib" in path for path in pypi.paths())  # an extra nobody asked for


def test_a_release_date_is_its_earliest_upload(index):
    assert index.release_date("scikit-learn", "0.24.2") == at("2021-04-28T11:18:29")
    assert index.release_date("Scikit_Learn", "0.24.2") == at("2021-04-28T11:18:29")


def test_without_a_cutoff_the_newest_final_unyanked_release_wins(index):
    stack = resolve(index, {"scikit-learn": None}, "3.11")
    assert stack == {
        "joblib": "1.3.1",  # 1.3.2 is yanked
        "numpy": "1.26.2",
        "scikit-learn": "1.3.2",  # 1.4.0rc1 is a pre-release
        "scipy": "1.11.4",
        "threadpoolctl": "3.2.0",
    }


def test_a_specifier_met_later_forces_a_re_choice(index):
    # numpy 1.21.0 is chosen first (for scikit-learn), then scipy 1.7.0 wants numpy<1.21.0.
    stack = resolve(index, {"scikit-learn": None}, "3.9", cutoff=at("2021-07-01T00:00:00"))
    assert stack["scipy"] == "1.7.0"
    assert stack["numpy"] == "1.20.3"
    assert stack["scikit-learn"] == "0.24.2"


def test_a_re_choice_drops_what_only_the_first_choice_required(index):
    # threadpoolctl 3.2.0 comes first and brings typing-extensions on 3.9; the pre-release
    # of scikit-learn then wants threadpoolctl<3, whose 2.1.0 requires nothing.
    stack = resolve(index, {"threadpoolctl": None, "scikit-learn": "1.4.0rc1"}, "3.9")
    assert stack == {
        "joblib": "1.3.1",
        "numpy": "1.26.2",
        "scikit-learn": "1.4.0rc1",
        "scipy": "1.11.4",
        "threadpoolctl": "2.1.0",
    }


def test_dependencies_out_of_reach_of_the_cutoff_are_named(index):
    with pytest.raises(StackError) as caught:
        resolve(index, {"scipy": "1.11.4"}, "3.9", cutoff=at("2021-07-01T00:00:00"))
    assert str(caught.value) == (
        "no release of numpy on or before 2021-07-01 satisfies "
        "numpy<1.28.0,>=1.21.6 (required by scipy 1.11.4)"
    )
    assert "later date" in caught.value.hint
    with pytest.raises(StackError, match="^numpy has no release on or before 2021-01-01$"):
        resolve(index, {"scipy": "1.7.0"}, "3.9", cutoff=at("2021-01-01T00:00:00"))


def test_conflicting_pins_are_an_error_not_an_inconsistent_set(index):
    pins = {"scikit-learn": "0.24.2", "numpy": "1.21.0", "scipy": "1.7.0"}
    with pytest.raises(StackError) as caught:
        resolve(index, pins, "3.9")
    assert str(caught.value) == (
        "numpy 1.21.0 is pinned, but scipy 1.7.0 requires numpy<1.21.0,>=1.16.5"
    )
    assert "wheel" not in str(caught.value)


def test_markers_are_evaluated_for_the_target_python(index):
    assert resolve(index, {"threadpoolctl": None}, "3.9") == {
        "threadpoolctl": "3.2.0",
        "typing_extensions": "4.7.1",  # PyPI's display name
    }
    assert resolve(index, {"threadpoolctl": None}, "3.11") == {"threadpoolctl": "3.2.0"}


def test_extras_of_a_pin_are_followed(index):
    assert "httptools" not in resolve(index, {"uvicorn": None}, "3.12")
    stack = resolve(index, {"uvicorn[standard]": None}, "3.12")
    assert stack == {"click": "8.1.7", "h11": "0.14.0", "httptools": "0.6.1", "uvicorn": "0.29.0"}


def test_abi3_wheels_serve_later_pythons_but_not_earlier_ones(index):
    expected = {"cffi": "1.16.0", "cryptography": "43.0.0", "pycparser": "2.21"}
    assert resolve(index, {"cryptography": None}, "3.12") == expected
    # cp39-abi3 does not install on 3.8; cp37-abi3 does.
    assert resolve(index, {"cryptography": None}, "3.8")["cryptography"] == "41.0.7"


def test_the_glibc_limit_excludes_newer_manylinux_wheels(index):
    stack = resolve(index, {"cryptography": None}, "3.12", glibc=(2, 17))
    assert stack["cryptography"] == "41.0.7"  # 43.0.0 needs glibc 2.28


def test_pure_wheels_install_on_any_python(index):
    assert resolve(index, {"joblib": None, "pycparser": None}, "3.13") == {
        "joblib": "1.3.1",
        "pycparser": "2.21",
    }


def test_sdist_only_releases_are_skipped(index):
    stack = resolve(index, {"threadpoolctl": None}, "3.9", cutoff=at("2021-04-01T00:00:00"))
    assert stack == {"threadpoolctl": "2.1.0"}


def test_an_exact_pin_may_name_a_yanked_release(index):
    assert resolve(index, {"joblib": "1.3.2"}, "3.11") == {"joblib": "1.3.2"}


def test_the_machine_chooses_the_wheels(index):
    cutoff = index.release_date("scikit-learn", "0.24.2")
    stack = resolve(index, {"scikit-learn": "0.24.2"}, "3.9", cutoff=cutoff, machine="arm64")
    assert stack["numpy"] == "1.19.5"  # 1.20.2 has no aarch64 wheels
    assert stack["scipy"] == "1.6.3"
    with pytest.raises(
        StackError, match="scikit-learn 0.24.2 has no wheel for Python 3.8 on linux/aarch64"
    ):
        resolve(index, {"scikit-learn": "0.24.2"}, "3.8", cutoff=cutoff, machine="aarch64")


def test_returned_names_are_pypi_display_names(index):
    stack = resolve(index, {"Scikit_Learn": "0.24.2", "THREADPOOLCTL": None}, "3.9")
    assert "scikit-learn" in stack and "threadpoolctl" in stack
    assert list(stack) == sorted(stack, key=str.lower)


# --- when no wheels fit ----------------------------------------------------------------------


def test_a_pin_without_a_wheel_for_the_python_is_named(index):
    cutoff = index.release_date("scikit-learn", "0.24.2")
    with pytest.raises(StackError) as caught:
        resolve(index, {"scikit-learn": "0.24.2"}, "3.11", cutoff=cutoff)
    assert str(caught.value) == "scikit-learn 0.24.2 has no wheel for Python 3.11 on linux/x86_64"
    assert "--python" in caught.value.hint
    assert isinstance(caught.value, PlanError)


def test_a_dependency_without_a_wheel_is_named_with_its_limits(index):
    cutoff = index.release_date("scikit-learn", "0.24.2")
    with pytest.raises(StackError) as caught:  # scipy's wheels all need manylinux2014
        resolve(index, {"scikit-learn": "0.24.2"}, "3.9", cutoff=cutoff, glibc=(2, 12))
    assert str(caught.value) == (
        "scipy has no wheel for Python 3.9 on linux/x86_64 with glibc 2.12 in any release "
        "on or before 2021-04-28 that satisfies >=0.19.1 (required by scikit-learn 0.24.2)"
    )
    with pytest.raises(StackError) as caught:
        resolve(index, {"numpy": None}, "3.13")
    assert str(caught.value) == "numpy has no wheel for Python 3.13 on linux/x86_64 in any release"


def test_every_misfit_is_named(index):
    with pytest.raises(StackError) as caught:
        resolve(
            index,
            {"scikit-learn": "0.24.2", "numpy": None},
            "3.11",
            cutoff=at("2021-05-01T00:00:00"),
        )
    message = str(caught.value)
    assert "scikit-learn 0.24.2 has no wheel for Python 3.11" in message
    assert (
        "numpy has no wheel for Python 3.11 on linux/x86_64 in any release on or before 2021-05-01"
        in message
    )


def test_a_missing_pinned_version_is_named(index):
    with pytest.raises(StackError, match=r"PyPI has no release 0\.24\.9 of scikit-learn"):
        resolve(index, {"scikit-learn": "0.24.9"}, "3.9")


def test_a_bad_python_is_refused(index):
    with pytest.raises(StackError, match="`python3` is not a Python version") as caught:
        resolve(index, {"numpy": None}, "python3")
    assert "3.11" in caught.value.hint


# --- choosing the Python ---------------------------------------------------------------------


def test_choose_python_takes_the_newest_that_works(index):
    cutoff = index.release_date("scikit-learn", "0.24.2")
    python, stack = choose_python(
        index, {"scikit-learn": "0.24.2"}, ["3.8", "3.11", "3.9"], cutoff=cutoff
    )
    assert python == "3.9"
    assert stack["numpy"] == "1.20.2"
    python, stack = choose_python(index, {"scikit-learn": None}, KNOWN_PYTHONS)
    assert (python, stack["scikit-learn"]) == ("3.12", "1.3.2")


def test_choose_python_names_every_python_tried(index):
    with pytest.raises(StackError) as caught:
        choose_python(index, {"scikit-learn": "0.24.2"}, ["3.11", "3.12"])
    message = str(caught.value)
    assert message.startswith("No Python among 3.12, 3.11 installs this stack from wheels")
    assert "3.12: scikit-learn 0.24.2 has no wheel" in message
    assert "3.11: scikit-learn 0.24.2 has no wheel" in message
    assert "CAIS_PYTHONS" in caught.value.hint


def test_choose_python_stops_when_the_index_does_not_answer():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    calls = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or refuse(request))
    with PackageIndex(PYPI, client=httpx.Client(transport=transport)) as index:
        with pytest.raises(StackError, match="did not answer"):
            choose_python(index, {"numpy": None}, ["3.9", "3.10", "3.11"])
    assert len(calls) == 1


# --- CAIS_PYTHONS ----------------------------------------------------------------------------


def test_default_pythons(monkeypatch):
    monkeypatch.delenv("CAIS_PYTHONS", raising=False)
    assert default_pythons() == list(KNOWN_PYTHONS)
    monkeypatch.setenv("CAIS_PYTHONS", " 3.9, 3.11,3.9 ")
    assert default_pythons() == ["3.9", "3.11"]


@pytest.mark.parametrize("value", ["", "3.9,,3.11", "3.x", "3.11.4", "2.7", "py3.11"])
def test_bad_cais_pythons_are_refused(monkeypatch, value):
    monkeypatch.setenv("CAIS_PYTHONS", value)
    with pytest.raises(StackError, match="CAIS_PYTHONS holds") as caught:
        default_pythons()
    assert "3.9,3.11" in caught.value.hint


# --- the index -------------------------------------------------------------------------------


def test_an_unknown_package_is_named(index):
    with pytest.raises(StackError) as caught:
        resolve(index, {"no-such-package": None}, "3.11")
    assert str(caught.value) == "PyPI has no package `no-such-package`"
    assert caught.value.hint


def test_a_connection_error_names_the_package_and_the_index():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with PackageIndex(PYPI, client=httpx.Client(transport=httpx.MockTransport(refuse))) as index:
        with pytest.raises(StackError) as caught:
            index.releases("numpy")
    assert str(caught.value) == (
        "The package index at pypi.test did not answer about numpy: [Errno 111] Connection refused"
    )
    assert "CAIS_PYPI_JSON_URL" in caught.value.hint


def test_a_server_error_and_bad_json_are_named():
    answers = {
        "/pypi/numpy/json": httpx.Response(503, text="upstream down"),
        "/pypi/scipy/json": httpx.Response(200, text="<html>login</html>"),
        "/pypi/joblib/json": httpx.Response(200, json=["not", "a", "project"]),
    }
    transport = httpx.MockTransport(lambda request: answers[request.url.path])
    with PackageIndex(PYPI, client=httpx.Client(transport=transport)) as index:
        with pytest.raises(StackError, match="answered 503 Service Unavailable about numpy"):
            index.releases("numpy")
        for name in ("scipy", "joblib"):
            with pytest.raises(StackError, match=f"something other than PyPI JSON about {name}"):
                index.releases(name)


def test_answers_are_kept_for_the_life_of_the_index(index, pypi):
    resolve(index, {"scikit-learn": "0.24.2"}, "3.9")
    asked = len(pypi.requests)
    assert asked > 0
    resolve(index, {"scikit-learn": "0.24.2"}, "3.9")
    choose_python(index, {"scikit-learn": "0.24.2"}, ["3.9"])
    assert len(pypi.requests) == asked


def test_the_index_url_comes_from_the_environment(monkeypatch, pypi):
    monkeypatch.setenv("CAIS_PYPI_JSON_URL", "https://mirror.test/pypi/")
    with PackageIndex(client=httpx.Client(transport=pypi.transport)) as index:
        assert index.url == "https://mirror.test/pypi"
        index.releases("numpy")
    assert str(pypi.requests[0].url) == "https://mirror.test/pypi/numpy/json"


def test_releases_lists_final_unyanked_releases_with_their_files(index):
    releases = index.releases("joblib")
    assert [r.text for r in releases] == ["1.0.1", "1.1.0", "1.3.1"]
    assert releases[0].files[0].url == f"{FILES}/joblib-1.0.1-py3-none-any.whl"
    assert not index.releases("threadpoolctl")[1].files[0].is_wheel  # 2.2.0, the sdist
    assert index.release("scikit-learn", "1.4.0rc1").final is False


def test_requires_come_from_the_per_version_json(index):
    assert index.requires("scipy", "1.6.3") == ["numpy (<1.23.0,>=1.16.5)"]
    assert index.requires("numpy", "1.20.2") == []


def test_a_null_requires_dist_is_checked_against_the_wheels():
    pypi = FakePyPI(sdist_first=("scikit-learn", "numpy"))
    with pypi.index() as index:
        assert index.requires("scikit-learn", "0.24.2") == SKLEARN_0_24
        assert index.requires("numpy", "1.20.2") == []
    assert any(path.endswith("/0.24.2/json") for path in pypi.paths())
    assert any(
        "/scikit_learn-0.24.2-" in path and path.endswith(".whl.metadata") for path in pypi.paths()
    )
    pypi = FakePyPI(sdist_first=("threadpoolctl",), metadata_files=False)
    with pypi.index() as index:  # nothing more to learn: null means none
        assert index.requires("threadpoolctl", "3.2.0") == []


def test_requires_fall_back_to_pep_658_metadata():
    pypi = FakePyPI(version_json=False)
    with pypi.index() as index:
        assert index.requires("scikit-learn", "0.24.2") == SKLEARN_0_24
        assert index.requires("scipy", "1.6.3") == ["numpy (<1.23.0,>=1.16.5)"]
    # Once the per-version document proves missing, it is not asked for again.
    assert sum(path.endswith("/0.24.2/json") for path in pypi.paths()) == 1
    assert not any(path.endswith("/1.6.3/json") for path in pypi.paths())
    assert any(path.endswith(".whl.metadata") for path in pypi.paths())


def test_requires_fall_back_to_reading_the_wheel_by_ranges():
    pypi = FakePyPI(version_json=False, metadata_files=False, whole_wheels=True)
    with pypi.index() as index:
        stack = resolve(index, {"uvicorn[standard]": None}, "3.11")
    assert stack == {"click": "8.1.7", "h11": "0.14.0", "httptools": "0.6.1", "uvicorn": "0.29.0"}
    ranged = [r for r in pypi.requests if "range" in r.headers]
    assert ranged
    assert pypi.served_bytes < len(pypi.wheels["uvicorn-0.29.0-py3-none-any.whl"])


def test_relative_file_urls_are_resolved_against_the_index():
    document = {
        "info": {"name": "joblib"},
        "releases": {
            "1.0.1": [
                {
                    "filename": "joblib-1.0.1-py3-none-any.whl",
                    "url": "../../packages/ab/cd/joblib-1.0.1-py3-none-any.whl",
                    "upload_time": "2021-02-09T15:25:03",
                    "requires_python": ">=3.6",
                    "yanked": False,
                }
            ]
        },
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=document))
    with PackageIndex(
        "https://mirror.test/pypi", client=httpx.Client(transport=transport)
    ) as index:
        (joblib,) = index.releases("joblib")
    assert joblib.files[0].url == "https://mirror.test/packages/ab/cd/joblib-1.0.1-py3-none-any.whl"
    assert joblib.date == at("2021-02-09T15:25:03")


def test_an_index_made_without_a_client_owns_and_closes_its_own(monkeypatch):
    monkeypatch.delenv("CAIS_PYPI_JSON_URL", raising=False)
    index = PackageIndex()
    assert index.url == "https://pypi.org/pypi"
    index.close()
    assert index._client.is_closed


# --- tags ------------------------------------------------------------------------------------


def test_linux_platforms_include_the_legacy_aliases():
    platforms = linux_platforms("x86_64", (2, 31))
    assert platforms[0] == "manylinux_2_31_x86_64"
    for alias in ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"):
        assert alias in platforms
    assert platforms[-1] == "manylinux1_x86_64"
    arm = linux_platforms("arm64", (2, 28))
    assert arm[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert "manylinux2010_aarch64" not in arm


def test_supported_tags_put_the_pythons_own_abi_first():
    tags = [str(t) for t in supported_tags("3.11")]
    assert tags[0] == "cp311-cp311-manylinux_2_31_x86_64"
    assert "cp39-abi3-manylinux2014_x86_64" in tags
    assert "py3-none-any" in tags
    assert "cp312-abi3-manylinux2014_x86_64" not in tags
    assert not any("musllinux" in t or "macosx" in t for t in tags)
