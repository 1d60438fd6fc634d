"""The store: what the views ask of the database, as named calls with named
results. It owns the rules around the rows: `pagination.total` (from counters
the database's triggers keep in each write's own statement), the answers each
worker keeps, and the 404 and 409 of a write that finds no (current) source.

Each call runs on the current app's own database (`database()`).
"""

import dataclasses
import datetime
import logging

import peewee
from orjson import Fragment

from datasources import models, observability, vault
from datasources.errors import Problem, migrations_pending
from datasources.schemas import UNSTORABLE, to_json
from datasources.settings import service

CONFLICT = "urn:datasources:concurrency-conflict"
PRECONDITION_FAILED = "urn:datasources:precondition-failed"
CHECKED = frozenset(["connector_key", "source_config", "status", "file_format"])
SEALED_BY = frozenset(["connector_key", "source_config"])  # what decides which values are secret

log = logging.getLogger("datasources")
audit = logging.getLogger("datasources.audit")


@dataclasses.dataclass(frozen=True)
class Source:
    """One source as the API answers it: `answer` is its JSON text."""

    id: str
    row_version: int
    answer: str

    @property
    def tag(self):
        """Its entity tag: another after every write, and never the same for
        a source deleted and created again under its key (a new id)."""
        return f"{self.id}.{self.row_version}"


@dataclasses.dataclass(frozen=True)
class Page:
    answers: list  # the page's sources, as JSON text
    total: int  # the tenant's sources, counted in the page's own statement
    next_after: tuple | None  # the (created_at, id) position after which more follow


def ready():
    """The current app's share, once its database schema is current: until
    then, the first call migrates if the app auto-migrates, else it is a 503
    that says what to run (not a 500 on a missing table)."""
    state = service()
    if not state.schema_ready:
        if state.migrate_first:
            state.migrate()
        pending = models.pending_migrations(state.database)
        if pending:
            raise migrations_pending(pending)  # logged once per worker, with the command
        state.schema_ready, state.migrate_first = True, False
    return state


def database():
    """The current app's database, once its schema is current (`ready`)."""
    return ready().database


def utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def list_sources(tenant, limit, after=None, filters=None):
    """The tenant's sources that match `filters` (a dict of models' list
    filters), oldest first, `limit` after the position `after`."""
    state = ready()
    db = state.database
    columns, answers = state.answers.page(db, tenant, limit + 1, after, filters)
    total = columns.total[0] if columns.id else models.total(db, tenant, filters)
    next_after = models.position(columns, limit - 1) if len(columns.id) > limit else None
    return Page(answers[:limit], total, next_after)


def sealer(state):
    """A function sealing a new source's config as `state`'s app does (for
    the migration that encrypts secrets stored in clear)."""

    def seal(tenant, source_id, connector_key, config):
        pointers = state.catalog.secret_pointers(connector_key, config)
        return vault.seal(
            state.vault, tenant, source_id, config, pointers, vault.NOTHING_KEPT, utcnow()
        )

    return seal


def create_source(tenant, fields):
    """A new source of `fields` (loaded, not yet checked against their
    connector), its secrets sealed; a 409 when the tenant has its key already."""
    state, now = ready(), utcnow()
    vault.unmask(fields["source_config"], vault.NOTHING_KEPT)  # no mask: no secret is stored yet
    state.catalog.check_source(fields)
    data = {name: field.default for name, field in models.DataSource._meta.fields.items()}
    data.update(fields, id=models.new_id(now), tenant_id=tenant, created_at=now, updated_at=now)
    data.update(row_version=1, **sealed_columns(state, tenant, data, vault.NOTHING_KEPT, now))
    db = state.database
    try:
        with models.one_write(db):
            created = models.insert(db, data)
    except peewee.IntegrityError:
        raise Problem(409, f"A data source with key {fields['key']!r} already exists.") from None
    return Source(*created)


