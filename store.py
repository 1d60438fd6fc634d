"""The store: what the views ask of the database, as named calls with named
results. It owns the rules around the rows: the tenant's counter kept in
each insert's and delete's transaction, `pagination.total`, the answers each
worker keeps, and the 404 and 409 of a write that finds no (current) source.

Each call runs on the current app's own database (`database()`).
"""

import dataclasses
import datetime
import json

import orjson
import peewee
from orjson import Fragment

from datasources import models
from datasources.errors import Problem, migrations_pending
from datasources.schemas import UNSTORABLE
from datasources.settings import service

CONFLICT = "urn:datasources:concurrency-conflict"
PRECONDITION_FAILED = "urn:datasources:precondition-failed"
CHECKED = frozenset(["connector_key", "source_config", "status", "file_format"])


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
            models.migrate(state.database)
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


def create_source(tenant, fields):
    """A new source of `fields`; a 409 when the tenant has its key already."""
    db, now = database(), utcnow()
    data = {name: field.default for name, field in models.DataSource._meta.fields.items()}
    data.update(fields, id=models.new_id(), tenant_id=tenant, created_at=now, updated_at=now)
    data.update(row_version=1)
    try:
        with models.write_transaction(db):
            created = models.insert(db, data)
            models.count_add(db, tenant, 1)
    except peewee.IntegrityError:
        raise Problem(409, f"A data source with key {fields['key']!r} already exists.") from None
    return Source(*created)


def get_source(tenant, key):
    """The source of `key`; a 404 when the tenant has none."""
    storable = 0 < len(key) <= 255 and not UNSTORABLE.search(key)
    found = models.find(database(), tenant, key) if storable else None
    if found is None:
        raise Problem(404, f"No data source has key {key!r}.")
    return Source(*found)


def update_source(tenant, key, changes, expected=None, tags=None):
    """The source after `changes`, when it exists and, with `expected`, its
    row version is still that, and with `tags`, it is one of those (id,
    row_version) pairs (If-Match); else a 404, or a 409 or 412 holding the
    current source."""
    state = ready()
    db = state.database
    with models.write_transaction(db):
        updated = tags != () and models.update(
            db, tenant, key, changes, utcnow(), expected, tags or ()
        )
        if updated and CHECKED.intersection(changes):
            # The source as stored, checked against its connector before the
            # transaction commits: a 400 rolls the update back.
            state.catalog.check_source(stored(updated.answer))
        # Unconditionally, no row updated means none existed when the UPDATE
        # ran; one that READ COMMITTED lets a read see, created since, is no conflict.
        conditional = expected is not None or tags is not None
        current = None if updated or not conditional else models.find(db, tenant, key)
    if updated:
        return Source(*updated)
    raise refusal(key, current, tags)


def delete_source(tenant, key, expected=None, tags=None):
    """Delete the source, with `expected` and `tags` as in `update_source`;
    a 404 when the tenant has no such key, a 409 or 412 when it is not the
    source asked for."""
    db = database()
    with models.write_transaction(db):
        deleted = tags != () and models.delete(db, tenant, key, expected, tags or ())
        if deleted:
            models.count_add(db, tenant, -1)
        conditional = expected is not None or tags is not None
        current = None if deleted or not conditional else models.find(db, tenant, key)
    if not deleted:
        raise refusal(key, current, tags)


def stored(answer):
    """The fields of an answer that a connector checks, by attribute name."""
    try:
        source = orjson.loads(answer)
    except orjson.JSONDecodeError:  # integers past 64 bits, which a sourceConfig may hold
        source = json.loads(answer)
    return {
        "connector_key": source["connectorKey"],
        "source_config": source["sourceConfig"],
        "status": source["status"],
        "file_format": source["fileFormat"],
    }


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


def export_pages(tenant=None, size=1000):
    """The answers of the sources of `tenant` (else of every tenant, in
    order), in list order, `size` at a time, all read in one snapshot: a
    source written meanwhile comes as it was before, one created meanwhile
    not at all."""
    db = database()
    with models.read_snapshot(db):
        for one in [tenant] if tenant is not None else every_tenant(db, size):
            after = None
            while True:
                rows = models.export_page(db, one, size, after)
                if rows:
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
    """Create `sources` (loaded, checked fields as create_source takes them,
    with distinct keys) with the ids `ids`, in one transaction with the
    tenant's counter, as create_source would; a key the tenant has already
    is left as it is. Each is created a microsecond after the one before,
    so the list shows them in the order given."""
    db, now = database(), utcnow()
    defaults = {name: field.default for name, field in models.DataSource._meta.fields.items()}
    rows = []
    for i, (fields, source_id) in enumerate(zip(sources, ids, strict=True)):
        moment = now + datetime.timedelta(microseconds=i)
        data = {**defaults, **fields, "id": source_id, "tenant_id": tenant}
        data.update(created_at=moment, updated_at=moment, row_version=1)
        rows.append(data)
    with models.write_transaction(db):
        created = models.insert_batch(db, rows)
        if created:
            models.count_add(db, tenant, len(created))
        existing = {}
        for data in rows:
            if data["key"] not in created:
                found = models.find(db, tenant, data["key"])
                existing[data["key"]] = found and found.id  # None: deleted since
    return Imported(created, existing)


def imported():
    """After an import: the statistics a planner needs to read its rows fast."""
    models.analyze(database())
