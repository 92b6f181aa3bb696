"""`cais deploy swarm` without a swarm: the stack file it writes (checked against the Compose
Spec's JSON schema and by Debian's docker-compose, which reads format 3.8), how it reads the
engine's swarm state, and the mistakes it refuses."""

from __future__ import annotations

from pathlib import Path

import docker.errors
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
    STACK_KEY,
    ComposeOptions,
    render,
    write,
)
from cais.deploy.swarm import _manager, _runs
from cais.errors import DeployError
from tests.support import assert_one_error, run_cais
from tests.unit.test_deploy_compose import HEALTH, _target, _validate


def _stack(tmp_path: Path, target=None, **options) -> Path:
    options = {"project": "products", "swarm": True, "replicas": 2, **options}
    write(render(target or _target(), ComposeOptions(**options), "stack.yaml"), tmp_path)
    return tmp_path / "stack.yaml"


def _services(file: Path) -> dict:
    return yaml.safe_load(file.read_text())["services"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"monitoring": True},
        {"replicas": 5, "port": 9000, "memory": "512m"},
        {"proxy": False, "replicas": 1, "monitoring": True},
    ],
)
def test_every_variant_is_a_valid_stack_file(tmp_path, options):
    _validate(_stack(tmp_path, **options))


@pytest.mark.parametrize(
    "target",
    [_target(healthcheck=None), _target(image="products:3", model=None, name="shop")],
)
def test_images_without_health_or_digest_are_valid_stack_files(tmp_path, target):
    file = _stack(tmp_path, target, monitoring=True)
    _validate(file)
    assert ("healthcheck" in _services(file)[API]) is (target.healthcheck is not None)


def test_the_api_is_found_by_dns_and_only_nginx_is_published_on_its_host(tmp_path):
    file = _stack(tmp_path, monitoring=True, port=8181, replicas=3)
    spec = yaml.safe_load(file.read_text())
    assert spec["version"] == "3.8"
    assert spec[STACK_KEY] == "products"
    services = spec["services"]
    assert list(services) == [API, PROXY, PROMETHEUS]
    api = services[API]
    assert api["image"] == _target().image
    assert api["healthcheck"]["test"] == list(HEALTH)
    assert api["deploy"]["endpoint_mode"] == "dnsrr"
    assert api["deploy"]["replicas"] == 3
    assert api["deploy"]["resources"]["limits"]["memory"] == "1g"
    assert [name for name, s in services.items() if "ports" in s] == [PROXY]
    assert services[PROXY]["ports"] == [{"target": 80, "published": 8181, "mode": "host"}]
    for service in services.values():  # Swarm ignores these: they would mislead a reader
        assert not {"restart", "depends_on", "expose"} & set(service)


def test_updates_start_the_new_replica_first_and_roll_back_on_failure(tmp_path):
    services = _services(_stack(tmp_path, monitoring=True))
    update = services[API]["deploy"]["update_config"]
    assert update == {
        "parallelism": 1,
        "order": "start-first",
        "failure_action": "rollback",
        "monitor": "15s",
    }
    assert services[API]["deploy"]["rollback_config"]["order"] == "start-first"
    assert services[API]["stop_grace_period"] == "10s"  # over the server's 8 s of draining
    # one nginx (one Prometheus) holds its port or volume: the old one stops first
    for single in (PROXY, PROMETHEUS):
        assert services[single]["deploy"]["replicas"] == 1
        assert services[single]["deploy"]["update_config"]["order"] == "stop-first"


def test_without_a_proxy_one_replica_is_published_on_its_host(tmp_path):
    services = _services(_stack(tmp_path, proxy=False, port=9100))
    assert list(services) == [API]
    api = services[API]
    assert api["ports"] == [{"target": 8080, "published": 9100, "mode": "host"}]
    assert "endpoint_mode" not in api["deploy"]
    assert api["deploy"]["replicas"] == 1
    assert api["deploy"]["update_config"]["order"] == "stop-first"
    assert not (tmp_path / NGINX_CONF).exists()


