"""A Compose file for a model's API, with nginx in front and optionally Prometheus, and the
config files it mounts. No I/O but `write`: the files are text a learner can read.

Two variants of the same services. The Compose file follows the Compose Spec and stays within
what Debian's docker-compose 1.29 accepts: no top-level `version` or `name`, `depends_on` with
`condition: service_healthy`, `deploy.resources.limits.memory` (applied by 1.29 outside Swarm
too). The Swarm stack file is Compose file format 3.8, what `docker stack deploy` of the 20.10
CLI reads: replicas, rolling updates and rollbacks under `deploy:`, the configs as Swarm
configs (a multi-node swarm has no shared folder to mount them from).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from cais.deploy.target import Target

__all__ = [
    "API",
    "ComposeOptions",
    "PROMETHEUS",
    "PROXY",
    "STACK_KEY",
    "nginx_image",
    "prometheus_image",
    "render",
    "write",
]

API, PROXY, PROMETHEUS = "api", "proxy", "prometheus"
NGINX_CONF = "nginx/default.conf"
PROMETHEUS_CONF = "prometheus/prometheus.yml"
ENV_FILE = ".env"
# Settings, so a site can point them at its own mirror.
NGINX_IMAGE = "nginx:stable"
PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"
# cais's server refuses bodies over 10 MB itself; nginx's default (1 MB) would refuse sooner.
MAX_BODY = "10m"
# The stack file names its stack here, so `--down -o FILE` knows what to remove.
STACK_KEY = "x-cais-stack"
# What the server's grace period (8 s) needs, under which Swarm kills a replica it stops.
STOP_GRACE = "10s"


def nginx_image() -> str:
    return os.environ.get("CAIS_NGINX_IMAGE") or NGINX_IMAGE


def prometheus_image() -> str:
    return os.environ.get("CAIS_PROMETHEUS_IMAGE") or PROMETHEUS_IMAGE


@dataclass(frozen=True)
class ComposeOptions:
    project: str  # docker-compose's project name (kept in .env), or the Swarm stack's name
    port: int = 8080  # the host port the proxy (or, without one, the API) is published on
    proxy: bool = True
    monitoring: bool = False
    memory: str = "1g"  # the API's memory limit
    swarm: bool = False  # a stack file for `docker stack deploy` instead of a Compose file
    replicas: int = 1  # the API's replicas in a swarm


def render(target: Target, options: ComposeOptions, compose_name: str) -> dict[str, str]:
    """The files of the deployment by path relative to the compose file's folder."""
    if options.swarm:
        return _stack_files(target, options, compose_name)
    files = {
        compose_name: _compose(target, options),
        ENV_FILE: "# docker-compose reads the project name from here: `docker-compose up` in this\n"
        "# folder manages the same containers as `cais deploy compose --up`\n"
        f"COMPOSE_PROJECT_NAME={options.project}\n",
    }
    if options.proxy:
        files[NGINX_CONF] = _nginx(target)
    if options.monitoring:
        files[PROMETHEUS_CONF] = _prometheus(target)
    return files


def write(files: dict[str, str], folder: Path) -> list[Path]:
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == ENV_FILE and path.is_file():  # a folder's .env may hold other settings
            text = _merged_env(path.read_text(), text)
        path.write_text(text)
        written.append(path)
    return written


def _merged_env(existing: str, ours: str) -> str:
    """`existing` with our lines in place of its own project name (and of our comments)."""
    kept = [
        line
        for line in existing.splitlines()
        if not line.startswith("COMPOSE_PROJECT_NAME=") and line not in ours.splitlines()
    ]
    return "\n".join(kept) + ("\n" if kept else "") + ours


