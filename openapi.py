"""The OpenAPI 3.1 document of the API, generated from schemas.py with apispec,
and Swagger UI to read and try it.

`mount` runs once per app when the blueprint is registered: it builds the
document for the blueprint's url_prefix and serves it, with no auth, beside
the collection, at `<parent of the url_prefix>/openapi.json` (so
`/api/v1/openapi.json` standalone, `/tools/openapi.json` under `/tools/ds`),
and the interactive page at `<parent>/docs`, its assets served from the
pinned swagger-ui-bundle-v2 package (deployments may have no internet).
"""

import copy
import html
import json

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, send_from_directory
from marshmallow import Schema, fields, validate
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

from datasources.schemas import (
    JSONObject,
    Text,
    delete_query_schema,
    list_query_schema,
    source_schema,
    update_source_schema,
)

# What a database can store (see schemas.UNSTORABLE): no C0 control
# characters but tab, newline and return; lone surrogates are refused too.
STORABLE_TEXT = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F]*$"
SECURITY = [{"bearerAuth": []}]


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error is answered."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Validation errors: field name to messages."},
    )


class ConflictSchema(ProblemSchema):
    """The 409 of an update whose `rowVersion` is no longer current."""

    current = fields.Nested(type(source_schema), required=True)


class PaginationSchema(Schema):
    total = fields.Integer(required=True, validate=validate.Range(min=0))
    limit = fields.Integer(required=True)
    has_more = fields.Boolean(required=True, data_key="hasMore")
    next_cursor = fields.String(required=True, allow_none=True, data_key="nextCursor")


class SourcePageSchema(Schema):
    data = fields.List(fields.Nested(type(source_schema)), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


def storable(converter, field, **kwargs):
    """Document what JSON Schema says only this way: schemas.Text's storable
    text, schemas.JSONObject's storable values, strict integers."""
    if isinstance(field, fields.Integer) and field.strict:
        return {"description": 'A JSON integer: 1.0, true and "1" are refused.'}
    if isinstance(field, Text):
        return {"pattern": STORABLE_TEXT}
    if isinstance(field, JSONObject):
        return {
            "propertyNames": {"pattern": STORABLE_TEXT},
            "additionalProperties": {"$ref": "#/components/schemas/JSONValue"},
        }
    return {}


JSON_VALUE = {
    "description": "Any JSON value whose strings (keys included) are storable text, "
    "nested at most 32 levels. Numbers from 1e16 up are kept as the whole numbers they "
    "are, and -0.0 as 0.0, so every read answers what the write answered.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": STORABLE_TEXT},
        {"type": "array", "items": {"$ref": "#/components/schemas/JSONValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_TEXT},
            "additionalProperties": {"$ref": "#/components/schemas/JSONValue"},
        },
    ],
}

ERRORS = {
    400: ("BadRequest", "Validation error, malformed JSON or a bad query parameter."),
    401: ("Unauthorized", "No bearer token, or one that is not valid."),
    403: ("Forbidden", "The token's role is too low for this operation."),
    404: ("NotFound", "No data source has this key in the caller's tenant."),
    405: ("MethodNotAllowed", "The collection answers GET, POST, PUT and DELETE only."),
    409: ("Conflict", "A data source with this key already exists in the tenant."),
    413: ("PayloadTooLarge", "The body is over the configured size (default 1 MiB)."),
    415: ("UnsupportedMediaType", "The body is not sent as UTF-8 `application/json`."),
    503: ("ServiceUnavailable", "The database is unavailable; retry after `Retry-After`."),
}
HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    405: {"Allow": "The methods the collection answers."},
    503: {"Retry-After": "Seconds to wait before retrying."},
}


def problem_response(status, schema="Problem", description=None):
    response = {
        "description": description or ERRORS[status][1],
        "content": {"application/problem+json": {"schema": schema}},
    }
    if status in HEADERS:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in HEADERS[status].items()
        }
    return response


def errors(*statuses):
    return {str(status): ERRORS[status][0] for status in statuses}


def request_schema(component):
    """A request body: read-only fields are accepted and ignored, whatever
    their value, so a client can send back what it read."""
    body = copy.deepcopy(component)
    for name, prop in body["properties"].items():
        if prop.get("readOnly"):
            body["properties"][name] = {"readOnly": True, "description": "Ignored."}
    return body


def json_request(name):
    return {"required": True, "content": {"application/json": {"schema": name}}}


def json_response(description, schema, links=None):
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if links:
        response["links"] = links
    return response


NEXT_PAGE = {
    "NextPage": {
        "operationId": "listDataSources",
        "parameters": {"cursor": "$response.body#/pagination/nextCursor"},
    }
}
LINKS = {
    "UpdateCreated": {
        "operationId": "updateDataSource",
        "requestBody": {"key": "$response.body#/key"},
    },
    "DeleteCreated": {
        "operationId": "deleteDataSource",
        "parameters": {"key": "$response.body#/key"},
    },
}


