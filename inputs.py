"""What a request brings: its JSON body, its query string and its list
cursor, read strictly; anything else is a 4xx problem, never a guess."""

import datetime
import hashlib
import json
import math
import re
import urllib.parse

from flask import request
from itsdangerous import BadSignature, Signer
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from datasources.errors import Problem
from datasources.schemas import MAX_DEPTH
from datasources.settings import service


def unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def finite(text):
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_body():
    """The raw body, a 413 past MAX_BODY_BYTES however it is framed. Werkzeug
    checks a Content-Length, but cuts a chunked body at the limit silently,
    and under gunicorn takes a body cut short by its client as complete."""
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        data = request.get_data(cache=False)
        if len(data) < (request.content_length or 0):
            raise Problem(400, "The body ended before its Content-Length.")
        return data
    limit, stream, data = service().settings.max_body_bytes, request.environ["wsgi.input"], b""
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    raise RequestEntityTooLarge()


def json_body():
    """The request's JSON object, strictly parsed from UTF-8 (RFC 8259)."""
    if request.mimetype != "application/json":
        raise Problem(415, "The body must be sent as Content-Type: application/json.")
    if request.mimetype_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise Problem(415, "The body must be JSON in utf-8.")
    body = strict_json(read_body(), not_json)
    if not isinstance(body, dict):
        raise Problem(400, "The body must be a JSON object.")
    return body


def strict_json(data, refused):
    """`data`, UTF-8 bytes, as strict JSON (RFC 8259): no UTF-16, no encoded
    surrogates, no duplicate keys, no NaN or numbers past a double. A
    failure raises `refused(reason[, text, position])`."""
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=unique_keys,
            parse_float=finite,
            parse_constant=reject_constant,
        )
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        raise refused("a byte that is not UTF-8", before, len(before)) from None
    except json.JSONDecodeError as exc:
        raise refused(*syntax_error(text, exc)) from None
    except (ValueError, RecursionError) as exc:  # refused by a hook, or nested past the stack
        found = refusal(text, deep=isinstance(exc, RecursionError))
        raise refused(*found) if found else refused(str(exc)) from None


def not_json(reason, text=None, position=None):
    """The 400 of a body that is not strict JSON: why, and where (1-based
    line and column, in characters, as editors count them)."""
    where = ""
    if text is not None:
        line = text.count("\n", 0, position) + 1
        column = position - text.rfind("\n", 0, position)
        where = f" at line {line}, column {column}"
    return Problem(400, f"The body is not valid JSON: {reason}{where}.")


def syntax_error(text, exc):
    """The reason and position of the json module's syntax error, in its own
    words (a trailing comma and a byte order mark named as such)."""
    if not text.strip():
        return ("it is empty",)
    if text.startswith("\ufeff"):
        return "a byte order mark (BOM) before the JSON", text, 0
    before = text[: exc.pos].rstrip(" \t\n\r")
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("}", "]"):
        return "a trailing comma", text, len(before) - 1
    reason = exc.msg.removesuffix(" at")  # "Invalid control character at"
    return reason[:1].lower() + reason[1:], text, exc.pos


# One token of JSON (the text is valid up to the refusal we look for): a key
# with its colon, a string, a number, a constant JSON does not have, a bracket.
JSON_TOKEN = re.compile(
    r'[ \t\n\r]*(?:(?P<key>"[^"\\]*(?:\\.[^"\\]*)*")[ \t\n\r]*:'
    r'|(?P<string>"[^"\\]*(?:\\.[^"\\]*)*")'
    r"|(?P<number>-?(?:0|[1-9][0-9]*)(?P<fraction>(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))"
    r"|(?P<constant>NaN|-?Infinity)|(?P<open>[{\[])|(?P<close>[}\]])|true|false|null|,)",
    re.DOTALL,
)


def refusal(text, deep=False):
    """What json_body's hooks refused, found again with its position (the
    hooks are not told where they are): the first duplicate key, number out
    of range or NaN/Infinity, and with `deep`, the first nesting past
    MAX_DEPTH. Only a body already refused pays for this second reading."""
    containers, position = [], 0  # per open bracket: an object's keys, or None
    while (token := JSON_TOKEN.match(text, position)) and token.end() > position:
        position, kind = token.end(), token.lastgroup
        start = token.start(kind) if kind else position
        if kind == "key" and containers and containers[-1] is not None:
            key = json.loads(token["key"])
            if key in containers[-1]:
                return f"duplicate key {key!r}", text, start
            containers[-1].add(key)
        elif kind == "number" and not in_range(token["number"], token["fraction"]):
            return "number out of range", text, start
        elif kind == "constant":
            return f"{token['constant']} is not JSON", text, start
        elif kind == "open":
            containers.append(set() if token["open"] == "{" else None)
            if deep and len(containers) > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels", text, start
        elif kind == "close" and containers:
            containers.pop()
    return None


