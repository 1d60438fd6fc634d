"""The connector catalog (issue 10, part 1): the built-in connectors and
their schemas, loading and refusing connector files, validation of a
source's config (messages that name the place and never the value), the
secret pointers of a config, and the catalog's endpoints, on SQLite and
PostgreSQL."""

import json
import re

import jsonschema
import pytest
from conftest import API, EXAMPLE, SECRET, auth, close, database_of, problem, rows
from flask import Flask

from datasources import connectors
from datasources.app import create_app, init_app
from datasources.settings import SECRET_NAMES, Settings

CATALOG = "/api/v1/connectors"
BUILT_IN = ["http", "kafka", "postgres", "s3", "salesforce", "snowflake"]
# What names the data to read: all a built-in schema requires.
REQUIRED = {
    "http": ["url"],
    "kafka": ["topic"],
    "postgres": ["table"],
    "s3": ["bucket"],
    "salesforce": ["objectName"],
    "snowflake": ["table"],
}
SECRET_FIELDS = {
    "http": [
        "/authenticator/api_token",
        "/authenticator/client_secret",
        "/authenticator/password",
        "/authenticator/refresh_token",
    ],
    "kafka": ["/MessageFormat/schema_registry_password", "/protocol/sasl_jaas_config"],
    "postgres": [
        "/password",
        "/ssl_mode/client_key",
        "/ssl_mode/client_key_password",
        "/tunnel_method/ssh_key",
        "/tunnel_method/tunnel_user_password",
    ],
    "s3": ["/aws_access_key_id", "/aws_secret_access_key"],
    "salesforce": [
        "/credentials/client_secret",
        "/credentials/password",
        "/credentials/refresh_token",
        "/credentials/security_token",
    ],
    "snowflake": [
        "/credentials/access_token",
        "/credentials/client_secret",
        "/credentials/password",
        "/credentials/private_key",
        "/credentials/private_key_password",
        "/credentials/programmatic_access_token",
        "/credentials/refresh_token",
    ],
}
# Names a credential property of ours has: each must be marked secret.
CREDENTIAL_WORDS = SECRET_NAMES + ("ssh_key", "jaas", "client_key", "access_key_id")
REFERENCE = EXAMPLE  # the reference's example request
README_CREATE = {  # the README's walk-through
    "key": "crm-customers",
    "name": "CRM Customer Export",
    "connectorKey": "salesforce",
    "syncMode": "incremental",
    "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
}
HUNTER = "hunter2-do-not-echo"


@pytest.fixture(scope="module")
def catalog():
    return connectors.load(Settings())


def write(folder, name, data):
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def custom(key="crm", schema=None, **extra):
    schema = schema or {"type": "object", "properties": {"token": {"type": "string"}}}
    return {"key": key, "title": key.upper(), "schema": schema, **extra}


def secret_string(**extra):
    return {"type": "string", "writeOnly": True, **extra}


# The built-in connectors.


def test_the_built_in_connectors(catalog):
    assert list(catalog.connectors) == BUILT_IN
    assert catalog.get("s3").file_formats == ("csv", "json", "jsonl", "parquet", "avro")
    assert [k for k, c in catalog.connectors.items() if c.file_formats] == ["s3"]


@pytest.mark.parametrize("key", BUILT_IN)
def test_each_built_in_schema_is_draft_7_and_requires_only_what_names_the_data(catalog, key):
    schema = catalog.get(key).schema
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["type"] == "object" and schema["required"] == REQUIRED[key]
    assert schema.get("additionalProperties", True) is True  # unlisted properties allowed


@pytest.mark.parametrize("key", BUILT_IN)
def test_each_credential_property_is_secret_and_each_secret_a_string(catalog, key):
    schema = catalog.get(key).schema
    assert connectors.secret_fields(schema) == SECRET_FIELDS[key]
    for place, node in connectors.subschemas(schema, ""):
        name = place.rsplit("/", 1)[-1].lower()
        credential = any(word in name for word in CREDENTIAL_WORDS)
        if credential and node.get("type") == "string" and not re.search("url|endpoint", name):
            assert node.get("writeOnly") is True and node.get("airbyte_secret") is True, place
        if node.get("writeOnly") or node.get("airbyte_secret"):
            assert node["type"] == "string", place


