"""cais.deploy.status and `cais status` from the engine's own answers, captured from Docker 20.10
(tests/unit/engine_status): a `cais deploy compose --up` project with nginx and Prometheus,
its API stopped and starting again; a `docker stack deploy` stack while created, updating,
updated, rolled back and published."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import docker.errors
import pytest
import requests
from typer.testing import CliRunner

from cais.cli import app
from cais.deploy.status import Model, Port, Update, deployments, read
from cais.errors import EngineError
from tests.support import assert_one_error

DATA = Path(__file__).parent / "engine_status"
PROJECT, STACK = "statuscap-x", "statuscapstack"
IMAGE = (
    "127.0.0.1:5000/statuscap:1@sha256:"
    "8cddcbaf3b737101cec5fe4341c7a0ccb91db7ab8275d51de3753b2253065b6b"
)


def captured(name: str) -> list[dict]:
    return json.loads((DATA / f"{name}.json").read_text())


def compose(rows: list[dict]):
    (found,) = deployments(rows, [])
    return found, {service.name: service for service in found.services}


def labels() -> dict[str, str]:
    """The labels `cais build` gave the image (its summary in `GET /images/json`)."""
    (image,) = (i for i in captured("images") if "dev.cais.version" in (i["Labels"] or {}))
    return image["Labels"]


def stack(services: list[dict], containers: list[dict] | None = None, inspected=None):
    containers = captured("stack_containers") if containers is None else containers
    (found,) = deployments(containers, services, inspected)
    return found, {service.name: service for service in found.services}


def api_row(rows: list[dict]) -> dict:
    return next(row for row in rows if row["Labels"]["com.docker.compose.service"] == "api")


# --- Compose ---------------------------------------------------------------------------------


def test_a_compose_deployment_is_grouped_per_project_and_service_with_proxy_and_monitoring():
    found, services = compose(captured("compose_up"))
    assert (found.name, found.kind) == (PROJECT, "compose")
    assert found.files == ("/tmp/status-cap/c/compose.yaml",)
    assert list(services) == ["api", "prometheus", "proxy"]
    api = services["api"]
    assert api.image == IMAGE
    assert api.models == (Model("statuscap", "1"),)
    assert api.cais_version == "0.1.0"
    assert (api.running, api.desired, api.health, api.ports) == (1, 1, "healthy", ())
    # the proxy and Prometheus are part of it, though their images are not cais's
    assert (services["prometheus"].models, services["prometheus"].health) == ((), "healthy")
    assert services["proxy"].cais_version is None
    # no health check: running; published once (the engine lists IPv4 and IPv6 bindings)
    assert services["proxy"].health == "running"
    assert services["proxy"].ports == (Port(18931, 80, "tcp", "0.0.0.0"),)
    assert str(services["proxy"].ports[0]) == "18931->80/tcp"


def test_a_stopped_api_is_down_and_a_restarted_one_starting():
    _, services = compose(captured("compose_api_stopped"))
    assert (services["api"].running, services["api"].desired, services["api"].health) == (
        0,
        1,
        "down",
    )
    assert services["proxy"].health == "running"
    _, services = compose(captured("compose_api_starting"))
    assert (services["api"].running, services["api"].health) == (1, "starting")


@pytest.mark.parametrize(
    ("states", "health", "running"),
    [
        ([("running", "Up 2 minutes (healthy)"), ("running", "Up 2 minutes (healthy)")], "healthy", 2),
        ([("running", "Up 2 minutes (healthy)"), ("exited", "Exited (137) 3 seconds ago")], "degraded", 1),
        ([("running", "Up 2 minutes (healthy)"), ("restarting", "Restarting (1) 2 seconds ago")], "degraded", 1),
        ([("running", "Up 2 minutes (unhealthy)"), ("running", "Up 2 minutes (healthy)")], "unhealthy", 2),
        ([("running", "Up 2 minutes (unhealthy)"), ("exited", "Exited (1) 1 second ago")], "unhealthy", 1),
        ([("running", "Up 1 second (health: starting)"), ("running", "Up 2 minutes (healthy)")], "starting", 2),
        ([("exited", "Exited (0) 1 second ago"), ("created", "Created")], "down", 0),
    ],
)  # fmt: skip
def test_a_scaled_service_shows_the_worst_of_its_containers(states, health, running):
    template = api_row(captured("compose_up"))
    rows = []
    for number, (state, text) in enumerate(states):
        row = copy.deepcopy(template)
        row["Id"], row["State"], row["Status"] = f"{number:064}", state, text
        rows.append(row)
    _, services = compose(rows)
    assert (services["api"].running, services["api"].desired) == (running, len(states))
    assert services["api"].health == health


def test_a_one_off_command_of_a_service_is_no_replica_of_it():
    rows = captured("compose_up")
    command = copy.deepcopy(api_row(rows))
    command.update(Id="1" * 64, State="exited", Status="Exited (0) 2 seconds ago")
    command["Names"] = [f"/{PROJECT}_api_run_5f1c2d3e"]
    command["Labels"]["com.docker.compose.oneoff"] = "True"
    _, services = compose([*rows, command])
    assert (services["api"].running, services["api"].desired, services["api"].health) == (
        1,
        1,
        "healthy",
    )


def test_a_compose_project_without_a_cais_image_is_not_listed():
    rows = [r for r in captured("compose_up") if r["Labels"]["com.docker.compose.service"] != "api"]
    assert deployments(rows, []) == []
    # nor containers outside Compose (`cais run`), cais image or not
    lone = copy.deepcopy(api_row(captured("compose_up")))
    lone["Labels"] = {k: v for k, v in lone["Labels"].items() if "compose" not in k}
    assert deployments([lone], []) == []


def test_a_project_image_without_a_model_is_cais_s_and_names_no_model():
    rows = captured("compose_up")
    api = api_row(rows)
    api["Labels"] = {k: v for k, v in api["Labels"].items() if not k.startswith("dev.cais.model")}
    _, services = compose(rows)
    assert (services["api"].models, services["api"].cais_version) == ((), "0.1.0")


def test_an_image_of_several_models_names_each():
    rows = captured("compose_up")
    api = api_row(rows)
    for key in ("dev.cais.model.name", "dev.cais.model.version", "dev.cais.model.sha256"):
        del api["Labels"][key]
    api["Labels"]["dev.cais.models"] = "products:3,reviews:1.2,my-model:2024-05"
    _, services = compose(rows)
    assert services["api"].models == (
        Model("products", "3"),
        Model("reviews", "1.2"),
        Model("my-model", "2024-05"),
    )


def test_the_newest_container_of_a_service_names_its_image_after_a_change():
    rows = captured("compose_up")
    old = copy.deepcopy(api_row(rows))
    old.update(Id="0" * 64, Created=old["Created"] - 100, Image="statuscap:0")
    old["Labels"]["dev.cais.model.version"] = "0"
    _, services = compose([old, *rows])
    assert (services["api"].image, services["api"].models) == (IMAGE, (Model("statuscap", "1"),))


def test_projects_come_sorted_by_name():
    first = captured("compose_up")
    second = copy.deepcopy(first)
    for row in second:
        row["Labels"]["com.docker.compose.project"] = "another"
    assert [d.name for d in deployments(first + second, [])] == ["another", PROJECT]


# --- Swarm -----------------------------------------------------------------------------------


def test_a_stack_shows_its_replicas_and_the_model_of_its_image():
    found, services = stack(captured("stack_created"))
    assert (found.name, found.kind, found.files) == (STACK, "swarm", ())
    api = services["api"]  # the stack's prefix is not repeated
    assert api.image == IMAGE
    assert (api.models, api.cais_version) == ((Model("statuscap", "1"),), "0.1.0")
    assert (api.running, api.desired, api.health, api.update, api.ports) == (
        2,
        2,
        "healthy",
        None,
        (),
    )


@pytest.mark.parametrize(
    ("name", "state", "words"),
    [
        ("stack_updating", "updating", "updating"),
        ("stack_updated", "completed", "updated"),
        ("stack_rolled_back", "rollback_completed", "rolled back"),
    ],
)
def test_a_stack_says_how_its_last_update_went(name, state, words):
    found, services = stack(captured(name))
    update = services["api"].update
    assert update is not None and update.state == state and update.words == words
    from cais.cli.status import row

    assert row(found, services["api"])[5] == f"healthy ({words})"


@pytest.mark.parametrize(
    ("state", "words"),
    [("paused", "update paused"), ("rollback_started", "rolling back"), ("rollback_paused", "rollback paused")],
)  # fmt: skip
def test_every_update_state_of_the_engine_has_words(state, words):
    assert Update(state, "").words == words


def test_a_stack_published_in_host_mode_shows_its_port():
    _, services = stack(captured("stack_published"))
    assert services["api"].ports == (Port(18932, 8080, "tcp"),)
    assert str(services["api"].ports[0]) == "18932->8080/tcp"


@pytest.mark.parametrize(
    ("running", "containers", "health"),
    [
        (2, "stack_containers", "healthy"),
        (1, "stack_containers", "degraded"),
        (0, "stack_containers", "down"),
        (2, None, "running"),  # its tasks run on other nodes: their health is not known here
        (2, "unhealthy", "unhealthy"),
    ],
    ids=["all", "one of two", "none", "elsewhere", "unhealthy here"],
)
def test_a_stack_s_health_comes_from_its_task_counts_and_this_node_s_containers(
    running, containers, health
):
    services = captured("stack_created")
    services[0]["ServiceStatus"]["RunningTasks"] = running
    rows = [] if containers is None else captured("stack_containers")
    if containers == "unhealthy":
        rows[0]["Status"] = "Up 5 minutes (unhealthy)"
    _, found = stack(services, rows, {IMAGE: labels()})
    assert found["api"].health == health


def test_a_stack_service_scaled_to_zero_is_stopped():
    services = captured("stack_created")
    services[0]["ServiceStatus"].update(RunningTasks=0, DesiredTasks=0)
    _, found = stack(services, [], {IMAGE: labels()})
    assert (found["api"].running, found["api"].desired, found["api"].health) == (0, 0, "stopped")


def test_stopped_task_containers_of_earlier_versions_are_left_out():
    rows = captured("stack_containers")
    old = copy.deepcopy(rows[0])
    old.update(State="exited", Status="Exited (0) 28 seconds ago")
    _, services = stack(captured("stack_created"), [*rows, old])
    assert services["api"].health == "healthy"


def test_a_service_with_no_container_here_has_the_labels_of_its_image():
    _, services = stack(captured("stack_created"), [], {IMAGE: labels()})
    assert services["api"].models == (Model("statuscap", "1"),)
    assert services["api"].cais_version == "0.1.0"


def test_a_stack_whose_images_are_not_cais_s_is_not_listed():
    foreign = captured("stack_containers")
    for row in foreign:
        row["Labels"] = {k: v for k, v in row["Labels"].items() if not k.startswith("dev.cais.")}
    assert deployments(foreign, captured("stack_created")) == []
    # nor one whose image is not on this node, so nothing says it is cais's
    assert deployments([], captured("stack_created"), {IMAGE: {}}) == []
    assert deployments([], captured("stack_created")) == []


def test_compose_projects_come_before_stacks():
    found = deployments(
        captured("compose_up") + captured("stack_containers"),
        captured("stack_created"),
    )
    assert [(d.kind, d.name) for d in found] == [("compose", PROJECT), ("swarm", STACK)]


# --- reading the engine ------------------------------------------------------------------------


def api_error(status_code: int, text: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status_code
    response._content = json.dumps({"message": text}).encode()
    return docker.errors.APIError(text, response=response, explanation=text)


class FakeApi:
    """The engine's answers, and which requests were made; `tasks_here`: whether the stack's
    task containers run on this node."""

    def __init__(
        self, *, swarm=True, version="1.41", manager=True, services_error=None, tasks_here=True
    ):
        self.calls: list[str] = []
        self.api_version = version
        self.swarm, self.manager, self.services_error = swarm, manager, services_error
        self.tasks_here = tasks_here

    def containers(self, all=False):
        self.calls.append("containers")
        assert all, "stopped containers of a deployment count"
        return captured("compose_up") + (captured("stack_containers") if self.tasks_here else [])

    def services(self, filters=None, status=None):
        self.calls.append("services")
        assert filters == {"label": "com.docker.stack.namespace"} and status is True
        if self.services_error is not None:
            raise self.services_error
        if not self.swarm:
            raise api_error(
                503,
                'This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                'join" to connect this node to swarm and try again.',
            )
        return captured("stack_created")

    def inspect_image(self, image):
        self.calls.append(f"inspect {image}")
        if image != IMAGE:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {"Id": "sha256:4817273638", "Config": {"Labels": labels()}}

    def info(self):
        self.calls.append("info")
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": self.manager}}


class FakeClient:
    def __init__(self, **kwargs):
        self.api = FakeApi(**kwargs)


def test_read_asks_the_engine_twice_when_the_tasks_run_here():
    client = FakeClient()
    assert [d.name for d in read(client)] == [PROJECT, STACK]
    assert client.api.calls == ["containers", "services"]


def test_read_inspects_each_image_of_services_whose_tasks_run_elsewhere():
    client = FakeClient(tasks_here=False)
    (_, found) = read(client)
    assert found.services[0].models == (Model("statuscap", "1"),)
    assert client.api.calls == ["containers", "services", f"inspect {IMAGE}"]


def test_an_image_this_node_lacks_names_no_model_and_is_no_error(monkeypatch):
    client = FakeClient(tasks_here=False)
    services = captured("stack_created")
    services.append(copy.deepcopy(services[0]))
    services[1]["ID"] = "x" * 25
    services[1]["Spec"]["Name"] = f"{STACK}_proxy"
    services[1]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "nginx:stable"
    monkeypatch.setattr(client.api, "services", lambda **_: services)
    (_, found) = read(client)
    assert [(s.name, s.models) for s in found.services] == [
        ("api", (Model("statuscap", "1"),)),
        ("proxy", ()),
    ]


def test_outside_a_swarm_there_is_no_stack_and_no_error():
    client = FakeClient(swarm=False)
    assert [d.name for d in read(client)] == [PROJECT]
    assert client.api.calls == ["containers", "services"]


def test_another_refusal_of_the_services_request_is_one_error():
    client = FakeClient(services_error=api_error(500, "rpc error: code = Unknown desc = boom"))
    with pytest.raises(EngineError) as caught:
        read(client)
    assert caught.value.message == (
        "The Docker Engine refused the request: rpc error: code = Unknown desc = boom"
    )


def test_an_engine_older_than_api_1_41_lists_compose_and_says_what_swarm_needs():
    assert [d.name for d in read(FakeClient(version="1.40", manager=False))] == [PROJECT]
    with pytest.raises(EngineError) as caught:
        read(FakeClient(version="1.40", manager=True))
    assert caught.value.message == (
        "The Docker Engine speaks API 1.40, and reading Swarm services' replicas needs 1.41"
    )
    assert caught.value.hint == "upgrade the engine to Docker 20.10 or newer"


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def engine_with(monkeypatch):
    """`cais status` on a fake engine's answers."""

    def install(**kwargs) -> FakeClient:
        client = FakeClient(**kwargs)
        monkeypatch.setattr("cais.engine.client.connect", lambda: client)
        return client

    return install


