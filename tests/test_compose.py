"""docker-compose.yml runs commands that exist, wires the database into the services that need it, and holds
no secret."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer
import yaml

from drgnet.cli import _load_plugins, app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "build" in s}  # services that run the drgnet image

#: `drgnet` subcommands a compose service runs before the command exists, with the issue that adds it. A
#: service using one is an expected failure (strict): once the command lands the test fails until its entry
#: is removed here, so the list never goes stale. Empty: `app` (web app) and `worker` (feedback) have landed.
PENDING: dict[str, str] = {}

DATABASE_SERVICES = ("migrate", "webapp", "worker")


@pytest.fixture(scope="module")
def cli() -> click.Group:
    _load_plugins()  # `db`, `user`, `app`, `worker`, ... come from the other packages through entry points
    return typer.main.get_command(app)


def _drgnet_service_params():
    for name, service in OURS.items():
        command = service.get("command") or []
        if command[:1] != ["drgnet"]:
            continue
        sub = command[1] if len(command) > 1 else ""
        marks = [pytest.mark.xfail(strict=True, reason=PENDING[sub])] if sub in PENDING else []
        yield pytest.param(name, command, id=name, marks=marks)


@pytest.mark.parametrize(("service", "command"), list(_drgnet_service_params()))
def test_every_service_runs_a_real_drgnet_command_with_valid_options(cli, service, command):
    group: click.Command = cli
    args = list(command[1:])
    path = ["drgnet"]
    while isinstance(group, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in group.commands, f"{service}: `{' '.join(path)} {name}` is not a command"
        group = group.commands[name]
        path.append(name)
    assert not isinstance(group, click.Group), f"{service}: `{' '.join(path)}` is a group, not a command"
    # Parse the options exactly as the command line would (unknown options and bad values raise).
    group.make_context(" ".join(path), args)


def test_the_drgnet_image_runs_only_drgnet_or_ray():
    assert {"migrate", "webapp", "worker", "ray-head"} <= set(OURS)
    for name, service in OURS.items():
        assert service["command"][0] in ("drgnet", "ray"), name
        if service["command"][0] == "ray":
            assert service.get("profiles") == ["scale"], f"{name}: the Ray nodes are optional (profile scale)"


def test_database_services_get_the_postgres_url_and_data_dir():
    for name in DATABASE_SERVICES:
        env = SERVICES[name]["environment"]
        url = env["DRGNET_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url, name
        assert env["DRGNET_DATA_DIR"] == "/data" and "data:/data" in SERVICES[name]["volumes"], name
    for name in set(OURS) - set(DATABASE_SERVICES):
        assert "DRGNET_DATABASE_URL" not in (OURS[name].get("environment") or {}), f"{name} needs no database"


def test_migration_runs_once_before_the_app_and_workers():
    assert SERVICES["migrate"]["command"] == ["drgnet", "db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("webapp", "worker"):
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name


def test_postgres_and_scalable_workers():
    pg = SERVICES["postgres"]
    assert pg["image"] == "postgres:16"
    assert "CMD-SHELL" in pg["healthcheck"]["test"] and "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in COMPOSE["volumes"]  # a named volume: the data outlives the container
    worker = SERVICES["worker"]
    assert "container_name" not in worker and worker["deploy"]["replicas"] >= 1


def test_no_secret_in_the_compose_file_or_the_image():
    text = (ROOT / "docker-compose.yml").read_text()
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert value == "${POSTGRES_PASSWORD:?set it}", name
    # The only password in any URL is the interpolated one.
    for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
        assert password == "${POSTGRES_PASSWORD:?set it}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "PASSWORD" not in dockerfile and "DATABASE_URL" not in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"pip install '\.\[scale\]'", dockerfile)


# ---------------------------------------------------------------------------- deployment (issue 16, item 6)


def _published(service: dict) -> list[str]:
    return [
        str(p) if not isinstance(p, dict) else f"{p.get('host_ip', '')}:{p['published']}:{p['target']}"
        for p in service.get("ports") or []
    ]


def test_only_the_tls_proxy_is_published_by_default():
    default = {name: s for name, s in SERVICES.items() if not s.get("profiles")}
    published = {name for name, s in default.items() if _published(s)}
    assert published == {"proxy"}, published
    assert SERVICES["proxy"]["image"].startswith("caddy:")
    assert {p.split(":")[-1] for p in _published(SERVICES["proxy"])} == {"443", "80"}
    # The app listens on the compose network only; the proxy in front of it terminates TLS.
    assert "ports" not in SERVICES["webapp"] and SERVICES["webapp"]["expose"] == ["8501"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in SERVICES["proxy"]["volumes"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy webapp:8501" in caddyfile
    site = next(line for line in caddyfile.splitlines() if line.strip().endswith("{") and not line.startswith("\t"))
    assert not site.startswith("http://"), "the site must be served over HTTPS"


def test_ray_client_port_is_published_only_by_a_profile_and_only_on_loopback():
    for name, service in SERVICES.items():
        for port in _published(service):
            if port.split(":")[-1] in ("10001", "6379", "8265"):
                assert service.get("profiles") and "ray-client" in service["profiles"], name
                assert port.startswith("127.0.0.1:"), f"{name}: Ray's port must bind to loopback only, got {port}"
    assert "ports" not in SERVICES["ray-head"]
    text = (ROOT / "docker-compose.yml").read_text()
    comment = text[: text.index("ray-client-port:")].rsplit("\n\n", 1)[-1]
    assert "arbitrary code" in comment and "0.0.0.0" in comment  # the note says why


def test_secrets_come_from_the_environment_without_defaults():
    text = (ROOT / "docker-compose.yml").read_text()
    for name, _default in re.findall(r"\$\{(\w+):-([^}]*)\}", text):
        assert not any(word in name for word in ("PASSWORD", "SECRET", "TOKEN", "KEY")), f"{name} has a default"
    for name in re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|TOKEN)\w*)", text):
        assert f"${{{name}:?" in text, f"{name} must be required (:?), never defaulted"
    for service in SERVICES.values():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert str(value).startswith("${") and ":?" in str(value), key
