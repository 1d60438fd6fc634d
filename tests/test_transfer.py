"""`flask datasources export` and `import` (issue 11, part 4), on SQLite and
PostgreSQL: the export is the API's answers, line for line; the import
creates what POST would, reports every line it cannot create, and with
--strict writes nothing unless it can create every line."""

import json

import pytest
from conftest import API, SECRET_MARK, auth, close, database_of, flask_cli, rows, secret_value
from flask import Flask
from peewee import SqliteDatabase

from datasources import models, transfer
from datasources.app import init_app
from datasources.vault import MASK

SOURCES = [
    {"key": "crm-customers", "name": "CRM Customer Export", "connectorKey": "salesforce"},
    {
        "key": "s3/orders 2026?#%",
        "name": "Commandes été ☀",
        "connectorKey": "s3",
        "sourceConfig": {"bucket": "exports", "globs": ["**/*.csv"], "n": {"a": [1, 2.5, 2**70]}},
        "fileFormat": "csv",
        "syncMode": "incremental",
        "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
        "status": "active",
        "lastSyncAt": "2026-03-16T02:00:00.123Z",
        "lastSyncStatus": "success",
        "recordCount": 45000,
    },
    {
        "key": "kafka-events",
        "name": "Events",
        "connectorKey": "kafka",
        "status": "paused",
        "sourceConfig": {"topic": "events"},
    },
]
READ_ONLY = ("id", "tenantId", "createdAt", "updatedAt")


def write(path, *lines):
    """A JSON Lines file of `lines`: objects, or text or bytes as they are."""
    with open(path, "wb") as out:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line, ensure_ascii=False)
            out.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return str(path)


def create(api, tenant, sources):
    for body in sources:
        assert api.as_(tenant).post(body).status_code == 201


def listed(client, tenant):
    """The raw answers of the tenant's list, page by page, and its total."""
    answers, cursor, total = [], None, None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(API, query_string=query, headers=auth(tenant))
        body = response.get_json()
        raw = response.data
        data = raw[len(b'{"data":[') : raw.index(b'],"pagination":')]
        assert raw.startswith(b'{"data":[')
        answers.append(data)
        total = body["pagination"]["total"]
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            return b",".join(part for part in answers if part), total


def export(runner, *args):
    result = runner.invoke(args=["export", *args])
    assert result.exit_code == 0, result.output
    return result


def run_import(runner, path, tenant="t_001", *args):
    return runner.invoke(args=["import", path, "--tenant", tenant, "--jobs", "1", *args])


def summary(result):
    """The summary line without its timing."""
    return result.stdout.strip().split(", ", 3)[:3]


def test_export_is_what_the_api_lists_byte_for_byte(api, client, runner, monkeypatch, tmp_path):
    monkeypatch.setattr(transfer, "PAGE", 2)  # pages that end inside a tenant and at its end
    create(api, "t_002", SOURCES[:2])
    create(api, "t_001", SOURCES)
    create(api, "t_003", SOURCES[2:])
    everything = export(runner).stdout_bytes
    lines = everything.splitlines()
    assert everything.endswith(b"\n") and len(lines) == 6
    assert [json.loads(line)["tenantId"] for line in lines] == ["t_001"] * 3 + ["t_002"] * 2 + [
        "t_003"
    ]
    start = 0
    for tenant, count in (("t_001", 3), ("t_002", 2), ("t_003", 1)):
        answers, total = listed(client, tenant)
        assert b",".join(lines[start : start + count]) == answers and total == count
        one = export(runner, "--tenant", tenant).stdout_bytes
        assert one.splitlines() == lines[start : start + count]
        start += count
    out = tmp_path / "out.jsonl"
    quiet = export(runner, "--output", str(out))
    assert out.read_bytes() == everything and quiet.stdout_bytes == b"" and quiet.stderr == ""
    assert export(runner, "--tenant", "t_404").stdout_bytes == b""


