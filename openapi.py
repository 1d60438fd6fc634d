"""The OpenAPI 3.1 document of the API, generated from schemas.py with apispec,
and Swagger UI to read and try it.

`mount` runs once per app when the blueprint is registered: it builds the
document for the blueprint's url_prefix and the connector catalog's url (when
served) and serves it, with no auth, beside the collection, at `<parent of
the url_prefix>/openapi.json` (so `/api/v1/openapi.json` standalone,
`/tools/openapi.json` under `/tools/ds`), and the interactive page at
`<parent>/docs`, its assets served from the pinned swagger-ui-bundle-v2
package (deployments may have no internet).
"""

import copy
import html
import json
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, send_from_directory
from marshmallow import Schema, fields, validate
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound
from werkzeug.http import HTTP_STATUS_CODES

from datasources import connectors
from datasources.schemas import (
    AnyOf,
    JSONObject,
    Text,
    delete_query_schema,
    list_query_schema,
    source_schema,
    update_source_schema,
)
from datasources.settings import Settings

# What a database can store (see schemas.UNSTORABLE): no C0 control
# characters but tab, newline and return; lone surrogates are refused too.
STORABLE_TEXT = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F]*$"
SECURITY = [{"bearerAuth": []}]
TAG = "Data sources"
CATALOG_TAG = "Connectors"
TEXT_RULE = "No C0 control character but tab, newline and carriage return, and no lone surrogate."
JSON_RULE = (
    "Its strings, keys included, follow the text rule (no C0 control character but tab, "
    "newline and carriage return, no lone surrogate), it nests at most 32 levels, and numbers "
    "from 1e16 up are kept as the whole numbers they are and -0.0 as 0.0, so every read "
    "answers what the write answered. Anything else is a 400."
)

# The reference's data source (its list example), in its order.
EXAMPLE = {
    "id": "ds_001",
    "tenantId": "t_001",
    "key": "crm-customers",
    "name": "CRM Customer Export",
    "description": "Daily customer data export from Salesforce.",
    "connectorKey": "salesforce",
    "sourceConfig": {"objectName": "Contact", "query": "SELECT Id, Email, Name FROM Contact"},
    "fileFormat": None,
    "syncMode": "incremental",
    "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
    "schemaKey": "customers",
    "status": "active",
    "lastSyncAt": "2026-03-16T02:00:00.000Z",
    "lastSyncStatus": "success",
    "recordCount": 45000,
    "rowVersion": 3,
    "createdAt": "2026-03-01T12:00:00.000Z",
    "updatedAt": "2026-03-16T02:00:00.000Z",
    "secrets": {},
}
CREATE_EXAMPLE = {  # the reference's example request
    name: EXAMPLE[name]
    for name in ("key", "name", "description", "connectorKey", "sourceConfig", "syncMode")
    + ("schedule", "schemaKey", "status")
}
CREATED_EXAMPLE = {
    **EXAMPLE,
    "lastSyncAt": None,
    "lastSyncStatus": None,
    "recordCount": 0,
    "rowVersion": 1,
    "updatedAt": EXAMPLE["createdAt"],
}
UPDATE_EXAMPLE = {"key": "crm-customers", "status": "paused", "rowVersion": 3}
UPDATED_EXAMPLE = {
    **EXAMPLE,
    "status": "paused",
    "rowVersion": 4,
    "updatedAt": "2026-03-17T09:30:00.000Z",
}
PAGE_EXAMPLE = {
    "data": [EXAMPLE],
    "pagination": {"total": 4, "limit": 25, "hasMore": False, "nextCursor": None},
}
ETAG_EXAMPLE = '"ds_001.3"'
CONFLICT_EXAMPLE = {
    "type": "urn:datasources:concurrency-conflict",
    "title": "Optimistic concurrency conflict",
    "status": 409,
    "detail": "rowVersion mismatch.",
    "current": EXAMPLE,
}

