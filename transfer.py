"""Bulk export and import of data sources as JSON Lines, for operators:
`flask datasources export` and `flask datasources import` (standalone:
`flask --app datasources.app export|import`).

Export writes each source as the API answers it, one a line, by tenant and
then in list order, a page at a time from one read snapshot. Import creates
the sources of a file as POST creates them (the same strict JSON, schema,
connector checks and tenant counter), a batch per transaction; a line that
gives no new source is reported with its number and skipped, and with
`--strict` nothing is written unless every line gives one. Both stream:
memory stays flat however long the file.
"""

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import multiprocessing
import os
import secrets
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from datasources import models, store, vault
from datasources.errors import Problem
from datasources.inputs import strict_json
from datasources.schemas import source_schema
from datasources.settings import service

PAGE = 1000  # sources per export page
BATCH = 1000  # lines per import transaction
SECRETS_NOTE = (
    "--include-secrets: this export holds every secret in clear, decrypted with the secret "
    "keys (DATASOURCES_SECRET_KEYS); keep the file as you keep the keys."
)


def add_commands(group):
    """`export` and `import` on the app's or the blueprint's command group."""
    group.add_command(export_command)
    group.add_command(import_command)


def check_tenant(ctx, option, tenant):
    """A tenant as the API accepts one from a caller's identity (auth.authorize)."""
    if tenant is not None and not (
        0 < len(tenant) <= 255 and tenant.isprintable() and tenant == tenant.strip()
    ):
        raise click.BadParameter("1 to 255 printable characters, no space at either end.")
    return tenant


@click.command("export")
@with_appcontext
@click.option("--tenant", callback=check_tenant, help="Only this tenant's sources (default: all).")
@click.option("--include-secrets", is_flag=True, help="Secrets in clear (needs the secret keys).")
@click.option(
    "--output",
    type=click.File("wb", lazy=False, atomic=True),
    default="-",
    help="The file to write, whole or not at all (default: stdout).",
)
def export_command(tenant, include_secrets, output):
    """Write sources as JSON Lines: each as the API answers it, by tenant,
    then oldest first."""
    if include_secrets:
        click.echo(SECRETS_NOTE, err=True)
    database = store.database()
    with database.connection_context():
        try:
            for answers in store.export_pages(tenant, PAGE, include_secrets):
                output.write("".join(answer + "\n" for answer in answers).encode())
        except Problem as problem:  # secrets no configured key decrypts: nothing written
            raise click.ClickException(str(problem)) from None


@click.command("import")
@with_appcontext
@click.argument("file", type=click.File("rb"))
@click.option("--tenant", required=True, callback=check_tenant, help="The sources' tenant.")
@click.option("--strict", is_flag=True, help="Write nothing unless every line gives a source.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=lambda: min(os.cpu_count() or 1, 8),
    show_default="the number of CPUs, at most 8",
    help="Processes that check lines; 1: all in this one.",
)
def import_command(file, tenant, strict, jobs):
    """Create the sources of a JSON Lines FILE ("-": stdin), one a line:
    each a POST body, or an exported source. An existing key is reported,
    never overwritten."""
    progress = Progress(file_size(file)) if sys.stderr.isatty() else None
    database = store.database()
    with database.connection_context():
        tally = import_stream(file, tenant, strict, progress, jobs)
    if progress:
        progress.clear()
    click.echo(tally.summary())
    if tally.errors or (strict and tally.skipped):
        sys.exit(1)


def file_size(stream):
    with contextlib.suppress(OSError, ValueError):
        return os.fstat(stream.fileno()).st_size or None
    return None