def _compose(target: Target, options: ComposeOptions) -> str:
    what = f"the model `{target.model}`" if target.model else f"the image `{target.image}`"
    lines = [
        f"# {what} as a Compose application, written by `cais deploy compose`",
        "#   start: docker-compose up -d     stop and remove: docker-compose down --volumes",
        "# Services start in health order: each waits until the ones it depends on are healthy.",
        "services:",
    ]
    depends = {API: {"condition": "service_healthy" if target.healthcheck else "service_started"}}
    lines += _service(API, _api_comment(target, options), _api(target, options))
    if options.proxy:
        lines += _service(
            PROXY,
            [
                "nginx in front of the API: the only service published on the host. It",
                "re-resolves `api` through Docker's DNS, so it answers 502 while the API is down",
                "and finds it again when it is back.",
            ],
            [
                *_proxy_image(),
                (None, {"restart": "unless-stopped"}),
                (None, {"ports": [f"{options.port}:80"]}),
                ("the generated config replaces the image's default site", None),
                (None, {"volumes": [f"./{NGINX_CONF}:/etc/nginx/conf.d/default.conf:ro"]}),
                (None, {"depends_on": depends}),
                (None, _memory("128m")),
            ],
        )
    if options.monitoring:
        lines += _service(
            PROMETHEUS,
            [
                f"Prometheus scrapes the API's /metrics (config in {PROMETHEUS_CONF}).",
                "Not published: `docker-compose exec prometheus wget -qO- localhost:9090/api/v1/"
                "targets`",
                'shows the scrape; add `ports: ["9090:9090"]` here to open its web page.',
            ],
            [
                *_prometheus_image(),
                (None, {"restart": "unless-stopped"}),
                (
                    None,
                    {
                        "volumes": [
                            f"./{PROMETHEUS_CONF}:/etc/prometheus/prometheus.yml:ro",
                            "prometheus-data:/prometheus",
                        ]
                    },
                ),
                (None, {"depends_on": depends}),
                (None, _memory("512m")),
            ],
        )
        lines += [
            "# The metrics Prometheus keeps outlive its container; `down --volumes` removes them.",
            *_yaml({"volumes": {"prometheus-data": {}}}, 0),
        ]
    return "\n".join(lines) + "\n"


def _stack_files(target: Target, options: ComposeOptions, stack_name: str) -> dict[str, str]:
    files = {stack_name: ""}
    configs = {}
    if options.proxy:
        files[NGINX_CONF] = configs["nginx"] = _nginx(target, swarm=True)
    if options.monitoring:
        files[PROMETHEUS_CONF] = configs["prometheus"] = _prometheus(target, swarm=True)
    files[stack_name] = _stack(target, options, configs)
    return files


def _stack(target: Target, options: ComposeOptions, configs: dict[str, str]) -> str:
    what = f"the model `{target.model}`" if target.model else f"the image `{target.image}`"
    stack = options.project
    lines = [
        f"# {what} as a Swarm stack, written by `cais deploy swarm`",
        f"#   deploy or update: docker stack deploy --compose-file FILE {stack}",
        f"#   remove: docker stack rm {stack}",
        "# A new version deployed to the same stack is a rolling update: one replica at a time,",
        "# the new one started and healthy before the old one stops, and rolled back by Swarm",
        "# when it never gets healthy.",
        "# Written for a swarm without IPVS (no virtual IPs, no routing mesh): the API is found",
        "# through Docker's DNS, one address a replica, and only the proxy is published, on its",
        "# host's own port. A swarm with IPVS runs the same file the same way.",
        'version: "3.8"',
        *_yaml({STACK_KEY: stack}, 0),
        "services:",
    ]
    lines += _service(API, _api_comment(target, options), _swarm_api(target, options))
    if options.proxy:
        lines += _service(
            PROXY,
            [
                "nginx in front of the API: the only service published. It re-resolves `api`",
                "through Docker's DNS every second, so it sends requests to the healthy",
                "replicas only, old and new, while an update runs.",
            ],
            [
                *_proxy_image(),
                ("`mode: host`: the port is opened on the node running nginx itself; the", None),
                ("default (`ingress`) would need the routing mesh, and so IPVS", None),
                (None, {"ports": [{"target": 80, "published": options.port, "mode": "host"}]}),
                ("the generated config, a Swarm config: any node can run nginx", None),
                (None, {"configs": [_config_use("nginx", "/etc/nginx/conf.d/default.conf")]}),
                (
                    "one nginx holds the host's port: a new one starts once the old one is gone",
                    _swarm_deploy(1, "stop-first", "128m"),
                ),
            ],
        )
    if options.monitoring:
        lines += _service(
            PROMETHEUS,
            [
                f"Prometheus scrapes every replica's /metrics (config in {PROMETHEUS_CONF}).",
                "Not published: `docker exec` into its container and "
                "`wget -qO- localhost:9090/api/v1/targets`",
                "shows the scrape; add a port here to open its web page.",
            ],
            [
                *_prometheus_image(),
                (None, {"configs": [_config_use("prometheus", "/etc/prometheus/prometheus.yml")]}),
                (None, {"volumes": ["prometheus-data:/prometheus"]}),
                (None, _swarm_deploy(1, "stop-first", "512m")),
            ],
        )
        lines += [
            "# The metrics Prometheus keeps outlive its container; `cais deploy swarm --down`",
            "# removes them, `docker stack rm` leaves them.",
            *_yaml({"volumes": {"prometheus-data": {}}}, 0),
        ]
    if configs:
        lines += [
            "# A Swarm config cannot change: each is named after its content, so a changed file",
            "# becomes a new config (and its service is updated), and the same file is kept.",
            *_yaml(
                {"configs": {key: _config(stack, key, text) for key, text in configs.items()}}, 0
            ),
        ]
    return "\n".join(lines) + "\n"


