"""cais.builders.pip_settings: CA bundles and index settings for builds behind a proxy."""

from __future__ import annotations

import re
from pathlib import Path

import certifi
import pytest

from cais.builders.pip_settings import CA_ENV_VARS, PipSettings, pip_settings
from cais.errors import PlanError

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
LIMIT = 500 * 1024


def certifi_blocks() -> list[bytes]:
    return PEM.findall(Path(certifi.where()).read_bytes())


@pytest.fixture
def cert_file(tmp_path, make_cert):
    def make(name: str, *, common_name: str | None = None, text: bytes | None = None) -> Path:
        path = tmp_path / name
        path.write_bytes(text if text is not None else make_cert(common_name or name))
        return path

    return make


def test_ca_cert_option_is_bundled_with_certifi(cert_file):
    ca = cert_file("proxy.pem")
    settings = pip_settings([ca], environ={})
    assert settings.ca_sources == (str(ca),)
    blocks = PEM.findall(settings.ca_bundle)
    assert blocks.count(ca.read_bytes().strip()) == 1
    assert blocks[0] == ca.read_bytes().strip()  # the given certificate comes first
    assert set(certifi_blocks()) <= set(blocks)
    assert len(blocks) == len(set(blocks)) == len(set(certifi_blocks())) + 1
    assert settings.ca_bundle.endswith(b"\n")
    assert bool(settings) is True


def test_several_ca_certs_and_a_bundle_file(cert_file, make_cert):
    one, two = make_cert("one"), make_cert("two")
    bundle = cert_file("bundle.pem", text=b"# a comment\n" + one + b"\nsome text\n" + two)
    single = cert_file("single.pem", text=one)  # the same certificate again
    settings = pip_settings([bundle, single], environ={})
    blocks = PEM.findall(settings.ca_bundle)
    assert blocks[:2] == [one.strip(), two.strip()]
    assert blocks.count(one.strip()) == 1
    assert settings.ca_sources == (str(bundle), str(single))
    assert b"some text" not in settings.ca_bundle
    assert b"# a comment" not in settings.ca_bundle


def test_windows_line_endings_are_normalised(cert_file, make_cert):
    pem = make_cert("crlf")
    ca = cert_file("crlf.pem", text=pem.replace(b"\n", b"\r\n"))
    bundle = pip_settings([ca], environ={}).ca_bundle
    assert b"\r" not in bundle
    assert PEM.findall(bundle).count(pem.strip()) == 1


def test_a_certificate_certifi_already_has_appears_once(cert_file):
    public = certifi_blocks()[0]
    ca = cert_file("public.pem", text=public + b"\n")
    blocks = PEM.findall(pip_settings([ca], environ={}).ca_bundle)
    assert blocks.count(public) == 1
    assert len(blocks) == len(set(certifi_blocks()))


def test_option_wins_over_environment(cert_file):
    option, from_env = cert_file("option.pem"), cert_file("env.pem")
    settings = pip_settings(
        [option], environ={"PIP_CERT": str(from_env), "SSL_CERT_FILE": str(from_env)}
    )
    assert settings.ca_sources == (str(option),)
    assert from_env.read_bytes().strip() not in settings.ca_bundle


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"), "PIP_CERT"),
        (("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"), "SSL_CERT_FILE"),
        (("REQUESTS_CA_BUNDLE",), "REQUESTS_CA_BUNDLE"),
    ],
)
def test_environment_order(cert_file, present, expected):
    files = {var: cert_file(f"{var}.pem") for var in CA_ENV_VARS}
    environ = {var: str(files[var]) for var in present}
    settings = pip_settings(environ=environ)
    assert settings.ca_sources == (str(files[expected]),)
    blocks = PEM.findall(settings.ca_bundle)
    assert files[expected].read_bytes().strip() in blocks
    for var in CA_ENV_VARS:
        if var != expected:
            assert files[var].read_bytes().strip() not in blocks


def test_environment_variable_naming_a_missing_file_is_passed_over(cert_file, tmp_path):
    ca = cert_file("ok.pem")
    settings = pip_settings(
        environ={"PIP_CERT": str(tmp_path / "gone.pem"), "SSL_CERT_FILE": str(ca)}
    )
    assert settings.ca_sources == (str(ca),)