def test_secrets_are_exported_masked_or_in_clear(api, client, runner, tmp_path):
    password = secret_value("password")
    config = {"table": "orders", "password": password}
    api.post({"key": "pg", "name": "PG", "connectorKey": "postgres", "sourceConfig": config})
    masked = export(runner)
    assert masked.stderr == "" and SECRET_MARK not in masked.stdout
    assert json.loads(masked.stdout)["sourceConfig"] == {"table": "orders", "password": MASK}
    clear = export(runner, "--include-secrets")
    assert clear.stderr == transfer.SECRETS_NOTE + "\n"
    assert json.loads(clear.stdout)["sourceConfig"] == config
    assert json.loads(clear.stdout)["secrets"] == json.loads(masked.stdout)["secrets"]
    path = write(tmp_path / "masked.jsonl", masked.stdout.strip())
    refused = run_import(runner, path, "t_002")
    assert refused.exit_code == 1
    expected = f"line 1: invalid: sourceConfig: /password: {MASK!r} keeps a stored secret"
    assert expected in refused.output
    path = write(tmp_path / "clear.jsonl", clear.stdout.strip())
    assert run_import(runner, path, "t_002").exit_code == 0
    moved = client.get(f"{API}/pg?includeSecrets=true", headers=auth("t_002", "admin"))
    assert moved.get_json()["sourceConfig"] == config
    assert SECRET_MARK not in repr(rows_of_tenant(client, "t_002"))


def rows_of_tenant(client, tenant):
    return client.get(API, headers=auth(tenant, "viewer")).get_json()["data"]


def test_an_empty_export_still_writes_its_file(runner, tmp_path):
    out = tmp_path / "empty.jsonl"
    export(runner, "--output", str(out))
    assert out.read_bytes() == b""


def test_import_creates_the_good_lines_and_reports_each_bad_one(api, client, runner, app, tmp_path):
    assert api.post({"key": "taken", "name": "Created by the API"}).status_code == 201
    exported = {"id": "ds_00000000000000000000", "tenantId": "t_009", "key": "good-2"}
    exported |= {"name": "Good two", "rowVersion": 9, "createdAt": "2020-01-01T00:00:00.000Z"}
    path = write(
        tmp_path / "in.jsonl",
        {
            "key": "good-1",
            "name": "Good one",
            "connectorKey": "s3",
            "status": "active",
            "sourceConfig": {"bucket": "b"},
        },
        '{"key": "broken",',
        "[1, 2]",
        {"key": "bad-status", "name": "x", "status": "running"},
        "   ",
        {"key": "good-1", "name": "Again"},
        {"key": "taken", "name": "Imported"},
        {"key": "no-bucket", "name": "x", "connectorKey": "s3", "status": "active"},
        exported,
        b'{"key": "\xff"}',
        {"key": "extra", "name": "x", "colour": "red"},
        '{"key": "twice", "key": "again", "name": "x"}',
        {"key": "good-3", "name": "Good three"},
    )
    result = run_import(runner, path)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "line 2: not valid JSON: expecting property name enclosed in double quotes at column 18.",
        "line 3: not a JSON object.",
        "line 4: invalid: status: Must be one of: draft, active, paused, archived.",
        "line 6: key 'good-1' repeats line 1.",
        "line 7: key 'taken' exists already: not overwritten.",
        "line 8: invalid: sourceConfig: /bucket: is required.",
        "line 10: not valid JSON: a byte that is not UTF-8 at column 10.",
        "line 11: invalid: colour: Unknown field.",
        "line 12: not valid JSON: duplicate key 'key' at column 18.",
    ]
    assert summary(result) == ["created 3", "skipped 1", "errors 8"]
    assert result.stdout.split(", ")[3].startswith("13 lines in ")
    stored = {row["key"]: row for row in rows(app)}
    assert sorted(stored) == ["good-1", "good-2", "good-3", "taken"]
    assert stored["taken"]["name"] == "Created by the API" and stored["taken"]["row_version"] == 1
    assert stored["good-2"]["tenant_id"] == "t_001" and stored["good-2"]["id"] != exported["id"]
    assert stored["good-2"]["row_version"] == 1
    assert rows(app, "datasources_tenant_counts") == [{"tenant_id": "t_001", "sources": 4}]
    body = api.get("?limit=100").get_json()
    assert body["pagination"]["total"] == 4
    assert [s["key"] for s in body["data"]] == ["taken", "good-1", "good-2", "good-3"]
    assert body["data"][1] == api.get("/good-1").get_json()
    assert body["data"][1]["sourceConfig"] == {"bucket": "b"} and body["data"][1]["status"] == (
        "active"
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_key_repeated_in_a_later_batch(api, runner, app, monkeypatch, tmp_path, jobs):
    """Batches of 2 lines: the repeat meets the row an earlier transaction
    created; with 2 jobs, worker processes check the lines."""
    monkeypatch.setattr(transfer, "BATCH", 2)
    sources = [{"key": f"k-{i}", "name": f"Source {i}"} for i in range(7)]
    path = write(tmp_path / "in.jsonl", *sources, "nope", {"key": "k-1", "name": "Again"})
    result = runner.invoke(args=["import", path, "--tenant", "t_001", "--jobs", jobs])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "line 8: not valid JSON: expecting value at column 1.",
        "line 9: key 'k-1' repeats an earlier line.",
    ]
    assert summary(result) == ["created 7", "skipped 0", "errors 2"]
    body = api.get("?limit=100").get_json()
    assert [s["key"] for s in body["data"]] == [s["key"] for s in sources]  # the file's order
    assert body["pagination"]["total"] == 7
    assert len(rows(app)) == 7


