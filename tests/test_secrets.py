"""Secrets of a source's config (vault.py): masked in every answer, with
their version and fingerprint; kept by the mask on a write; encrypted at
rest under rotatable keys; revealed to the reveal role only. On SQLite and
PostgreSQL."""

import datetime
import glob
import json
import logging
import os
import re

import jsonschema
import pytest
import requests
from conftest import (
    API,
    SECRET,
    SECRET_MARK,
    LeakWatch,
    auth,
    close,
    database_of,
    problem,
    rows,
    secret_value,
)
from cryptography.fernet import Fernet
from flask import Flask
from playhouse.migrations import Runner
from servers import Gunicorn

from datasources import connections, models, store
from datasources.app import create_app, init_app, reveal_secrets
from datasources.vault import MASK

FINGERPRINT = re.compile(r"^hmac-sha256:[0-9a-f]{32}$")
KEY_ID, SECRET_KEY = "/aws_access_key_id", "/aws_secret_access_key"


def s3_source(key="orders", **config):
    access, secret = secret_value("access"), secret_value("secret")
    source_config = {"bucket": "orders", "aws_access_key_id": access}
    source_config |= {"aws_secret_access_key": secret, **config}
    body = {"key": key, "name": "Orders", "connectorKey": "s3", "sourceConfig": source_config}
    return body, access, secret


def masked(config):
    return {**config, "aws_access_key_id": MASK, "aws_secret_access_key": MASK}


def item(client, key, role="viewer", query="", tenant="t_001"):
    return client.get(f"{API}/{key}{query}", headers=auth(tenant, role))


def reveal(client, key, tenant="t_001"):
    response = item(client, key, "admin", "?includeSecrets=true", tenant)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_every_answer_masks_the_secrets_and_says_what_they_are(api, client):
    body, access, secret = s3_source()
    created = api.post(body)
    assert created.status_code == 201
    source = created.get_json()
    assert source["sourceConfig"] == masked(body["sourceConfig"])
    assert list(source)[-1] == "secrets"
    assert sorted(source["secrets"]) == [KEY_ID, SECRET_KEY]
    for info in source["secrets"].values():
        assert list(info) == ["version", "updatedAt", "fingerprint"]
        assert info["version"] == 1 and FINGERPRINT.match(info["fingerprint"])
        assert info["updatedAt"] == source["createdAt"]
    fingerprints = {info["fingerprint"] for info in source["secrets"].values()}
    assert len(fingerprints) == 2
    assert api.get().get_json()["data"] == [source]
    assert item(client, "orders").get_json() == source
    updated = api.put({"key": "orders", "status": "paused"}).get_json()
    assert updated["sourceConfig"] == source["sourceConfig"]
    assert updated["secrets"] == source["secrets"]
    stale = problem(api.put({"key": "orders", "name": "x", "rowVersion": 1}), 409)
    assert stale["current"] == updated
    tag = '"ds_nothing.1"'
    refused = problem(api.put({"key": "orders", "name": "x"}, headers={"If-Match": tag}), 412)
    assert refused["current"] == updated
    for response in (created, api.get(), item(client, "orders")):
        assert access not in response.get_data(as_text=True)
        assert secret not in response.get_data(as_text=True)


def test_a_source_without_secrets_has_none(api):
    source = api.post({"key": "plain", "name": "Plain", "sourceConfig": {"host": "db"}})
    assert source.get_json()["secrets"] == {}
    assert source.get_json()["sourceConfig"] == {"host": "db"}