FIELDS = {  # every field of the object: what it means, after the reference
    "secrets": "Read-only. Each secret of `sourceConfig` (shown there as `**********`) by its "
    "JSON Pointer: `version` (1 when set, + 1 at each new value), `fingerprint` (an "
    "HMAC-SHA256 of the value under a server key, bound to the tenant, source and pointer: "
    "stable while the value is, another when it changes) and `updatedAt`. `{}` when none.",
    "id": "Made by the service: `ds_` and 20 hex digits, the creation time's milliseconds "
    "then random ones.",
    "tenantId": "The caller's tenant, from its credentials only.",
    "key": "Unique identifier key within the tenant, 1-255 characters; PUT and DELETE "
    "name the source by it. " + TEXT_RULE,
    "name": "Display name, 1-255 characters. " + TEXT_RULE,
    "description": 'Description. Default "". ' + TEXT_RULE,
    "connectorKey": 'Connector type key (e.g. "s3", "snowflake", "kafka"). Default "". '
    + TEXT_RULE,
    "sourceConfig": "Connector-specific source configuration: a JSON object with any values. "
    "Default {}. Its secrets (by the connector's schema, else by key name) are answered as "
    '`"**********"` (see `secrets`); the mask sent back at a secret\'s place keeps the stored '
    "value. " + JSON_RULE,
    "fileFormat": 'File format for file-based sources (e.g. "csv", "parquet", "json"), '
    "or null (the default). " + TEXT_RULE,
    "syncMode": "`full_refresh` (the default): replace all data on each sync; `incremental`: "
    "only new or changed records since the last sync; `cdc`: change data capture for "
    "real-time streaming.",
    "schedule": "When the platform syncs the source: `{}` (manual runs only, the default) or "
    '`{"cron": "<minute hour day-of-month month day-of-week>", "timezone": "<IANA zone>"}`: '
    "a standard 5-field cron expression (names such as MON and JAN allowed; 6- and 7-field "
    "forms, `@daily` shorthands and expressions that can never fire are 400s) and an "
    "optional IANA time zone (absent: UTC).",
    "schemaKey": "Target schema key for data loading, or null (the default). " + TEXT_RULE,
    "status": "`draft` (the default), `active`, `paused` or `archived`.",
    "lastSyncAt": "Time of the last sync, or null (the default). Takes an RFC 3339 date-time "
    "or ISO 8601's calendar date and time, basic or extended (no offset means UTC), with "
    "nothing else in the string; answered in UTC to the millisecond.",
    "lastSyncStatus": 'Last sync result (e.g. "success", "failed"), or null (the default). '
    + TEXT_RULE,
    "recordCount": "Number of records in the source, 0 to 2^63-1. Default 0.",
    "rowVersion": "1 when created, one more on every update. On PUT, the version the change "
    "is based on: if the stored one differs, the answer is a 409 holding the current object.",
    "createdAt": "When the source was created, in UTC to the millisecond.",
    "updatedAt": "When the source last changed, in UTC to the millisecond.",
}
WHOLE_NUMBER = (
    " A whole number: written with a fraction or an exponent (`37310.0`, `1e3`) it is read "
    'as that integer; `1.5`, `"5"` and `true` are refused.'
)
IGNORED = "Read-only: ignored, whatever its value, so a client may send back what it read."
PROBLEM_FIELDS = {
    "type": ("A URI naming the kind of problem; `about:blank` when the status says it all.",
             "urn:datasources:validation-error"),
    "title": ("A short summary of the kind of problem.", "Validation error"),
    "status": ("The HTTP status code.", 400),
    "detail": ("What went wrong with this request.", "Invalid or missing fields: key."),
    "errors": ("Validation errors: field name to messages.",
               {"key": ["Missing data for required field."]}),
    "current": ("The data source as stored now.", EXAMPLE),
}  # fmt: skip
PAGINATION_FIELDS = {
    "total": ("How many data sources the tenant has.", 4),
    "limit": ("The page size used.", 25),
    "hasMore": ("Whether another page follows.", False),
    "nextCursor": ("The `cursor` of the next page, or null on the last page.", None),
    "data": ("The page's data sources, oldest first.", [EXAMPLE]),
    "pagination": ("Where the page sits in the list.", PAGE_EXAMPLE["pagination"]),
}
PARAMETERS = {
    "limit": ("Maximum results per page, 1-100, in ASCII digits. Default 25.", 25),
    "cursor": ("`pagination.nextCursor` of the previous page. Cursors are signed for the "
               "caller's tenant: any other string is a 400.", None),
    "key": ("The key of the data source.", "crm-customers"),
    "rowVersion": ("Delete only if the source is still at this `rowVersion`; else a 409 "
                   "with `current`.", 1),
    "status": ("Only sources of this status, or of any of several, comma-separated.", "active"),
    "syncMode": ("Only sources of this sync mode, or of any of several, comma-separated.",
                 "incremental"),
    "connectorKey": ("Only sources of this connector (exact).", "salesforce"),
    "schemaKey": ("Only sources writing to this target schema (exact).", "crm_raw"),
    "fileFormat": ("Only sources of this file format (exact).", "csv"),
    "q": ("Only sources whose key or name holds this text, case-insensitively "
          "(1-100 characters).", "customer"),
    "updatedAfter": ("Only sources updated strictly after this ISO 8601 date-time "
                     "(to the millisecond, as `updatedAt` is answered).",
                     "2026-03-16T02:00:00.000Z"),
}  # fmt: skip


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error is answered."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


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