def test_the_table_has_a_row_per_service(engine_with):
    engine_with()
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [
        ["DEPLOYMENT", "VIA", "SERVICE", "MODEL", "REPLICAS", "HEALTH", "PORTS"],
        [PROJECT, "compose", "api", "statuscap:1", "1/1", "healthy"],
        [PROJECT, "compose", "prometheus", "1/1", "healthy"],
        [PROJECT, "compose", "proxy", "1/1", "running", "18931->80/tcp"],
        [STACK, "swarm", "api", "statuscap:1", "2/2", "healthy"],
    ]


def test_json_is_the_documented_schema(engine_with):
    engine_with()
    result = CliRunner().invoke(app, ["status", "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(d["name"], d["kind"]) for d in found] == [(PROJECT, "compose"), (STACK, "swarm")]
    assert set(found[0]) == {"name", "kind", "services", "files"}
    proxy = found[0]["services"][2]
    assert proxy == {
        "name": "proxy",
        "image": "nginx:stable",
        "models": [],
        "cais_version": None,
        "running": 1,
        "desired": 1,
        "health": "running",
        "ports": [{"published": 18931, "target": 80, "protocol": "tcp", "host_ip": "0.0.0.0"}],
        "update": None,
    }
    assert found[0]["services"][0]["models"] == [{"name": "statuscap", "version": "1"}]


def test_a_stack_update_shows_in_json_as_the_engine_says_it(engine_with, monkeypatch):
    client = engine_with()
    monkeypatch.setattr(client.api, "services", lambda **_: captured("stack_rolled_back"))
    result = CliRunner().invoke(app, ["status", "--format", "json"])
    assert json.loads(result.stdout)[1]["services"][0]["update"] == {
        "state": "rollback_completed",
        "message": "rollback completed",
    }


def test_nothing_deployed_is_one_line_saying_how_to_deploy(engine_with, monkeypatch):
    client = engine_with(swarm=False)
    monkeypatch.setattr(client.api, "containers", lambda all: [])
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "• Nothing is deployed from a cais image here; deploy a model with `cais deploy compose REF --up`"
    )
    result = CliRunner().invoke(app, ["status", "--format", "json"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "[]\n", "")


def test_no_engine_is_one_sentence(unreachable_engine):
    output = assert_one_error(CliRunner().invoke(app, ["status"]))
    assert f"error: The Docker Engine at `{unreachable_engine}` is not reachable" in output
    assert "hint: start the Docker Engine" in output


@pytest.mark.parametrize("request_", ["containers", "services", "inspect_image"])
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (requests.exceptions.ConnectionError("Connection refused"), "is not reachable"),
        (requests.exceptions.ReadTimeout("read timed out"), "did not answer in time"),
        (api_error(500, "engine failure"), "refused the request: engine failure"),
    ],
    ids=["refused", "timeout", "server error"],
)
def test_an_engine_that_fails_midway_is_one_sentence(
    engine_with, monkeypatch, request_, error, message
):
    client = engine_with(tasks_here=False)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(client.api, request_, fail)
    output = assert_one_error(CliRunner().invoke(app, ["status"]))
    assert output.startswith("error: The Docker Engine") and message in output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "xml"], "Invalid value `xml` for `--format`"),
        (["--format", "JSON "], "Invalid value `JSON ` for `--format`"),
        (["products"], "Got unexpected extra argument(s) (products)"),
        (["--all"], "No such option: --all"),
    ],
)
def test_arguments_status_refuses_are_one_sentence_before_any_request(engine_with, args, said):
    client = engine_with()
    output = assert_one_error(CliRunner().invoke(app, ["status", *args]), code=2)
    assert said in output
    assert client.api.calls == []