def test_the_mask_keeps_a_secret_and_a_new_value_is_a_new_version(api, client):
    body, access, secret = s3_source()
    first = api.post(body).get_json()
    config = {**first["sourceConfig"], "region": "eu-west-1"}  # masks sent back
    kept = api.put({"key": "orders", "sourceConfig": config}).get_json()
    assert kept["secrets"] == first["secrets"]
    assert kept["sourceConfig"] == {**masked(body["sourceConfig"]), "region": "eu-west-1"}
    same = api.put({"key": "orders", "sourceConfig": {**config, "aws_secret_access_key": secret}})
    assert same.get_json()["secrets"] == first["secrets"]  # the same value: the same version
    rotated = secret_value("rotated")
    config["aws_secret_access_key"] = rotated
    changed = api.put({"key": "orders", "sourceConfig": config}).get_json()
    assert changed["secrets"][KEY_ID] == first["secrets"][KEY_ID]
    new = changed["secrets"][SECRET_KEY]
    assert new["version"] == 2 and new["updatedAt"] == changed["updatedAt"]
    assert new["fingerprint"] != first["secrets"][SECRET_KEY]["fingerprint"]
    assert FINGERPRINT.match(new["fingerprint"])
    revealed = reveal(client, "orders")["sourceConfig"]
    assert revealed == {
        **body["sourceConfig"],
        "region": "eu-west-1",
        "aws_secret_access_key": rotated,
    }
    assert revealed["aws_access_key_id"] == access


def test_a_client_puts_back_what_it_read_without_any_secret(api, client):
    body, access, secret = s3_source()
    api.post(body)
    source = item(client, "orders").get_json()
    source["sourceConfig"]["path_prefix"] = "2026/"
    source["description"] = "Orders, from 2026"
    updated = api.put(source)
    assert updated.status_code == 200, updated.data
    assert updated.get_json()["secrets"] == source["secrets"]
    assert reveal(client, "orders")["sourceConfig"] == {
        **body["sourceConfig"],
        "path_prefix": "2026/",
    }


def test_a_secret_left_out_of_a_new_config_is_gone(api, client):
    body, access, secret = s3_source()
    api.post(body)
    config = {"bucket": "orders", "aws_access_key_id": MASK}
    updated = api.put({"key": "orders", "sourceConfig": config}).get_json()
    assert list(updated["secrets"]) == [KEY_ID]
    assert reveal(client, "orders")["sourceConfig"] == {
        "bucket": "orders",
        "aws_access_key_id": access,
    }
    config["aws_secret_access_key"] = secret_value("again")  # set again: a first version
    again = api.put({"key": "orders", "sourceConfig": config}).get_json()
    assert again["secrets"][SECRET_KEY]["version"] == 1


def test_the_mask_where_no_secret_is_stored_is_a_400_that_changes_nothing(api, app):
    body = {"key": "k", "name": "n", "sourceConfig": {"password": MASK, "deep": [{"x": MASK}]}}
    refused = problem(api.post(body), 400, "sourceConfig")
    assert refused["errors"]["sourceConfig"] == [
        f"/deep/0/x: {MASK!r} keeps a stored secret, and this source has none here.",
        f"/password: {MASK!r} keeps a stored secret, and this source has none here.",
    ]
    assert rows(app) == []
    source, access, secret = s3_source()
    before = api.post(source).get_json()
    config = {**before["sourceConfig"], "session_token": MASK}
    problem(api.put({"key": "orders", "sourceConfig": config}), 400, "sourceConfig")
    assert api.get().get_json()["data"] == [before]


def test_unknown_connectors_go_by_key_names_at_any_depth(api, client):
    config = {
        "host": "db",
        "Api-Key": secret_value("api"),
        "credentials": {"user": secret_value("user"), "pin": 1234, "on": True},
        "headers": [{"Authorization": secret_value("bearer")}, {"Accept": "text/csv"}],
        "token_url": secret_value("url"),
        "password": None,
    }
    source = api.post({"key": "free", "name": "Free", "sourceConfig": config}).get_json()
    assert source["sourceConfig"] == {
        "host": "db",
        "Api-Key": MASK,
        "credentials": {"user": MASK, "pin": MASK, "on": True},
        "headers": [{"Authorization": MASK}, {"Accept": "text/csv"}],
        "token_url": MASK,
        "password": None,
    }
    pointers = ["/Api-Key", "/credentials/pin", "/credentials/user", "/headers/0/Authorization"]
    assert sorted(source["secrets"]) == sorted(pointers + ["/token_url"])
    assert reveal(client, "free")["sourceConfig"] == config  # the number comes back a number