# The schedule's shape; what a cron expression or a zone name must mean is
# checked by schedules.py, beyond what a pattern can say.
SCHEDULE = {
    "additionalProperties": False,
    "properties": {
        "cron": {"type": "string", "pattern": r"^\S+( \S+){4}$", "example": "0 2 * * *"},
        "timezone": {
            "type": "string",
            "pattern": r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
            "example": "America/New_York",
        },
    },
    "dependentRequired": {"timezone": ["cron"]},
}


# A secret's entry in `secrets`, by its JSON Pointer inside sourceConfig.
SECRET_INFO = {
    "type": "object",
    "description": "One secret of `sourceConfig`: its version, when it was set, and its "
    "fingerprint (never its value).",
    "required": ["version", "updatedAt", "fingerprint"],
    "additionalProperties": False,
    "properties": {
        "version": {"type": "integer", "minimum": 1, "examples": [2],
                    "description": "1 when set; + 1 at each new value (the mask keeps it)."},
        "updatedAt": {"type": "string", "format": "date-time",
                      "examples": ["2026-03-16T02:00:00.000Z"],
                      "description": "When this value was set."},
        "fingerprint": {"type": "string", "pattern": "^hmac-sha256:[0-9a-f]{32}$",
                        "examples": ["hmac-sha256:5f0c3a9e1b7d4c2a8e6f0b1d3c5a7e9f"],
                        "description": "HMAC-SHA256 of the value under a server key, bound "
                        "to the tenant, source and pointer: the same while the value is."},
    },
}  # fmt: skip
INCLUDE_SECRETS = {
    "in": "query",
    "name": "includeSecrets",
    "required": False,
    "description": "`true`: `sourceConfig` with its secrets in clear, for the reveal role "
    "only (admin unless DATASOURCES_REVEAL_ROLE says otherwise), answered with "
    "`Cache-Control: no-store`; every reveal is logged and counted.",
    "schema": {"type": "boolean", "default": False},
}
SECRETS_UNREADABLE = {
    "description": "Unavailable: the database, pending migrations, or (with `includeSecrets`, "
    "or a PUT that needs the stored secrets) secrets no configured key decrypts "
    "(`urn:datasources:secrets-unreadable`).",
    "content": {"application/problem+json": {"schema": "Problem", "example": {
        "type": "urn:datasources:secrets-unreadable", "title": "Secrets unreadable",
        "status": 503, "detail": "The source's secrets cannot be decrypted with any configured "
        "key: set DATASOURCES_SECRET_KEYS to include the key they were written with."}}},
}  # fmt: skip


def storable(converter, field, **kwargs):
    """What JSON Schema can say of schemas.Text's storable text and
    schemas.JSONObject's objects (no recursive schema: generators take
    none; FIELDS says the rest), and of whole numbers."""
    if isinstance(field, fields.Integer) and field.strict:
        return {"description": WHOLE_NUMBER.strip()}
    if isinstance(field, Text):
        return {"pattern": STORABLE_TEXT}
    if isinstance(field, JSONObject):
        return {"propertyNames": {"pattern": STORABLE_TEXT}, "additionalProperties": True}
    if isinstance(field, AnyOf):  # one choice, or several comma-separated
        choice = "|".join(map(re.escape, field.choices))
        return {"type": "string", "pattern": f"^({choice})(,({choice}))*$"}
    return {}


