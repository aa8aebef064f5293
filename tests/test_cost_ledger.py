"""The cost ledger priced from the pricing catalogue, on real runs.

* The shipped catalogue prices every instance type infra/ray/cluster-aws.yaml launches, and each
  node type's ``instance-type`` label names its own InstanceType; a malformed user catalogue fails
  with one line naming the file.
* A real night (``run_nightly``, local runner, synthetic footage): the billed lines sum to the
  total, the usage lines sum to the compute lines, and ``cost.json`` equals the ``job_costs`` and
  ``job_cost_usage`` rows and ``runs.cost_usd`` on DuckDB and PostgreSQL.
* Preemption on a real multi-node Ray (``ray.cluster_utils.Cluster``, as in
  test_ray_preemption.py, one run): the wasted share is above 0 and matches the units redone, and
  the lost node is paid only until it left.
* The report opens in headless Chromium: headings, four plots as <svg>, the totals.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from actrec_batch.config import load_settings
from actrec_batch.errors import ConfigError
from actrec_batch.pipeline.nightly import run_nightly
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.pricing import load_catalogue
from actrec_batch.runs import CostRecord, MetricsDocument, RunFolder
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage
from actrec_batch.warehouse import open_warehouse

REPO = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 12)
SCREENSHOTS = REPO / ".actrec" / "screenshots"


# ------------------------------------------------------------------------------- catalogue


def test_the_shipped_catalogue_prices_every_instance_type_of_the_cluster_config():
    cluster = yaml.safe_load((REPO / "infra" / "ray" / "cluster-aws.yaml").read_text())
    region = cluster["provider"]["region"]
    catalogue = load_catalogue()
    assert catalogue.as_of and catalogue.sources["on_demand"] and catalogue.sources["spot"]
    types = {}
    for name, node_type in cluster["available_node_types"].items():
        instance = node_type["node_config"]["InstanceType"]
        assert node_type.get("labels", {}).get("instance-type") == instance, name  # what the ledger reads
        types[instance] = node_type
    assert {"m7i.large", "g5.xlarge", "g6.xlarge", "g5.2xlarge", "c7i.2xlarge", "c6i.2xlarge"} <= set(types)
    for instance, node_type in types.items():
        it = catalogue.instance(instance, region=region)
        assert it.gpus == int(node_type["resources"].get("GPU", 0)), instance
        for r in ("us-east-1", "eu-west-1"):
            assert 0 < it.price(r, "spot") < it.price(r, "on_demand"), (instance, r)
        if node_type["resources"].get("CPU"):
            assert it.vcpus == node_type["resources"]["CPU"], instance
    for r in ("us-east-1", "eu-west-1"):
        assert set(catalogue.s3_prices(r)) >= {
            "storage_gb_month",
            "put_per_1k",
            "get_per_1k",
            "egress_internet_gb",
        }


@pytest.mark.parametrize(
    "text, why",
    [
        (
            "catalogue: x\nas_of: '2026-11-01'\ninstances: {}\ns3: {}\n",
            "'instances' is not a non-empty mapping",
        ),
        ("catalogue: [unclosed\n", "not YAML at line"),
        (
            "catalogue: x\nas_of: '2026-11-01'\ns3: {us-east-1: {}}\ninstances:\n  g5.xlarge:\n    vcpus: 4\n"
            "    gpus: 1\n    gpu_model: A10G\n    price_per_hour: {us-east-1: {on_demand: 1.0, spot: 2.0}}\n",
            "spot 2.0 is above on_demand 1.0",
        ),
    ],
)
def test_a_malformed_user_catalogue_fails_with_one_line_naming_the_file(tmp_path, text, why):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings({"price_catalogue": str(path)}, env={})
    message = str(exc.value)
    assert "\n" not in message and str(path) in message and why in message and "Fix:" in message
    # through the environment too, as ACTREC_PRICE_CATALOGUE
    with pytest.raises(ConfigError, match=str(path)):
        load_settings({}, env={"ACTREC_PRICE_CATALOGUE": str(path)})


def test_a_user_catalogue_prices_the_run_instead(tmp_path):
    shipped = yaml.safe_load((REPO / "actrec_batch" / "pricing" / "aws-2026-11.yaml").read_text())
    shipped["catalogue"] = "ours"
    shipped["instances"]["g5.xlarge"]["price_per_hour"]["us-east-1"] = {"on_demand": 2.0, "spot": 1.0}
    path = tmp_path / "ours.yaml"
    path.write_text(yaml.safe_dump(shipped))
    settings = load_settings({"price_catalogue": str(path)}, env={})
    catalogue = load_catalogue(settings.price_catalogue)
    assert (
        catalogue.name == "ours"
        and catalogue.instance("g5.xlarge", region="us-east-1").price("us-east-1", "spot") == 1.0
    )


# ------------------------------------------------------------------------------- a real night


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("cost") / "template"
    synth_footage(open_store(str(root)), date=DATE, cameras=2, minutes=0.5, seed=1010, progress=False)
    return root


def _night(footage: Path, root: Path, url: str, **flags) -> tuple[dict, RunFolder]:
    shutil.copytree(footage, root)
    settings = load_settings(
        {"store": str(root), "warehouse_url": url, "runner": "local", "segment_s": 10, **flags}, env={}
    )
    summary = run_nightly(settings, RunSpec(DATE))
    return summary, RunFolder(open_store(str(root)), DATE, summary["run_id"])


def _table(url: str, table: str, run_id: str) -> list[dict]:
    wh = open_warehouse(url)
    try:
        with wh.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT * FROM {table} WHERE run_id = :r"), {"r": run_id}).mappings()
            return [dict(r) for r in rows]
    finally:
        wh.dispose()


def test_cost_lines_sum_to_the_totals_and_cost_json_is_the_warehouse_rows(footage, tmp_path, warehouse_url):
    summary, folder = _night(footage, tmp_path / "store", warehouse_url, price_market="spot")
    cost = folder.read(CostRecord).to_json()
    rows, usage = cost["rows"], cost["usage"]
    assert summary["cost_usd"] == cost["cost_usd"] > 0
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(cost["cost_usd"], abs=1e-9)
    for r in rows:
        assert r["cost_usd"] == pytest.approx(r["quantity"] * r["unit_price_usd"], abs=1e-9)
    compute = sum(r["cost_usd"] for r in rows if r["component"] in ("nodes", "driver"))
    assert sum(u["cost_usd"] for u in usage) == pytest.approx(compute, abs=1e-9)
    assert {u["component"] for u in usage} == {
        "discover",
        "decode",
        "inference",
        "validation",
        "publish",
        "wasted",
        "idle",
    }
    busy = {u["component"]: u["busy_s"] for u in usage}
    assert busy["decode"] > 0 and busy["inference"] > 0 and busy["discover"] > 0 and busy["publish"] > 0
    assert busy["validation"] > 0
    # local: priced as the configured GPU instance, and said so
    assert cost["priced_as"].startswith("1 x g5.xlarge (spot, us-east-1)")
    assert any(n.startswith("priced as:") for n in cost["notes"])
    assert [(r["resource"], r["pricing"]) for r in rows if r["component"] == "nodes"] == [
        ("g5.xlarge", "spot")
    ]
    assert cost["markets"]["spot"] < cost["markets"]["on_demand"]
    # the store's traffic: requests and bytes both ways, priced as S3 lines
    io = cost["io"]
    assert (
        io["bytes_read"] > 0 and io["bytes_written"] > 0 and io["put_requests"] > 0 and io["get_requests"] > 0
    )
    s3 = {r["resource"]: r for r in rows if r["component"] == "s3"}
    assert s3["put_requests"]["quantity"] == pytest.approx(io["put_requests"] / 1000)
    # per video-hour and per 1k inferences
    assert cost["usd_per_video_hour"] == pytest.approx(
        cost["cost_usd"] / (summary["video_seconds"] / 3600), rel=1e-6
    )
    assert cost["inferences"] > 0
    assert cost["usd_per_1k_inferences"] == pytest.approx(
        cost["cost_usd"] / cost["inferences"] * 1000, rel=1e-6
    )
    # the warehouse holds exactly the record's rows
    key = ("component", "resource", "pricing")
    stored = sorted(_table(warehouse_url, "job_costs", folder.run_id), key=lambda r: [r[k] for k in key])
    assert [{k: r[k] for k in rows[0]} for r in stored] == sorted(rows, key=lambda r: [r[k] for k in key])
    stored_usage = {r["component"]: r for r in _table(warehouse_url, "job_cost_usage", folder.run_id)}
    for u in usage:
        assert {k: stored_usage[u["component"]][k] for k in u} == u
    (run,) = _table(warehouse_url, "runs", folder.run_id)
    assert run["cost_usd"] == cost["cost_usd"]


def test_the_deprecated_rates_still_price_by_reserved_hours(footage, tmp_path):
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    _, folder = _night(footage, tmp_path / "store", url, cpu_hour_usd="0.05")
    cost = folder.read(CostRecord).to_json()
    assert {r["unit"] for r in cost["rows"]} <= {"cpu_hour", "gpu_hour"}
    assert cost["prices"]["cpu_hour_usd"] == 0.05 and "catalogue" not in cost["prices"]
    assert cost["notes"] and "deprecated" in cost["notes"][0]
    assert _table(url, "job_cost_usage", folder.run_id) == []


def test_the_cost_report_opens_in_chromium(footage, tmp_path, chromium):
    from selenium.webdriver.common.by import By

    summary, folder = _night(footage, tmp_path / "store", f"duckdb:///{tmp_path}/wh.duckdb")
    cost = folder.read(CostRecord).to_json()
    page = Path(folder.store.local_path(folder.cost_page_key))
    assert page.is_file() and "reports/date=" in str(page)
    chromium.get(page.as_uri())
    text = chromium.find_element(By.TAG_NAME, "body").text
    headings = [h.text for h in chromium.find_elements(By.TAG_NAME, "h2")]
    assert headings[:3] == ["Totals", "Plots", "Ledger (job_costs)"]
    assert "Where the paid compute went (job_cost_usage)" in headings
    svgs = chromium.find_elements(By.CSS_SELECTOR, ".plot svg")
    assert len(svgs) == 4 and all(s.size["width"] > 100 and s.size["height"] > 100 for s in svgs)
    assert f"${cost['cost_usd']:,.6f}" in text and "priced as:" in text
    assert summary["run_id"] in chromium.title
    shot = tmp_path / "cost-report.png"
    chromium.set_window_size(1400, 2400)
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / "cost-report.png")


# ------------------------------------------------------------------------------- preemption


def test_a_preempted_run_shows_the_work_it_redid_as_wasted(footage, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from actrec_batch.costs import price_run
    from actrec_batch.discovery import discover
    from actrec_batch.model import DEFAULT_MODEL, read_card, resolve_model_ref
    from actrec_batch.pipeline.cache import Checkpoints
    from actrec_batch.pipeline.job import InferenceJob

    root = tmp_path / "store"
    shutil.copytree(footage, root)
    store = open_store(str(root))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(3)]
    c.wait_for_nodes()
    settings = load_settings(
        {"store": str(root), "segment_s": 6, "actor_cpus": 0.5, "task_retries": 5, "ray_address": c.address},
        env={},
    )
    discover(settings, DATE, store=store)
    card = read_card(open_store(resolve_model_ref(DEFAULT_MODEL)))
    ray.init(
        address=c.address, namespace="actrec-test", runtime_env={"env_vars": {"ACTREC_FAULT_SLOW": "0.8"}}
    )
    removed: list[str] = []
    try:
        job = InferenceJob(settings, RunSpec(DATE, model_ref=DEFAULT_MODEL))

        def preempt() -> None:  # the embedder's node, reclaimed at ~30% of the units
            total = 10
            while len(Checkpoints.for_run(store, DATE, card, 6).committed()) < 0.3 * total:
                time.sleep(0.1)
            actor = ray.get_actor(f"actrec-embedder-{job.run_id}-1")
            host = ray.get(actor.usage.remote())["node_id"]
            c.remove_node(next(n for n in nodes if n.node_id == host), allow_graceful=False)
            removed.append(host)

        killer = threading.Thread(target=preempt, daemon=True)
        killer.start()
        run = job.run()
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        c.shutdown()
    assert removed and run.units_total == 10 and run.videos_processed == 2
    cost = price_run(settings, store, DATE, run.run_id)
    wasted = cost["wasted"]
    metrics = RunFolder(store, DATE, run.run_id).read(MetricsDocument)
    resubmitted = metrics.ray.get("resubmitted", {})
    redone = [
        u
        for u in metrics.units
        if u["decode_attempt"] or u["infer_attempt"] or resubmitted.get(f"{u['video_id']}/{u['segment']}")
    ]
    assert wasted["units_redone"] == len(redone) and wasted["units_redone"] + wasted["videos_reindexed"] > 0
    assert wasted["resubmissions"] == sum(resubmitted.values())
    share = {u["component"]: u["share"] for u in cost["usage"]}["wasted"]
    assert share > 0 and wasted["cost_usd"] > 0
    # the reclaimed node is paid until it left, the others to the end
    by_id = {n["node_id"]: n for n in cost["nodes"]}
    lost = by_id[removed[0]]
    assert lost["held_s"] < max(n["held_s"] for n in cost["nodes"])
    assert {n["instance_type"] for n in cost["nodes"]} <= {
        "g5.xlarge",
        "c7i.2xlarge",
    }  # unlabelled: priced as
