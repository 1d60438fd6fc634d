"""Schedules: `{}` (manual runs only) or `{"cron": …, "timezone": …}`.

`cron` is a standard 5-field expression with Vixie/Debian cron's meaning
(minute hour day-of-month month day-of-week; `*`, lists, ranges, steps
over `*` or a range, JAN-DEC and SUN-SAT, day-of-week 0 and 7 both Sunday;
when both day fields are restricted a day matching either runs, as in
Debian). `timezone` is an IANA name, UTC when left out. cronsim parses and
steps the expression; zones come from the pinned `tzdata` package, so every
machine answers the same whatever its system zone files say.

Daylight-saving time, Debian cron's rule (cronsim follows it), shown at
America/New_York's changes of 2026:

- A skipped hour (8 March, 02:00 EST becomes 03:00 EDT): a job at a fixed
  time in it (`30 2 * * *`) runs once, at 03:00 EDT, the first minute after
  the gap; a job whose minute or hour field starts with `*` (hourly or more
  often) has no runs in the hour that does not exist (`0 * * * *`: 01:00
  EST, then 03:00 EDT).
- A repeated hour (1 November, 02:00 EDT becomes 01:00 EST): a job at a
  fixed time in it (`30 1 * * *`) runs once, at the first 01:30 (EDT,
  UTC-4); a job whose minute or hour field starts with `*` runs in both
  passes (`0 * * * *`: 01:00 EDT, then 01:00 EST).
"""

import datetime
import functools
import importlib.resources
import re
import zoneinfo

from cronsim import CronSim, CronSimError
from marshmallow import ValidationError

KEYS = ("cron", "timezone")
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
ALLOWED = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT",
}
NAMES = {
    "month": "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC",
    "day-of-week": "SUN|MON|TUE|WED|THU|FRI|SAT",
}
FIVE = "give the 5 standard fields: minute hour day-of-month month day-of-week"
RULE = "a range runs low-high, a step is 1 or more"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)  # any moment: cron has no years
LONGEST_ZONE = 64  # IANA names are at most 30-odd characters


def term_grammar(field):
    """One comma-separated term of a Vixie cron field: `*` or a value or a
    range, then maybe a step; a step needs `*` or a range (`5/15` means
    different things to different crons, so it is refused)."""
    value = r"[0-9]+" if field not in NAMES else rf"(?:[0-9]+|{NAMES[field]})"
    return re.compile(rf"(?:\*|{value}-{value})(?:/[0-9]+)?|{value}", re.IGNORECASE)


TERMS = {field: term_grammar(field) for field in FIELDS}


def check_schedule(value):
    """The schedule's problems, each naming its part (`cron: …`,
    `timezone: unknown zone 'Mars/Olympus'`); [] when it can run (or is {})."""
    if not isinstance(value, dict):
        return ['must be an object: {} (manual) or {"cron": …, "timezone": …}']
    problems = [
        f"{key}: unknown key; a schedule has cron and timezone only"
        for key in value
        if key not in KEYS
    ]
    if not value:
        return problems
    if "cron" not in value:
        problems.append(f"cron: is required ({FIVE}); send {{}} for manual runs only")
    elif not isinstance(value["cron"], str):
        problems.append(f"cron: must be a string ({FIVE})")
    else:
        problems += ["cron: " + problem for problem in cron_problems(value["cron"])]
    if "timezone" in value:
        problems += ["timezone: " + problem for problem in zone_problems(value["timezone"])]
    return problems


@functools.lru_cache(maxsize=1024)  # a platform's schedules repeat; parsing is the cost
def cron_problems(expression):
    """The problems of a cron expression, as a tuple (cached: immutable)."""
    return tuple(cron_expression_problems(expression))


def cron_expression_problems(expression):
    parts = expression.split()
    if expression.lstrip().startswith("@"):
        return ["@ shorthands are not taken; write the 5 fields (@daily is 0 0 * * *)"]
    if len(parts) in (6, 7):
        kind = "seconds-first or Quartz" if len(parts) == 6 else "Quartz (seconds … year)"
        return [f"{len(parts)} fields is the {kind} form; {FIVE}"]
    if len(parts) != 5:
        return [f"has {len(parts)} fields; {FIVE}"]
    problems = []
    for i, (field, part) in enumerate(zip(FIELDS, parts, strict=True)):  # every bad field
        bad = next((t for t in part.split(",") if not TERMS[field].fullmatch(t)), None)
        if bad is not None:
            problems.append(f"{field}: {shown(bad)} is not standard cron ({syntax(bad)})")
        elif not parses(["*"] * i + [part] + ["*"] * (4 - i)):
            problems.append(f"{field}: out of range (allowed {ALLOWED[field]}; {RULE})")
    if problems:
        return problems
    if not parses(parts):
        return ["never fires: no month it names has the days it names"]
    try:
        next(CronSim(" ".join(parts), START))
    except StopIteration:
        return ["never fires"]
    return []


def syntax(term):
    if "?" in term or re.search("[LW#]", term.upper().replace("JUL", "").replace("WED", "")):
        return "?, L, W and # are Quartz extensions"
    if re.fullmatch(r"[0-9A-Za-z]+/[0-9]+", term):
        return "a step needs * or a range: */15 or 5-59/15"
    return "values, names, ranges, lists and steps only"


def parses(parts):
    try:
        CronSim(" ".join(parts), START)
    except CronSimError:
        return False
    return True


def zone_problems(name):
    if not isinstance(name, str):
        return ["must be an IANA zone name such as 'America/New_York' (leave it out for UTC)"]
    if len(name) > LONGEST_ZONE:
        return ["unknown zone (longer than any IANA name)"]
    if name not in zone_names():
        return [f"unknown zone {name!r}"]
    return []


def shown(text, limit=20):
    return repr(text if len(text) <= limit else text[:limit] + "…")


@functools.cache
def zone_names():
    """The IANA names the pinned tzdata package holds."""
    return frozenset(importlib.resources.files("tzdata").joinpath("zones").read_text().split())


@functools.cache
def zone(name):
    """The zone `name` from the tzdata package (not the system's files)."""
    if name not in zone_names():
        raise ValueError(f"unknown zone {name!r}")
    path = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with path.open("rb") as file:
        return zoneinfo.ZoneInfo.from_file(file, key=name)


def next_runs(schedule, after, count=1):
    """The next `count` times a checked schedule runs strictly after
    `after` (aware; naive means UTC), as aware datetimes in the schedule's
    zone, by the daylight-saving rule above; [] for a manual schedule."""
    if not schedule:
        return []
    name = schedule.get("timezone")
    tz = datetime.UTC if name is None else zone(name)
    if after.tzinfo is None:
        after = after.replace(tzinfo=datetime.UTC)
    runs, found = CronSim(schedule["cron"], after.astimezone(tz)), []
    for _ in range(count):
        try:
            found.append(next(runs))
        except StopIteration:
            break
    return found


def validate_schedule(value):
    """`check_schedule` as a marshmallow validator (`validate=validate_schedule`)."""
    problems = check_schedule(value)
    if problems:
        raise ValidationError(problems)