def get_source(tenant, key):
    """The source of `key`; a 404 when the tenant has none."""
    found = models.find(database(), tenant, key) if storable(key) else None
    if found is None:
        raise Problem(404, f"No data source has key {key!r}.")
    return Source(*found)


def sealed_columns(state, tenant, data, kept, now):
    """The secret columns of a source's `data` (fields, its config in
    clear), by its connector's rules: its config masked, and the rest."""
    config = data["source_config"]
    pointers = state.catalog.secret_pointers(data["connector_key"], config)
    return vault.seal(state.vault, tenant, data["id"], config, pointers, kept, now).columns()


def update_source(tenant, key, changes, expected=None, tags=None):
    """The source after `changes`, when it exists and, with `expected`, its
    row version is still that, and with `tags`, it is one of those (id,
    row_version) pairs (If-Match); else a 404, or a 409 or 412 holding the
    current source. Changes to what a connector checks are checked, on the
    source as it will be stored, and its secrets sealed again."""
    state, now = ready(), utcnow()
    if CHECKED.intersection(changes):
        return Source(*checked_update(state, tenant, key, changes, expected, tags, now))
    db = state.database
    with models.one_write(db):
        updated = tags != () and models.update(db, tenant, key, changes, now, expected, tags or ())
        # Unconditionally, no row updated means none existed when the UPDATE
        # ran; one that READ COMMITTED lets a read see, created since, is no conflict.
        conditional = expected is not None or tags is not None
        current = None if updated or not conditional else models.find(db, tenant, key)
    if updated:
        return Source(*updated)
    raise refusal(key, current, tags)


def checked_update(state, tenant, key, changes, expected, tags, now):
    """An update that depends on the stored source: the changes are made
    from the row as read, outside the write lock (checking, decrypting and
    sealing take longer than the write), then written only if the row is
    still that one at that version. If another write came between, again
    with the row locked until the write commits."""
    db = state.database
    row = models.find_row(db, tenant, key)
    if row is None or not holds(row, expected, tags):
        raise refusal(key, row and row[:3], tags)
    made = checked_changes(state, tenant, row, changes, now)
    with models.one_write(db):
        updated = models.update(db, tenant, key, made, now, None, [(row.id, row.row_version)])
    if updated:
        return updated
    with models.write_transaction(db):
        row = models.find_row(db, tenant, key, locked=True)
        if row is None or not holds(row, expected, tags):
            raise refusal(key, row and row[:3], tags)
        made = checked_changes(state, tenant, row, changes, now)
        return models.update(db, tenant, key, made, now, None, [(row.id, row.row_version)])


def delete_source(tenant, key, expected=None, tags=None):
    """Delete the source, with `expected` and `tags` as in `update_source`;
    a 404 when the tenant has no such key, a 409 or 412 when it is not the
    source asked for."""
    db = database()
    with models.one_write(db):
        deleted = tags != () and models.delete(db, tenant, key, expected, tags or ())
        conditional = expected is not None or tags is not None
        current = None if deleted or not conditional else models.find(db, tenant, key)
    if not deleted:
        raise refusal(key, current, tags)


def holds(row, expected, tags):
    """Whether a stored source meets a write's `rowVersion` and `If-Match`."""
    if expected is not None and row.row_version != expected:
        return False
    return tags is None or (row.id, row.row_version) in tags


def checked_changes(state, tenant, row, changes, now):
    """`changes` to the stored `row`, once the source they make passes its
    connector's checks (else a 400), with its secret columns when they
    change what is secret: a mask keeps the stored value at its place."""
    kept = kept_secrets(state, row)
    if "source_config" in changes:
        config = vault.unmask(changes["source_config"], kept)
    elif row.sealed is None:
        config = row.source_config
    elif kept.values is None:
        raise vault.unreadable()
    else:
        config = vault.reveal(row.source_config, kept.values)
    source = {
        "id": row.id,
        "connector_key": changes.get("connector_key", row.connector_key),
        "source_config": config,
        "status": changes.get("status", row.status),
        "file_format": changes.get("file_format", row.file_format),
    }
    state.catalog.check_source(source)
    if SEALED_BY.isdisjoint(changes):
        return changes
    return changes | sealed_columns(state, tenant, source, kept, now)