def test_a_new_connector_decides_anew_which_values_are_secret(api, client):
    client_id = secret_value("client-id")
    credentials = {"auth_type": "Client", "client_id": client_id}
    body = {
        "key": "crm",
        "name": "CRM",
        "sourceConfig": {"objectName": "C", "credentials": credentials},
    }
    free = api.post(body).get_json()  # no connector: "credentials" names a secret
    assert free["sourceConfig"]["credentials"] == {"auth_type": MASK, "client_id": MASK}
    known = api.put({"key": "crm", "connectorKey": "salesforce"}).get_json()
    assert known["sourceConfig"] == body["sourceConfig"]  # salesforce marks neither
    assert known["secrets"] == {}


def test_no_secret_is_stored_in_clear(api, app, backend, tmp_path):
    body, access, secret = s3_source()
    api.post(body)
    config = {**masked(body["sourceConfig"]), "aws_secret_access_key": secret_value("second")}
    api.put({"key": "orders", "sourceConfig": config})
    [row] = rows(app)
    stored = repr(row)
    assert SECRET_MARK not in stored
    assert row["secret_values"] and row["secret_key_id"]
    database = database_of(app)
    with database.connection_context():
        for table in database.get_tables():
            text = repr(database.execute_sql(f'SELECT * FROM "{table}"').fetchall())
            assert SECRET_MARK not in text, table
    if backend == "sqlite":
        database.close()
        for path in glob.glob(str(tmp_path / "datasources.db*")):
            with open(path, "rb") as stored_file:
                assert SECRET_MARK.encode() not in stored_file.read(), path


def test_secrets_no_configured_key_decrypts_are_a_503(make_app, backend):
    first = make_app(DATASOURCES_SECRET_KEYS=Fernet.generate_key().decode())
    body, access, secret = s3_source()
    assert first.test_client().post(API, json=body, headers=auth()).status_code == 201
    other = make_app(DATASOURCES_SECRET_KEYS=Fernet.generate_key().decode()).test_client()
    assert item(other, "orders").status_code == 200  # masked answers need no key
    for response in (
        item(other, "orders", "admin", "?includeSecrets=true"),
        other.put(API, json={"key": "orders", "sourceConfig": body["sourceConfig"] | {
            "aws_access_key_id": MASK}}, headers=auth()),
        other.put(API, json={"key": "orders", "status": "active"}, headers=auth()),
    ):  # fmt: skip
        refused = problem(response, 503)
        assert refused["type"] == "urn:datasources:secrets-unreadable"
        assert "DATASOURCES_SECRET_KEYS" in refused["detail"]
        assert "gAAAA" not in response.get_data(as_text=True)  # no token
    fresh = {**body["sourceConfig"], "aws_secret_access_key": secret_value("new")}
    recovered = other.put(API, json={"key": "orders", "sourceConfig": fresh}, headers=auth())
    assert recovered.status_code == 200  # every secret given anew: no key of the old one needed
    assert {info["version"] for info in recovered.get_json()["secrets"].values()} == {2}


def test_a_key_that_is_not_a_fernet_key_refuses_start_up(make_app):
    good = Fernet.generate_key().decode()
    with pytest.raises(ValueError, match="key 2 is not a Fernet key") as refused:
        make_app(DATASOURCES_SECRET_KEYS=f"{good},not-a-key-{SECRET_MARK}")
    assert SECRET_MARK not in str(refused.value) and good not in str(refused.value)