def test_a_batch_of_every_statement_size(api, runner, app, tmp_path):
    """301 lines: SQLite's statements of 256, 32, 8, 4 and 1 rows, each
    source as POST stores it, in the file's order."""
    sources = [{"key": f"k-{i}", "name": f"Source {i}", "status": "paused"} for i in range(301)]
    result = run_import(runner, write(tmp_path / "in.jsonl", *sources), "t_001")
    assert result.exit_code == 0 and result.stderr == "", result.output
    body = api.get("?limit=100&status=paused").get_json()
    assert [s["key"] for s in body["data"]] == [s["key"] for s in sources[:100]]
    assert body["pagination"]["total"] == 301
    assert api.get("?q=k-300").get_json()["data"][0]["name"] == "Source 300"
    assert [row["row_version"] for row in rows(app)] == [1] * 301


def test_sqlite_batch_parameters_come_row_by_row():
    """models.insert_batch binds one flat list: the rows' values in FIELDS order."""
    database = SqliteDatabase(":memory:")
    for size in (1, 2, models.BATCH_ROWS):
        _, params = models.INSERT_BATCHES[(size,)].compile(database)
        expected = [f"{field.name}.{i}" for i in range(size) for field in models.FIELDS]
        assert [param.name for param in params] == expected


def test_bulk_writes_restores_the_connection_settings():
    database = SqliteDatabase(":memory:")
    with database.connection_context():
        before = [database.execute_sql(f"PRAGMA {name}").fetchone() for name in models.BULK_PRAGMAS]
        with models.bulk_writes(database):
            (cache,) = database.execute_sql("PRAGMA cache_size").fetchone()
            assert cache == models.BULK_PRAGMAS["cache_size"]
        after = [database.execute_sql(f"PRAGMA {name}").fetchone() for name in models.BULK_PRAGMAS]
        assert after == before


def test_strict_writes_nothing_when_one_line_is_bad(api, runner, app, monkeypatch, tmp_path):
    monkeypatch.setattr(transfer, "BATCH", 2)  # the bad line comes after two written batches
    sources = [{"key": f"k-{i}", "name": f"Source {i}"} for i in range(5)]
    path = write(tmp_path / "in.jsonl", *sources, {"key": "k-5"})
    result = run_import(runner, path, "t_001", "--strict")
    assert result.exit_code == 1, result.output
    assert result.stderr == "line 6: invalid: name: Missing data for required field.\n"
    assert summary(result) == ["created 0 (--strict)", "skipped 0", "errors 1"]
    assert rows(app) == [] and rows(app, "datasources_tenant_counts") == []
    assert api.get().get_json()["pagination"]["total"] == 0


def test_strict_writes_nothing_when_one_key_exists(api, runner, app, tmp_path):
    assert api.post({"key": "k-2", "name": "Already here"}).status_code == 201
    path = write(tmp_path / "in.jsonl", *[{"key": f"k-{i}", "name": "x"} for i in range(4)])
    result = run_import(runner, path, "t_001", "--strict")
    assert result.exit_code == 1
    assert result.stderr == "line 3: key 'k-2' exists already: not overwritten.\n"
    assert [row["key"] for row in rows(app)] == ["k-2"]
    assert api.get().get_json()["pagination"]["total"] == 1


