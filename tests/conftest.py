"""Shared fixtures. Integration tests use real services:

- PostgreSQL: the cluster `make test` starts (``ACTREC_TEST_PG_URL``).
- S3: moto's server over HTTP on 127.0.0.1 (``ACTREC_TEST_S3_ENDPOINT``, or one started here).

Under CI (``ACTREC_REQUIRE_SERVICES=1``, set by scripts/run_tests.sh when ``CI`` is set) nothing may
be skipped: a missing service fails its test, and so does any other skip (a ``pytest.skip``, a
``skipif`` that holds, a module that cannot be collected), with the test and the reason named. A
suite that skips what it cannot run passes by accident.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from pathlib import Path

import pytest

# Ray on loopback only, never the machine's network address (see README, Troubleshooting).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
for _var, _val in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_var, _val)

sys.path.insert(0, str(Path(__file__).parent))

REQUIRE_SERVICES = os.environ.get("ACTREC_REQUIRE_SERVICES") == "1"


def _skip_is_a_failure(report, what: str) -> None:
    """Under ACTREC_REQUIRE_SERVICES=1, turn a skipped ``report`` into a failure naming ``what``."""
    if not (REQUIRE_SERVICES and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{what} was skipped ({reason.removeprefix('Skipped: ')}), but ACTREC_REQUIRE_SERVICES=1 "
        "requires every test to run: install or start what it needs"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _skip_is_a_failure(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _skip_is_a_failure(outcome.get_result(), f"collecting {collector.nodeid}")


def _missing(service: str, fix: str) -> None:
    msg = f"{service} is not available: {fix}"
    if REQUIRE_SERVICES:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _cli_logging_ends_with_its_test():
    """A test that runs ``actrec_batch.cli.main`` in this process configures the root logger for the
    CLI (its stderr handler at the CLI's level). Undo that afterwards, so a later test sees the
    logging it would see on its own (e.g. that a stage prints nothing)."""
    root = logging.getLogger()
    level = root.level
    yield
    cli = sys.modules.get("actrec_batch.cli")
    if cli is not None:
        for handler in [h for h in root.handlers if isinstance(h, cli._CurrentStderr)]:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the real PostgreSQL started by `make test`."""
    url = os.environ.get("ACTREC_TEST_PG_URL")
    if not url:
        env_file = Path(__file__).parents[1] / ".actrec" / "test-services.env"
        if env_file.is_file():
            url = env_file.read_text().strip().partition("=")[2]
    if not url:
        _missing("PostgreSQL", "run `make test` (it starts the cluster) or set ACTREC_TEST_PG_URL")
    return url


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """Endpoint of a real moto S3 server over HTTP on 127.0.0.1 (never moto's in-process mock)."""
    from s3_server import ensure_s3_server

    return ensure_s3_server()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the test server for one test, as ACTREC_STORE users would through the environment."""
    from s3_server import s3_test_env

    for name, value in s3_test_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str):
    """One client for the session (making one costs about 0.1 s), built by the code under test."""
    from s3_server import s3_test_env

    from actrec_batch.storage import make_s3_client

    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_test_env(s3_endpoint).items():
            patch.setenv(name, value)
        return make_s3_client()


@pytest.fixture
def s3_bucket(s3_client, s3_env: str):
    """A fresh bucket per test, with the environment pointed at the server; emptied and removed afterwards."""
    name = f"actrec-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request, tmp_path):
    """A fresh, empty warehouse on each engine: a DuckDB file, and a schema of its own on the real
    PostgreSQL (``search_path`` in the URL), dropped afterwards."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path}/warehouse.duckdb"
        return
    import sqlalchemy as sa

    base = request.getfixturevalue("pg_url")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium (Debian's, installed by scripts/install_browser.sh) driven by Selenium
    through Debian's chromedriver, 1600x1000, with a fresh profile; quit afterwards."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        _missing("Chromium", "run `make browser` (scripts/install_browser.sh: chromium + chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium", "run `make install` (selenium is a dev dependency)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# --- Suite diagnostics -------------------------------------------------------------------------
# CI stops a run at 90 minutes and prints only its tail, so a slow or wedged suite must say where
# its time went before that: seconds per module and the processes a module left running (printed
# at the end), and, for a test stuck where pytest-timeout's signal cannot reach it (inside C code),
# a dump of every thread and of the process tree, then an exit.

_MODULE_TIMES: dict[str, float] = {}
_LEFTOVERS: list[str] = []
_WEDGED_MARGIN_S = float(
    os.environ.get("ACTREC_WEDGED_MARGIN_S", "180")
)  # past the test's own timeout: pytest-timeout fires first whenever it can
# Where a wedged test's thread dump goes (pytest captures fd 2 during a test, and the process
# exits right after the dump): scripts/run_tests.sh prints it when pytest is gone.
_WEDGED_LOG = Path(__file__).parents[1] / ".actrec" / "wedged-test.txt"
_wedged_file = None


def _children() -> dict[int, str]:
    """Descendants of this process: pid -> command line (from /proc; empty where there is none)."""
    parents: dict[int, int] = {}
    cmds: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
        cmds[int(entry.name)] = cmd
    mine, frontier = {}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in mine:
                mine[child] = cmds.get(child, "")
                frontier.append(child)
    return mine


def _module_of(item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import faulthandler
    import time

    global _wedged_file
    if _wedged_file is None:
        _WEDGED_LOG.parent.mkdir(parents=True, exist_ok=True)
        _wedged_file = _WEDGED_LOG.open("w")
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0] if marker and marker.args else item.config.getini("timeout") or 600)
    _wedged_file.seek(0)
    _wedged_file.truncate()
    _wedged_file.write(f"{item.nodeid} ran past {limit:.0f} + {_WEDGED_MARGIN_S} s; every thread's stack:\n")
    _wedged_file.flush()
    faulthandler.dump_traceback_later(limit + _WEDGED_MARGIN_S, exit=True, file=_wedged_file)
    start = time.monotonic()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        _wedged_file.seek(0)
        _wedged_file.truncate()
        _wedged_file.flush()
        module = _module_of(item)
        _MODULE_TIMES[module] = _MODULE_TIMES.get(module, 0.0) + time.monotonic() - start
        if nextitem is None or _module_of(nextitem) != module:
            left = _children()
            if left:
                names = "; ".join(f"{pid} {cmd[:100]}" for pid, cmd in sorted(left.items())[:8])
                _LEFTOVERS.append(f"after {module}: {len(left)} process(es) still running: {names}")


def pytest_terminal_summary(terminalreporter):
    if not _MODULE_TIMES:
        return
    tr = terminalreporter
    tr.section("seconds per module (slowest 15)")
    for module, seconds in sorted(_MODULE_TIMES.items(), key=lambda kv: -kv[1])[:15]:
        tr.write_line(f"{seconds:8.1f} s  {module}")
    if _LEFTOVERS:
        tr.section("processes a module left running")
        for line in _LEFTOVERS[-20:]:
            tr.write_line(line)


# Terraform first. Twice, in a full suite, a `terraform apply` started late in the session spun
# (its provider at 100% of a core, no request sent) while the same test alone never did (8 of 8),
# and stop 21's CI ran out of time inside test_terraform. The modules that run Terraform go before
# every module that starts Airflow, Ray or browsers, whatever state those leave behind.
_RUN_FIRST = ("tests/test_terraform.py", "tests/test_iam_emulator.py")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: 0 if _module_of(item) in _RUN_FIRST else 1)
