"""`make demo`, then `make airflow`, as a newcomer sees them, in headless Chromium.

The demo flow is the real one (:func:`actrec_batch.demo.run_demo`: synthetic footage plus a
truncated copy, then a local scheduler running the nightly DAG as a backfill of that date) on tiny
footage. The UI is scripts/airflow_ui.sh (`make airflow`) over the demo's AIRFLOW_HOME, started
after the demo's own Airflow has stopped. The run page shows the run's true duration (not the days
since its logical date), and the infer task's log page shows the progress lines, the quarantine and
where the events went.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from actrec_batch.demo_airflow import free_port, run_url

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 10)
RUN_ID = f"backfill__{DATE + dt.timedelta(days=1)}T02:00:00+00:00"  # named after its interval's end
TASKS = ("plan", "discover", "validate_manifest", "infer", "validate_events", "publish", "cost", "quality")
DAY_DURATION = re.compile(r"\b\d+d\d\d:\d\d:\d\d\b")  # the UI's format of a duration of a day or more


@contextlib.contextmanager
def airflow_ui(home: Path, env: dict[str, str]):
    """`make airflow` (scripts/airflow_ui.sh) on a free port; yields its base URL once healthy;
    stopped with SIGINT (as Ctrl-C), then SIGKILL of its process group."""
    port = free_port()
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=str(home),
        ACTREC_AIRFLOW_PORT=str(port),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        NO_PROXY="127.0.0.1,localhost",
    )
    base = f"http://127.0.0.1:{port}"
    with open(home / "make-airflow.log", "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "airflow_ui.sh")],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    http = requests.Session()
    http.trust_env = False
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (home / "make-airflow.log").read_text()[-4000:]
            with contextlib.suppress(requests.RequestException, ValueError):
                health = http.get(f"{base}/api/v2/monitor/health", timeout=10).json()
                if health["metadatabase"]["status"] == "healthy":
                    break
            assert time.monotonic() < deadline, (home / "make-airflow.log").read_text()[-4000:]
            time.sleep(1)
        token = http.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=60)
        assert token.status_code == 201, f"login: {token.status_code} {token.text[:500]}"
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield base, http
    finally:
        http.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _squeezed(driver) -> str:
    from selenium.webdriver.common.by import By

    return "".join(driver.find_element(By.TAG_NAME, "body").text.split())


def open_logged_in(driver, url: str, ready, what: str, screenshot: Path) -> str:
    """Open ``url``, log in as admin on the login page if it comes (then open ``url`` again), wait
    until ``ready(text)`` (the page text without whitespace); return the page's text."""
    from selenium.common.exceptions import NoSuchElementException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def loaded(d) -> bool:
        with contextlib.suppress(NoSuchElementException):
            d.find_element(By.NAME, "username").send_keys("admin")
            d.find_element(By.NAME, "password").send_keys("admin", Keys.ENTER)
            WebDriverWait(d, 60).until(lambda d: not d.find_elements(By.NAME, "username"))
            d.get(url)
            return False
        return ready(_squeezed(d))

    driver.get(url)
    try:
        WebDriverWait(driver, 120, poll_frequency=1).until(loaded)
    except TimeoutException:
        driver.save_screenshot(str(screenshot))
        pytest.fail(f"{url} never showed {what} (screenshot {screenshot}); it shows:\n{_squeezed(driver)}")
    driver.save_screenshot(str(screenshot))
    return driver.find_element(By.TAG_NAME, "body").text