def kept_secrets(state, row):
    """What a stored source holds of its secrets; values None when no
    configured key decrypts them (logged, never the token)."""
    if row.sealed is None:
        return vault.Kept({}, row.secrets)
    try:
        return vault.Kept(state.vault.open(row.sealed), row.secrets)
    except vault.Unreadable:
        log.warning("secrets of source %s unreadable: no configured key decrypts them", row.id)
        return vault.Kept(None, row.secrets)


@dataclasses.dataclass(frozen=True)
class Revealed:
    source: Source  # its answer with the secrets in clear
    pointers: list  # the places of the secrets it holds


def reveal_source(tenant, key, role):
    """The source of `key` with its secrets in clear, for a caller of `role`;
    logged (tenant, role, key, the pointers; never a value) and counted.
    A 404 when the tenant has no such key, a 503 when no configured key
    decrypts its secrets."""
    state = ready()
    row = models.find_row(state.database, tenant, key) if storable(key) else None
    if row is None:
        raise Problem(404, f"No data source has key {key!r}.")
    kept = kept_secrets(state, row)
    if kept.values is None:
        raise vault.unreadable()
    source = Source(row.id, row.row_version, with_values(row.answer, kept.values))
    pointers = sorted(kept.values)
    audit.info(
        "secrets revealed: tenant=%r role=%s key=%r pointers=%s",
        tenant,
        role,
        key,
        ",".join(pointers) or "-",
    )
    observability.count_reveal(role)
    return Revealed(source, pointers)


def revealed(state, answer, sealed):
    """An answer (JSON text) with the secrets of its `sealed` token in clear."""
    if sealed is None:
        return answer
    try:
        return with_values(answer, state.vault.open(sealed))
    except vault.Unreadable:
        raise vault.unreadable() from None


def with_values(answer, values):
    """An answer (JSON text) with secret `values` (pointer -> value) in place."""
    if not values:
        return answer
    source = models.json_value(answer)
    source["sourceConfig"] = vault.reveal(source["sourceConfig"], values)
    return to_json(source).decode()


@dataclasses.dataclass
class Rotation:
    rotated: int = 0  # now under the first key
    changed: int = 0  # written meanwhile (by a writer that may hold older keys): run again
    unreadable: int = 0  # no configured key decrypts them: left as they are


def rotate_secrets(batch=500):
    """Encrypt again under the first key every source's secrets that another
    key encrypted, `batch` sources per short transaction, so writes go on
    meanwhile; a token a write changed meanwhile is left to that write. Yields
    the running Rotation after each batch; run again, it goes on where it
    stopped (only tokens of other keys are read)."""
    state = ready()
    db, keys = state.database, state.vault
    tally, after = Rotation(), ""
    while rows := models.sealed_page(db, keys.key_id, after, batch):
        rotated = []
        for source_id, token in rows:
            try:
                rotated.append((source_id, token, keys.rotate(token)))
            except vault.Unreadable:
                log.warning("secrets of source %s unreadable: not rotated", source_id)
                tally.unreadable += 1
        with models.write_transaction(db):
            for source_id, old, new in rotated:
                if models.reseal(db, source_id, old, new, keys.key_id):
                    tally.rotated += 1
                else:
                    tally.changed += 1
        after = rows[-1][0]
        yield tally


def storable(key):
    return 0 < len(key) <= 255 and not UNSTORABLE.search(key)


def refusal(key, current, tags):
    """Why a conditional write wrote nothing: no source (404), one that If-Match
    does not name (412), or one at another row version (409)."""
    if current is None:
        return Problem(404, f"No data source has key {key!r}.")
    current = Source(*current)
    if tags is not None and (current.id, current.row_version) not in tags:
        return Problem(
            412,
            "If-Match names no current version of the source.",
            "Precondition failed",
            PRECONDITION_FAILED,
            current=Fragment(current.answer),
        )
    return Problem(
        409,
        "rowVersion mismatch.",
        "Optimistic concurrency conflict",
        CONFLICT,
        current=Fragment(current.answer),
    )