def test_configs_are_swarm_configs_named_by_their_content(tmp_path):
    first = yaml.safe_load(_stack(tmp_path / "a", monitoring=True).read_text())
    assert first["services"][PROXY]["configs"] == [
        {"source": "nginx", "target": "/etc/nginx/conf.d/default.conf"}
    ]
    assert first["configs"]["nginx"]["file"] == f"./{NGINX_CONF}"
    assert first["configs"]["prometheus"]["file"] == f"./{PROMETHEUS_CONF}"
    assert first["configs"]["nginx"]["name"].startswith("products_nginx-")
    # a new version of the model leaves the proxy's config (so the proxy) as it is
    newer = _target(image="127.0.0.1:5000/products:4@sha256:" + "ef" * 32, model="products:4")
    second = yaml.safe_load(_stack(tmp_path / "b", newer, monitoring=True).read_text())
    assert second["configs"] == first["configs"]
    assert second["services"][PROXY] == first["services"][PROXY]
    # another API port changes the config, and so its name
    third = yaml.safe_load(_stack(tmp_path / "c", _target(port=9001)).read_text())
    assert third["configs"]["nginx"]["name"] != first["configs"]["nginx"]["name"]
    assert not (tmp_path / "a" / ".env").exists()  # docker-compose's, not Swarm's


def test_nginx_retries_another_replica_and_re_resolves_them(tmp_path):
    _stack(tmp_path, _target(port=9001))
    conf = (tmp_path / NGINX_CONF).read_text()
    assert "resolver 127.0.0.11 valid=1s ipv6=off;" in conf
    assert "set $api http://api:9001;" in conf
    assert "proxy_pass $api;" in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "non_idempotent" not in conf  # a POST that reached a replica is never sent twice


def test_prometheus_scrapes_every_replica(tmp_path):
    _stack(tmp_path, _target(port=9001), monitoring=True)
    config = yaml.safe_load((tmp_path / PROMETHEUS_CONF).read_text())
    (job,) = config["scrape_configs"]
    assert job["dns_sd_configs"] == [{"names": ["tasks.api"], "type": "A", "port": 9001}]


def test_the_file_says_why(tmp_path):
    text = _stack(tmp_path, monitoring=True).read_text()
    comments = " ".join(line.strip() for line in text.splitlines() if line.strip().startswith("#"))
    for why in ("IPVS", "rolling update", "dnsrr", "`mode: host`", "healthy", "rolled back"):
        assert why in comments, why


# ------------------------------------------------------------------ the engine's swarm state


class _Swarm:
    def __init__(self, fails: list[str]):
        self.fails = fails  # the errors the next init calls raise, in order
        self.calls: list[dict] = []

    def init(self, **options):
        self.calls.append(options)
        if self.fails:
            raise docker.errors.APIError("init", explanation=self.fails.pop(0))


class _Engine:
    def __init__(self, state: str, manager: bool = True, error: str = "", fails=()):
        self.state = {"LocalNodeState": state, "ControlAvailable": manager, "Error": error}
        self.swarm = _Swarm(list(fails))

    def info(self):
        return {"Swarm": self.state}


def test_a_manager_is_used_as_it_is():
    engine = _Engine("active")
    assert _manager(engine) is False
    assert engine.swarm.calls == []


def test_an_engine_in_no_swarm_becomes_one():
    engine = _Engine("inactive")
    assert _manager(engine) is True
    assert engine.swarm.calls == [{}]


def test_an_engine_that_cannot_choose_an_address_advertises_the_loopback():
    engine = _Engine("inactive", fails=["could not choose an IP address to advertise"])
    assert _manager(engine) is True
    assert engine.swarm.calls == [{}, {"advertise_addr": "127.0.0.1"}]


