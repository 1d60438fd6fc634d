"""`pip install` of this repository (not editable) into a fresh venv, beside a
host that pins a neighbouring Flask and Werkzeug and has its own `app.py`:
it resolves, imports as one package, declares MIT and ranges, and serves
under gunicorn with the repository's server settings.

One venv for the module (pip's cache is reused between runs)."""

import collections
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest
import requests
from conftest import SECRET, auth
from packaging.requirements import Requirement
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port, wait_for

REPO = pathlib.Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    ".hypothesis",
    ".ruff_cache",
    "instance",
    "tests",
    "bench",
    "__pycache__",
    "*.egg-info",
    "build",
)
HOST_PINS = {"Flask": "3.1.2", "Werkzeug": "3.1.8"}  # neighbours of requirements.txt's

Installed = collections.namedtuple("Installed", "venv python site host")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the repository installed into a fresh venv by a host's
    requirements file, which pins its own Flask and Werkzeug."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=SKIP)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    host = root / "host"
    host.mkdir()
    pins = [f"{name}=={version}" for name, version in HOST_PINS.items()]
    (host / "requirements.txt").write_text("\n".join([*pins, str(source)]) + "\n")
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        + ["-r", "requirements.txt"],
        cwd=host,
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    return Installed(venv, venv / "bin" / "python", site, host)


