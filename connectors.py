"""The connector catalog: each known connector's `key`, `title`, `fileFormats`
(when file-based) and the Draft 7 JSON Schema of its `sourceConfig`, read
from the JSON files of `connectors/` and then of DATASOURCES_CONNECTORS_DIR
(a key there adds a connector or replaces the built-in one).

Loaded once per app (`load`), at `init_app`: a file that is not valid JSON,
not a valid Draft 7 schema, or that marks a non-string as secret refuses
start-up with a ValueError naming the file and the problem. Then
`Catalog.check` validates a source's config against its connector's
schema, and `Catalog.secret_pointers` says where a config's secrets are.
"""

import dataclasses
import json
import os
import re

import jsonschema
from marshmallow import ValidationError
from orjson import Fragment

from datasources.schemas import MAX_DEPTH, to_json

BUILT_IN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "connectors")
DRAFT_7 = ("http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema")
FILE_KEYS = {"key", "title", "description", "fileFormats", "schema"}
KEY = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SECRET_MARKS = ("writeOnly", "airbyte_secret")
# Where a Draft 7 schema holds subschemas: one, a list, or a map of them.
ONE = ("additionalItems", "additionalProperties", "contains", "propertyNames", "not")
ONE += ("if", "then", "else", "items")
MANY = ("allOf", "anyOf", "oneOf", "items")
MAP = ("properties", "patternProperties", "definitions", "dependencies")
BRANCHES = ("allOf", "anyOf", "oneOf", "if", "then", "else")


def no_errors(validator, value, instance, schema):
    return ()


# A draft may be incomplete: its missing required properties are no error,
# and so any form of a oneOf its partial object fits will do.
DraftValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"required": no_errors, "oneOf": jsonschema.Draft7Validator.VALIDATORS["anyOf"]},
)


@dataclasses.dataclass(frozen=True)
class Connector:
    key: str
    title: str
    description: str
    file_formats: tuple | None
    schema: dict

    def describe(self):
        """The connector as the API answers it."""
        return {
            "key": self.key,
            "title": self.title,
            "description": self.description,
            "fileFormats": list(self.file_formats) if self.file_formats else None,
            "secretFields": secret_fields(self.schema),
            "schema": self.schema,
        }


class Catalog:
    """The connectors one app knows, and the rules that use them."""

    def __init__(self, connectors, strict=False, secret_names=()):
        self.connectors = dict(sorted(connectors.items()))
        self.strict = strict
        self.secret_names = tuple(name.lower().replace("-", "_") for name in secret_names)
        self.full = {k: jsonschema.Draft7Validator(c.schema) for k, c in self.connectors.items()}
        self.draft = {k: DraftValidator(c.schema) for k, c in self.connectors.items()}
        described = {key: c.describe() for key, c in self.connectors.items()}
        self.answers = {key: Fragment(to_json(answer)) for key, answer in described.items()}
        self.listing = Fragment(to_json({"data": list(described.values())}))
        self._places = {}

    def place(self, schemas, root):
        """The schemas that apply at a place of a config (`expand`), and
        whether they make it secret; worked out once per set of schemas
        (all are nodes of the catalog's own schemas, which live as long as
        it does, so their ids stay theirs)."""
        key = tuple(map(id, schemas))
        found = self._places.get(key)
        if found is None:
            expanded = expand(schemas, root)
            found = self._places[key] = (expanded, any(map(is_secret, expanded)))
        return found

    def get(self, key):
        return self.connectors.get(key)

    def check(self, connector_key, source_config, status, file_format=None):
        """The errors of a source as it will be stored, by field
        (`sourceConfig`, `fileFormat`, `connectorKey`), {} when none. Each
        `sourceConfig` message starts with the JSON Pointer of its place and
        never quotes the config's values. A draft's missing required
        properties are no error. Unknown connectors (and "") take any
        config, unless the catalog is strict."""
        connector = self.connectors.get(connector_key)
        if connector is None:
            if not self.strict:
                return {}
            known = ", ".join(self.connectors)
            return {"connectorKey": [f"Not a known connector; one of: {known}."]}
        errors = {}
        validator = (self.draft if status == "draft" else self.full)[connector_key]
        messages = error_messages(validator.iter_errors(source_config))
        if messages:
            errors["sourceConfig"] = messages
        formats = connector.file_formats
        if formats and file_format is not None and file_format not in formats:
            allowed = ", ".join(formats)
            errors["fileFormat"] = [f"Must be one of {allowed} for connector {connector.key}."]
        return errors

    def check_source(self, fields):
        """`fields`, a source's loaded fields as it will be stored, when they
        pass `check`; else a marshmallow ValidationError (a 400)."""
        errors = self.check(
            fields.get("connector_key", ""),
            fields.get("source_config", {}),
            fields.get("status", "draft"),
            fields.get("file_format"),
        )
        if errors:
            raise ValidationError(errors)
        return fields

    def secret_pointers(self, connector_key, source_config):
        """The JSON Pointers of the secret values in `source_config`, sorted.
        A known connector's secrets are the places its schema marks
        `writeOnly` or `airbyte_secret` (in every oneOf/anyOf form, and in
        arrays); a place the schema does not name as a property (any key of
        an unknown connector's config, an extra key, a key of a free-form
        map) is secret when its key, lower-cased with `-` read as `_`,
        contains one of the secret names. A secret place's strings and
        numbers are secret, and so is every string and number inside an
        object or array there; booleans and nulls never are."""
        found = []
        connector = self.connectors.get(connector_key)
        if connector is None:
            by_names(source_config, "", self.secret_names, found)
        else:
            by_schema(source_config, [connector.schema], "", connector.schema, self, found)
        return sorted(found)

    def secret_name(self, key):
        key = key.lower().replace("-", "_")
        return any(name in key for name in self.secret_names)