@dataclasses.dataclass
class Tally:
    lines: int = 0
    read: int = 0  # bytes
    created: int = 0
    skipped: int = 0  # lines whose key the tenant has already
    errors: int = 0  # lines that are not a source: not JSON, invalid, a key repeated
    written: bool = True  # False: --strict found a problem and wrote nothing
    started: float = dataclasses.field(default_factory=time.monotonic)

    def summary(self):
        seconds = time.monotonic() - self.started
        created = f"created {self.created}" if self.written else "created 0 (--strict)"
        rate = self.lines / seconds if seconds else 0
        return (
            f"{created}, skipped {self.skipped}, errors {self.errors}, "
            f"{self.lines} lines in {seconds:.2f} s, {rate:.0f} lines/s"
        )


class NothingWritten(Exception):
    """--strict found a line that gives no source: roll every batch back."""


def import_stream(stream, tenant, strict=False, progress=None, jobs=1):
    """Create the sources of a stream of JSON Lines for `tenant`, BATCH lines
    a transaction (with `strict`, all in one, rolled back unless every line
    gives a source), the lines checked in `jobs` processes; reports each
    line that gives none on stderr, in line order. The Tally."""
    tally, ids, state = Tally(), NewIds(), service()
    checker = Checker(state.catalog, state.settings.max_body_bytes)
    chunks = chunked(read_lines(stream, checker.limit), BATCH)
    database = store.database()
    whole = models.write_transaction(database) if strict else contextlib.nullcontext()
    try:
        with models.bulk_writes(database), whole:
            for chunk, checked in check_chunks(chunks, checker, jobs):
                tally.lines = chunk[-1][0]
                tally.read += sum(len(line or b"") for _, line in chunk)
                problems = import_chunk(checked, tenant, ids, tally)
                if progress and problems:
                    progress.clear()
                for number, text in sorted(problems):
                    click.echo(f"line {number}: {text}", err=True)
                if progress:
                    progress.update(tally)
            if strict and (tally.errors or tally.skipped):
                raise NothingWritten()
    except NothingWritten:
        tally.written = False
    if tally.written and tally.created:
        store.imported()
    return tally


def import_chunk(checked, tenant, ids, tally):
    """Create the sources of a checked chunk (Checker.check); the (number,
    problem) of each line that gives none."""
    problems, batch = [], {}  # batch: key -> (line number, fields)
    for number, fields, problem in checked:
        if problem is not None:
            problems.append((number, problem))
        elif fields["key"] in batch:
            key = fields["key"]
            problems.append((number, f"key {key!r} repeats line {batch[key][0]}."))
        else:
            batch[fields["key"]] = number, fields
    tally.errors += len(problems)
    if batch:
        sources = [fields for _, fields in batch.values()]
        imported = store.import_sources(tenant, sources, [ids.of(key) for key in batch])
        tally.created += len(imported.created)
        for key, source_id in imported.existing.items():
            number = batch[key][0]
            if source_id == ids.of(key):
                problems.append((number, f"key {key!r} repeats an earlier line."))
                tally.errors += 1
            else:
                problems.append((number, f"key {key!r} exists already: not overwritten."))
                tally.skipped += 1
    return problems


def read_lines(stream, limit):
    """(number, bytes) of each line of a binary stream, counted from 1; the
    bytes are None for a line longer than `limit` (the API's body limit),
    which is skipped without being held."""
    for number in itertools.count(1):
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(limit + 1)
            line = None
        yield number, line


def chunked(iterable, size):
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# Checking lines costs more than writing them (marshmallow and jsonschema),
# so with jobs > 1, once a file has more than one chunk, worker processes
# check chunks while this one writes, a few chunks ahead at most (memory
# stays flat), the results in file order.


def check_chunks(chunks, checker, jobs):
    """(chunk, its Checker.check) of each chunk, in order; checked in `jobs`
    worker processes from the second chunk on, or all here."""
    first = next(chunks, None)
    if first is None:
        return
    yield first, checker.check(first)
    if jobs == 1:
        yield from ((chunk, checker.check(chunk)) for chunk in chunks)
        return
    # Forked, the workers start at once with the app's catalog (spawned, each
    # would import everything again); they never touch the inherited database
    # connection, and leave by os._exit, which closes nothing of it.
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(jobs, context, initializer=start_worker, initargs=(checker,))
    pending = collections.deque()
    try:
        for chunk in chunks:
            pending.append((chunk, pool.submit(check_in_worker, chunk)))
            if len(pending) > 2 * jobs:
                chunk, checked = pending.popleft()
                yield chunk, checked.result()
        while pending:
            chunk, checked = pending.popleft()
            yield chunk, checked.result()
    finally:
        pool.shutdown(cancel_futures=True)


