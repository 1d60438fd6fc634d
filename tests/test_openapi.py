"""The OpenAPI document: valid, served without auth, and following the routes
and schemas, so a route or field that changes without it fails here."""

import re

import jsonschema
import peewee
import pytest
from conftest import API, EXAMPLE, auth, close, database_of
from flask import Flask
from openapi_spec_validator import validate

from datasources import connectors, openapi
from datasources.app import init_app
from datasources.schemas import (
    STATUSES,
    SYNC_MODES,
    delete_query_schema,
    list_query_schema,
    source_schema,
    update_source_schema,
)
from datasources.settings import Settings

DOC = "/api/v1/openapi.json"
CATALOG = "/api/v1/connectors"
CONNECTOR = f"{CATALOG}/{{key}}"
# Every route of the standalone app is an operation of the document but these:
NOT_OPERATIONS = {
    "static",  # Flask's own
    "datasources.fallback",  # 404/405 of paths no view answers
    "datasources_connectors.fallback",
    "datasources.openapi_document",  # the document and its page
    "datasources.docs",
    "datasources.docs_asset",
    "datasources_probes.healthz",  # the standalone service's probes and metrics
    "datasources_probes.readyz",
    "datasources_metrics",
}


@pytest.fixture
def document(client):
    response = client.get(DOC)
    assert response.status_code == 200
    return response.get_json()


def component(document, name):
    return document["components"]["schemas"][name]


def check(document, name, instance):
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_served_without_credentials_whatever_the_headers(client):
    for headers in ({}, {"Authorization": "Bearer forged"}, auth(role="nobody")):
        response = client.get(DOC, headers=headers)
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.get_json() == openapi.build(API, CATALOG)


def test_built_once_per_app_not_per_request(app, monkeypatch):
    def fail(url_prefix, connectors_url):
        raise AssertionError("built per request")

    monkeypatch.setattr(openapi, "build", fail)
    client = app.test_client()
    first, second = client.get(DOC), client.get(DOC)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data


def operations(document):
    return [op for ops in document["paths"].values() for op in ops.values()]


def test_operations_match_the_apps_routes(app, document):
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint not in NOT_OPERATIONS:
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routed |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == routed
    assert {method for _, method in routed} == {"get", "post", "put", "delete"}
    assert {(CATALOG, "get"), (CONNECTOR, "get")} <= routed


def test_every_operation_needs_a_bearer_jwt(document):
    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    for operation in operations(document):
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403", "503"} <= set(operation["responses"])


@pytest.mark.parametrize(
    "path, method, success, errors",
    [
        (API, "get", "200", {"400"}),
        (API, "post", "201", {"400", "409", "413", "415"}),
        (API, "put", "200", {"400", "404", "409", "412", "413", "415", "428"}),
        (API, "delete", "204", {"400", "404", "409", "412", "428"}),
        (f"{API}/{{key}}", "get", "200", {"304", "400", "404"}),  # 400: an unknown parameter
        (CATALOG, "get", "200", set()),
        (CONNECTOR, "get", "200", {"404"}),
    ],
)
def test_each_operations_status_codes(document, path, method, success, errors):
    responses = set(document["paths"][path][method]["responses"])
    assert responses == {success, "401", "403", "503"} | errors


def test_problem_responses_are_problem_json_with_their_headers(document):
    responses = document["components"]["responses"]
    for status, (name, _) in openapi.ERRORS.items():
        content = responses[name]["content"]
        assert list(content) == ["application/problem+json"]
        assert set(responses[name].get("headers", {})) == set(openapi.HEADERS.get(status, {}))
    conflict = document["paths"][API]["put"]["responses"]["409"]
    assert conflict["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ConcurrencyConflict"
    }
    assert "current" in component(document, "ConcurrencyConflict")["required"]


def test_the_object_is_what_the_api_returns(api, document):
    created = api.post({"key": "k", "name": "n"}).get_json()
    described = component(document, "DataSource")
    assert list(described["properties"]) == list(created)
    assert described["required"] == list(created)
    assert described["additionalProperties"] is False
    check(document, "DataSource", created)
    check(document, "DataSourcePage", api.get().get_json())