def test_process_environment_is_the_default(cert_file, monkeypatch):
    ca = cert_file("process.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    settings = pip_settings()
    assert settings.ca_sources == (str(ca),)
    assert settings.index_url == "https://mirror.example/simple"


def test_missing_ca_cert_file(tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(PlanError) as caught:
        pip_settings([missing], environ={})
    assert caught.value.message == f"The CA certificate `{missing}` does not exist"
    assert "PEM" in caught.value.hint


def test_ca_cert_that_is_a_folder(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        pip_settings([tmp_path], environ={})


@pytest.mark.parametrize(
    "content",
    [b"", b"not a certificate\n", b"\x30\x82\x01\x0a\x02\x82", b"-----BEGIN CERTIFICATE-----\n"],
)
def test_file_without_pem_certificate(cert_file, content):
    bad = cert_file("bad.der", text=content)
    with pytest.raises(PlanError) as caught:
        pip_settings([bad], environ={})
    assert caught.value.message == f"`{bad}` holds no PEM certificate"
    assert "openssl x509" in caught.value.hint


def test_bundle_stays_under_the_buildkit_limit_with_a_large_bundle(cert_file, make_cert):
    given = [make_cert(f"corp {n}") for n in range(700)]  # ~320 KiB of distinct CAs
    bundle_file = cert_file("corporate-bundle.pem", text=b"\n".join(given))
    assert 250 * 1024 < bundle_file.stat().st_size < LIMIT
    bundle = pip_settings([bundle_file], environ={}).ca_bundle
    assert len(bundle) < LIMIT
    blocks = PEM.findall(bundle)
    assert blocks[: len(given)] == [pem.strip() for pem in given]  # every given one, in order
    assert len(blocks) > len(given)  # and as many of certifi's as fit
    assert len(blocks) == len(set(blocks))


def test_bundle_larger_than_the_limit_is_refused_or_capped(cert_file, make_cert):
    given = [make_cert(f"huge {n}") for n in range(1300)]  # ~600 KiB
    bundle_file = cert_file("huge-bundle.pem", text=b"\n".join(given))
    assert bundle_file.stat().st_size > LIMIT
    try:
        bundle = pip_settings([bundle_file], environ={}).ca_bundle
    except PlanError as exc:
        assert "500 KiB" in f"{exc} {exc.hint}"
    else:
        assert len(bundle) < LIMIT


def test_index_url_from_option_and_environment():
    assert pip_settings(
        index_url="https://a.example/simple", environ={"PIP_INDEX_URL": "https://b"}
    ).index_url == ("https://a.example/simple")
    assert (
        pip_settings(environ={"PIP_INDEX_URL": "https://b.example/simple"}).index_url
        == "https://b.example/simple"
    )
    assert pip_settings(environ={"PIP_INDEX_URL": ""}).index_url is None


def test_extra_index_urls_and_trusted_hosts_from_environment():
    settings = pip_settings(
        environ={
            "PIP_EXTRA_INDEX_URL": "https://x.example/simple https://y.example/simple",
            "PIP_TRUSTED_HOST": "x.example y.example",
        }
    )
    assert settings.extra_index_urls == ("https://x.example/simple", "https://y.example/simple")
    assert settings.trusted_hosts == ("x.example", "y.example")
    assert bool(settings) is True
    assert settings.ca_bundle == b""


def test_empty_settings_are_false():
    settings = pip_settings(environ={})
    assert settings == PipSettings()
    assert bool(settings) is False
    assert settings.describe() == ""
    assert bool(PipSettings()) is False


def test_pip_conf_text(cert_file):
    settings = pip_settings(
        [cert_file("ca.pem")],
        "https://mirror.example/simple",
        environ={
            "PIP_EXTRA_INDEX_URL": "https://x.example/simple",
            "PIP_TRUSTED_HOST": "x.example",
        },
    )
    assert settings.pip_conf("/run/secrets/cais-ca.pem") == (
        "[global]\n"
        "cert = /run/secrets/cais-ca.pem\n"
        "index-url = https://mirror.example/simple\n"
        "extra-index-url = https://x.example/simple\n"
        "trusted-host = x.example\n"
    )


def test_pip_conf_without_certificate():
    settings = pip_settings(index_url="https://mirror.example/simple", environ={})
    assert settings.pip_conf("/ca.pem") == "[global]\nindex-url = https://mirror.example/simple\n"


def test_describe(cert_file):
    ca = cert_file("ca.pem")
    assert pip_settings([ca], environ={}).describe() == f"CA certificates from `{ca}`"
    assert (
        pip_settings([ca], "https://i", environ={}).describe()
        == f"CA certificates from `{ca}` and a package index"
    )


def test_describe_names_every_kind_of_setting():
    settings = pip_settings(
        environ={"PIP_EXTRA_INDEX_URL": "https://x", "PIP_TRUSTED_HOST": "x", "PIP_INDEX_URL": "i"}
    )
    assert settings.describe() == "a package index, extra package indexes and trusted hosts"
    assert pip_settings(environ={"PIP_TRUSTED_HOST": "x"}).describe() == "trusted hosts"
