"""`cais deploy compose` without an engine: the files it writes (checked against the Compose
Spec's JSON schema and by Debian's docker-compose), the image reference it picks, and the
mistakes it refuses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cais.cli import app
from cais.deploy.compose import (
    API,
    NGINX_CONF,
    PROMETHEUS,
    PROMETHEUS_CONF,
    PROXY,
    ComposeOptions,
    render,
    write,
)
from cais.deploy.target import Target, _healthcheck, _pinned_reference, _port
from cais.errors import DeployError
from cais.registry.reference import parse_reference
from tests.support import assert_one_error, run_cais, unavailable

DIGEST = "sha256:" + "ab" * 32
HEALTH = ("CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('x')")


def _target(**changes) -> Target:
    values = {
        "image": f"127.0.0.1:5000/products:3@{DIGEST}",
        "image_id": "sha256:" + "cd" * 32,
        "name": "products",
        "model": "products:3",
        "port": 8080,
        "healthcheck": HEALTH,
    }
    return Target(**{**values, **changes})


def _written(tmp_path: Path, target: Target | None = None, **options) -> Path:
    options = {"project": "products", **options}
    write(render(target or _target(), ComposeOptions(**options), "compose.yaml"), tmp_path)
    return tmp_path / "compose.yaml"


def _validate(file: Path) -> None:
    """The Compose Spec's own schema (vendored by check-jsonschema) and docker-compose 1.29."""
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if checker is None:
        unavailable("check-jsonschema is not installed (pip install -e '.[test]')")
    checked = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(file)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    compose = shutil.which("docker-compose")
    if compose is None:
        unavailable("docker-compose is not installed (scripts/test-infra installs it)")
    parsed = subprocess.run(
        [compose, "--file", str(file), "config", "--quiet"], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"monitoring": True},
        {"proxy": False},
        {"proxy": False, "monitoring": True, "port": 9000, "memory": "512m"},
    ],
)
def test_every_variant_is_valid_compose(tmp_path, options):
    _validate(_written(tmp_path, **options))


@pytest.mark.parametrize(
    "target",
    [_target(healthcheck=None), _target(image="products:3", model=None, name="shop")],
)
def test_images_without_health_or_digest_are_valid_compose(tmp_path, target):
    _validate(_written(tmp_path, target, monitoring=True))


def test_the_api_is_behind_nginx_and_only_nginx_is_published(tmp_path):
    file = _written(tmp_path, monitoring=True, port=8181)
    services = yaml.safe_load(file.read_text())["services"]
    assert list(services) == [API, PROXY, PROMETHEUS]
    api, proxy, prometheus = services[API], services[PROXY], services[PROMETHEUS]
    assert api["image"] == f"127.0.0.1:5000/products:3@{DIGEST}"
    assert [name for name, s in services.items() if "ports" in s] == [PROXY]
    assert proxy["ports"] == ["8181:80"]
    assert api["healthcheck"]["test"] == list(HEALTH)
    assert api["deploy"]["resources"]["limits"]["memory"] == "1g"
    for service in services.values():
        assert service["restart"] == "unless-stopped"
        assert "memory" in service["deploy"]["resources"]["limits"]
    for waiting in (proxy, prometheus):
        assert waiting["depends_on"] == {API: {"condition": "service_healthy"}}
    assert proxy["volumes"] == [f"./{NGINX_CONF}:/etc/nginx/conf.d/default.conf:ro"]
    assert f"./{PROMETHEUS_CONF}:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


def test_nginx_re_resolves_the_api_on_its_port(tmp_path):
    _written(tmp_path, _target(port=9001))
    conf = (tmp_path / NGINX_CONF).read_text()
    assert "resolver 127.0.0.11" in conf
    assert "set $api http://api:9001;" in conf
    assert "proxy_pass $api;" in conf
    assert "client_max_body_size 10m;" in conf


def test_prometheus_scrapes_the_api_metrics(tmp_path):
    _written(tmp_path, _target(port=9001), monitoring=True)
    config = yaml.safe_load((tmp_path / PROMETHEUS_CONF).read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "products"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["api:9001"]}]