ERRORS = {
    400: ("BadRequest", "Validation error, malformed JSON or a bad query parameter."),
    401: ("Unauthorized", "No bearer token, or one that is not valid."),
    403: ("Forbidden", "The token's role is too low for this operation."),
    404: ("NotFound", "No data source has this key in the caller's tenant."),
    405: ("MethodNotAllowed", "The collection answers GET, POST, PUT and DELETE only."),
    409: ("Conflict", "A data source with this key already exists in the tenant."),
    413: ("PayloadTooLarge", "The body is over the configured size (default 1 MiB)."),
    415: ("UnsupportedMediaType", "The body is not sent as UTF-8 `application/json`."),
    428: ("PreconditionRequired", "This deployment needs `If-Match` or a `rowVersion`."),
    503: ("ServiceUnavailable", "The database is unavailable; retry after `Retry-After`."),
}
HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    405: {"Allow": "The methods the collection answers."},
    503: {"Retry-After": "Seconds to wait before retrying."},
}
PROBLEM_EXAMPLES = {
    400: {"type": "urn:datasources:validation-error", "title": "Validation error",
          "detail": "Invalid or missing fields: key.",
          "errors": {"key": ["Missing data for required field."]}},
    401: {"detail": "A bearer token is required."},
    403: {"detail": "This operation needs the editor role."},
    404: {"detail": "No data source has key 'crm-customers'."},
    405: {"detail": "The method is not allowed for the requested URL."},
    409: {"detail": "A data source with key 'crm-customers' already exists."},
    413: {"detail": "The data value transmitted exceeds the capacity limit."},
    415: {"detail": "The body must be sent as Content-Type: application/json."},
    428: {"title": "Precondition required",
          "detail": "This write needs an If-Match header or a rowVersion."},
    503: {"detail": "The database is unavailable; try again shortly."},
}  # fmt: skip


def problem_example(status):
    return {"type": "about:blank", "title": HTTP_STATUS_CODES[status], "status": status,
            **PROBLEM_EXAMPLES[status]}  # fmt: skip


