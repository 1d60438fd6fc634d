"""Request logs, X-Request-ID, Prometheus metrics and gunicorn.conf.py."""

import json
import logging
import os
import re
import runpy
import signal
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import API, SECRET, auth, close, database_of, problem, token
from flask import Flask
from prometheus_client import REGISTRY
from servers import REPO, Gunicorn, wait_for

from datasources import observability, store
from datasources.app import init_app

SECRET_CONFIG = {"objectName": "Contact", "password": "hunter2-in-source-config"}


@pytest.fixture
def backend():
    return "sqlite"  # logs and metrics do not depend on the database


def log_lines(capsys):
    """The JSON objects the app printed on stdout since the last call."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def access_lines(capsys):
    return [line for line in log_lines(capsys) if line["logger"] == "datasources.access"]


def sample(client, name, **labels):
    """One sample's value from GET /metrics (0 when absent)."""
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# Log lines.


def test_each_api_request_is_one_json_line_with_its_fields(client, capsys):
    headers = {**auth("t_001", "editor"), "X-Request-ID": "trace-1"}
    body = {"key": "crm", "name": "CRM", "sourceConfig": SECRET_CONFIG}
    capsys.readouterr()
    assert client.post(API, json=body, headers=headers).status_code == 201
    assert client.get(f"{API}?limit=1", headers=auth("t_002", "viewer")).status_code == 200
    [created, listed] = access_lines(capsys)
    assert created["time"].endswith("Z") and created["level"] == "INFO"
    assert {k: created[k] for k in ("request_id", "method", "path", "status", "tenant")} == {
        "request_id": "trace-1",
        "method": "POST",
        "path": API,
        "status": 201,
        "tenant": "t_001",
    }
    assert isinstance(created["duration_ms"], float) and created["duration_ms"] >= 0
    assert (listed["method"], listed["status"], listed["tenant"]) == ("GET", 200, "t_002")
    assert re.fullmatch(r"[0-9a-f]{32}", listed["request_id"])