@pytest.mark.parametrize(
    "key, config",
    [
        ("salesforce", REFERENCE["sourceConfig"]),
        ("s3", {"bucket": "exports", "aws_access_key_id": "AKIA", "region_name": "eu-west-1"}),
        ("s3", {"bucket": "exports", "role_arn": "arn:aws:iam::1:role/r", "globs": ["**/*.csv"]}),
        ("postgres", {"host": "db", "port": 5432, "database": "crm", "table": "customers"}),
        ("postgres", {"table": "t", "ssl_mode": {"mode": "verify-full", "ca_certificate": "PEM"}}),
        ("snowflake", {"table": "T", "credentials": {"auth_type": "OAuth", "client_id": "c"}}),
        ("kafka", {"topic": "orders", "protocol": {"security_protocol": "PLAINTEXT"}}),
        ("http", {"url": "https://api.example.com/v1/customers", "http_method": "GET"}),
        ("http", {"url": "http://h", "authenticator": {"type": "BearerAuthenticator"}}),
        ("s3", {"bucket": "b", "anything": {"else": [1, 2]}}),  # unlisted properties allowed
    ],
)
def test_real_configs_pass_whole(catalog, key, config):
    assert catalog.check(key, config, "active") == {}


# Validation: the errors, by field; each message starts with its place.

CASES = [
    ("s3", {}, "active", None, {"sourceConfig": ["/bucket: is required"]}),
    ("s3", {"bucket": 5}, "draft", None, {"sourceConfig": ["/bucket: must be a string"]}),
    (
        "s3",
        {"bucket": "b"},
        "paused",
        "xlsx",
        {"fileFormat": ["Must be one of csv, json, jsonl, parquet, avro for connector s3."]},
    ),
    ("s3", {"bucket": "b"}, "active", None, {}),  # no format yet: the platform may infer it
    ("salesforce", {"objectName": "Contact"}, "active", "csv", {}),  # no formats: any
    (
        "postgres",
        {"port": 99999, "ssl_mode": {"mode": "verify-ca"}},
        "archived",
        None,
        {
            "sourceConfig": [
                "/port: must be at most 65535",
                "/ssl_mode/ca_certificate: is required",
                "/table: is required",
            ]
        },
    ),
    (
        "kafka",
        {"topic": "", "protocol": {"security_protocol": "SASL_SSL"}},
        "active",
        None,
        {
            "sourceConfig": [
                "/protocol/sasl_mechanism: is required",
                "/topic: must be at least 1 characters long",
            ]
        },
    ),
    (
        "kafka",
        {"topic": "t", "protocol": {}},
        "active",
        None,
        {"sourceConfig": ["/protocol/security_protocol: is required"]},
    ),
    (
        "kafka",
        {"topic": "t", "protocol": {"security_protocol": "SSL"}},
        "active",
        None,
        {
            "sourceConfig": [
                '/protocol/security_protocol: must be one of "PLAINTEXT", "SASL_PLAINTEXT", '
                '"SASL_SSL"'
            ]
        },
    ),
    (
        "http",
        {"url": "ftp://x", "http_method": "PATCH", "request_headers": {"X-A": 1}},
        "active",
        None,
        {
            "sourceConfig": [
                '/http_method: must be one of "GET", "POST"',
                "/request_headers/X-A: must be a string",
                "/url: must match the pattern ^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+",
            ]
        },
    ),
    (
        "snowflake",
        {"table": "T", "credentials": {"auth_type": "OAuth", "client_id": "c", "client_secret": 1}},
        "active",
        None,
        {"sourceConfig": ["/credentials/client_secret: must be a string"]},
    ),
    (
        "salesforce",
        {"objectName": "C", "is_sandbox": "yes", "start_date": "yesterday"},
        "active",
        None,
        {
            "sourceConfig": [
                "/is_sandbox: must be true or false",
                "/start_date: must match the pattern "
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?$",
            ]
        },
    ),
]


@pytest.mark.parametrize("key, config, status, file_format, errors", CASES)
def test_every_failing_place_at_once(catalog, key, config, status, file_format, errors):
    assert catalog.check(key, config, status, file_format) == errors