def log_page_text(driver, needles, screenshot: Path, timeout: float = 120) -> str:
    """The log viewer renders only the lines in view: scroll every scrolling box down, most of a
    screen at a time, and gather what shows until every needle (a regex on the text without
    whitespace) was seen; return what was seen."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += _squeezed(driver)
        if all(re.search(n, seen) for n in needles):
            break
        # Down a step; from the bottom (the viewer may open there), back to the top.
        driver.execute_script(
            "const boxes = [...document.querySelectorAll('*')].filter(e => e.scrollHeight > e.clientHeight + 20);"
            "const end = boxes.every(e => e.scrollTop + e.clientHeight >= e.scrollHeight - 2);"
            "for (const e of boxes) { e.scrollTop = end ? 0 : e.scrollTop + e.clientHeight * 0.8; }"
        )
        time.sleep(0.5)
    driver.save_screenshot(str(screenshot))
    return seen


@pytest.mark.timeout(900)
def test_the_demos_run_shows_in_the_airflow_ui_like_a_scheduled_one(
    chromium, tmp_path, monkeypatch, capsys, request
):
    from actrec_batch.config import load_settings
    from actrec_batch.demo import run_demo
    from actrec_batch.synth.params import SynthParams

    started = time.monotonic()
    # A Ray temp dir of its own, short (Ray's socket paths must fit in 107 bytes).
    ray_tmp = tempfile.mkdtemp(prefix="demo-ray-", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    actrec_env = {
        "ACTREC_STORE": str(tmp_path / "store"),
        "ACTREC_WAREHOUSE_URL": f"duckdb:///{tmp_path}/warehouse.duckdb",
        "ACTREC_SEGMENT_S": "20",
        "ACTREC_LOCAL_RAY_CPUS": "1",
    }
    home = tmp_path / "airflow"
    demo_started = dt.datetime.now(dt.UTC)
    footage = SynthParams(cameras=1, minutes=0.5, seed=11)
    assert run_demo(load_settings({}, env=actrec_env), date=DATE, footage=footage, airflow_home=home) == 0
    out = capsys.readouterr().out
    print(out)
    assert f"DAG run {RUN_ID}: success in" in out
    assert re.search(rf"infer {DATE}: \d+/\d+ units", out), "the demo printed no infer progress line"
    assert "quarantined [" in out and "events per label" in out
    print(f"demo flow: {time.monotonic() - started:.1f} s")

    # Every task wrote its log where the UI reads it.
    folder = home / "logs" / "dag_id=actrec_nightly" / f"run_id={RUN_ID}"
    for task in TASKS:
        log = folder / f"task_id={task}" / "attempt=1.log"
        assert log.is_file() and log.stat().st_size > 0, f"no task log {log}"

    with airflow_ui(home, {**os.environ, **actrec_env}) as (base, http):
        api_path = f"/api/v2/dags/actrec_nightly/dagRuns/{quote(RUN_ID, safe='')}"
        resp = http.get(f"{base}{api_path}", timeout=60)
        assert resp.status_code == 200, f"GET {api_path}: {resp.status_code} {resp.text[:1000]}"
        run = resp.json()
        start, end = (dt.datetime.fromisoformat(run[k]) for k in ("start_date", "end_date"))
        assert run["state"] == "success" and run["run_type"] == "backfill"
        assert run["logical_date"][:10] == str(DATE)  # footage date D: the interval [D 02:00, D+1 02:00)
        assert demo_started <= start < end < dt.datetime.now(dt.UTC), run  # its true start and end
        seconds = (end - start).total_seconds()
        assert seconds < 3600, run

        page = run_url(RUN_ID, port=int(base.rsplit(":", 1)[1]))  # the URL the demo prints
        text = open_logged_in(
            chromium,
            page,
            lambda t: re.search(r"00:\d\d:\d\d", t) is not None,
            "the run's duration",
            tmp_path / "demo_run.png",
        )
        assert not DAY_DURATION.search(text), f"a duration of days on the run page: {text}"
        shown = {f"00:{int(s) // 60:02d}:{int(s) % 60:02d}" for s in (seconds - 1, seconds, seconds + 1)}
        assert any(s in text for s in shown), (
            f"the run's duration ({seconds:.1f} s) is not on its page: {text}"
        )

        needles = [
            rf"infer{DATE}:\d+/\d+units",  # a progress line
            r"quarantined\S*zz_demo_truncated_copy\.mp4\[",  # the quarantine
            rf"events/date={DATE}/events-\S+\.parquet",  # where the events went ...
            r"thewarehouseduckdb:///\S*warehouse\.duckdb",  # ... and the warehouse
        ]
        chromium.get(f"{page}/tasks/infer")  # its first tab: the log
        seen = log_page_text(chromium, needles, tmp_path / "demo_infer_log.png")
        missing = [n for n in needles if not re.search(n, seen)]
        assert not missing, f"the infer task's log page lacks {missing}; it shows:\n{seen[-6000:]}"
    print(
        f"test_the_demos_run_shows_in_the_airflow_ui_like_a_scheduled_one: {time.monotonic() - started:.1f} s"
    )