def test_logs_never_hold_a_token_authorization_header_or_source_config(client, capsys):
    good, forged = token("t_001", "editor"), token("t_001", "editor", secret="another-" * 5)
    body = {"key": "crm", "name": "CRM", "sourceConfig": SECRET_CONFIG}
    capsys.readouterr()
    client.post(API, json=body, headers={"Authorization": f"Bearer {good}"})
    client.put(API, json={**body, "name": "x"}, headers={"Authorization": f"Bearer {good}"})
    client.get(API, headers={"Authorization": f"Bearer {forged}"})
    client.get(API, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    out = capsys.readouterr().out
    assert [json.loads(line)["status"] for line in out.splitlines()] == [201, 200, 401, 401]
    for secret in (good, forged, "Bearer", "Authorization", "dXNlcjpwYXNz", "hunter2", "password"):
        assert secret not in out


def test_an_unauthenticated_request_is_logged_without_a_tenant(client, capsys):
    capsys.readouterr()
    assert client.delete(API, query_string={"key": "k"}).status_code == 401
    [line] = access_lines(capsys)
    assert (line["method"], line["status"], line["tenant"]) == ("DELETE", 401, None)


def test_a_database_error_log_line_carries_the_request_id(failing_client, capsys):
    capsys.readouterr()
    response = failing_client.get(API, headers={**auth(), "X-Request-ID": "db-down-1"})
    assert response.status_code == 503
    warning, access = log_lines(capsys)
    assert (warning["level"], warning["logger"]) == ("WARNING", "datasources")
    assert warning["message"] == "database unavailable: cannot open (OperationalError)"
    assert warning["request_id"] == access["request_id"] == "db-down-1"
    assert access["problem"] == "Service Unavailable"


def test_text_format_for_people(make_app, capsys):
    client = make_app(DATASOURCES_LOG_FORMAT="text").test_client()
    capsys.readouterr()
    client.get(API, headers={**auth(), "X-Request-ID": "abc"})
    client.get(f"{API}/%1B[2Jcleared", headers=auth())
    out = capsys.readouterr().out
    first, second = out.splitlines()
    pattern = r"\S+Z INFO datasources.access GET /api/v1/data-sources 200 [\d.]+ms"
    assert re.fullmatch(pattern + r" tenant=t_001 request_id=abc", first)
    assert "GET '/api/v1/data-sources/\\x1b[2Jcleared' 404" in second  # escaped, not run
    assert second.endswith(' problem="Not Found"')
    assert "\x1b" not in out


def test_4xx_log_lines_carry_the_problems_title(client, capsys):
    json_headers = {**auth(), "Content-Type": "application/json"}
    capsys.readouterr()
    client.get(API)
    client.post(API, json={"key": "k"}, headers=auth())
    client.post(API, data='{"key": "k",}', headers=json_headers)
    client.post(API, json={"key": "k", "name": "n"}, headers=auth(role="viewer"))
    client.put(API, json={"key": "nowhere", "name": "n"}, headers=auth())
    client.post(API, json={"key": "k", "name": "n"}, headers=auth())
    client.put(API, json={"key": "k", "name": "m", "rowVersion": 9}, headers=auth())
    client.get(API, headers=auth())
    lines = access_lines(capsys)
    assert [(line["status"], line.get("problem")) for line in lines] == [
        (401, "Unauthorized"),
        (400, "Validation error"),
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (201, None),
        (409, "Optimistic concurrency conflict"),
        (200, None),
    ]


def test_pending_migrations_are_logged_once_with_the_command_to_run(make_app, tmp_path, capsys):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    client = make_app(DATASOURCES_DATABASE_URL=fresh, DATASOURCES_AUTO_MIGRATE=False).test_client()
    capsys.readouterr()
    for _ in range(3):
        problem(client.get(API, headers=auth()), 503)
        problem(client.post(API, json={"key": "k", "name": "n"}, headers=auth()), 503)
    errors = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    [message] = [line["message"] for line in errors]
    assert message.startswith("schema migrations are pending (0001_initial")  # and any later
    command = "`flask --app datasources.app db upgrade`"
    assert message.endswith(f"): the API answers 503 until {command} runs")


def test_an_unknown_log_format_fails_at_start(make_app):
    with pytest.raises(ValueError, match="DATASOURCES_LOG_FORMAT"):
        make_app(DATASOURCES_LOG_FORMAT="xml")


# X-Request-ID.


@pytest.mark.parametrize(
    "given, echoed",
    [
        ("abc-123", True),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        ("Root=1-5759e988-bd862e3fe1be46a994272793", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ('quote"d', False),
        ("", False),
        ("é", False),
    ],
)
def test_a_request_id_is_echoed_when_safe_else_made(client, given, echoed):
    response = client.get(API, headers={**auth(), "X-Request-ID": given})
    assert response.status_code == 200
    if echoed:
        assert response.headers["X-Request-ID"] == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_every_api_response_has_a_fresh_request_id(client):
    responses = [
        client.get(API, headers=auth()),
        client.get(API),  # 401
        client.post(API, data="x", headers=auth()),  # 415
        client.get(f"{API}/nowhere", headers=auth()),  # 404
        client.patch(API, headers=auth()),  # 405
    ]
    assert [r.status_code for r in responses] == [200, 401, 415, 404, 405]
    ids = {r.headers["X-Request-ID"] for r in responses}
    assert len(ids) == 5


# Metrics, in one process.


def test_metrics_count_requests_by_route_method_and_status(client):
    labels = {"route": API, "method": "GET", "status": "200"}
    before = sample(client, "datasources_requests_total", **labels)
    timed = sample(client, "datasources_request_duration_seconds_count", route=API, method="GET")
    denied = sample(client, "datasources_requests_total", route=API, method="POST", status="403")
    for _ in range(3):
        assert client.get(API, headers=auth()).status_code == 200
    assert client.post(API, json={}, headers=auth(role="viewer")).status_code == 403
    assert sample(client, "datasources_requests_total", **labels) == before + 3
    after = sample(client, "datasources_request_duration_seconds_count", route=API, method="GET")
    assert after == timed + 3
    post = sample(client, "datasources_requests_total", route=API, method="POST", status="403")
    assert post == denied + 1
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "datasources_request_duration_seconds_bucket{le=" in response.get_data(as_text=True)


def test_unknown_methods_and_paths_do_not_grow_the_label_set(client):
    route = f"{API}/<datasources_key:subpath>"  # any path below the collection: one label
    before = sample(client, "datasources_requests_total", route=route, method="other", status="405")
    response = client.open(f"{API}/x/y", method="BREW", headers=auth())
    assert response.status_code == 405
    after = sample(client, "datasources_requests_total", route=route, method="other", status="405")
    assert after == before + 1
    assert "BREW" not in client.get("/metrics").get_data(as_text=True)


@pytest.fixture
def failing_client(make_app, tmp_path):
    """An app whose SQLite file lies in a folder that does not exist."""
    missing = tmp_path / "missing" / "ds.db"
    settings = {"DATASOURCES_DATABASE_URL": f"sqlite:///{missing}", "DATASOURCES_AUTO_MIGRATE": 0}
    return make_app(**settings).test_client()


def test_database_errors_are_counted_by_cause(failing_client):
    before = sample(failing_client, "datasources_database_errors_total", error="cannot_open")
    response = failing_client.get(API, headers=auth())
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    after = sample(failing_client, "datasources_database_errors_total", error="cannot_open")
    assert after == before + 1


def test_database_errors_total_is_exported_before_any_error(tmp_path):
    """Every cause has a series from the start, so an alert on its rate reads
    0, not "no data"; in a process of its own, where no error happened yet."""
    script = f"""
from datasources.app import create_app
app = create_app({{"DATASOURCES_DATABASE_URL": "sqlite:///{tmp_path}/ds.db",
                  "DATASOURCES_JWT_SECRET": "s" * 32}}, instance_path={str(tmp_path)!r})
print(app.test_client().get("/metrics").get_data(as_text=True))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASOURCES_", "PROMETHEUS"))}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    exported = re.findall(
        r'^datasources_database_errors_total\{error="(\w+)"\} (\S+)$', out.stdout, re.M
    )
    assert dict(exported) == {cause: "0.0" for cause in observability.DATABASE_CAUSES}
    assert "connection_refused" in dict(exported) and "authentication_failed" in dict(exported)


# A 500 logs its traceback; never a message, body, token or secret.

SECRET_WORD = "hunter2-in-an-exception"


@pytest.fixture
def broken_create(monkeypatch):
    """store.create_source fails the way a bug would, quoting what it was given."""

    def create_source(tenant, fields):
        try:
            {}[fields["name"]]
        except KeyError as exc:
            raise ValueError(f"could not handle {fields!r}") from exc

    monkeypatch.setattr(store, "create_source", create_source)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_500_logs_its_traceback_without_a_message_body_or_token(
    make_app, capsys, broken_create, log_format
):
    client = make_app(DATASOURCES_LOG_FORMAT=log_format).test_client()
    body = {"key": "crm", "name": SECRET_WORD, "sourceConfig": SECRET_CONFIG}
    headers = {**auth(), "X-Request-ID": "bug-1"}
    capsys.readouterr()
    response = client.post(API, json=body, headers=headers)
    assert problem(response, 500)["detail"] == "The server failed to handle the request."
    assert "Traceback" not in response.get_data(as_text=True)
    out = capsys.readouterr().out
    if log_format == "json":
        error, access = [json.loads(line) for line in out.splitlines()]
        assert (error["level"], error["message"]) == (
            "ERROR",
            f"unhandled ValueError in POST {API}",
        )
        assert error["request_id"] == access["request_id"] == "bug-1"
        assert access["problem"] == "Internal Server Error"
        trace = error["traceback"]
    else:
        trace = out
        assert f"ERROR datasources: unhandled ValueError in POST {API} request_id=bug-1\n" in out
    assert trace.startswith("Traceback (most recent call last):\n") or "\nTraceback" in trace
    assert 'in create_source\n    {}[fields["name"]]' in trace  # the frames and their code
    assert "KeyError: (message not logged)" in trace
    assert "\n\nwhich led to:\n\n" in trace
    assert "ValueError: (message not logged)" in trace
    for secret in (SECRET_WORD, "hunter2", "password", token(), "Bearer"):
        assert secret not in out


def test_metrics_can_be_turned_off(make_app):
    on = make_app().test_client()
    off = make_app(DATASOURCES_METRICS="false").test_client()
    labels = {"route": API, "method": "GET", "status": "200"}
    before = sample(on, "datasources_requests_total", **labels)
    assert off.get(API, headers=auth()).status_code == 200
    assert sample(on, "datasources_requests_total", **labels) == before
    problem(off.get("/metrics"), 404)
    assert "X-Request-ID" in off.get(API, headers=auth()).headers  # logs stay on


# Embedded: our hooks run for our blueprint only; the host keeps its logging.


def test_an_embedding_host_is_not_logged_counted_or_given_a_metrics_route(tmp_path, capsys):
    root_handlers = list(logging.getLogger().handlers)
    host = Flask("host", instance_path=str(tmp_path / "instance"))
    host.config["DATASOURCES_JWT_SECRET"] = SECRET
    host.add_url_rule("/home", "home", lambda: "home")
    init_app(host, url_prefix="/ds")
    client = host.test_client()
    capsys.readouterr()
    response = client.get("/home", headers={"X-Request-ID": "host-1"})
    assert response.status_code == 200 and "X-Request-ID" not in response.headers
    assert client.get("/metrics").status_code == 404
    assert capsys.readouterr().out == ""
    api = client.get("/ds", headers={**auth(), "X-Request-ID": "api-1"})
    assert api.status_code == 200 and api.headers["X-Request-ID"] == "api-1"
    assert logging.getLogger().handlers == root_handlers
    counted = {"method": "GET", "status": "200"}
    assert REGISTRY.get_sample_value("datasources_requests_total", {"route": "/ds", **counted})
    assert (
        REGISTRY.get_sample_value("datasources_requests_total", {"route": "/home", **counted})
        is None
    )
    close(database_of(host))


# Database connections never cross a fork.


def test_start_up_leaves_no_connection_open_and_pre_fork_closes_any(make_app, monkeypatch):
    monkeypatch.setenv("DATASOURCES_METRICS", "false")  # reading the file makes no folder
    app = make_app()  # runs the SQLite migrations
    database = database_of(app)
    assert database.is_closed()
    database.connect()
    hooks = runpy.run_path(os.path.join(REPO, "gunicorn.conf.py"))
    master = types.SimpleNamespace(app=types.SimpleNamespace(callable=app))  # gunicorn's Arbiter
    hooks["pre_fork"](master, None)
    assert database.is_closed()


# gunicorn.conf.py, as gunicorn reads it.


def gunicorn_config(env=None, args=()):
    base = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_CONCURRENCY")}
    base.pop("GUNICORN_CMD_ARGS", None)
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--print-config", *args, "wsgi:app"],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(re.findall(r"^(\w+)\s+= (.*)$", out, re.M))


def test_gunicorn_reads_the_repository_config_with_no_flag():
    config = gunicorn_config()
    assert config["workers"] == str(len(os.sched_getaffinity(0)))
    assert config["bind"] == "['127.0.0.1:8000']"
    expected = {
        "worker_class": "gthread",
        "threads": "2",
        "timeout": "30",
        "graceful_timeout": "25",
        "keepalive": "5",
        "preload_app": "True",
        "accesslog": "None",
        "errorlog": "-",
        "control_socket_disable": "True",
    }
    assert {key: config[key] for key in expected} == expected


def test_gunicorn_config_honours_the_environment_then_flags():
    config = gunicorn_config({"WEB_CONCURRENCY": "3", "PORT": "5055"})
    assert (config["workers"], config["bind"]) == ("3", "['0.0.0.0:5055']")
    env = {"WEB_CONCURRENCY": "3", "PORT": "5055", "GUNICORN_CMD_ARGS": "-w 5 -b 127.0.0.1:9"}
    config = gunicorn_config(env)
    assert (config["workers"], config["bind"]) == ("5", "['127.0.0.1:9']")
    config = gunicorn_config(env, ["-w", "1", "-b", "127.0.0.1:7", "--threads", "3"])
    assert (config["workers"], config["bind"], config["threads"]) == ("1", "['127.0.0.1:7']", "3")


# Several real workers: one /metrics sums them all.


def test_metrics_under_gunicorn_sum_every_worker_and_the_folder_is_removed(tmp_path):
    env = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path}/ds.db",
        "DATASOURCES_JWT_SECRET": SECRET,
    }
    with Gunicorn(env, workers=2) as server:
        workers = server.workers()
        folder = None
        sent = 0

        def call(_):
            response = requests.get(f"{server.url}{API}", headers={**auth(), "Connection": "close"})
            assert response.status_code == 200
            assert response.headers["X-Request-ID"]

        def every_worker_counted():
            nonlocal folder, sent
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(call, range(16)))
            sent += 16
            folder = folder or metrics_folder(workers)
            files = os.listdir(folder) if folder else []
            return all(f"counter_{pid}.db" in files for pid in workers)

        wait_for(every_worker_counted, timeout=30, what="both workers to serve")
        labels = 'method="GET",route="/api/v1/data-sources",status="200"'
        for _ in range(4):  # whichever worker answers the scrape
            text = requests.get(f"{server.url}/metrics", timeout=10).text
            assert f"datasources_requests_total{{{labels}}} {float(sent)}" in text
            assert 'datasources_database_errors_total{error="connection_refused"} 0.0' in text
        assert server.stop(signal.SIGTERM) == 0
        assert "Shutting down: Master" in server.log()
    assert not os.path.exists(folder)


def metrics_folder(pids):
    """The multiprocess folder in which a worker has mapped its metric files."""
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps:
            found = re.search(r"(/\S+)/counter_\d+\.db$", maps.read(), re.M)
        if found:
            return found.group(1)
    return None
