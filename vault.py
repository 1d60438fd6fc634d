"""Secrets of a source's config: masked in every answer, encrypted at rest.

A source's secret values (which places are secret: connectors.Catalog.
secret_pointers) are kept apart from its config: the config as stored holds
the mask at each of them, so every answer the database writes is masked; the
values, as one JSON object of JSON Pointer to value, are one Fernet token
(MultiFernet: the first key encrypts, any decrypts), with the id of the key
that made it; and `secrets` says, per pointer, the value's version, an
HMAC-SHA256 fingerprint under a key of its own, bound to the tenant, the
source and the pointer, and when it was set.
"""

import base64
import dataclasses
import hashlib
import hmac
import json

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from marshmallow import ValidationError

from datasources.auth import instance_secret
from datasources.errors import Problem
from datasources.schemas import format_time, to_json

MASK = "**********"
KEYS_FILE = "datasources-fernet-key"  # the instance's Fernet key when none is configured
FINGERPRINT_FILE = "datasources-fingerprint-key"
UNREADABLE = "urn:datasources:secrets-unreadable"


class Unreadable(Exception):
    """No configured key decrypts a token (the store answers a 503: `unreadable`)."""


class Vault:
    """One app's keys: Fernet keys (the first encrypts) and the fingerprint key."""

    def __init__(self, keys, fingerprint_key):
        fernets = []
        for number, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):  # never quote the key
                raise ValueError(
                    f"DATASOURCES_SECRET_KEYS: key {number} is not a Fernet key "
                    "(32 bytes, URL-safe base64; `datasources secrets new-key` makes one)."
                ) from None
        if not fernets:
            raise ValueError("DATASOURCES_SECRET_KEYS: no key.")
        self.fernet = MultiFernet(fernets)
        self.key_id = key_id(keys[0])
        self.fingerprint_key = fingerprint_key.encode()

    def seal(self, values):
        """A token of `values` (pointer -> value) under the first key."""
        return self.fernet.encrypt(to_json(values)).decode()

    def open(self, token):
        """The values of a token; Unreadable when no configured key decrypts it."""
        try:
            plain = self.fernet.decrypt(token.encode())
        except InvalidToken:
            raise Unreadable() from None
        try:
            return orjson.loads(plain)
        except orjson.JSONDecodeError:  # integers past 64 bits
            return json.loads(plain)

    def rotate(self, token):
        """The token under the first key (its timestamp kept); Unreadable as `open`."""
        try:
            return self.fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise Unreadable() from None

    def fingerprint(self, tenant, source_id, place, value):
        message = b"\0".join([tenant.encode(), source_id.encode(), place.encode(), to_json(value)])
        digest = hmac.new(self.fingerprint_key, message, hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest[:32]}"


def vault_of(app, settings):
    """The vault of an app's settings; with no keys set, a Fernet key and a
    fingerprint key made once in the instance folder (mode 0600)."""
    keys = settings.secret_keys or (instance_secret(app, KEYS_FILE, new_key),)
    fingerprint_key = settings.secret_fingerprint_key or instance_secret(app, FINGERPRINT_FILE)
    return Vault(keys, fingerprint_key)


def new_key():
    return Fernet.generate_key().decode()


def key_id(key):
    """A key's id as rows record it: which key made a token, never the key."""
    digest = hashlib.sha256(b"datasources key id\0" + key.encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def unreadable():
    """The 503 of a source whose secrets no configured key decrypts."""
    return Problem(
        503,
        "The source's secrets cannot be decrypted with any configured key: set "
        "DATASOURCES_SECRET_KEYS to include the key they were written with.",
        "Secrets unreadable",
        UNREADABLE,
    )


@dataclasses.dataclass(frozen=True)
class Sealed:
    """A config split for storage: the masked config, `secrets` (per pointer:
    version, fingerprint, updatedAt), and the token of the values with the
    id of its key (both None when there are no secrets)."""

    config: dict
    secrets: dict
    token: str | None
    key_id: str | None

    def columns(self):
        """As DataSource fields."""
        return {
            "source_config": self.config,
            "secrets": self.secrets,
            "secret_values": self.token,
            "secret_key_id": self.key_id,
        }


@dataclasses.dataclass(frozen=True)
class Kept:
    """What a source holds of its secrets before a write: the values (None
    when they cannot be read) and their `secrets` entries."""

    values: dict | None
    secrets: dict

    def value(self, place):
        return (self.values or {}).get(place, MISSING)


NOTHING_KEPT = Kept({}, {})
MISSING = object()


def seal(vault, tenant, source_id, config, pointers, kept, now):
    """Split `config` (in clear) at the secret `pointers` (sorted); a value
    that is what `kept` holds at its place keeps its version, fingerprint
    and time, any other is version + 1 (1 when new) set at `now`."""
    if not pointers:
        return Sealed(config, {}, None, None)
    masked, values, secrets = copy(config), {}, {}
    updated_at = format_time(now)
    for place in sorted(pointers, key=jsonb_order):
        value = values[place] = put(masked, place, MASK)
        before = kept.secrets.get(place)
        if before is not None and kept.value(place) == value:
            secrets[place] = before
        else:
            version = before["version"] + 1 if before else 1
            fingerprint = vault.fingerprint(tenant, source_id, place, value)
            secrets[place] = {
                "version": version,
                "updatedAt": updated_at,
                "fingerprint": fingerprint,
            }
    return Sealed(masked, secrets, vault.seal(values), vault.key_id)


def jsonb_order(key):
    """PostgreSQL's jsonb keeps an object's keys shortest first, then by
    bytes: `secrets` is written in that order, so both databases answer it alike."""
    data = key.encode()
    return len(data), data


def unmask(config, kept):
    """`config` with each mask replaced by the value `kept` holds at its
    place; a 400 naming each place where the mask stands for no stored
    secret, and a 503 when the stored secrets cannot be read."""
    masks = places_of_mask(config, "")
    if not masks:
        return config
    wrong = [place for place in masks if place not in kept.secrets]
    if wrong:
        message = f": {MASK!r} keeps a stored secret, and this source has none here."
        raise ValidationError({"sourceConfig": [place + message for place in wrong]})
    if kept.values is None:
        raise unreadable()
    revealed = copy(config)
    for place in masks:
        put(revealed, place, kept.values[place])
    return revealed


def reveal(config, values):
    """The masked `config` with its secret `values` back in place."""
    revealed = copy(config)
    for place, value in values.items():
        put(revealed, place, value)
    return revealed


def places_of_mask(value, place):
    if isinstance(value, str):
        return [place] if value == MASK else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += places_of_mask(item, f"{place}/{escape(key)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += places_of_mask(item, f"{place}/{i}")
    return found


def put(document, place, value):
    """Set the value at a JSON Pointer (RFC 6901) of a place that exists;
    the value that was there."""
    *parents, last = [unescape(token) for token in place.split("/")[1:]]
    for token in parents:
        document = document[int(token) if isinstance(document, list) else token]
    index = int(last) if isinstance(document, list) else last
    before, document[index] = document[index], value
    return before


def escape(token):
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def copy(value):
    """A deep copy of JSON data (dicts, lists and scalars)."""
    if isinstance(value, dict):
        return {key: copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy(item) for item in value]
    return value