def load(settings):
    """The catalog of an app's settings: the built-in connectors, then those
    of `connectors_dir`, which add or replace by key."""
    connectors = read_folder(BUILT_IN)
    if settings.connectors_dir:
        connectors.update(read_folder(settings.connectors_dir))
    return Catalog(connectors, settings.connectors_strict, settings.secret_names)


def read_folder(folder):
    """The connectors of a folder's `*.json` files, by key."""
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
    except OSError as exc:
        raise ValueError(f"connectors: cannot read the folder {folder}: {exc.strerror}.") from None
    connectors = {}
    for name in names:
        path = os.path.join(folder, name)
        connector = read_file(path)
        if connector.key in connectors:
            raise ValueError(f"{path}: the key {connector.key!r} is another file's too.")
        connectors[connector.key] = connector
    return connectors


def read_file(path):
    """One connector file, or a ValueError naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    try:
        return connector_of(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def connector_of(data):
    if not isinstance(data, dict):
        raise ValueError("a connector file holds a JSON object.")
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ValueError(
            f"unknown keys {', '.join(unknown)}; a file has {', '.join(sorted(FILE_KEYS))}."
        )
    key, title, schema = data.get("key"), data.get("title"), data.get("schema")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise ValueError("key must be 1-63 of a-z, 0-9, '.', '_' and '-', starting alnum.")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title must be a non-empty string.")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string.")
    formats = data.get("fileFormats")
    if formats is not None:
        if not isinstance(formats, list) or not formats or len(set(formats)) != len(formats):
            raise ValueError("fileFormats must be a list of distinct strings.")
        if not all(isinstance(f, str) and f for f in formats):
            raise ValueError("fileFormats must be a list of distinct strings.")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ValueError('schema must be a JSON Schema of an object ("type": "object").')
    if schema.get("$schema", DRAFT_7[0]) not in DRAFT_7:
        raise ValueError(f"schema: $schema must be {DRAFT_7[0]} (Draft 7).")
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        place = pointer(exc.absolute_path)
        raise ValueError(f"not a valid Draft 7 schema at {place}: {exc.message}") from None
    for place, node in subschemas(schema, ""):
        check_node(place or "/", node, schema)
    return Connector(key, title, description, tuple(formats) if formats else None, schema)


def check_node(place, node, root):
    """A schema node's own rules: only `$ref`s to a place in the same file
    (nothing is fetched), and secret marks that are booleans on strings."""
    ref = node.get("$ref")
    if ref is not None and (not re.fullmatch("#(/.*)?", ref) or resolve(root, ref) is None):
        raise ValueError(f"schema {place}: $ref must point into the same file (#/...).")
    for mark in SECRET_MARKS:
        if mark in node and not isinstance(node[mark], bool):
            raise ValueError(f"schema {place}: {mark} must be true or false.")
        if node.get(mark) is True:
            kind = node.get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if "string" not in kinds or not set(kinds) <= {"string", "null"}:
                raise ValueError(
                    f"schema {place}: marks as secret ({mark}) what is not a string; "
                    'a secret needs "type": "string".'
                )


def subschemas(node, place):
    """(pointer, schema) of `node` and of every schema inside it."""
    if not isinstance(node, dict):
        return
    yield place, node
    for word in ONE:
        if isinstance(node.get(word), dict):
            yield from subschemas(node[word], f"{place}/{word}")
    for word in MANY:
        if isinstance(node.get(word), list):
            for i, item in enumerate(node[word]):
                yield from subschemas(item, f"{place}/{word}/{i}")
    for word in MAP:
        if isinstance(node.get(word), dict):
            for name, item in node[word].items():
                yield from subschemas(item, f"{place}/{word}/{escape(name)}")


def secret_fields(schema):
    """Where a schema marks secrets, as pointers into a config (`*`: any
    array item), for the catalog's readers."""
    found = set()

    def walk(node, place):
        if place.count("/") > MAX_DEPTH:  # a recursive $ref
            return
        for branch in expand([node], schema):
            if is_secret(branch):
                found.add(place or "/")
            for name, child in branch.get("properties", {}).items():
                walk(child, f"{place}/{escape(name)}")
            items = branch.get("items")
            for child in items if isinstance(items, list) else [items]:
                if isinstance(child, dict):
                    walk(child, f"{place}/*")

    walk(schema, "")
    return sorted(found)