def problem_response(status, schema="Problem", description=None, example=None):
    content = {"schema": schema, "example": example or problem_example(status)}
    response = {
        "description": description or ERRORS[status][1],
        "content": {"application/problem+json": content},
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
            body["properties"][name] = {"readOnly": True, "description": IGNORED}
    return body


def json_request(name, example):
    """A JSON body; its example is what Swagger UI's "Try it out" pre-fills."""
    content = {"schema": name, "example": example}
    return {"required": True, "content": {"application/json": content}}


def json_response(description, schema, example, links=None, headers=None):
    content = {"application/json": {"schema": schema, "example": example}}
    response = {"description": description, "content": content}
    if links:
        response["links"] = links
    if headers:
        response["headers"] = headers
    return response


def query(schema):
    return [{"in": "query", "schema": schema}]


def header(name, description):
    return {"in": "header", "name": name, "required": False, "description": description,
            "schema": {"type": "string"}, "example": ETAG_EXAMPLE}  # fmt: skip


ETAG = {"ETag": {"description": "The source's entity tag, `\"<id>.<rowVersion>\"`.",
                 "schema": {"type": "string"}}}  # fmt: skip
IF_MATCH = header(
    "If-Match",
    "Write only if the source is one these entity tags name (strong comparison; `*`: any); "
    "else a 412 holding the current object.",
)
IF_NONE_MATCH = header("If-None-Match", "A 304 with no body when the source still has this tag.")
KEY_IN_PATH = {
    "in": "path",
    "name": "key",
    "required": True,
    "description": "The key of the data source, percent-encoded (`/` included).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": STORABLE_TEXT},
    "example": "crm-customers",
}
PRECONDITION_FAILED = {
    "description": "`If-Match` names no current version; `current` is the stored object.",
    "content": {"application/problem+json": {"schema": "ConcurrencyConflict", "example": {
        **CONFLICT_EXAMPLE, "type": "urn:datasources:precondition-failed",
        "title": "Precondition failed", "status": 412,
        "detail": "If-Match names no current version of the source."}}},
}  # fmt: skip


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
OPERATIONS = {
    "get": {
        "operationId": "listDataSources",
        "summary": "List data sources",
        "description": "One page of the caller's tenant's data sources, ordered by creation "
        "date (oldest first), with keyset pagination: pass `pagination.nextCursor` back as "
        "`cursor` for the next page. Needs the viewer role.",
        "parameters": query(list_query_schema),
        "responses": {
            "200": json_response("One page of the tenant's sources.", "DataSourcePage",
                                 PAGE_EXAMPLE, NEXT_PAGE),
            **errors(400, 401, 403, 503),
        },
    },
    "post": {
        "operationId": "createDataSource",
        "summary": "Create a data source",
        "description": "Creates a new data source configuration, with `rowVersion` 1. "
        "Read-only fields sent are ignored; unknown fields are a 400. Needs the editor role.",
        "requestBody": json_request("DataSourceCreate", CREATE_EXAMPLE),
        "responses": {
            "201": json_response("The created data source.", "DataSource", CREATED_EXAMPLE,
                                 LINKS, ETAG),
            **errors(400, 401, 403, 409, 413, 415, 503),
        },
    },
    "put": {
        "operationId": "updateDataSource",
        "summary": "Update a data source",
        "description": "Changes only the fields given of the data source named by `key`, and "
        "increments its `rowVersion`. With `rowVersion`, only if that is still the stored "
        "version: else a 409 holding the current object. Needs the editor role.",
        "parameters": [IF_MATCH],
        "requestBody": json_request("DataSourceUpdate", UPDATE_EXAMPLE),
        "responses": {
            "200": json_response("The updated data source.", "DataSource", UPDATED_EXAMPLE,
                                 headers=ETAG),
            "409": problem_response(409, "ConcurrencyConflict",
                                    "rowVersion mismatch; `current` is the stored object.",
                                    CONFLICT_EXAMPLE),
            "412": PRECONDITION_FAILED,
            **errors(400, 401, 403, 404, 413, 415, 428),
            "503": SECRETS_UNREADABLE,
        },
    },
    "delete": {
        "operationId": "deleteDataSource",
        "summary": "Delete a data source",
        "description": "Deletes the data source named by `key`; with `rowVersion` or "
        "`If-Match`, only if it is still that version. Needs the editor role.",
        "parameters": query(delete_query_schema) + [IF_MATCH],
        "responses": {
            "204": {"description": "Deleted; an empty body."},
            "409": problem_response(409, "ConcurrencyConflict",
                                    "rowVersion mismatch; `current` is the stored object.",
                                    CONFLICT_EXAMPLE),
            "412": PRECONDITION_FAILED,
            **errors(400, 401, 403, 404, 428, 503),
        },
    },
}  # fmt: skip
SOURCE = {
    "get": {
        "operationId": "getDataSource",
        "summary": "Read a data source",
        "description": "The data source with this key in the caller's tenant, with its "
        "entity tag; a 304 when `If-None-Match` names it. Needs the viewer role.",
        "parameters": [KEY_IN_PATH, INCLUDE_SECRETS, IF_NONE_MATCH],
        "responses": {
            "200": json_response("The data source.", "DataSource", EXAMPLE, headers=ETAG),
            "304": {"description": "Not modified: `If-None-Match` names its tag.",
                    "headers": ETAG},
            **errors(400, 401, 403, 404),
            "503": SECRETS_UNREADABLE,
        },
    },
}  # fmt: skip


# The connector catalog: its answers are connectors.Connector.describe's, not
# a marshmallow schema's, so its components are written as JSON Schema here.