@pytest.mark.parametrize(
    "key, config",
    [
        ("s3", {}),
        ("salesforce", {"query": "SELECT Id FROM Contact"}),
        ("kafka", {"protocol": {"security_protocol": "SASL_SSL"}}),  # a form, incomplete
        ("postgres", {"tunnel_method": {"tunnel_host": "bastion"}}),  # no form chosen yet
        ("snowflake", {"credentials": {}}),
    ],
)
def test_a_draft_may_leave_out_what_is_required(catalog, key, config):
    assert catalog.check(key, config, "draft") == {}
    assert catalog.check(key, config, "active") != {}


def test_a_draft_checks_the_properties_it_has(catalog):
    config = {"port": "5432", "tunnel_method": {"tunnel_method": "TELNET"}}
    assert catalog.check("postgres", config, "draft") == {
        "sourceConfig": [
            "/port: must be an integer",
            "/tunnel_method/tunnel_method: must be one of "
            '"NO_TUNNEL", "SSH_KEY_AUTH", "SSH_PASSWORD_AUTH"',
        ]
    }


def test_no_message_quotes_a_value(tmp_path):
    write(
        tmp_path,
        "strict.json",
        custom(
            "strict",
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "password": secret_string(minLength=50, pattern="^[a-z]+$"),
                    "mode": {"enum": ["a", "b"]},
                    "kind": {"const": "x"},
                    "port": {"type": "integer"},
                    "pair": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
                    "tags": {"type": "array", "uniqueItems": True, "maxItems": 1},
                    "not": {"not": {"type": "string"}},
                },
            },
        ),
    )
    catalog = connectors.load(Settings(connectors_dir=str(tmp_path)))
    config = {
        "password": HUNTER,
        "mode": HUNTER,
        "kind": HUNTER,
        "port": HUNTER,
        "pair": HUNTER,
        "tags": [HUNTER, HUNTER],
        "not": HUNTER,
        "extra": HUNTER,
    }
    messages = catalog.check("strict", config, "active")["sourceConfig"]
    assert [m.split(":", 1)[0] for m in messages] == [
        "/extra",
        "/kind",
        "/mode",
        "/not",
        "/pair",
        "/password",
        "/port",
        "/tags",
    ]
    assert not any(HUNTER in message or "hunter" in message for message in messages)
    assert messages[0] == "/extra: is not a property of this connector"
    assert messages[5] == (
        "/password: must be at least 50 characters long; must match the pattern ^[a-z]+$"
    )


def test_pointers_escape_slash_and_tilde_and_the_root_is_slash(tmp_path):
    schema = {
        "type": "object",
        "minProperties": 1,
        "properties": {"a/b~c": {"type": "object", "required": ["x/y"]}},
    }
    write(tmp_path, "p.json", custom("p", schema))
    catalog = connectors.load(Settings(connectors_dir=str(tmp_path)))
    assert catalog.check("p", {"a/b~c": {}}, "active") == {
        "sourceConfig": ["/a~1b~0c/x~1y: is required"]
    }
    assert catalog.check("p", {}, "active") == {
        "sourceConfig": ["/: must hold at least 1 properties"]
    }


def test_unknown_connectors_are_free_form_unless_strict(catalog):
    for key in ("", "no-such-connector!!", "S3"):
        assert catalog.check(key, {"foo": [1, 2, 3]}, "active") == {}
    strict = connectors.load(Settings(connectors_strict=True))
    known = "http, kafka, postgres, s3, salesforce, snowflake"
    for key in ("", "no-such-connector!!"):
        assert strict.check(key, {}, "draft") == {
            "connectorKey": [f"Not a known connector; one of: {known}."]
        }
    assert strict.check("s3", {"bucket": "b"}, "active") == {}


# Loading: built-ins, then DATASOURCES_CONNECTORS_DIR, which adds and replaces.


def test_a_folder_adds_connectors_and_replaces_built_ins(tmp_path):
    write(tmp_path, "crm.json", custom("crm", fileFormats=["csv"]))
    replaced = {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}
    write(tmp_path, "my-s3.json", custom("s3", replaced, title="Our S3"))
    write(tmp_path, "notes.txt", "not a connector")
    catalog = connectors.load(Settings(connectors_dir=str(tmp_path)))
    assert list(catalog.connectors) == sorted(["crm", *BUILT_IN])
    assert catalog.get("s3").title == "Our S3" and catalog.get("s3").file_formats is None
    assert catalog.check("s3", {"bucket": "b"}, "active") == {
        "sourceConfig": ["/path: is required"]
    }
    assert catalog.get("crm").file_formats == ("csv",)