WORKER = []  # in a worker process: the Checker it was forked with


def start_worker(checker):
    WORKER.append(checker)


def check_in_worker(chunk):
    return WORKER[0].check(chunk)


class Checker:
    """Lines read as POST reads and checks a body (inputs.json_body,
    source_schema, the connector's schema), with an app's catalog and its
    body limit."""

    def __init__(self, catalog, limit):
        self.catalog, self.limit = catalog, limit

    def check(self, chunk):
        """(number, fields, None) of each line of a chunk of (number, line)
        that gives a source, (number, None, problem) of each that does not;
        blank lines are left out."""
        checked = []
        for number, line in chunk:
            if line is not None and not line.strip():
                continue
            try:
                checked.append((number, self.fields(line), None))
            except LineProblem as problem:
                checked.append((number, None, str(problem)))
        return checked

    def fields(self, line):
        """The loaded fields of a line, read-only fields ignored; else a LineProblem."""
        if line is None:
            raise LineProblem(f"longer than {self.limit} bytes.")
        body = strict_json(line.removesuffix(b"\n").removesuffix(b"\r"), not_json)
        if not isinstance(body, dict):
            raise LineProblem("not a JSON object.")
        try:
            fields = source_schema.load(body)
            vault.unmask(fields["source_config"], vault.NOTHING_KEPT)  # a mask keeps nothing here
            return self.catalog.check_source(fields)
        except ValidationError as exc:
            raise LineProblem("invalid: " + messages(exc.messages) + ".") from None


class LineProblem(Exception):
    """Why a line gives no source, in words that never quote its values."""


def not_json(reason, text=None, position=None):
    where = "" if position is None else f" at column {position + 1}"
    return LineProblem(f"not valid JSON: {reason}{where}.")


def messages(errors):
    """A validation error's messages by field, on one line."""
    parts = []
    for name, texts in sorted(errors.items()):
        texts = texts if isinstance(texts, list) else [texts]
        parts.append(f"{name}: " + " ".join(str(text).rstrip(".") + "." for text in texts))
    return " ".join(parts).rstrip(".")


class NewIds:
    """The ids of one import's sources: `ds_` and 20 hex digits, as
    models.new_id's, unguessable without this import's secret (80 bits, not
    a time: a million of them stay apart), but one per key, so a batch that
    finds a key taken by the id this import gives it knows the key repeats
    an earlier line, without keeping every key read."""

    def __init__(self):
        self.secret = secrets.token_bytes(32)

    def of(self, key):
        digest = hashlib.blake2b(key.encode(), key=self.secret, digest_size=10)
        return f"ds_{digest.hexdigest()}"


class Progress:
    """One line on a terminal's stderr, redrawn at most 5 times a second:
    lines read, their rate, errors, and how far into the file."""

    def __init__(self, size=None):
        self.size, self.drawn = size, 0.0

    def update(self, tally):
        now = time.monotonic()
        if now - self.drawn < 0.2:
            return
        self.drawn = now
        rate = tally.lines / max(now - tally.started, 1e-9)
        done = f"{100 * tally.read / self.size:3.0f}% " if self.size else ""
        line = f"{done}{tally.lines:,} lines, {rate:,.0f}/s, {tally.errors:,} errors"
        click.echo(f"\r{line}\x1b[K", err=True, nl=False)

    def clear(self):
        if self.drawn:
            click.echo("\r\x1b[K", err=True, nl=False)
            self.drawn = 0.0