CONNECTOR_KEY = f"^{connectors.KEY.pattern}$"
JSON_POINTER = "^(/([^~/]|~[01])*)+$"
CONNECTOR = {
    "type": "object",
    "description": "A connector the service knows: what a source's `connectorKey` names, "
    "and the JSON Schema of its `sourceConfig`.",
    "properties": {
        "key": {"type": "string", "pattern": CONNECTOR_KEY},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "fileFormats": {"type": ["array", "null"], "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1}},
        "secretFields": {"type": "array", "items": {"type": "string", "pattern": JSON_POINTER}},
        "schema": {"type": "object", "additionalProperties": True},
    },
    "additionalProperties": False,
}  # fmt: skip
CONNECTOR["required"] = list(CONNECTOR["properties"])
CONNECTOR_LIST = {
    "type": "object",
    "description": "Every connector the service knows, by key.",
    "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Connector"}},
    },
    "required": ["data"],
    "additionalProperties": False,
}
CONNECTOR_FIELDS = {
    "key": "The connector's key, which a source's `connectorKey` names: 1-63 of a-z, 0-9, "
    "`.`, `_` and `-`, starting with a letter or a digit.",
    "title": "Display name.",
    "description": 'What the connector reads; "" when its file says nothing.',
    "fileFormats": "The file formats of a file-based connector, one of which a source's "
    "`fileFormat` must be (when it has one); null for a connector that reads no files.",
    "secretFields": "Where the schema marks a value secret (`writeOnly` or `airbyte_secret`), "
    "as JSON Pointers into a source's `sourceConfig`, sorted; `*` stands for any array item.",
    "schema": "The Draft 7 JSON Schema a source's `sourceConfig` must fit when its "
    "`connectorKey` names this connector (a `draft` source may lack required properties), "
    "given as a JSON object of any values.",
    "data": "The connectors, by key.",
}
EXAMPLE_CONNECTOR = "s3"
CONNECTOR_KEY_IN_PATH = {
    "in": "path",
    "name": "key",
    "required": True,
    "description": "The connector's key.",
    "schema": {"type": "string", "pattern": CONNECTOR_KEY},
    "example": EXAMPLE_CONNECTOR,
}


def built_in_example():
    """The example connector as the API answers it, read from the built-in
    catalog, so the document's examples are what the service serves."""
    return connectors.load(Settings()).get(EXAMPLE_CONNECTOR).describe()


def catalog_operations(example):
    """The catalog's collection and item operations, with `example` as the connector."""
    missing = {"detail": "No connector has key 'no-such-connector'."}
    collection = {
        "get": {
            "operationId": "listConnectors",
            "summary": "List connectors",
            "description": "Every connector the service knows, built in or from "
            "DATASOURCES_CONNECTORS_DIR, by key, with the JSON Schema a source's "
            "`sourceConfig` must fit when its `connectorKey` names it. Needs the viewer role.",
            "responses": {
                "200": json_response("The catalog.", "ConnectorList", {"data": [example]}),
                **errors(401, 403, 503),
            },
        },
    }
    item = {
        "get": {
            "operationId": "getConnector",
            "summary": "Read a connector",
            "description": "The connector with this key, as the list holds it. "
            "Needs the viewer role.",
            "parameters": [CONNECTOR_KEY_IN_PATH],
            "responses": {
                "200": json_response("The connector.", "Connector", example),
                "404": problem_response(404, description="No connector has this key.",
                                        example={**problem_example(404), **missing}),
                **errors(401, 403, 503),
            },
        },
    }  # fmt: skip
    return collection, item


def describe(properties, docs, examples=None):
    """Give each property its description and example: from `docs`'
    (description, example) pairs, or `docs` descriptions and `examples`."""
    for name, prop in properties.items():
        if examples is None:
            description, example = docs[name]
        else:
            description, example = docs[name], examples[name]
        if prop.get("readOnly") and "type" not in prop:
            continue  # an ignored request field: described as such
        if "description" in prop:  # a rule the converter documents
            description = f"{description} {prop['description']}"
        prop.update(description=description, examples=[example])


