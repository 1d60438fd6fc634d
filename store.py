"""The store: what the views ask of the database, as named calls with named
results. It owns the rules around the rows: the tenant's counter kept in
each insert's and delete's transaction, `pagination.total`, the answers each
worker keeps, and the 404 and 409 of a write that finds no (current) source.

Each call runs on the current app's own database (`database()`).
"""

import dataclasses
import datetime

import peewee
from orjson import Fragment

from datasources import models
from datasources.errors import Problem, migrations_pending
from datasources.settings import service

CONFLICT = "urn:datasources:concurrency-conflict"


@dataclasses.dataclass(frozen=True)
class Source:
    """One source as the API answers it: `answer` is its JSON text."""

    id: str
    row_version: int
    answer: str


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


def list_sources(tenant, limit, after=None):
    """The tenant's sources, oldest first, `limit` after the position `after`."""
    state = ready()
    db = state.database
    columns, answers = state.answers.page(db, tenant, limit + 1, after)
    total = columns.total[0] if columns.id else models.count(db, tenant)
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


def update_source(tenant, key, changes, expected=None):
    """The source after `changes`, when it exists and, with `expected`, its
    row version is still that; else a 404 or a 409 holding the current one."""
    db = database()
    with models.write_transaction(db):
        updated = models.update(db, tenant, key, changes, utcnow(), expected)
        # Without `expected`, no row updated means none existed when the UPDATE
        # ran; one that READ COMMITTED lets a read see, created since, is no conflict.
        current = None if updated or expected is None else models.find(db, tenant, key)
    if updated:
        return Source(*updated)
    if current is None:
        raise Problem(404, f"No data source has key {key!r}.")
    raise Problem(
        409,
        "rowVersion mismatch.",
        "Optimistic concurrency conflict",
        CONFLICT,
        current=Fragment(Source(*current).answer),
    )


def delete_source(tenant, key):
    """Delete the source; a 404 when the tenant has no such key."""
    db = database()
    with models.write_transaction(db):
        deleted = models.delete(db, tenant, key)
        if deleted:
            models.count_add(db, tenant, -1)
    if not deleted:
        raise Problem(404, f"No data source has key {key!r}.")


class Answers:
    """Answers each worker keeps by source id and row version, which every
    write through the API changes; a page whose answers are all kept is read
    from the index and the row versions only, and no answer is written again
    (writing them is, in SQL, the list's largest cost). At most `budget`
    characters of JSON; 0 keeps none."""

    def __init__(self, budget):
        self.budget, self.size, self.kept = budget, 0, {}

    def page(self, database, tenant, limit, after):
        """`models.page` columns and the page's answers, from here where all are kept."""
        if self.budget:
            columns = models.page(database, tenant, limit, after, answers=False)
            answers = list(map(self.kept.get, zip(columns.id, columns.row_version, strict=True)))
            if None not in answers:
                return columns, answers
        columns = models.page(database, tenant, limit, after)
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