# Secrets of a config.


def by_names(value, place, names, found, secret=False):
    """Secrets by key name: under a secret key, every string and number."""
    if secret and isinstance(value, str | int | float) and not isinstance(value, bool):
        found.append(place)
    elif isinstance(value, dict):
        for key, item in value.items():
            hit = secret or any(n in key.lower().replace("-", "_") for n in names)
            by_names(item, f"{place}/{escape(key)}", names, found, hit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            by_names(item, f"{place}/{i}", names, found, secret)


def by_schema(value, schemas, place, root, catalog, found):
    """Secrets by schema marks, and by key name where no property names the key."""
    schemas, secret = catalog.place(schemas, root)
    if secret:
        by_names(value, place, (), found, True)
    elif isinstance(value, dict):
        for key, item in value.items():
            named = [s["properties"][key] for s in schemas if key in s.get("properties", {})]
            loose = [sub for s in schemas if (sub := loose_schema(s, key)) is not None]
            place_of_key = f"{place}/{escape(key)}"
            if named:
                by_schema(item, named, place_of_key, root, catalog, found)
            elif catalog.secret_name(key):
                by_names(item, place_of_key, (), found, True)
            elif loose:
                by_schema(item, loose, place_of_key, root, catalog, found)
            else:
                by_names(item, place_of_key, catalog.secret_names, found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            items = [item_schema(s, i) for s in schemas]
            items = [s for s in items if s]
            if items:
                by_schema(item, items, f"{place}/{i}", root, catalog, found)
            else:
                by_names(item, f"{place}/{i}", catalog.secret_names, found)


def loose_schema(schema, key):
    """The schema of a key that no property names: a patternProperties
    match, else a schema in additionalProperties."""
    for pattern, child in schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            return child
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def item_schema(schema, index):
    items = schema.get("items")
    if isinstance(items, list):
        extra = schema.get("additionalItems")
        items = items[index] if index < len(items) else extra
    return items if isinstance(items, dict) else None


def expand(schemas, root):
    """The schemas that may apply at a place: each, its `$ref` target and
    its branches (every form of a oneOf/anyOf: a secret in any is secret)."""
    out, todo = [], list(schemas)
    while todo:
        node = todo.pop()
        if not isinstance(node, dict) or any(node is seen for seen in out):
            continue
        out.append(node)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            todo.append(resolve(root, ref))
        for word in BRANCHES:
            branch = node.get(word)
            todo.extend(branch if isinstance(branch, list) else [branch])
    return out


def resolve(root, ref):
    node = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node


def is_secret(schema):
    return any(schema.get(mark) is True for mark in SECRET_MARKS)


# Messages: each starts with the JSON Pointer of its place, and is written
# from the schema's words (the rule and its value), never from the
# instance: jsonschema's own messages quote it, and it may be a secret.


def error_messages(errors):
    """One message per failing place, sorted by place."""
    found = {}
    for error in errors:
        for place, text in describe(error):
            texts = found.setdefault(place, [])
            if text not in texts:
                texts.append(text)
    return [f"{place}: {'; '.join(texts)}" for place, texts in sorted(found.items())]


KINDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
WORDS = {
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "pattern": "must match the pattern {}",
    "format": "must be a valid {}",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minItems": "must hold at least {} items",
    "maxItems": "must hold at most {} items",
    "minProperties": "must hold at least {} properties",
    "maxProperties": "must hold at most {} properties",
}


def describe(error):
    """(place, text) pairs for one jsonschema error."""
    place, rule, value = pointer(error.absolute_path), error.validator, error.validator_value
    instance = error.instance
    if rule == "required":
        return [(child(place, n), "is required") for n in value if n not in instance]
    if rule == "additionalProperties":
        listed = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [
            k for k in instance if k not in listed and not any(re.search(p, k) for p in patterns)
        ]
        return [(child(place, k), "is not a property of this connector") for k in extra]
    if rule == "dependencies":
        return [
            (child(place, need), f"is required with {name}")
            for name, needs in value.items()
            if name in instance and isinstance(needs, list)
            for need in needs
            if need not in instance
        ]
    if rule in ("oneOf", "anyOf"):
        return one_of(error, place)
    if rule == "type":
        kinds = value if isinstance(value, list) else [value]
        return [(place, "must be " + " or ".join(KINDS.get(k, k) for k in kinds))]
    if rule == "enum":
        return [(place, "must be one of " + ", ".join(json.dumps(v) for v in value))]
    if rule == "const":
        return [(place, f"must be {json.dumps(value)}")]
    if rule == "uniqueItems":
        return [(place, "must not repeat an item")]
    if rule in WORDS:
        return [(place, WORDS[rule].format(value))]
    return [(place, f"does not meet the schema's {rule} rule")]


def one_of(error, place):
    """A oneOf/anyOf no form fits: the errors of the one form whose
    constants the config matches, else those every form shares, else the
    forms by title."""
    if not error.context:
        return [(place, "fits more than one of the allowed forms")]
    forms = {}
    for sub in error.context:
        forms.setdefault(sub.relative_schema_path[0], []).append(sub)
    matching = [
        subs
        for subs in forms.values()
        if not any(s.validator in ("const", "enum") and len(s.relative_path) == 1 for s in subs)
    ]
    if len(matching) == 1:
        return [pair for sub in matching[0] for pair in describe(sub)]
    if not matching:
        tags = [s for subs in forms.values() for s in subs if s.validator in ("const", "enum")]
        tags = [s for s in tags if len(s.relative_path) == 1]
        if len({s.relative_path[0] for s in tags}) == 1:  # every form says what it is by one key
            allowed = [
                v
                for s in tags
                for v in ([s.validator_value], s.validator_value)[s.validator == "enum"]
            ]
            return [
                (
                    pointer(tags[0].absolute_path),
                    "must be one of " + ", ".join(map(json.dumps, allowed)),
                )
            ]
    candidates = matching or list(forms.values())
    described = [{pair for sub in subs for pair in describe(sub)} for subs in candidates]
    shared = set.intersection(*described)
    if shared:
        return sorted(shared)
    titles = [b.get("title") for b in error.validator_value if isinstance(b, dict)]
    names = ", ".join(t for t in titles if t) or f"{len(error.validator_value)} forms"
    return [(place, f"must fit one of the allowed forms: {names}")]


def escape(token):
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(path):
    return "".join("/" + escape(part) for part in path) or "/"


def child(place, name):
    return ("" if place == "/" else place) + "/" + escape(name)
