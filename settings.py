"""Settings: every `DATASOURCES_*` key, its default and its type, read once
per app from the app's config into one typed, frozen object.

The standalone service fills its config from the environment (`create_app`);
a host sets the keys in its own config (see README.md, "Embedding").
"""

import dataclasses
import logging
import re
import types

from flask import current_app

PREFIX = "DATASOURCES_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
# An origin as browsers send it: a scheme and a host name or IPv4 address,
# maybe a port. No path, and none of the characters flask-cors reads as a regex.
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[a-z0-9.-]+(:[0-9]{1,5})?", re.IGNORECASE)

log = logging.getLogger("datasources")
# Config keys whose values are secret when no connector schema says (lower-cased, `-` as `_`).
SECRET_NAMES = ("password", "passwd", "passphrase", "secret", "token", "api_key", "apikey")
SECRET_NAMES += ("access_key", "private_key", "authorization", "credentials", "service_account")
SECRET_NAMES += ("keyfile",)


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str | None = None  # None: an SQLite file in the instance folder
    auto_migrate: bool | None = None  # None: yes on SQLite, no elsewhere
    auth: str = "jwt"  # or "headers", behind a trusted gateway
    jwt_secret: str | None = None  # None: a random secret kept in the instance folder
    jwt_public_key: str | None = None  # PEM; RS256 or ES256, and then no HS256 at all
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_tenant_claim: str = "tenant_id"
    jwt_role_claim: str = "role"
    cursor_secret: str | None = None  # None: the JWT secret or the instance secret
    max_body_bytes: int = 1024 * 1024
    sqlite_busy_timeout_ms: int = 5000
    statement_timeout_ms: int = 5000  # PostgreSQL; 0: none
    retry_after_seconds: int = 5
    answer_cache_bytes: int = 4 * 1024 * 1024  # list answers kept per worker; 0: none
    require_precondition: bool = False  # PUT and DELETE need If-Match or a rowVersion
    log_format: str = "json"  # or "text"; the standalone service's stdout lines
    metrics: bool = True
    cors_origins: tuple = ()  # browser front ends' origins allowed to call the API; "*": any
    connectors_dir: str | None = None  # a folder of connector JSON files: added, or replacing
    connectors_strict: bool = False  # true: a connectorKey no connector has is a 400
    secret_names: tuple = SECRET_NAMES  # config keys holding one of these are secret
    secret_keys: tuple = ()  # Fernet keys, the first encrypts; (): one in the instance folder
    secret_fingerprint_key: str | None = None  # None: one in the instance folder
    reveal_role: str = "admin"  # the role that may read secrets in clear (includeSecrets)

    @classmethod
    def from_config(cls, config):
        """The settings an app's config gives; a value of the wrong type is a
        ValueError naming its key, raised at start-up."""
        known = {PREFIX + field.name.upper(): field for field in dataclasses.fields(cls)}
        for name in sorted(set(config) - set(known)):
            if name.startswith(PREFIX) and not name.startswith(PREFIX + "TEST_"):
                log.warning("%s is not a setting of the data sources API; ignored", name)
        values = {
            field.name: parse(name, field.type, config[name])
            for name, field in known.items()
            if name in config
        }
        settings = cls(**values)
        settings.check()
        return settings

    def check(self):
        choices = {"auth": ("jwt", "headers"), "log_format": ("json", "text")}
        choices["reveal_role"] = ("viewer", "editor", "admin")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{PREFIX}{name.upper()} must be one of {', '.join(allowed)}.")
        for origin in self.cors_origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{PREFIX}CORS_ORIGINS: {origin!r} is not an origin "
                    "(scheme://host[:port], no path, as a browser sends it) nor *."
                )


def parse(name, kind, value):
    """`value` (a string from the environment, or a host's Python value) as
    `kind`: int, bool, str, tuple (of strings), or any of them or None."""
    optional = isinstance(kind, types.UnionType)
    kind = next(k for k in kind.__args__ if k is not type(None)) if optional else kind
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ValueError(f"{name} must be set.")
    if kind is bool:
        return flag(name, value)
    if kind is tuple:
        return words(name, value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{name} must be a whole number.")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {value!r}.") from None
    return str(value).strip()


def words(name, value):
    """A comma-separated list (or a host's list of strings), blanks dropped."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{name} must be a comma-separated list.")
    return tuple(item.strip() for item in items if item.strip())


def flag(name, value):
    """The one boolean parser: True/False, or 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(f"{name} must be true or false, not {value!r}.")


def from_environ(environ):
    """The `DATASOURCES_*` variables of `environ`, as config keys."""
    return {name: value for name, value in environ.items() if name.startswith(PREFIX)}


def service():
    """The current app's share of the API (app.Service)."""
    return current_app.extensions["datasources"]