def test_request_bodies_follow_the_schemas(document):
    create, update = (
        component(document, "DataSourceCreate"),
        component(document, "DataSourceUpdate"),
    )
    dumped = [field.data_key or name for name, field in source_schema.fields.items()]
    assert list(create["properties"]) == list(update["properties"]) == dumped
    assert create["required"] == ["key", "name"]
    assert update["required"] == ["key"]
    ignored = {"readOnly": True, "description": openapi.IGNORED}
    for name in ("id", "tenantId", "rowVersion", "createdAt", "updatedAt"):
        assert create["properties"][name] == ignored
    for name in ("id", "tenantId", "createdAt", "updatedAt"):
        assert update["properties"][name] == ignored
    assert update["properties"]["rowVersion"]["type"] == "integer"
    assert all("default" not in prop for prop in update["properties"].values())
    assert create["properties"]["syncMode"]["enum"] == list(SYNC_MODES)
    assert create["properties"]["status"]["enum"] == list(STATUSES)
    assert set(update_source_schema.load_fields) == set(source_schema.load_fields) | {"row_version"}


def test_request_bodies_accept_what_the_api_accepts(api, document):
    sent = {"key": "k", "name": "n", "recordCount": 3, "id": 42, "rowVersion": "x"}
    check(document, "DataSourceCreate", sent)
    assert api.post(sent).status_code == 201
    with pytest.raises(jsonschema.ValidationError):
        check(document, "DataSourceCreate", {"key": "k", "name": "n", "extra": 1})
    assert api.post({"key": "k2", "name": "n", "extra": 1}).status_code == 400
    with pytest.raises(jsonschema.ValidationError):
        check(document, "DataSourceCreate", {"key": "a\x00b", "name": "n"})
    assert api.post({"key": "a\x00b", "name": "n"}).status_code == 400


@pytest.mark.parametrize(
    "method, query_schema", [("get", list_query_schema), ("delete", delete_query_schema)]
)
def test_query_parameters_follow_the_schemas(document, method, query_schema):
    parameters = document["paths"][API][method]["parameters"]
    parameters = [p for p in parameters if p["in"] == "query"]
    expected = [(f.data_key or name, f.required) for name, f in query_schema.fields.items()]
    assert [(p["name"], p["required"]) for p in parameters] == expected


def test_the_list_parameters_bounds(document):
    parameters = {p["name"]: p for p in document["paths"][API]["get"]["parameters"]}
    limit, cursor = parameters["limit"], parameters["cursor"]
    assert limit["schema"] == {
        "type": "integer", "default": 25, "minimum": 1, "maximum": 100, "examples": [25]
    }  # fmt: skip
    assert "example" not in limit  # Swagger UI would fill an optional parameter in
    assert cursor["schema"]["type"] == "string"


def refs(value):
    """Every `$ref` inside a part of the document."""
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [ref for item in value.values() for ref in refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs(item)]
    return []


def test_no_schema_refers_to_itself_however_indirectly(document):
    """Generators take no recursive schema (openapi-python-client drops the
    models, openapi-typescript's types fail `tsc`: TS2502)."""
    schemas = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    edges = {name: {ref.removeprefix(prefix) for ref in refs(s)} for name, s in schemas.items()}
    for start in schemas:
        seen, todo = set(), list(edges[start])
        while todo:
            name = todo.pop()
            assert name != start, f"{start} refers to itself"
            if name not in seen:
                seen.add(name)
                todo += edges[name]


@pytest.mark.parametrize("name", ["DataSource", "DataSourceCreate", "DataSourceUpdate"])
def test_config_is_an_object_of_any_values_and_schedule_has_its_shape(document, name):
    prop = component(document, name)["properties"]["sourceConfig"]
    assert prop["type"] == "object" and prop["additionalProperties"] is True
    assert prop["propertyNames"] == {"pattern": openapi.STORABLE_TEXT}
    assert openapi.JSON_RULE in prop["description"] and "32 levels" in prop["description"]
    schedule = component(document, name)["properties"]["schedule"]
    assert schedule["type"] == "object" and schedule["additionalProperties"] is False
    assert set(schedule["properties"]) == {"cron", "timezone"}
    assert schedule["dependentRequired"] == {"timezone": ["cron"]}
    assert "5-field cron" in schedule["description"]