def _swarm_api(target: Target, options: ComposeOptions) -> list[tuple[str | None, dict | None]]:
    parts: list[tuple[str | None, dict | None]] = [(None, {"image": target.image})]
    if target.healthcheck:
        parts += [
            ("the image's own check: a replica gets requests once healthy, and an update", None),
            ("waits for it before it stops an old replica", None),
            (None, {"healthcheck": _health(target.healthcheck)}),
        ]
    parts += [
        ("the server finishes the requests in flight on SIGTERM (for up to 8 s) before", None),
        ("it exits; Swarm waits this long before it kills it", None),
        (None, {"stop_grace_period": STOP_GRACE}),
    ]
    if options.proxy:
        parts += [
            ("dnsrr: `api` resolves to each replica's address, no virtual IP (which needs", None),
            ("IPVS); the proxy spreads the requests", None),
            (None, _swarm_deploy(options.replicas, "start-first", options.memory, dnsrr=True)),
        ]
    else:
        parts += [
            (
                "no proxy: the API is published on its host's own port (`mode: host`, no IPVS)",
                {"ports": [{"target": target.port, "published": options.port, "mode": "host"}]},
            ),
            ("one replica holds the port: an update stops it before its successor starts", None),
            (None, _swarm_deploy(1, "stop-first", options.memory)),
        ]
    return parts


def _swarm_deploy(replicas: int, order: str, memory: str, *, dnsrr: bool = False) -> dict:
    """Swarm's part: one replica at a time, rolled back when the new one fails (no health
    within the health check's retries, or exits) during the update or the `monitor` after."""
    steps = {"parallelism": 1, "order": order}
    deploy: dict = {"endpoint_mode": "dnsrr"} if dnsrr else {}
    deploy |= {
        "replicas": replicas,
        "update_config": {**steps, "failure_action": "rollback", "monitor": "15s"},
        "rollback_config": steps,
        "restart_policy": {"condition": "on-failure", "delay": "5s"},
        "resources": {"limits": {"memory": memory}},
    }
    return {"deploy": deploy}


def _config_use(key: str, target: str) -> dict:
    return {"source": key, "target": target}


def _config(stack: str, key: str, text: str) -> dict:
    import hashlib

    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = NGINX_CONF if key == "nginx" else PROMETHEUS_CONF
    return {"name": f"{stack}_{key}-{digest}", "file": f"./{path}"}


def _proxy_image() -> list[tuple[str | None, dict | None]]:
    return [
        (None, {"image": nginx_image()}),
        ("SIGQUIT: nginx finishes the requests in flight before it exits", None),
        (None, {"stop_signal": "SIGQUIT"}),
    ]


def _prometheus_image() -> list[tuple[str | None, dict | None]]:
    ready = ("CMD", "wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready")
    return [(None, {"image": prometheus_image()}), (None, {"healthcheck": _health(ready)})]


def _api_comment(target: Target, options: ComposeOptions) -> list[str]:
    if options.proxy:
        reach = "Not published on the host: requests reach it through the proxy."
    else:
        reach = f"Published on the host's port {options.port}."
    pinned = (
        "The image is named by its digest too: a moved tag never changes what runs here."
        if target.pinned
        else f"The image was never pushed, so it has no digest; its id is {target.image_id}."
    )
    return [
        "The model's API, cais's server (health on /health/live and /health/ready).",
        reach,
        pinned,
    ]