def run_python(installed, code, cwd):
    result = subprocess.run(
        [str(installed.python), "-c", code], cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_hosts_pins_are_neighbours_of_ours():
    ours = dict(
        line.split("==", 1)
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.split("==")[0] in HOST_PINS
    )
    for name, version in HOST_PINS.items():
        assert ours[name] != version and ours[name].rsplit(".", 1)[0] == version.rsplit(".", 1)[0]


METADATA = """
import importlib.metadata as metadata, json
ours = metadata.distribution("datasources-api")
print(json.dumps({
    "license": ours.metadata.get_all("License-Expression"),
    "license_files": ours.metadata.get_all("License-File"),
    "license_text": ours.read_text("licenses/LICENSE"),
    "requires": ours.requires,
    "versions": {name: metadata.version(name) for name in ("Flask", "Werkzeug")},
}))
"""


def test_installed_metadata_is_mit_with_ranges_and_the_hosts_pins_stand(installed):
    found = run_python(installed, METADATA, installed.host)
    assert found["versions"] == HOST_PINS
    assert found["license"] == ["MIT"] and found["license_files"] == ["LICENSE"]
    assert found["license_text"].startswith("MIT License\n")
    assert found["license_text"] == (REPO / "LICENSE").read_text()
    requirements = [Requirement(line) for line in found["requires"]]
    assert {r.name for r in requirements} >= {"Flask", "Werkzeug", "peewee", "gunicorn"}
    for requirement in requirements:
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and not operators & {"==", "==="}, requirement
    flask = next(r for r in requirements if r.name == "Flask")
    assert flask.specifier.contains(HOST_PINS["Flask"]) and flask.specifier.contains("3.1.3")


HOST_APP = """
from flask import Flask

import models
from datasources.app import init_app

app = Flask(__name__, instance_path=INSTANCE)


@app.get("/")
def home():
    return {"host": models.NAME}


init_app(app, identity=lambda: ("t_host", "editor"))
"""

PROBE = """
import json, sys
import app, models
client = app.app.test_client()
created = client.post("/api/v1/data-sources", json={"key": "k", "name": "n"})
listed = client.get("/api/v1/data-sources").get_json()
print(json.dumps({
    "home": client.get("/").get_json(),
    "created": created.status_code,
    "listed": [s["key"] for s in listed["data"]],
    "openapi": client.get("/api/v1/openapi.json").status_code,
    "app_file": app.__file__,
    "models_file": models.__file__,
    "ours": sorted(m for m in sys.modules if m.startswith("datasources")),
}))
"""


def test_installs_as_one_package_beside_a_host_with_its_own_app(installed, tmp_path):
    for name in ("app.py", "models.py", "schemas.py", "wsgi.py", "openapi.py"):
        assert not (installed.site / name).exists(), f"{name} installed at top level"
    assert (installed.site / "datasources" / "migrations" / "0001_initial.py").exists()
    assert (installed.site / "datasources" / "gunicorn_conf.py").exists()

    host = tmp_path / "host"
    host.mkdir()
    (host / "app.py").write_text(f"INSTANCE = {str(tmp_path / 'instance')!r}\n" + HOST_APP)
    (host / "models.py").write_text('NAME = "the host\'s models"\n')
    result = run_python(installed, PROBE, host)
    assert result["home"] == {"host": "the host's models"}
    assert result["created"] == 201 and result["listed"] == ["k"]
    assert result["openapi"] == 200
    assert result["app_file"] == str(host / "app.py")
    assert result["models_file"] == str(host / "models.py")
    assert "datasources.app" in result["ours"] and "datasources.models" in result["ours"]


# gunicorn with the installed settings, from a folder that is not the repository.


class InstalledGunicorn:
    """`gunicorn -c python:datasources.gunicorn_conf datasources.wsgi:app`,
    the documented command, bound to a free loopback port (`-b` wins over the
    settings' default, as they say). TMPDIR is ours, so the metrics folder
    the settings make is found and its removal at exit seen."""

    def __init__(self, installed, folder, env):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.tmp = folder / "tmp"
        self.tmp.mkdir()
        self.log_path = folder / "gunicorn.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DATASOURCES_")}
        base.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [
            str(installed.venv / "bin" / "gunicorn"),
            "-c",
            "python:datasources.gunicorn_conf",
        ]
        command += ["-b", self.url.removeprefix("http://"), "datasources.wsgi:app"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=folder,
                env={**base, "TMPDIR": str(self.tmp), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self):
        return self.log_path.read_text(errors="replace")

    def ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def workers(self):
        return set(map(int, re.findall(r"Booting worker with pid: (\d+)", self.log())))

    def metrics_folders(self):
        return list(self.tmp.glob("datasources-metrics-*"))

    def stop(self):
        """SIGTERM, as a platform stops it; its exit code. Nothing is left running."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # a master or worker that hung
        except ProcessLookupError:
            pass
        return self.process.wait()


def requests_total(url):
    """`datasources_requests_total` of one scrape, summed over its series."""
    text = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "datasources_requests_total"
    )


def counted_by(folder):
    """The pids of the workers that have counted a request: multiprocess mode
    keeps a file per process (no response says which worker answered)."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob("counter_*.db")}


def test_the_installed_package_serves_with_the_repositorys_server_settings(installed, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{folder / 'datasources.db'}",
        "DATASOURCES_JWT_SECRET": SECRET,
        "WEB_CONCURRENCY": "2",
    }
    server = InstalledGunicorn(installed, folder, env)
    try:
        wait_for(server.ready, what="gunicorn to answer /healthz")
        wait_for(lambda: len(server.workers()) == 2, what="both workers to boot")
        assert "Using worker: gthread" in server.log()
        (metrics,) = server.metrics_folders()
        # New connections, so the kernel spreads them over both workers;
        # after each batch every answered request must be in the scrape.
        sent, scrapes, expected = 0, [], []
        while not server.workers() <= counted_by(metrics) and sent < 300:
            for _ in range(10):
                listed = requests.get(
                    f"{server.url}/api/v1/data-sources",
                    headers={**auth(), "Connection": "close"},
                    timeout=5,
                )
                assert listed.status_code == 200, listed.text
                sent += 1
            scrapes.append(requests_total(server.url))
            expected.append(sent)
        # <=: the master's file holds the series it exports at 0 from start-up
        assert server.workers() <= counted_by(metrics), f"one worker served all {sent}"
        scrapes += [requests_total(server.url) for _ in range(6)]
        assert scrapes == expected + [sent] * 6
    finally:
        exit_code = server.stop()
    assert exit_code == 0, server.log()
    assert server.metrics_folders() == []  # removed at exit