def test_every_operation_has_a_summary_a_description_and_its_tag(document):
    assert [tag["name"] for tag in document["tags"]] == [openapi.TAG, openapi.CATALOG_TAG]
    assert all(tag["description"] for tag in document["tags"])
    for path, ops in document["paths"].items():
        tag = openapi.CATALOG_TAG if path.startswith(CATALOG) else openapi.TAG
        for operation in ops.values():
            summary = operation["summary"]
            assert summary and len(operation["description"]) > len(summary)
            assert operation["tags"] == [tag]
            for parameter in operation.get("parameters", ()):
                assert parameter["description"]


def test_every_field_has_a_description_and_the_references_example(document):
    schemas = document["components"]["schemas"]
    for name in ("DataSource", "DataSourceCreate", "DataSourceUpdate"):
        for field, prop in schemas[name]["properties"].items():
            assert prop["description"], (name, field)
            if "type" in prop:  # an ignored read-only field has none
                assert prop["examples"] == [openapi.EXAMPLE[field]], (name, field)
    for name in ("Problem", "ConcurrencyConflict", "Pagination", "DataSourcePage"):
        for field, prop in schemas[name]["properties"].items():
            assert prop["description"] and len(prop["examples"]) == 1, (name, field)
    for name in ("recordCount", "rowVersion"):
        assert "37310.0" in schemas["DataSourceUpdate"]["properties"][name]["description"]
    s3 = connectors.load(Settings()).get("s3").describe()
    for name, example in (("Connector", s3), ("ConnectorList", {"data": [s3]})):
        for field, prop in schemas[name]["properties"].items():
            assert prop["description"] and prop["examples"] == [example[field]], (name, field)


def examples(document):
    """(schema, example) of every media type and parameter of the document."""
    for operation in operations(document):
        bodies = [operation.get("requestBody", {})] + list(operation["responses"].values())
        bodies += list(document["components"]["responses"].values())
        for body in bodies:
            for media in body.get("content", {}).values():
                yield media["schema"], media["example"]
        for parameter in operation.get("parameters", ()):
            if "example" in parameter:
                yield parameter["schema"], parameter["example"]