def test_strict_writes_every_line_when_all_are_good(api, runner, tmp_path):
    path = write(tmp_path / "in.jsonl", *SOURCES)
    result = run_import(runner, path, "t_001", "--strict")
    assert result.exit_code == 0 and result.stderr == ""
    assert summary(result) == ["created 3", "skipped 0", "errors 0"]
    assert api.get().get_json()["pagination"]["total"] == 3


def test_round_trip_into_another_tenant(api, client, runner, tmp_path):
    create(api, "t_001", SOURCES)
    out = tmp_path / "t_001.jsonl"
    export(runner, "--tenant", "t_001", "--output", str(out))
    result = run_import(runner, str(out), "t_002")
    assert result.exit_code == 0 and result.stderr == ""

    def without_read_only(tenant):
        data = client.get(API, headers=auth(tenant)).get_json()["data"]
        return [{k: v for k, v in source.items() if k not in READ_ONLY} for source in data]

    original, copied = without_read_only("t_001"), without_read_only("t_002")
    assert copied == original and len(copied) == 3
    assert {s["tenantId"] for s in client.get(API, headers=auth("t_002")).get_json()["data"]} == {
        "t_002"
    }
    again = run_import(runner, str(out), "t_002")  # a second run: every key taken, none changed
    assert summary(again) == ["created 0", "skipped 3", "errors 0"]
    assert without_read_only("t_002") == original


def test_a_line_past_the_body_limit_is_skipped(make_app, tmp_path):
    app = make_app(DATASOURCES_MAX_BODY_BYTES=200)
    long = {"key": "long", "name": "x", "description": "d" * 300}
    path = write(tmp_path / "in.jsonl", long, {"key": "short", "name": "Short"})
    result = run_import(app.test_cli_runner(), path)
    assert result.stderr == "line 1: longer than 200 bytes.\n"
    assert [row["key"] for row in rows(app)] == ["short"]


@pytest.mark.parametrize("tenant", ["", " t_001", "t\x00", "t" * 256])
def test_a_tenant_the_api_would_refuse_is_a_usage_error(runner, app, tmp_path, tenant):
    path = write(tmp_path / "in.jsonl", SOURCES[0])
    result = runner.invoke(args=["import", path, "--tenant", tenant])
    assert result.exit_code == 2 and "--tenant" in result.stderr
    assert rows(app) == []


def test_embedded_under_the_hosts_datasources_group(config, tmp_path):
    host = Flask("host", instance_path=str(tmp_path / "host"))
    host.config.update(config)
    init_app(host)
    runner = host.test_cli_runner()
    path = write(tmp_path / "in.jsonl", *SOURCES)
    imported = runner.invoke(args=["datasources", "import", path, "--tenant", "t_001"])
    assert imported.exit_code == 0, imported.output
    exported = runner.invoke(args=["datasources", "export"])
    assert [json.loads(line)["key"] for line in exported.stdout.splitlines()] == [
        s["key"] for s in SOURCES
    ]
    close(database_of(host))


def test_the_documented_commands_in_a_real_process(database_url, tmp_path):
    """`flask --app datasources.app import` and `export`, as the README shows them."""
    env = {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_AUTO_MIGRATE": "true"}
    env["DATASOURCES_JWT_SECRET"] = "s" * 32
    instance = tmp_path / "instance"
    path = write(tmp_path / "in.jsonl", *SOURCES, "{")
    imported = flask_cli(instance, "import", path, "--tenant", "t_001", **env)
    assert imported.returncode == 1, imported.stderr
    expected = "line 4: not valid JSON: expecting property name enclosed in double quotes"
    assert imported.stderr == expected + " at column 2.\n"
    assert imported.stdout.startswith("created 3, skipped 0, errors 1, 4 lines in ")
    exported = flask_cli(instance, "export", "--tenant", "t_001", **env)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["key"] for line in exported.stdout.splitlines()] == [
        s["key"] for s in SOURCES
    ]