def in_range(number, fraction):
    """A float that is finite, an integer that Python converts (4300 digits)."""
    try:
        return math.isfinite(float(number)) if fraction else int(number) is not None
    except ValueError:
        return False


def load_query(schema):
    """The query string through `schema`. A parameter it reads given twice is
    a 400: layers that pick the first or the last would disagree; so is one
    that is not UTF-8 once percent-decoded."""
    names = {field.data_key or name for name, field in schema.fields.items()}
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    repeated = [name for name in repeated if name in names]
    if repeated:
        raise ValidationError({name: ["Given more than once."] for name in repeated})
    garbled = [name for name in undecodable(request.query_string) if name in names]
    if garbled:
        raise ValidationError({name: ["Not UTF-8 once percent-decoded."] for name in garbled})
    return schema.load(request.args.to_dict())


def undecodable(query_string):
    """The parameters whose value is not UTF-8 once percent-decoded: Werkzeug
    reads `?key=%FF` as the text "%FF", which may be another source's key."""
    if query_string.isascii() and b"%" not in query_string:
        return []
    text = query_string.decode("latin-1")
    names = []
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        try:
            value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            names.append(name.encode("latin-1").decode("utf-8", "replace"))
    return names


EPOCH = datetime.datetime(1970, 1, 1)
CURSOR = re.compile(r"(-?[0-9]{1,20})\.(.{1,64})", re.DOTALL)


def cursor_signer(tenant, filters=None):
    """Cursors are signed for one tenant and one set of list filters: they
    salt the key, so a cursor never verifies for another tenant or other
    filters, and names neither."""
    salt = f"datasources-cursor:{tenant}"
    if filters:
        salt += ":" + hashlib.sha256(repr(sorted(filters.items())).encode()).hexdigest()
    return Signer(service().cursor_secret, salt=salt, digest_method=hashlib.sha256)


def write_cursor(tenant, position, filters=None):
    """`<created_at in µs since 1970>.<id>.<signature>` of a (created_at, id)
    position: URL-safe and short."""
    created_at, source_id = position
    micros = (created_at - EPOCH) // datetime.timedelta(microseconds=1)
    return cursor_signer(tenant, filters).sign(f"{micros}.{source_id}").decode()


def read_cursor(cursor, tenant, filters=None):
    """The (created_at, id) position a cursor of this tenant and these
    filters points after; anything but a cursor we wrote for them is a 400."""
    if cursor is None:
        return None
    try:
        position = CURSOR.fullmatch(cursor_signer(tenant, filters).unsign(cursor).decode())
        if position is None or not position[2].isprintable():
            raise ValueError("not a position")
        return EPOCH + datetime.timedelta(microseconds=int(position[1])), position[2]
    except (BadSignature, ValueError, OverflowError):
        detail = "Not a valid cursor." if not filters else "Not a valid cursor for these filters."
        raise ValidationError({"cursor": [detail]}) from None


# Preconditions (RFC 9110): a source's entity tag is "<id>.<rowVersion>".

TAG = re.compile(r"(ds_[0-9a-f]{20})\.([0-9]{1,19})")
MAX_TAGS = 8


def if_match(expected):
    """The (id, row_version) pairs `If-Match` names: None without the header
    or with `*` (which asks only that the source exists, as every write
    does), () when it names none of ours, so nothing matches; weak tags never
    match (strong comparison). With neither If-Match nor the `expected` row
    version, a 428 where the app requires a precondition."""
    if "If-Match" not in request.headers:
        if expected is None and service().settings.require_precondition:
            detail = "This write needs an If-Match header or a rowVersion."
            raise Problem(428, detail, "Precondition required")
        return None
    tags = request.if_match
    if tags.star_tag:
        return None
    strong = tags.as_set()
    if len(strong) > MAX_TAGS:
        raise ValidationError({"If-Match": [f"At most {MAX_TAGS} entity tags."]})
    found = (TAG.fullmatch(tag) for tag in strong if tag)  # `""` parses as None
    return tuple((tag[1], int(tag[2])) for tag in found if tag)