def build(url_prefix):
    """The document for the API mounted at `url_prefix`, as a dict."""
    spec = APISpec(
        title="Data Sources API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "External data feeds of a tenant. GET needs the viewer role; "
            "POST, PUT and DELETE need editor. Every error is RFC 9457 problem details."
        },
    )
    plugin = spec.plugins[0]
    plugin.converter.add_attribute_function(storable)
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema("JSONValue", JSON_VALUE)
    spec.components.schema("DataSource", schema=source_schema)
    spec.components.schema("DataSourceUpdate", schema=update_source_schema)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("ConcurrencyConflict", schema=ConflictSchema)
    spec.components.schema("DataSourcePage", schema=SourcePageSchema)
    for status, (name, _) in ERRORS.items():
        spec.components.response(name, problem_response(status))

    created = "The created data source."
    spec.path(
        path=url_prefix,
        operations={
            "get": {
                "operationId": "listDataSources",
                "summary": "List data sources, oldest first (keyset pagination).",
                "security": SECURITY,
                "parameters": [{"in": "query", "schema": list_query_schema}],
                "responses": {
                    "200": json_response(
                        "One page of the tenant's sources.", "DataSourcePage", NEXT_PAGE
                    ),
                    **errors(400, 401, 403, 503),
                },
            },
            "post": {
                "operationId": "createDataSource",
                "summary": "Create a data source; read-only fields sent are ignored.",
                "security": SECURITY,
                "requestBody": json_request("DataSourceCreate"),
                "responses": {
                    "201": json_response(created, "DataSource", LINKS),
                    **errors(400, 401, 403, 409, 413, 415, 503),
                },
            },
            "put": {
                "operationId": "updateDataSource",
                "summary": "Change the given fields of the source named by `key`; with "
                "`rowVersion`, only if it is still the stored one.",
                "security": SECURITY,
                "requestBody": json_request("DataSourceUpdate"),
                "responses": {
                    "200": json_response("The updated data source.", "DataSource"),
                    "409": problem_response(
                        409, "ConcurrencyConflict", "rowVersion mismatch; `current` is stored."
                    ),
                    **errors(400, 401, 403, 404, 413, 415, 503),
                },
            },
            "delete": {
                "operationId": "deleteDataSource",
                "summary": "Delete the source named by `key`.",
                "security": SECURITY,
                "parameters": [{"in": "query", "schema": delete_query_schema}],
                "responses": {
                    "204": {"description": "Deleted."},
                    **errors(400, 401, 403, 404, 503),
                },
            },
        },
    )
    document = spec.to_dict()
    schemas = document["components"]["schemas"]
    # Every response carries every field, in the reference's order.
    schemas["DataSource"]["required"] = list(schemas["DataSource"]["properties"])
    schemas["DataSourceCreate"] = request_schema(schemas["DataSource"])
    loads = source_schema.load_fields.items()
    required = [field.data_key or name for name, field in loads if field.required]
    schemas["DataSourceCreate"]["required"] = required
    schemas["DataSourceUpdate"] = request_schema(schemas["DataSourceUpdate"])
    for prop in schemas["DataSourceUpdate"]["properties"].values():
        prop.pop("default", None)  # an update changes only the fields given
    return document


ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data Sources API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {document},
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
</script>
</body>
</html>
"""


def mount(app, url_prefix, openapi_url, docs_url):
    """Serve the document of the API at `url_prefix` on `app`, at
    `openapi_url`, and its page at `docs_url` (either None: not served)."""
    rules = []
    if openapi_url is not None:
        body = json.dumps(build(url_prefix))

        def openapi_document():
            """The OpenAPI document; no credentials needed."""
            return current_app.response_class(body, mimetype="application/json")

        rules.append((openapi_url, openapi_document))
    if docs_url is not None:
        docs_url = docs_url.rstrip("/")
        page = PAGE.format(
            assets=html.escape(f"{docs_url}/assets"),
            document=json.dumps(openapi_url).replace("<", "\\u003c"),
        )

        def docs():
            """Swagger UI on the document; "Authorize" takes a bearer token."""
            return current_app.response_class(page, mimetype="text/html")

        def docs_asset(name):
            if name not in ASSETS:
                raise NotFound()
            return send_from_directory(swagger_ui_path, name, max_age=3600)

        rules += [(docs_url, docs), (f"{docs_url}/assets/<name>", docs_asset)]
    for rule, view in rules:
        app.add_url_rule(
            rule, endpoint=f"datasources.{view.__name__}", view_func=view, methods=["GET"]
        )