def test_with_no_keys_set_the_instance_folder_keeps_one(make_app, tmp_path):
    body, access, secret = s3_source()
    first = make_app()
    first.test_client().post(API, json=body, headers=auth())
    for name in ("datasources-fernet-key", "datasources-fingerprint-key"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600
    second = make_app().test_client()  # another worker: the same keys
    assert reveal(second, "orders")["sourceConfig"] == body["sourceConfig"]


def test_rotation_encrypts_again_under_the_first_key_and_goes_on_after_a_stop(make_app, app):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_app(DATASOURCES_SECRET_KEYS=old)
    sources = [s3_source(f"s-{i}")[0] for i in range(5)]
    for body in sources + [{"key": "plain", "name": "No secrets"}]:
        assert before.test_client().post(API, json=body, headers=auth()).status_code == 201
    both = make_app(DATASOURCES_SECRET_KEYS=f"{new},{old}")
    with both.app_context():  # stopped after its first batch
        assert next(store.rotate_secrets(batch=2)).rotated == 2
    result = both.test_cli_runner().invoke(args=["secrets", "rotate", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "rotated: 3, changed meanwhile: 0, unreadable: 0"
    again = both.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert again.output.splitlines()[-1] == "rotated: 0, changed meanwhile: 0, unreadable: 0"
    after = make_app(DATASOURCES_SECRET_KEYS=new).test_client()  # the old key removed
    for body in sources:
        assert reveal(after, body["key"])["sourceConfig"] == body["sourceConfig"]


def test_rotation_leaves_a_token_written_meanwhile_to_that_write(make_app, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    writer = make_app(DATASOURCES_SECRET_KEYS=old).test_client()  # a server with the old keys
    body, access, secret = s3_source()
    writer.post(API, json=body, headers=auth())
    rotator = make_app(DATASOURCES_SECRET_KEYS=f"{new},{old}")
    rotate = type(rotator.extensions["datasources"].vault).rotate
    written = secret_value("meanwhile")

    def rotate_while_written(self, token):
        rotated = rotate(self, token)
        config = {**body["sourceConfig"], "aws_secret_access_key": written}
        assert writer.put(API, json={"key": "orders", "sourceConfig": config}, headers=auth())
        return rotated

    monkeypatch.setattr(
        type(rotator.extensions["datasources"].vault), "rotate", rotate_while_written
    )
    result = rotator.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-2] == "rotated: 0, changed meanwhile: 1, unreadable: 0"
    monkeypatch.setattr(type(rotator.extensions["datasources"].vault), "rotate", rotate)
    result = rotator.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert result.output.splitlines()[-1] == "rotated: 1, changed meanwhile: 0, unreadable: 0"
    after = make_app(DATASOURCES_SECRET_KEYS=new).test_client()
    assert reveal(after, "orders")["sourceConfig"]["aws_secret_access_key"] == written


def test_reveal_is_for_the_reveal_role_never_cached_logged_and_counted(api, client, caplog):
    body, access, secret = s3_source()
    api.post(body)
    masked_answer = item(client, "orders")
    for role in ("viewer", "editor"):
        problem(item(client, "orders", role, "?includeSecrets=true"), 403)
    assert (
        item(client, "orders", "admin", "?includeSecrets=false").get_json()
        == masked_answer.get_json()
    )
    problem(item(client, "orders", "admin", "?includeSecret=true"), 400, "includeSecret")
    before = metric(client, "admin")
    with caplog.at_level("INFO", "datasources.audit"):
        response = item(client, "orders", "admin", "?includeSecrets=true")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["ETag"] == masked_answer.headers["ETag"]
    revealed = response.get_json()
    assert revealed == {**masked_answer.get_json(), "sourceConfig": body["sourceConfig"]}
    [record] = [r for r in caplog.records if r.name == "datasources.audit"]
    assert record.getMessage() == (
        f"secrets revealed: tenant='t_001' role=admin key='orders' pointers={KEY_ID},{SECRET_KEY}"
    )
    assert metric(client, "admin") == before + 1
    problem(item(client, "orders", "admin", "?includeSecrets=true", tenant="t_002"), 404)


def metric(client, role):
    text = client.get("/metrics").get_data(as_text=True)
    line = f'datasources_secret_reveals_total{{role="{role}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_the_reveal_role_is_a_setting(make_app):
    client = make_app(DATASOURCES_REVEAL_ROLE="editor").test_client()
    body, access, secret = s3_source()
    client.post(API, json=body, headers=auth())
    response = item(client, "orders", "editor", "?includeSecrets=true")
    assert response.get_json()["sourceConfig"] == body["sourceConfig"]
    problem(item(client, "orders", "viewer", "?includeSecrets=true"), 403)


def test_a_host_reveals_through_a_python_function(database_url, tmp_path, caplog):
    host = Flask("host", instance_path=str(tmp_path))
    host.config.update(DATASOURCES_DATABASE_URL=database_url, DATASOURCES_AUTO_MIGRATE=True)
    host.config.update(DATASOURCES_AUTH="headers")
    init_app(host)
    body, access, secret = s3_source()
    headers = {"X-Tenant-Id": "t_001", "X-Role": "editor"}
    assert host.test_client().post(API, json=body, headers=headers).status_code == 201
    with host.app_context(), caplog.at_level("INFO", "datasources.audit"):
        source = reveal_secrets("t_001", "orders")
    assert source["sourceConfig"] == body["sourceConfig"] and source["key"] == "orders"
    assert "role=host" in caplog.records[-1].getMessage()
    database_of(host).close()


def test_a_migration_encrypts_the_secrets_stored_in_clear(fresh_database_url, tmp_path):
    password, token = secret_value("password"), secret_value("token")
    configs = {
        "pg": ("postgres", {"table": "t", "password": password}),
        "free": ("", {"host": "h", "auth": {"token": token}}),
        "plain": ("", {"host": "h"}),
    }
    database = connections.connect_url(fresh_database_url)
    with database.connection_context():
        runner = Runner(database, models.MIGRATIONS, table_name=models.MIGRATION_TABLE)
        runner.up(target="0002_filters")
        insert = (
            "INSERT INTO data_sources (id, tenant_id, key, name, description, connector_key, "
            "source_config, sync_mode, schedule, status, record_count, row_version, created_at, "
            "updated_at) VALUES ({})".format(", ".join([database.param] * 14))
        )
        moment = datetime.datetime(2026, 3, 1, 12)
        for key, (connector, config) in configs.items():
            values = (f"ds_{key}", "t_001", key, key, "", connector, json.dumps(config))
            values += ("full_refresh", "{}", "active", 0, 1, moment, moment)
            database.execute_sql(insert, values)
        with pytest.raises(RuntimeError, match="run it with `datasources db upgrade`"):
            models.migrate(database)  # no app: no keys to encrypt with
    close(database)
    app = create_app(
        {
            "DATASOURCES_DATABASE_URL": fresh_database_url,
            "DATASOURCES_JWT_SECRET": SECRET,
            "DATASOURCES_AUTO_MIGRATE": False,
        },
        instance_path=str(tmp_path),
    )
    upgrade = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert (
        upgrade.output == "applied: 0003_secrets, 0004_lighter_writes, "
        "0005_counters_by_trigger, 0006_optional_columns_indexed_when_set\n"
    )
    client = app.test_client()
    assert item(client, "pg").get_json()["sourceConfig"] == {"table": "t", "password": MASK}
    assert item(client, "free").get_json()["sourceConfig"] == {"host": "h", "auth": {"token": MASK}}
    assert list(item(client, "pg").get_json()["secrets"]) == ["/password"]
    assert item(client, "plain").get_json()["secrets"] == {}
    for key, (_, config) in configs.items():
        assert reveal(client, key)["sourceConfig"] == config
    assert SECRET_MARK not in repr(rows(app))
    close(database_of(app))


def test_the_leak_watch_finds_a_secret_in_a_record():
    watch = LeakWatch()
    logger = logging.getLogger("datasources.test-watch")
    logger.addHandler(watch)
    logger.propagate = False  # not to the run's own watch
    try:
        logger.warning("clean line")
        logger.warning("holds %s", secret_value())
    finally:
        logger.removeHandler(watch)
    assert watch.records == 2 and len(watch.leaks) == 1


def test_a_real_server_logs_reveals_and_refusals_but_never_a_secret(database_url):
    env = {
        "DATASOURCES_DATABASE_URL": database_url,
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_AUTO_MIGRATE": "true",
        "DATASOURCES_LOG_FORMAT": "text",
    }
    body, access, secret = s3_source()
    with Gunicorn(env, workers=1) as server:
        url = server.url + API
        assert requests.post(url, json=body, headers=auth()).status_code == 201
        revealed = requests.get(f"{url}/orders?includeSecrets=true", headers=auth(role="admin"))
        assert revealed.json()["sourceConfig"] == body["sourceConfig"]
        wrong = {**body["sourceConfig"], "aws_secret_access_key": 12, "x": MASK}
        refused = requests.put(url, json={"key": "orders", "sourceConfig": wrong}, headers=auth())
        assert refused.status_code == 400 and SECRET_MARK not in refused.text
        denied = requests.get(f"{url}/orders?includeSecrets=true", headers=auth(role="editor"))
        assert denied.status_code == 403
        log = server.log()
    assert "secrets revealed: tenant='t_001' role=admin key='orders'" in log
    assert "PUT /api/v1/data-sources 400" in log
    assert SECRET_MARK not in log and access not in log and secret not in log


def test_the_document_describes_the_secrets_and_the_reveal(api, client):
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"][f"{API}/{{key}}"]["get"]
    [parameter] = [p for p in operation["parameters"] if p["name"] == "includeSecrets"]
    assert parameter["in"] == "query" and parameter["schema"] == {
        "type": "boolean",
        "default": False,
    }
    assert "503" in operation["responses"] and "403" in operation["responses"]
    schemas = document["components"]["schemas"]
    assert schemas["DataSource"]["properties"]["secrets"]["readOnly"] is True
    assert schemas["SecretInfo"]["required"] == ["version", "updatedAt", "fingerprint"]
    body, access, secret = s3_source()
    answer = api.post(body).get_json()
    shape = {"$ref": "#/components/schemas/DataSource", "components": document["components"]}
    jsonschema.Draft202012Validator(shape).validate(answer)
    wrong = {**answer, "secrets": {KEY_ID: {"version": 0, "updatedAt": "x", "fingerprint": "y"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(shape).validate(wrong)
    assert SECRET_MARK not in json.dumps(document)


def test_pointers_escape_slashes_and_tildes_and_the_mask_finds_them_again(api, client):
    config = {"a/b_password": secret_value("slash"), "c~d": {"token": secret_value("tilde")}}
    source = api.post({"key": "esc", "name": "Escapes", "sourceConfig": config}).get_json()
    assert sorted(source["secrets"]) == ["/a~1b_password", "/c~0d/token"]
    assert source["sourceConfig"] == {"a/b_password": MASK, "c~d": {"token": MASK}}
    kept = api.put({"key": "esc", "sourceConfig": source["sourceConfig"]}).get_json()
    assert kept["secrets"] == source["secrets"]
    assert reveal(client, "esc")["sourceConfig"] == config


def test_a_write_between_the_read_and_the_update_is_neither_lost_nor_overwritten(
    make_app, monkeypatch
):
    client = make_app().test_client()
    other = make_app().test_client()  # another worker, on connections of its own
    body, access, secret = s3_source()
    client.post(API, json=body, headers=auth())
    check, calls = store.checked_changes, []

    def a_rename_comes_between(*args):
        if not calls:
            renamed = other.put(API, json={"key": "orders", "name": "Renamed"}, headers=auth())
            assert renamed.status_code == 200
        calls.append(args)
        return check(*args)

    monkeypatch.setattr(store, "checked_changes", a_rename_comes_between)
    config = {**masked(body["sourceConfig"]), "region": "eu-west-1"}
    updated = client.put(API, json={"key": "orders", "sourceConfig": config}, headers=auth())
    assert updated.status_code == 200 and len(calls) == 2  # made again from the renamed row
    source = updated.get_json()
    assert (source["name"], source["rowVersion"]) == ("Renamed", 3)
    assert reveal(client, "orders")["sourceConfig"] == {
        **body["sourceConfig"],
        "region": "eu-west-1",
    }