BAD_FILES = [
    ('{"key": "bad", "title": "Bad", "schema": {', "not valid JSON: Expecting"),
    ("[1, 2]", "a connector file holds a JSON object."),
    (custom("Bad Key"), "key must be"),
    (custom("x", title=""), "title must be a non-empty string."),
    (custom("x", fileFormats="csv"), "fileFormats must be a list of distinct strings."),
    (custom("x", fileFormats=["csv", "csv"]), "fileFormats must be a list of distinct strings."),
    (custom("x", format="csv"), "unknown keys format"),
    (custom("x", {"type": "array"}), "schema must be a JSON Schema of an object"),
    (custom("x", {"type": "object", "minProperties": -1}), "not a valid Draft 7 schema at"),
    (
        custom("x", {"type": "object", "properties": {"p": {"type": "strin"}}}),
        "not a valid Draft 7 schema at /properties/p/type",
    ),
    (
        custom("x", {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}),
        "$schema must be http://json-schema.org/draft-07/schema#",
    ),
    (
        custom(
            "x", {"type": "object", "properties": {"n": {"type": "integer", "writeOnly": True}}}
        ),
        "schema /properties/n: marks as secret (writeOnly) what is not a string",
    ),
    (
        custom(
            "x",
            {
                "type": "object",
                "properties": {
                    "c": {"oneOf": [{"type": "object", "airbyte_secret": True}, {"type": "null"}]}
                },
            },
        ),
        "schema /properties/c/oneOf/0: marks as secret (airbyte_secret) what is not a string",
    ),
    (
        custom("x", {"type": "object", "properties": {"p": {"type": "string", "writeOnly": 1}}}),
        "schema /properties/p: writeOnly must be true or false.",
    ),
    (
        custom("x", {"type": "object", "properties": {"p": {"$ref": "https://example.com/s"}}}),
        "schema /properties/p: $ref must point into the same file",
    ),
    (
        custom("x", {"type": "object", "properties": {"p": {"$ref": "#/definitions/none"}}}),
        "schema /properties/p: $ref must point into the same file",
    ),
]


@pytest.mark.parametrize("content, problem_text", BAD_FILES)
def test_a_bad_file_refuses_start_up_naming_file_and_problem(tmp_path, content, problem_text):
    folder = tmp_path / "connectors"
    folder.mkdir()
    path = write(folder, "bad.json", content)
    config = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_CONNECTORS_DIR": str(folder),
    }
    with pytest.raises(ValueError) as refused:
        create_app(config, instance_path=str(tmp_path))
    assert str(refused.value).startswith(f"{path}: ")
    assert problem_text in str(refused.value)