def test_without_monitoring_or_proxy_their_files_are_not_written(tmp_path):
    file = _written(tmp_path, proxy=False, port=9100)
    services = yaml.safe_load(file.read_text())["services"]
    assert list(services) == [API]
    assert services[API]["ports"] == ["9100:8080"]
    assert not (tmp_path / NGINX_CONF).exists()
    assert not (tmp_path / PROMETHEUS_CONF).exists()
    assert (tmp_path / ".env").read_text().endswith("COMPOSE_PROJECT_NAME=products\n")


def test_an_api_without_a_health_check_is_waited_for_as_started(tmp_path):
    file = _written(tmp_path, _target(healthcheck=None))
    services = yaml.safe_load(file.read_text())["services"]
    assert "healthcheck" not in services[API]
    assert services[PROXY]["depends_on"] == {API: {"condition": "service_started"}}


def test_an_image_never_pushed_is_named_by_tag_with_its_id_beside(tmp_path):
    target = _target(image="products:3")
    text = _written(tmp_path, target).read_text()
    assert yaml.safe_load(text)["services"][API]["image"] == "products:3"
    assert target.image_id in text  # in a comment


def test_proxy_and_monitoring_images_are_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIS_NGINX_IMAGE", "mirror.example:5000/nginx:1.25")
    monkeypatch.setenv("CAIS_PROMETHEUS_IMAGE", "mirror.example:5000/prometheus:v2.50.0")
    services = yaml.safe_load(_written(tmp_path, monitoring=True).read_text())["services"]
    assert services[PROXY]["image"] == "mirror.example:5000/nginx:1.25"
    assert services[PROMETHEUS]["image"] == "mirror.example:5000/prometheus:v2.50.0"


def test_the_file_says_why(tmp_path):
    text = _written(tmp_path, monitoring=True).read_text()
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert any("only service published" in c for c in comments)
    assert any("digest" in c for c in comments)
    assert any("health order" in c for c in comments)


# ------------------------------------------------------------------ the image reference


def _attrs(tags=(), digests=()) -> dict:
    return {"RepoTags": list(tags), "RepoDigests": list(digests)}


@pytest.mark.parametrize(
    ("asked", "attrs", "version", "expected"),
    [
        # pushed under the name asked for: that name, the tag, the registry's digest
        (
            "127.0.0.1:5000/products:3",
            _attrs(["127.0.0.1:5000/products:3"], [f"127.0.0.1:5000/products@{DIGEST}"]),
            "3",
            f"127.0.0.1:5000/products:3@{DIGEST}",
        ),
        # built locally, pushed under another name: the pushed name, so it can be pulled
        (
            "products:3",
            _attrs(["products:3"], [f"127.0.0.1:5000/shop/products@{DIGEST}"]),
            "3",
            f"127.0.0.1:5000/shop/products:3@{DIGEST}",
        ),
        # latest given: the model's version tag of the same image instead
        (
            "products:latest",
            _attrs(["products:latest", "products:3"], [f"products@{DIGEST}"]),
            "3",
            f"products:3@{DIGEST}",
        ),
        # latest with a digest and no other tag: pinned by the digest all the same
        (
            "127.0.0.1:5000/web",
            _attrs(["127.0.0.1:5000/web:latest"], [f"127.0.0.1:5000/web@{DIGEST}"]),
            None,
            f"127.0.0.1:5000/web:latest@{DIGEST}",
        ),
        # asked for by digest: that digest, and the image's version tag
        (
            f"127.0.0.1:5000/web@{DIGEST}",
            _attrs(["127.0.0.1:5000/web:2"], [f"127.0.0.1:5000/web@{DIGEST}"]),
            None,
            f"127.0.0.1:5000/web:2@{DIGEST}",
        ),
        # never pushed: the version tag alone
        ("products:3", _attrs(["products:3"]), "3", "products:3"),
        ("web", _attrs(["web:latest", "web:2.1"]), None, "web:2.1"),
    ],
)
def test_the_image_is_named_by_version_and_digest(asked, attrs, version, expected):
    assert _pinned_reference(attrs, parse_reference(asked), version) == expected


@pytest.mark.parametrize("asked", ["web", "web:latest", "127.0.0.1:5000/team/web:latest"])
def test_only_latest_and_no_digest_is_refused(asked):
    wanted = parse_reference(asked)
    with pytest.raises(DeployError, match="names no version") as caught:
        _pinned_reference(_attrs([f"{wanted.name}:latest"]), wanted, None)
    assert "cais tag" in caught.value.hint