def _api(target: Target, options: ComposeOptions) -> list[tuple[str | None, dict | None]]:
    parts: list[tuple[str | None, dict | None]] = [
        (None, {"image": target.image}),
        ("back after a crash or a restart of the engine, not after `docker stop`", None),
        (None, {"restart": "unless-stopped"}),
    ]
    if options.proxy:
        parts.append((None, {"expose": [str(target.port)]}))
    else:
        parts.append((None, {"ports": [f"{options.port}:{target.port}"]}))
    if target.healthcheck:
        parts += [
            ("the image's own check; healthy once the model is loaded and answers", None),
            (None, {"healthcheck": _health(target.healthcheck)}),
        ]
    parts += [
        ("a model that grows past this is stopped (and restarted) instead of the machine", None),
        (None, _memory(options.memory)),
    ]
    return parts


def _health(test: tuple[str, ...]) -> dict:
    # start_period: failures while the model loads do not count
    return {
        "test": list(test),
        "interval": "5s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "15s",
    }


def _memory(limit: str) -> dict:
    return {"deploy": {"resources": {"limits": {"memory": limit}}}}


def _service(
    name: str, comment: list[str], parts: list[tuple[str | None, dict | None]]
) -> list[str]:
    lines = [f"  # {line}" for line in comment] + [f"  {name}:"]
    for why, mapping in parts:
        if why:
            lines.append(f"    # {why}")
        if mapping:
            lines += _yaml(mapping, 4)
    return lines


def _yaml(mapping: dict, indent: int) -> list[str]:
    text = yaml.safe_dump(mapping, sort_keys=False, default_flow_style=False, width=1000)
    return [" " * indent + line for line in text.splitlines()]


def _nginx(target: Target, swarm: bool = False) -> str:
    # Nothing here depends on the model's version: a new version deployed to the same stack
    # leaves the proxy's config, and so the proxy, as they are.
    command = "cais deploy swarm" if swarm else "cais deploy compose"
    replicas = (
        "`api` names every healthy replica (one address each, `endpoint_mode: dnsrr`): nginx\n"
        "    # spreads requests over them, finds a new one within a second, and drops one that\n"
        "    # is being stopped (Swarm takes it out of the DNS 2 s before it stops it)."
        if swarm
        else "a restarted API container with a new address is found, and a stopped one\n"
        "    # (no longer in the DNS) gives 502 at once instead of requests waiting on its old\n"
        "    # address."
    )
    return f"""\
# nginx in front of the API of {target.name}, written by `{command}`.

server {{
    listen 80;

    # Docker's DNS server inside every Compose or Swarm network. With the address in a
    # variable, nginx looks `api` up again every second instead of once at start:
    # {replicas}
    resolver 127.0.0.11 valid=1s ipv6=off;
    set $api http://{API}:{target.port};

    client_max_body_size {MAX_BODY};
    proxy_connect_timeout 2s;
    # A replica that refuses the connection (it drains: stopped, it accepts no new ones) or
    # does not answer it: the request goes to the next address. nginx never sends a POST
    # twice once it reached a server, so a prediction is never run twice; a request in
    # flight is not cut off either, since the server finishes it before it exits.
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;

    location / {{
        proxy_pass $api;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


def _prometheus(target: Target, swarm: bool = False) -> str:
    if swarm:  # every replica, each by its address: `tasks.api` lists them all
        found = {"dns_sd_configs": [{"names": [f"tasks.{API}"], "type": "A", "port": target.port}]}
        how = f"# `tasks.{API}` is every replica of the API: Swarm's DNS gives one address each.\n"
    else:
        found = {"static_configs": [{"targets": [f"{API}:{target.port}"]}]}
        how = f"# `{API}` is the API's service name: Compose's DNS gives its container's address.\n"
    config = {
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [{"job_name": target.name, "metrics_path": "/metrics", **found}],
    }
    command = "cais deploy swarm" if swarm else "cais deploy compose"
    header = f"# Prometheus scraping the API of {target.name}, written by `{command}`.\n"
    return header + how + yaml.safe_dump(config, sort_keys=False)