def test_two_files_with_one_key_and_a_missing_folder_refuse_start_up(tmp_path):
    write(tmp_path, "a.json", custom("crm"))
    write(tmp_path, "b.json", custom("crm"))
    with pytest.raises(ValueError, match=r"b\.json: the key 'crm' is another file's too"):
        connectors.load(Settings(connectors_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="connectors: cannot read the folder .*nowhere"):
        connectors.load(Settings(connectors_dir=str(tmp_path / "nowhere")))


def test_a_local_ref_is_followed_for_validation_and_secrets(tmp_path):
    schema = {
        "type": "object",
        "definitions": {"secret": secret_string(), "login": {"$ref": "#/definitions/pair"}},
        "properties": {"login": {"$ref": "#/definitions/login"}},
    }
    schema["definitions"]["pair"] = {
        "type": "object",
        "required": ["user"],
        "properties": {"user": {"type": "string"}, "key": {"$ref": "#/definitions/secret"}},
    }
    write(tmp_path, "ref.json", custom("ref", schema))
    catalog = connectors.load(Settings(connectors_dir=str(tmp_path)))
    config = {"login": {"user": "u", "key": "k"}}
    assert catalog.check("ref", {"login": {}}, "active") == {
        "sourceConfig": ["/login/user: is required"]
    }
    assert catalog.secret_pointers("ref", config) == ["/login/key"]
    assert catalog.get("ref").describe()["secretFields"] == ["/login/key"]


# Secrets of a config: by schema for known connectors, by key name otherwise.


@pytest.mark.parametrize(
    "key, config, pointers",
    [
        (
            "s3",
            {"bucket": "b", "aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
            ["/aws_access_key_id", "/aws_secret_access_key"],
        ),
        (
            "snowflake",
            {
                "table": "T",
                "credentials": {
                    "auth_type": "Key Pair Authentication",
                    "username": "u",
                    "private_key": "PEM",
                    "private_key_password": "p",
                },
            },
            ["/credentials/private_key", "/credentials/private_key_password"],
        ),
        (  # every form of a oneOf counts, whichever the config is
            "kafka",
            {"topic": "t", "protocol": {"security_protocol": "PLAINTEXT", "sasl_jaas_config": "j"}},
            ["/protocol/sasl_jaas_config"],
        ),
        (  # a named property the schema does not mark is no secret, whatever its name
            "salesforce",
            {"objectName": "C", "credentials": {"auth_type": "Client", "client_id": "id"}},
            [],
        ),
        (  # free-form maps and unlisted keys go by name
            "http",
            {
                "url": "https://x",
                "request_headers": {"Authorization": "Bearer t", "Accept": "application/json"},
                "request_parameters": {"api-key": "k", "page": "1"},
                "request_body_json": {"auth": {"Password": "p", "n": 1}},
                "apiToken": "t",
            },
            [
                "/apiToken",
                "/request_body_json/auth/Password",
                "/request_headers/Authorization",
                "/request_parameters/api-key",
            ],
        ),
    ],
)
def test_secret_pointers_of_known_connectors(catalog, key, config, pointers):
    assert catalog.secret_pointers(key, config) == pointers


def test_secrets_inside_arrays_and_patterned_maps(tmp_path):
    schema = {
        "type": "object",
        "properties": {
            "hosts": {
                "type": "array",
                "items": {"type": "object", "properties": {"pw": secret_string(), "h": {}}},
            },
            "pair": {"type": "array", "items": [{"type": "string"}, secret_string()]},
            "vault": {"type": "object", "patternProperties": {"^k_": secret_string()}},
        },
    }
    write(tmp_path, "arr.json", custom("arr", schema))
    catalog = connectors.load(Settings(connectors_dir=str(tmp_path)))
    config = {
        "hosts": [{"h": "a", "pw": "1"}, {"h": "b", "pw": "2"}],
        "pair": ["user", "pass"],
        "vault": {"k_one": "x", "other": "y"},
    }
    assert catalog.secret_pointers("arr", config) == [
        "/hosts/0/pw",
        "/hosts/1/pw",
        "/pair/1",
        "/vault/k_one",
    ]
    assert catalog.get("arr").describe()["secretFields"] == ["/hosts/*/pw", "/pair/*"]


def test_secret_pointers_of_unknown_connectors_by_key_name(catalog):
    config = {
        "password": "hunter2",
        "apiToken": "a",
        "X-Api-Key": "b",
        "PRIVATE-KEY": "c",
        "pin_passwd": 1234,
        "credentials": {"user": "u", "list": ["x", 2, True, None], "deep": {"n": "v"}},
        "token_used": False,
        "secret_hint": None,
        "host": "db",
        "nested": [{"service_account": {"json": "{}"}}, {"name": "n"}],
        "a/b~c": {"keyfile": "k"},
    }
    assert catalog.secret_pointers("no-such-connector", config) == [
        "/PRIVATE-KEY",
        "/X-Api-Key",
        "/apiToken",
        "/a~1b~0c/keyfile",
        "/credentials/deep/n",
        "/credentials/list/0",
        "/credentials/list/1",
        "/credentials/user",
        "/nested/0/service_account/json",
        "/password",
        "/pin_passwd",
    ]
    assert catalog.secret_pointers("", {"host": "db", "port": 5432}) == []


def test_the_secret_names_are_a_setting(make_app):
    app = make_app(DATASOURCES_SECRET_NAMES="Pass-Code, pin")
    catalog = app.extensions["datasources"].catalog
    config = {"passcode": "a", "pass_code": "b", "pin": "c", "password": "d"}
    assert catalog.secret_pointers("", config) == ["/pass_code", "/pin"]
    assert Settings().secret_names == SECRET_NAMES
    assert SECRET_NAMES == (
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "private_key",
        "authorization",
        "credentials",
        "service_account",
        "keyfile",
    )


# The endpoints, on SQLite and PostgreSQL.


def test_the_list_answers_every_connector_to_a_viewer(client, catalog):
    response = client.get(CATALOG, headers=auth(role="viewer"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = response.get_json()["data"]
    assert [c["key"] for c in data] == BUILT_IN
    s3 = data[BUILT_IN.index("s3")]
    assert list(s3) == ["key", "title", "description", "fileFormats", "secretFields", "schema"]
    assert s3["fileFormats"] == ["csv", "json", "jsonl", "parquet", "avro"]
    assert s3["secretFields"] == SECRET_FIELDS["s3"]
    assert s3["schema"] == catalog.get("s3").schema
    assert data[BUILT_IN.index("kafka")]["fileFormats"] is None


def test_one_connector_and_a_404_for_a_key_none_has(client, catalog):
    response = client.get(f"{CATALOG}/salesforce", headers=auth(role="viewer"))
    assert response.status_code == 200
    assert response.get_json() == catalog.get("salesforce").describe()
    assert client.head(f"{CATALOG}/salesforce", headers=auth(role="viewer")).status_code == 200
    body = problem(client.get(f"{CATALOG}/nope", headers=auth(role="viewer")), 404)
    assert body["detail"] == "No connector has key 'nope'."


def test_the_catalog_needs_a_token_and_refuses_other_methods(client):
    assert problem(client.get(CATALOG), 401)["status"] == 401
    assert problem(client.get(f"{CATALOG}/s3"), 401)["status"] == 401
    for path in (CATALOG, f"{CATALOG}/s3"):
        response = client.post(path, json={}, headers=auth())
        problem(response, 405)
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
        options = client.options(path)
        assert options.status_code == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS"
    for path in (f"{CATALOG}/", f"{CATALOG}/s3/x"):
        problem(client.get(path, headers=auth()), 404)


def test_the_reference_and_readme_examples_are_201s(api):
    assert api.post(REFERENCE).status_code == 201
    assert api.post(dict(README_CREATE, key="readme")).status_code == 201


def test_a_post_with_a_bad_config_is_a_400_naming_each_place_and_stores_nothing(api, app):
    body = {
        "key": "k",
        "name": "n",
        "connectorKey": "s3",
        "status": "active",
        "fileFormat": "xlsx",
        "sourceConfig": {"aws_secret_access_key": 42, "region_name": HUNTER},
    }
    error = problem(api.post(body), 400, "sourceConfig")
    assert error["errors"] == {
        "sourceConfig": ["/aws_secret_access_key: must be a string", "/bucket: is required"],
        "fileFormat": ["Must be one of csv, json, jsonl, parquet, avro for connector s3."],
    }
    assert "fileFormat" in error["detail"]
    assert rows(app) == []
    draft = dict(body, status="draft", fileFormat="csv", sourceConfig={"region_name": HUNTER})
    assert api.post(draft).status_code == 201  # a draft may lack the bucket


def test_strict_mode_refuses_unknown_connectors(make_app):
    client = make_app(DATASOURCES_CONNECTORS_STRICT="true").test_client()
    for key in ("", "no-such-connector!!"):
        body = {"key": "k", "name": "n", "connectorKey": key}
        error = problem(client.post(API, json=body, headers=auth()), 400, "connectorKey")
        assert error["errors"]["connectorKey"] == [
            "Not a known connector; one of: http, kafka, postgres, s3, salesforce, snowflake."
        ]
    body = {"key": "k", "name": "n", "connectorKey": "kafka", "sourceConfig": {"topic": "t"}}
    assert client.post(API, json=body, headers=auth()).status_code == 201


def test_a_connector_of_the_folder_is_served_and_checked(make_app, tmp_path):
    folder = tmp_path / "ours"
    folder.mkdir()
    schema = {"type": "object", "required": ["sheet"], "additionalProperties": False}
    schema["properties"] = {"sheet": {"type": "string"}}
    write(folder, "sheets.json", custom("sheets", schema, fileFormats=["csv"]))
    client = make_app(DATASOURCES_CONNECTORS_DIR=str(folder)).test_client()
    listed = client.get(CATALOG, headers=auth(role="viewer")).get_json()["data"]
    assert [c["key"] for c in listed] == sorted(["sheets", *BUILT_IN])
    body = {"key": "k", "name": "n", "connectorKey": "sheets", "status": "active"}
    body["sourceConfig"] = {"sheet": "s", "tab": HUNTER}
    error = problem(client.post(API, json=body, headers=auth()), 400, "sourceConfig")
    assert error["errors"] == {"sourceConfig": ["/tab: is not a property of this connector"]}
    body["sourceConfig"] = {"sheet": "s"}
    assert client.post(API, json=body, headers=auth()).status_code == 201


# Embedded: the catalog sits beside the API, moves, turns off, or refuses a clash.


def host_of(config, **kwargs):
    host = Flask("host")
    host.config.update(config)
    init_app(host, identity=lambda: ("t_001", "viewer"), **kwargs)
    return host


def test_embedded_the_catalog_is_beside_the_prefix_or_where_put(config):
    hosts = []
    for kwargs, path in (
        ({"url_prefix": "/tools/ds"}, "/tools/connectors"),
        ({"url_prefix": "/tools/ds", "connectors_url": "/tools/catalog"}, "/tools/catalog"),
    ):
        hosts.append(host_of(config, **kwargs))
        response = hosts[-1].test_client().get(f"{path}/kafka")
        assert response.status_code == 200 and response.get_json()["key"] == "kafka"
    hosts.append(host_of(config, connectors_url=None))
    client = hosts[-1].test_client()
    assert client.get("/api/v1/connectors").status_code == 404
    assert client.get("/api/v1/data-sources").status_code == 200
    for host in hosts:
        close(database_of(host))


def test_embedded_a_host_route_at_the_catalogs_path_is_refused(config):
    host = Flask("host")
    host.config.update(config)

    @host.get("/api/v1/connectors")
    def hosts_own():
        return "the host's"

    with pytest.raises(ValueError) as refused:
        init_app(host)
    assert str(refused.value) == (
        "init_app: connectors_url '/api/v1/connectors' clashes with the host's route "
        "'/api/v1/connectors' (hosts_own); choose another connectors_url, or None to leave it out."
    )
    init_app(host, connectors_url=None)  # the host keeps its own
    assert host.test_client().get("/api/v1/connectors").data == b"the host's"
    close(database_of(host))


# PUT: the source as it will be stored is checked once store.update_source
# calls `catalog.check` on the stored source merged with the changes; until
# then these fail, as strict xfails: remove the mark when it is wired.
def test_a_put_out_of_draft_checks_the_whole_source_and_changes_nothing(api, app):
    draft = {"key": "k", "name": "n", "connectorKey": "s3", "sourceConfig": {"region_name": "r"}}
    assert api.post(draft).status_code == 201
    error = problem(api.put({"key": "k", "status": "active"}), 400, "sourceConfig")
    assert error["errors"] == {"sourceConfig": ["/bucket: is required"]}
    change = {"key": "k", "connectorKey": "kafka", "sourceConfig": {"bucket": "b"}}
    error = problem(api.put(dict(change, status="paused")), 400, "sourceConfig")
    assert error["errors"] == {"sourceConfig": ["/topic: is required"]}
    error = problem(api.put({"key": "k", "fileFormat": "xlsx"}), 400, "fileFormat")
    assert rows(app)[0]["row_version"] == 1 and rows(app)[0]["status"] == "draft"
    change = {"key": "k", "status": "active", "sourceConfig": {"bucket": "b"}}
    assert api.put(change).status_code == 200


def test_the_catalog_answers_the_apis_browser_origins_and_logs_its_requests(make_app, caplog):
    client = make_app(DATASOURCES_CORS_ORIGINS="https://app.example.com").test_client()
    origin = {"Origin": "https://app.example.com"}
    response = client.get(CATALOG, headers={**auth(role="viewer"), **origin})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["X-Request-ID"]
    preflight = client.options(
        f"{CATALOG}/s3",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = client.get(CATALOG, headers={**auth(), "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    lines = [r.getMessage() for r in caplog.records if r.name == "datasources.access"]
    assert f"GET {CATALOG} 200" in lines and f"OPTIONS {CATALOG}/s3 204" in lines