class Answers:
    """Answers each worker keeps by source id and row version, which every
    write through the API changes; a page whose answers are all kept is read
    from the index and the row versions only, and no answer is written again
    (writing them is, in SQL, the list's largest cost). At most `budget`
    characters of JSON; 0 keeps none."""

    def __init__(self, budget):
        self.budget, self.size, self.kept = budget, 0, {}

    def page(self, database, tenant, limit, after, filters=None):
        """`models.page` columns and the page's answers, from here where all are kept."""
        if self.budget:
            columns = models.page(database, tenant, limit, after, False, filters)
            answers = list(map(self.kept.get, zip(columns.id, columns.row_version, strict=True)))
            if None not in answers:
                return columns, answers
        columns = models.page(database, tenant, limit, after, True, filters)
        self.keep(columns)
        return columns, list(columns.answer)

    def keep(self, columns):
        size = sum(map(len, columns.answer))
        if size > self.budget:  # a page past the whole budget is not kept
            return
        if self.size + size > self.budget:
            self.kept.clear()
            self.size = 0
        self.kept.update(
            zip(zip(columns.id, columns.row_version, strict=True), columns.answer, strict=True)
        )
        self.size += size


# Bulk transfer (transfer.py): export pages and import batches.


def export_pages(tenant=None, size=1000, include_secrets=False):
    """The answers of the sources of `tenant` (else of every tenant, in
    order), in list order, `size` at a time, all read in one snapshot: a
    source written meanwhile comes as it was before, one created meanwhile
    not at all. Secrets masked, or with `include_secrets` in clear (a 503
    Problem when no configured key decrypts a source's)."""
    state = ready()
    db = state.database
    with models.read_snapshot(db):
        for one in [tenant] if tenant is not None else every_tenant(db, size):
            after = None
            while True:
                rows = models.export_page(db, one, size, after)
                if rows and include_secrets:
                    yield [revealed(state, row.answer, row.sealed) for row in rows]
                elif rows:
                    yield [row.answer for row in rows]
                if len(rows) < size:
                    break
                after = rows[-1].position


def every_tenant(db, size):
    after = ""
    while tenants := models.tenants(db, size, after):
        yield from tenants
        after = tenants[-1]


@dataclasses.dataclass(frozen=True)
class Imported:
    created: set  # the keys created
    existing: dict  # each key the tenant had already: the id of its source


def import_sources(tenant, sources, ids):
    """Create `sources` (loaded fields, checked as create_source checks
    them, with distinct keys) with the ids `ids`, in one transaction with
    the tenant's counter, their secrets sealed, as create_source would; a
    key the tenant has already is left as it is. Each is created a
    microsecond after the one before, so the list shows them in the order
    given."""
    state, now = ready(), utcnow()
    db = state.database
    defaults = {name: field.default for name, field in models.DataSource._meta.fields.items()}
    rows = []
    for i, (fields, source_id) in enumerate(zip(sources, ids, strict=True)):
        moment = now + datetime.timedelta(microseconds=i)
        data = {**defaults, **fields, "id": source_id, "tenant_id": tenant}
        data.update(created_at=moment, updated_at=moment, row_version=1)
        data.update(sealed_columns(state, tenant, data, vault.NOTHING_KEPT, moment))
        rows.append(data)
    with models.write_transaction(db):
        created = models.insert_batch(db, rows)
        existing = {}
        for data in rows:
            if data["key"] not in created:
                found = models.find(db, tenant, data["key"])
                existing[data["key"]] = found and found.id  # None: deleted since
    return Imported(created, existing)


def imported():
    """After an import: the statistics a planner needs to read its rows fast."""
    models.analyze(database())
