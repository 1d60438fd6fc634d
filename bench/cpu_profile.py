"""CPU per request of one scenario, in process, and where it goes.

    .venv/bin/python bench/cpu_profile.py list            # first page of 1,000 sources
    .venv/bin/python bench/cpu_profile.py deep --top 30   # a page near the end, via its cursor
    .venv/bin/python bench/cpu_profile.py create          # also: update
    .venv/bin/python bench/cpu_profile.py create_secrets  # two secrets; also: update_secrets

The service (`create_app`, SQLite in a temp folder, JSON logs to /dev/null)
answers WSGI calls with no server and no network: `process_time` per request,
then cProfile's top functions by own time. A tight loop flatters every figure
(caches stay warm): under gunicorn the same code costs about twice as much, so
compare figures of one run of this script, and confirm with bench/run.py.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time

import jwt
from werkzeug.test import EnvironBuilder

from datasources.app import create_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET = "profile-secret-" + "p" * 40
API = "/api/v1/data-sources"
SOURCE = {
    "name": "Salesforce contacts",
    "connectorKey": "salesforce",
    "sourceConfig": {"objectName": "Contact", "query": "SELECT Id, Email FROM Contact"},
    "syncMode": "incremental",
    "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
    "status": "active",
}
S3 = {"bucket": "orders", "aws_access_key_id": "AKIA0001"}
SCENARIOS = ("list", "deep", "create", "update", "create_secrets", "update_secrets")


class Service:
    def __init__(self):
        folder = tempfile.mkdtemp()
        self.app = create_app(
            {
                "DATASOURCES_DATABASE_URL": f"sqlite:///{folder}/profile.db",
                "DATASOURCES_JWT_SECRET": SECRET,
            }
        )
        token = jwt.encode({"tenant_id": "t_profile", "role": "editor"}, SECRET, "HS256")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.created = 0

    def call(self, method, body=None, query=None):
        builder = EnvironBuilder(
            method=method, path=API, headers=self.headers, query_string=query, json=body
        )
        status = []
        data = b"".join(self.app(builder.get_environ(), lambda s, h, e=None: status.append(s)))
        return status[0], data

    def request(self, scenario):
        if scenario == "list":
            return self.call("GET")
        if scenario == "deep":
            return self.call("GET", query={"cursor": self.deep_cursor})
        self.created += 1
        if scenario == "create":
            return self.call("POST", {"key": f"new-{self.created}", **SOURCE})
        secret = {"aws_secret_access_key": f"secret-{self.created}"}
        if scenario == "create_secrets":
            config = {**S3, **secret}
            body = {**SOURCE, "connectorKey": "s3", "sourceConfig": config}
            return self.call("POST", {**body, "key": f"new-{self.created}"})
        if scenario == "update_secrets":
            config = {**S3, "aws_access_key_id": "**********", **secret}
            return self.call("PUT", {"key": "s3-1", "sourceConfig": config})
        return self.call("PUT", {"key": "k-5", "name": "renamed", "status": "paused"})

    def seed(self, count):
        for i in range(count):
            self.call("POST", {"key": f"k-{i}", **SOURCE})
        s3 = {**SOURCE, "connectorKey": "s3", "sourceConfig": {**S3, "aws_secret_access_key": "s"}}
        self.call("POST", {**s3, "key": "s3-1"})
        cursor = None
        for _ in range(count // 25 - 1):  # the cursor before the last page but one
            query = {"cursor": cursor} if cursor else None
            cursor = json.loads(self.call("GET", query=query)[1])["pagination"]["nextCursor"]
        self.deep_cursor = cursor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    sys.stdout = open(os.devnull, "w")  # the request log
    service = Service()
    service.seed(1000)
    for _ in range(300):  # warm-up
        service.request(args.scenario)
    started = time.process_time()
    for _ in range(args.requests):
        service.request(args.scenario)
    cpu_us = (time.process_time() - started) / args.requests * 1e6
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.requests):
        service.request(args.scenario)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(
        os.environ.get("PROFILE_SORT", "tottime")
    ).print_stats(args.top)
    print(f"{args.scenario}: {cpu_us:.0f} µs CPU per request (in process)", file=sys.stderr)
    print(out.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    main()