@pytest.mark.parametrize(
    ("engine", "says"),
    [
        (_Engine("active", manager=False), "is a worker of a swarm"),
        (_Engine("locked"), "swarm is `locked`"),
        (_Engine("error", error="raft failed"), "swarm is `error`: raft failed"),
        (_Engine("inactive", fails=["permission denied"]), "`docker swarm init` failed"),
        (
            _Engine("inactive", fails=["could not choose an IP address to advertise"] * 2),
            "`docker swarm init` failed: could not choose",
        ),
    ],
)
def test_an_engine_that_cannot_deploy_stacks_is_one_sentence(engine, says):
    with pytest.raises(DeployError, match=says) as caught:
        _manager(engine)
    assert caught.value.hint


def test_a_replica_runs_its_services_spec_whatever_defaults_the_service_adds():
    template = {"ContainerSpec": {"Image": "products:4"}, "ForceUpdate": 0, "Runtime": "container"}
    assert _runs({"Spec": {"ContainerSpec": {"Image": "products:4"}, "ForceUpdate": 0}}, template)
    assert not _runs({"Spec": {"ContainerSpec": {"Image": "products:3"}}}, template)


# ------------------------------------------------------------------ refused before any engine


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--up", "--down"], "cannot go together"),
        (["products:1", "--name", "Bad Name"], "cannot name a Swarm stack"),
        (["products:1", "--name", "ends-"], "cannot name a Swarm stack"),
        (["products:1", "--name", "x" * 51], "cannot name a Swarm stack"),
        (["products:1", "--memory", "lots"], "is not a memory size"),
        (["products:1", "--proxy", "none", "--replicas", "3"], "3 replicas need the proxy"),
        ([], "Missing the model or image"),
        (["--down", "-o", "nowhere/stack.yaml"], "no stack file at"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "swarm", *args])
    assert says in assert_one_error(result)


def test_down_with_a_file_that_names_no_stack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stack.yaml").write_text("services: {}\n")
    result = CliRunner().invoke(app, ["deploy", "swarm", "--down"])
    assert "names no stack" in assert_one_error(result)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["products:1", "--replicas", "0"], "--replicas"),
        (["products:1", "--proxy", "traefik"], "`traefik`"),
        (["products:1", "--port", "70000"], "--port"),
        (["products:1", "--timeout", "0"], "--timeout"),
    ],
)
def test_values_the_options_refuse_are_one_sentence(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "swarm", *args])
    assert says in assert_one_error(result, code=2)


@pytest.mark.parametrize(
    "args", [["products:1"], ["products:1", "--up"], ["--down", "--name", "products"]]
)
def test_no_engine_is_one_sentence(tmp_path, args):
    done = run_cais(
        "deploy",
        "swarm",
        *args,
        cwd=tmp_path,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "CAIS_HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: The Docker Engine at "), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "stack.yaml").exists()


def test_no_docker_command_is_one_sentence(monkeypatch):
    from cais.deploy import swarm

    monkeypatch.setattr(swarm, "docker_cli", lambda: None)
    with pytest.raises(DeployError, match="The `docker` command is not installed") as caught:
        swarm.preflight(_Engine("active"), swarm.Stack(Path("s.yaml"), "products", 8080, PROXY))
    assert "docker.io" in caught.value.hint


@pytest.mark.parametrize(("state", "manager"), [("active", True), ("inactive", False)])
def test_down_asks_no_init(state, manager):
    engine = _Engine(state)
    assert _manager(engine, join=False) is manager
    assert engine.swarm.calls == []


def test_down_on_an_engine_in_no_swarm_is_one_sentence(monkeypatch):
    from cais.deploy import swarm

    monkeypatch.setattr(swarm, "docker_cli", lambda: "/usr/bin/docker")
    with pytest.raises(DeployError, match="There is no stack `products` on this engine"):
        swarm.remove(_Engine("inactive"), "products", 10)