def add_catalog(spec, connectors_url):
    """The connector catalog's components and operations, at `connectors_url`."""
    example = built_in_example()
    connector, listing = copy.deepcopy(CONNECTOR), copy.deepcopy(CONNECTOR_LIST)
    describe(connector["properties"], CONNECTOR_FIELDS, example)
    describe(listing["properties"], CONNECTOR_FIELDS, {"data": [example]})
    spec.components.schema("Connector", connector)
    spec.components.schema("ConnectorList", listing)
    spec.tag({"name": CATALOG_TAG, "description": "The connectors the service knows, "
              "and the schema of each one's `sourceConfig`."})  # fmt: skip
    collection, item = catalog_operations(example)
    paths = {connectors_url: collection, f"{connectors_url.rstrip('/')}/{{key}}": item}
    for path, operations in paths.items():
        for operation in operations.values():
            operation.update(tags=[CATALOG_TAG], security=SECURITY)
        spec.path(path=path, operations=operations)


def build(url_prefix, connectors_url):
    """The document for the API mounted at `url_prefix`, with the connector
    catalog at `connectors_url` (None: not served), as a dict."""
    spec = APISpec(
        title="Data Sources API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "External data feeds of a tenant: a connector, its source config, "
            "sync mode and schedule, target schema, status and last sync. GET needs the viewer "
            "role; POST, PUT and DELETE need editor. Every error is RFC 9457 problem details."
        },
    )
    spec.tag({"name": TAG, "description": "Data sources of the caller's tenant."})
    plugin = spec.plugins[0]
    plugin.converter.add_attribute_function(storable)
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema("DataSource", schema=source_schema)
    spec.components.schema("DataSourceUpdate", schema=update_source_schema)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("ConcurrencyConflict", schema=ConflictSchema)
    spec.components.schema("DataSourcePage", schema=SourcePageSchema)
    for status, (name, _) in ERRORS.items():
        spec.components.response(name, problem_response(status))
    for path, operations in ((url_prefix, OPERATIONS), (f"{url_prefix}/{{key}}", SOURCE)):
        operations = copy.deepcopy(operations)
        for operation in operations.values():
            operation.update(tags=[TAG], security=SECURITY)
        spec.path(path=path, operations=operations)
    if connectors_url is not None:
        add_catalog(spec, connectors_url)
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
    for name in ("DataSource", "DataSourceCreate", "DataSourceUpdate"):
        describe(schemas[name]["properties"], FIELDS, EXAMPLE)
        schedule = schemas[name]["properties"]["schedule"]
        schedule.pop("propertyNames", None)
        schedule.update(SCHEDULE)
    schemas["SecretInfo"] = SECRET_INFO
    for name in ("DataSource", "DataSourceCreate", "DataSourceUpdate"):
        secrets = schemas[name]["properties"].get("secrets")
        if secrets is not None and "type" in secrets:  # the answer's; requests' are ignored
            secrets.update(
                propertyNames={"pattern": "^(/[^/]*)+$"},
                additionalProperties={"$ref": "#/components/schemas/SecretInfo"},
            )
    schemas["DataSource"]["description"] = "A data source, as every answer holds it."
    schemas["DataSourceCreate"]["description"] = "A new data source: `key` and `name` needed."
    schemas["DataSourceUpdate"]["description"] = "The fields to change of the source `key`."
    for name in ("Problem", "ConcurrencyConflict"):
        describe(schemas[name]["properties"], PROBLEM_FIELDS)
    for name in ("Pagination", "DataSourcePage"):
        describe(schemas[name]["properties"], PAGINATION_FIELDS)
    for operation in document["paths"][url_prefix].values():
        for parameter in operation.get("parameters", ()):
            if parameter["in"] == "query":
                parameter["description"], example = PARAMETERS[parameter["name"]]
                # Swagger UI's "Try it out" fills in a parameter's example, so only
                # a required one has one; an optional filter's is its schema's.
                if example is not None and parameter["required"]:
                    parameter["example"] = example
                elif example is not None:
                    parameter["schema"]["examples"] = [example]
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


def mount(app, url_prefix, openapi_url, docs_url, connectors_url):
    """Serve the document of the API at `url_prefix` and of the connector
    catalog at `connectors_url` (None: not served) on `app`, at
    `openapi_url`, and its page at `docs_url` (either None: not served)."""
    rules = []
    if openapi_url is not None:
        body = json.dumps(build(url_prefix, connectors_url))

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