def test_every_example_is_valid_and_bodies_hold_the_references(document):
    found = list(examples(document))
    for schema, example in found:
        jsonschema.validate(
            example, {**schema, "components": document["components"]},
            cls=jsonschema.Draft202012Validator,
        )  # fmt: skip
        if "properties" in schema:
            for prop in schema["properties"].values():
                for value in prop.get("examples", ()):
                    jsonschema.validate(value, prop, cls=jsonschema.Draft202012Validator)
    operations = document["paths"][API]
    create = operations["post"]["requestBody"]["content"]["application/json"]["example"]
    assert create == EXAMPLE
    page = operations["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert page["data"] == [openapi.EXAMPLE] and page["pagination"]["total"] == 4


def test_every_field_is_checked_in_the_component_examples(document):
    for schema in ("DataSource", "Problem", "Pagination", "Connector", "ConnectorList"):
        properties = component(document, schema)["properties"]
        check(document, schema, {name: prop["examples"][0] for name, prop in properties.items()})


def test_the_create_example_is_what_the_api_creates(api, document):
    operation = document["paths"][API]["post"]
    sent = operation["requestBody"]["content"]["application/json"]["example"]
    created = api.post(sent).get_json()
    described = operation["responses"]["201"]["content"]["application/json"]["example"]
    server_made = ("id", "tenantId", "createdAt", "updatedAt")
    assert {k: v for k, v in created.items() if k not in server_made} == {
        k: v for k, v in described.items() if k not in server_made
    }


def test_a_conflict_body_matches_the_document(api, document):
    api.post({"key": "k", "name": "n"})
    response = api.put({"key": "k", "name": "m", "rowVersion": 9})
    assert response.status_code == 409
    check(document, "ConcurrencyConflict", response.get_json())
    check(document, "Problem", api.put({"key": "nope"}).get_json())
    check(document, "Problem", api.post({"name": 5}).get_json())


def resolve(expression, body):
    """A link's `$response.body#/json/pointer`, read from a response body."""
    prefix, _, pointer = expression.partition("#")
    assert prefix == "$response.body"
    for part in pointer.strip("/").split("/"):
        body = body[part]
    return body


def test_links_lead_from_create_to_update_and_delete_and_pages_on(api, client, document):
    operations = document["paths"][API]
    created = api.post({"key": "k", "name": "n"}).get_json()
    links = operations["post"]["responses"]["201"]["links"]
    assert {name: link["operationId"] for name, link in links.items()} == {
        "UpdateCreated": "updateDataSource",
        "DeleteCreated": "deleteDataSource",
    }
    update = {k: resolve(v, created) for k, v in links["UpdateCreated"]["requestBody"].items()}
    assert api.put({**update, "name": "m"}).status_code == 200
    delete = {k: resolve(v, created) for k, v in links["DeleteCreated"]["parameters"].items()}
    assert client.delete(API, query_string=delete, headers=auth()).status_code == 204

    api.post({"key": "a", "name": "n"})
    api.post({"key": "b", "name": "n"})
    first = api.get("?limit=1").get_json()
    [next_page] = operations["get"]["responses"]["200"]["links"].values()
    assert next_page["operationId"] == "listDataSources"
    query = {k: resolve(v, first) for k, v in next_page["parameters"].items()}
    second = client.get(API, query_string={"limit": 1, **query}, headers=auth()).get_json()
    assert [source["key"] for source in first["data"] + second["data"]] == ["a", "b"]


def test_embedded_under_another_prefix_it_sits_beside_it(tmp_path):
    host = Flask("host", instance_path=str(tmp_path))
    host.config["DATASOURCES_JWT_SECRET"] = "s" * 32
    host.config["DATASOURCES_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ds.db'}"

    @host.get("/openapi.json")
    def hosts_own():
        return {"host": True}

    init_app(host, url_prefix="/tools/ds")
    client = host.test_client()
    document = client.get("/tools/openapi.json").get_json()
    assert list(document["paths"]) == [
        "/tools/ds", "/tools/ds/{key}", "/tools/connectors", "/tools/connectors/{key}"
    ]  # fmt: skip
    validate(document)
    assert client.get("/openapi.json").get_json() == {"host": True}
    assert client.get(DOC).status_code == 404
    assert "/tools/openapi.json" in client.get("/tools/docs").get_data(as_text=True)
    close(database_of(host))


def test_the_docs_page_and_its_assets_are_served_without_credentials(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'url: "/api/v1/openapi.json"' in html
    assert '<script src="/api/v1/docs/assets/swagger-ui-bundle.js">' in html
    for name, mimetype in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
    ):
        asset = client.get(f"/api/v1/docs/assets/{name}")
        assert asset.status_code == 200 and asset.mimetype == mimetype
        assert asset.data == (openapi.swagger_ui_path / name).read_bytes()
    for name in ("index.html", "swagger-initializer.js", "..%2Fopenapi.py"):
        assert client.get(f"/api/v1/docs/assets/{name}").status_code == 404


# The connector catalog: documented where it is served, and only there.


def documented(document, path, status):
    """The media type and schema of the answer `status` to GET `path`."""
    response = document["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    [(media_type, content)] = response["content"].items()
    return media_type, content["schema"]


def fits(document, path, response, status):
    """Whether a served answer is the one `path`'s GET documents for `status`."""
    assert response.status_code == status, response.data[:500]
    media_type, schema = documented(document, path, status)
    assert response.mimetype == media_type
    schema = {**schema, "components": document["components"]}
    jsonschema.validate(response.get_json(), schema, cls=jsonschema.Draft202012Validator)
    return response.get_json()


def test_the_catalogs_operations_and_schemas(document):
    collection, item = document["paths"][CATALOG], document["paths"][CONNECTOR]
    assert list(collection) == list(item) == ["get"]
    assert collection["get"]["operationId"] == "listConnectors"
    assert item["get"]["operationId"] == "getConnector"
    [key] = item["get"]["parameters"]
    assert (key["in"], key["name"], key["required"], key["example"]) == ("path", "key", True, "s3")
    assert documented(document, CATALOG, 200) == (
        "application/json", {"$ref": "#/components/schemas/ConnectorList"}
    )  # fmt: skip
    assert documented(document, CONNECTOR, 200) == (
        "application/json", {"$ref": "#/components/schemas/Connector"}
    )  # fmt: skip
    for path, status in [(CATALOG, 401), (CATALOG, 403), (CATALOG, 503), (CONNECTOR, 404)]:
        assert documented(document, path, status) == (
            "application/problem+json", {"$ref": "#/components/schemas/Problem"}
        )  # fmt: skip
    s3 = connectors.load(Settings()).get("s3").describe()
    connector = component(document, "Connector")
    assert list(connector["properties"]) == connector["required"] == list(s3)
    assert connector["additionalProperties"] is False
    properties = connector["properties"]
    assert properties["fileFormats"]["type"] == ["array", "null"]
    assert properties["fileFormats"]["items"]["type"] == "string"
    assert properties["secretFields"]["items"]["pattern"] == openapi.JSON_POINTER
    assert properties["schema"] == {
        "type": "object", "additionalProperties": True,
        "description": openapi.CONNECTOR_FIELDS["schema"], "examples": [s3["schema"]],
    }  # fmt: skip
    assert component(document, "ConnectorList")["properties"]["data"]["items"] == {
        "$ref": "#/components/schemas/Connector"
    }
    example = item["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert example == s3 and example["secretFields"] == [
        "/aws_access_key_id", "/aws_secret_access_key"
    ]  # fmt: skip


def test_the_catalogs_answers_are_the_documented_ones(client, document):
    viewer = auth(role="viewer")
    listed = fits(document, CATALOG, client.get(CATALOG, headers=viewer), 200)
    keys = [connector["key"] for connector in listed["data"]]
    assert keys == ["http", "kafka", "postgres", "s3", "salesforce", "snowflake"]
    for key in keys:
        one = fits(document, CONNECTOR, client.get(f"{CATALOG}/{key}", headers=viewer), 200)
        assert one == listed["data"][keys.index(key)]
    for path, url in ((CATALOG, CATALOG), (CONNECTOR, f"{CATALOG}/s3")):
        assert fits(document, path, client.get(url), 401)["status"] == 401
        denied = fits(document, path, client.get(url, headers=auth(role="nobody")), 403)
        assert denied["detail"] == "This operation needs the viewer role."
    for key in ("no-such-connector", "S3"):
        missing = fits(document, CONNECTOR, client.get(f"{CATALOG}/{key}", headers=viewer), 404)
        assert missing["detail"] == f"No connector has key {key!r}."


def test_a_catalog_answer_of_a_failing_identity_is_the_documented_503(config):
    def identity():
        raise peewee.OperationalError("the host's session store is down")

    host = Flask("host")
    host.config.update(config)
    init_app(host, identity=identity)
    client = host.test_client()
    document = client.get(DOC).get_json()
    for path, url in ((CATALOG, CATALOG), (CONNECTOR, f"{CATALOG}/s3")):
        response = client.get(url)
        assert fits(document, path, response, 503)["status"] == 503
        assert response.headers["Retry-After"] == "5"
    close(database_of(host))


@pytest.mark.parametrize(
    "connectors_url, paths",
    [
        (None, []),
        ("/tools/catalog", ["/tools/catalog", "/tools/catalog/{key}"]),
    ],
)
def test_the_catalog_is_documented_where_it_is_served_and_only_then(config, connectors_url, paths):
    host = Flask("host")
    host.config.update(config)
    init_app(host, identity=lambda: ("t_001", "viewer"), connectors_url=connectors_url)
    client = host.test_client()
    document = client.get(DOC).get_json()
    validate(document)
    assert list(document["paths"]) == [API, f"{API}/{{key}}", *paths]
    catalog_parts = {"Connector", "ConnectorList"} & set(document["components"]["schemas"])
    tags = [tag["name"] for tag in document["tags"]]
    assert client.get(CATALOG).status_code == 404
    if connectors_url is None:
        assert (catalog_parts, tags) == (set(), [openapi.TAG])
        assert {op["operationId"] for op in operations(document)} == {
            "listDataSources", "createDataSource", "getDataSource", "updateDataSource",
            "deleteDataSource",
        }  # fmt: skip
    else:
        assert catalog_parts == {"Connector", "ConnectorList"}
        assert tags == [openapi.TAG, openapi.CATALOG_TAG]
        listed = fits(document, paths[0], client.get(connectors_url), 200)
        one = fits(document, paths[1], client.get(f"{connectors_url}/s3"), 200)
        assert one == listed["data"][3] == connectors.load(Settings()).get("s3").describe()
        operation_ids = [ops["get"]["operationId"] for ops in map(document["paths"].get, paths)]
        assert operation_ids == ["listConnectors", "getConnector"]
    close(database_of(host))
