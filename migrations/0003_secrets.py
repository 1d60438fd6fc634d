"""Secrets apart from the config (vault.py): `secrets` (per pointer:
version, fingerprint, time), `secret_values` (one Fernet token) and
`secret_key_id` (the key that made it); then every secret stored so far in
clear, by the app's rules (connectors.Catalog.secret_pointers), encrypted
and masked in place, a batch of rows at a time."""

import json

BATCH = 500
SELECT = (
    "SELECT id, tenant_id, connector_key, source_config FROM data_sources "
    "WHERE id > %s ORDER BY id LIMIT %s"
)
UPDATE = (
    "UPDATE data_sources SET source_config = %s, secrets = %s, secret_values = %s, "
    "secret_key_id = %s WHERE id = %s"
)


def up(migrator, db):
    json_type = db.field_types["JSON"]  # as source_config: jsonb, or SQLite's text
    db.execute_sql(
        f"ALTER TABLE data_sources ADD COLUMN secrets {json_type} NOT NULL DEFAULT '{{}}'"
    )
    db.execute_sql("ALTER TABLE data_sources ADD COLUMN secret_values TEXT")
    db.execute_sql("ALTER TABLE data_sources ADD COLUMN secret_key_id TEXT")
    after = ""
    while rows := db.execute_sql(placeholders(db, SELECT), (after, BATCH)).fetchall():
        for source_id, tenant, connector_key, config in rows:
            config = json.loads(config) if isinstance(config, str) else config
            if migrator.seal is None:  # models.migrate without an app
                if config:
                    raise RuntimeError(
                        "0003_secrets encrypts the secrets of stored sources with the app's "
                        "keys: run it with `datasources db upgrade`."
                    )
                continue
            sealed = migrator.seal(tenant, source_id, connector_key, config)
            if sealed.token is not None:
                values = (dumps(sealed.config), dumps(sealed.secrets), sealed.token)
                db.execute_sql(placeholders(db, UPDATE), (*values, sealed.key_id, source_id))
        after = rows[-1][0]


def down(migrator, db):
    raise RuntimeError("0003_secrets cannot be undone: it would write secrets in clear.")


def placeholders(db, sql):
    return sql.replace("%s", db.param)


def dumps(value):
    return json.dumps(value, separators=(",", ":"))
