"""The Airflow DAGs: integrity (DagBag), parse cost, and a real `dag.test()` run of the nightly DAG
on the embedded defaults (local store, DuckDB, local Ray) over a synthetic night.

Airflow reads its configuration when it is first imported, so everything that imports Airflow
runs in a subprocess with its own AIRFLOW_HOME (a SQLite metadata DB, migrated by `airflow db
migrate`), never in the pytest process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actrec_batch.model import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment `make demo` gives Airflow (SQLite metadata DB under ``home``, this repo's
    dags/), with ``extra`` on top."""
    from actrec_batch.config import load_settings
    from actrec_batch.demo import airflow_env

    return {**airflow_env(load_settings({}, env={}), home), **extra}


def _python(code: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    env = _airflow_env(home)
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [AIRFLOW, "pools", "set", "actrec_inference", "1", "actrec inference"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


_DAGBAG = """
import json, time
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
out = {{"import_errors": {{k: str(v)[:500] for k, v in bag.import_errors.items()}}, "dags": {{}}}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {{
        "tags": sorted(dag.tags),
        "schedule": str(getattr(dag.timetable, "expression", "")),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "params": sorted(dag.params.keys()),
        "model_default": dag.params.get("model"),
        "tasks": {{
            t.task_id: {{
                "owner": t.owner,
                "retries": t.retries,
                "backoff": t.retry_exponential_backoff,
                "pool": t.pool,
                "downstream": sorted(t.downstream_task_ids),
            }}
            for t in dag.tasks
        }},
    }}
print(json.dumps(out))
"""


def test_dagbag_has_no_import_errors_and_the_expected_shape(airflow_home):
    out = json.loads(
        _python(_DAGBAG.format(dags=str(DAGS)), _airflow_env(airflow_home)).stdout.splitlines()[-1]
    )
    assert out["import_errors"] == {}
    assert set(out["dags"]) == {"actrec_nightly", "actrec_rescore"}
    nightly = out["dags"]["actrec_nightly"]
    assert nightly["catchup"] is False and nightly["max_active_runs"] >= 1
    assert "0 2 * * *" in nightly["schedule"]
    assert nightly["params"] == ["cameras", "force", "model"]
    # the DAGs spell the default model out (importing actrec_batch.model would import torch at parse
    # time); they must name the shipped default
    assert {d["model_default"] for d in out["dags"].values()} == {DEFAULT_MODEL}
    assert {"actrec", "nightly"} <= set(nightly["tags"])
    edges = {t: set(v["downstream"]) for t, v in nightly["tasks"].items()}
    assert edges == {
        "plan": {"discover", "validate_manifest", "validate_events", "publish", "cost", "quality"},
        "discover": {"validate_manifest"},
        "validate_manifest": {"infer"},
        "infer": {"validate_events"},
        "validate_events": {"publish"},
        "publish": {"cost", "quality"},
        "cost": set(),
        "quality": set(),
    }
    for dag in out["dags"].values():
        for task_id, t in dag["tasks"].items():
            assert t["owner"] == "actrec", task_id
            assert t["retries"] >= 2 and t["backoff"] > 1, task_id
    assert nightly["tasks"]["infer"]["pool"] == "actrec_inference"
    assert out["dags"]["actrec_rescore"]["tasks"]["rescore"]["pool"] == "actrec_inference"


_PARSE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dagfile", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
heavy = sorted(m for m in ("torch", "ray", "av", "pandas", "pyarrow", "sqlalchemy", "great_expectations", "boto3") if m in sys.modules)
print("heavy:" + ",".join(heavy))
"""


@pytest.mark.parametrize("dag_file", ["actrec_nightly.py", "actrec_rescore.py"])
def test_parsing_a_dag_imports_nothing_heavy(airflow_home, dag_file):
    # Airflow itself imports SQLAlchemy; what the DAG file adds on top of `import airflow.sdk` is
    # checked. The parse time is measured by bench/suite_timings.py, not bounded here.
    code = "import airflow.sdk, sys\nbase = set(sys.modules)\n" + _PARSE.format(
        path=str(DAGS / dag_file)
    ).replace("if m in sys.modules", "if m in sys.modules and m not in base")
    line = _python(code, _airflow_env(airflow_home)).stdout.strip().splitlines()[-1]
    assert line.startswith("heavy:"), line
    heavy = line.removeprefix("heavy:")
    assert heavy == "", f"{dag_file} imports {heavy} at parse time"


_DAG_TEST = """
import datetime as dt, json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={dags!r})
dag = bag.get_dag({dag_id!r})
run = dag.test(logical_date=dt.datetime(2026, 11, 8, 2, 0, tzinfo=dt.timezone.utc), run_conf={conf!r})
print(json.dumps({{"state": str(run.state), "run_id": run.run_id}}))
"""


@pytest.mark.slow
def test_dag_test_runs_the_nightly_dag_end_to_end(airflow_home, tmp_path):
    """A real DAG run (`dag.test()`, every task in order, in process) over a synthetic night with a
    corrupt file, an 8x8 video and a file whose name the store refuses, on the embedded defaults: a local store, DuckDB and a local Ray."""
    import datetime as dt

    import sqlalchemy as sa

    from actrec_batch import layout
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage
    from actrec_batch.warehouse import open_warehouse

    date = dt.date(
        2026, 11, 7
    )  # the data interval [11-07 02:00, 11-08 02:00) of the logical date 11-08 02:00
    root = tmp_path / "store"
    store = open_store(str(root))
    synth_footage(store, date=date, cameras=1, minutes=0.5, seed=808, progress=False)
    store.put_bytes(f"{layout.camera_prefix(date, 'cam-01')}corrupt.mp4", b"not a video at all" * 100)
    # One odd file must not block the night: a row the manifest refuses, a key the store refuses.
    from footage import REJECTED_NAME, put_rejected_key, write_video

    tiny = write_video(
        root / layout.camera_prefix(date, "cam-01") / "tiny.mkv", width=8, height=8, codec="ffv1"
    )
    put_rejected_key(store, f"{layout.camera_prefix(date, 'cam-01')}{REJECTED_NAME}", tiny.read_bytes())
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    env = _airflow_env(
        airflow_home,
        ACTREC_STORE=str(root),
        ACTREC_WAREHOUSE_URL=url,
        ACTREC_SEGMENT_S="15",
        ACTREC_LOCAL_RAY_CPUS="2",
    )
    out = _python(_DAG_TEST.format(dags=str(DAGS), dag_id="actrec_nightly", conf=None), env, timeout=900)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"].endswith("success"), out.stderr[-4000:]

    wh = open_warehouse(url)
    with wh.connect() as conn:
        q = {
            t: conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {t} WHERE logical_date = :d"), {"d": date}
            ).scalar_one()
            for t in ("videos", "quarantine", "action_events", "current_action_events")
        }
        reasons = conn.execute(sa.text("SELECT reason FROM quarantine ORDER BY reason")).scalars().all()
        run = conn.execute(sa.text("SELECT run_id, status, videos_discovered, cost_usd FROM runs")).one()
        costs = conn.execute(
            sa.text("SELECT COUNT(*) FROM job_costs WHERE run_id = :r"), {"r": run.run_id}
        ).scalar_one()
    wh.dispose()
    assert q["videos"] == 1 and q["quarantine"] == 3
    assert {"bad_key", "invalid_metadata"} < set(reasons), reasons
    assert run.status == "success" and run.videos_discovered == q["videos"] + q["quarantine"]
    assert q["action_events"] == q["current_action_events"] > 0
    assert run.run_id.startswith(f"{date}-af-") and costs >= 1 and run.cost_usd > 0
    assert (root / "events" / f"date={date}" / f"events-{DEFAULT_MODEL.replace('@', '-')}.parquet").is_file()
    assert (root / "reports" / f"date={date}" / f"run={run.run_id}" / "quality.json").is_file()

    # The rescore DAG: the same date with another version of the model, from the feature cache.
    import shutil

    from actrec_batch.model.refs import SHIPPED_DIR

    version = DEFAULT_MODEL.split("@")[1]
    bundle = tmp_path / "reference-v9"  # the shipped default under a new version: same extractor
    shutil.copytree(Path(SHIPPED_DIR) / f"reference-v{version}", bundle)
    card = json.loads((bundle / "card.json").read_text())
    (bundle / "card.json").write_text(json.dumps({**card, "version": "9"}))
    conf = {"from_date": str(date), "to_date": str(date), "model": str(bundle)}
    out = _python(_DAG_TEST.format(dags=str(DAGS), dag_id="actrec_rescore", conf=conf), env, timeout=600)
    assert json.loads(out.stdout.strip().splitlines()[-1])["state"].endswith("success"), out.stderr[-4000:]
    wh = open_warehouse(url)
    with wh.connect() as conn:
        versions = dict(
            conn.execute(sa.text("SELECT model_version, COUNT(*) FROM action_events GROUP BY 1")).all()
        )
        current = (
            conn.execute(sa.text("SELECT DISTINCT model_version FROM current_action_events")).scalars().all()
        )
        rescored = conn.execute(
            sa.text(
                "SELECT run_id, logical_date, status, model_name, events, videos_processed, "
                "videos_discovered, cost_usd FROM runs WHERE model_version = '9'"
            )
        ).one()
        rescore_costs = conn.execute(
            sa.text("SELECT COUNT(*) FROM job_costs WHERE run_id = :r"), {"r": rescored.run_id}
        ).scalar_one()
    wh.dispose()
    assert versions == {version: q["action_events"], "9": q["action_events"]} and current == ["9"]
    # The rescore run's own row: the same date, the new model, every event of the date rescored.
    assert rescored.run_id != run.run_id and rescored.logical_date == date and rescored.status == "success"
    assert rescored.model_name == DEFAULT_MODEL.split("@")[0]
    assert (rescored.events, rescored.videos_processed) == (q["action_events"], q["videos"])
    assert rescored.videos_discovered == run.videos_discovered
    assert rescore_costs >= 1 and rescored.cost_usd > 0