@pytest.mark.parametrize(
    ("exposed", "port"),
    [({"8080/tcp": {}}, 8080), ({"5000/tcp": {}}, 5000), ({"9000/tcp": {}, "8080/tcp": {}}, 8080)],
)
def test_the_api_port_is_the_exposed_one(exposed, port):
    assert _port({"ExposedPorts": exposed}, "web:1") == port


@pytest.mark.parametrize("config", [{}, {"ExposedPorts": None}, {"ExposedPorts": {"53/udp": {}}}])
def test_an_image_exposing_no_tcp_port_is_refused(config):
    with pytest.raises(DeployError, match="exposes no TCP port"):
        _port(config, "web:1")


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ({"Test": ["CMD", "true"]}, ("CMD", "true")),
        ({"Test": ["CMD-SHELL", "curl -f localhost"]}, ("CMD-SHELL", "curl -f localhost")),
        ({"Test": ["NONE"]}, None),
        (None, None),
    ],
)
def test_the_image_health_check_is_kept(health, expected):
    assert _healthcheck({"Healthcheck": health}) == expected


# ------------------------------------------------------------------ refused before any engine


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--up", "--down"], "cannot go together"),
        (["products:1", "--name", "Bad Name"], "cannot name a Compose project"),
        (["products:1", "--name", "_x"], "cannot name a Compose project"),
        (["products:1", "--memory", "lots"], "is not a memory size"),
        (["products:1", "--memory", "0m"], "is not a memory size"),
        ([], "Missing the model or image"),
        (["--down", "-o", "nowhere/compose.yaml"], "no Compose file at"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "compose", *args])
    assert says in assert_one_error(result)


@pytest.mark.parametrize("extra", [[], ["--up"], ["--monitoring", "--up"]])
def test_no_engine_is_one_sentence(tmp_path, extra):
    done = run_cais(
        "deploy",
        "compose",
        "products:1",
        *extra,
        cwd=tmp_path,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "CAIS_HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: The Docker Engine at "), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "compose.yaml").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--proxy", "traefik"], "`traefik`"),
        (["products:1", "--port", "0"], "--port"),
        (["products:1", "--port", "http"], "`http`"),
        (["products:1", "--timeout", "0"], "--timeout"),
    ],
)
def test_values_the_options_refuse_are_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "compose", *args])
    assert says in assert_one_error(result, code=2)


class _Container:
    """A container's inspect data, as the engine reports it."""

    def __init__(self, status: str, health: str | None = None, code: int = 0, restarts: int = 0):
        state = {"Status": status, "ExitCode": code}
        if health:
            state["Health"] = {"Status": health}
        self.attrs = {"State": state, "RestartCount": restarts}


@pytest.mark.parametrize(
    ("container", "problem"),
    [
        (_Container("running", "healthy"), None),
        (_Container("running"), None),  # no health check: running is enough
        (_Container("running", "starting"), None),
        (_Container("created"), None),
        (_Container("running", "unhealthy"), "is unhealthy"),
        (_Container("exited", code=3), "exited with code 3"),
        (_Container("exited", code=0), "exited"),
        (
            _Container("restarting", code=1, restarts=2),
            "exited with code 1 and was restarted 2 times",
        ),
        (_Container("running", "starting", restarts=1), "exited and was restarted 1 time"),
        (_Container("running", "healthy", restarts=1), None),  # back, and healthy
    ],
)
def test_what_is_wrong_with_a_service_for_good(container, problem):
    from cais.deploy.runner import _problem

    assert _problem(container) == problem


def test_a_folders_own_env_file_keeps_its_settings(tmp_path):
    (tmp_path / ".env").write_text("API_TOKEN=kept\nCOMPOSE_PROJECT_NAME=old\n")
    _written(tmp_path, project="first")
    _written(tmp_path, project="second")
    lines = (tmp_path / ".env").read_text().splitlines()
    assert "API_TOKEN=kept" in lines
    assert [line for line in lines if "PROJECT_NAME" in line] == ["COMPOSE_PROJECT_NAME=second"]
    assert len(lines) == len(set(lines))  # our comments once, however often it is written
