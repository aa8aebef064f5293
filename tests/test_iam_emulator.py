"""infra/terraform applied to an AWS emulator, then a real night signed with each component's policy.

moto's server (127.0.0.1, its own process: tests/moto_iam.py) stands in for AWS; the Terraform root
module is applied to it through the provider's endpoint overrides
(``infra/terraform/emulator/provider_override.tf.tmpl``). Resource types moto lacks are switched off
by ``EMULATOR_TFVARS`` (MWAA is not in moto at all); infra/terraform/README.md lists them.

Faked, because it cannot run here: the roles themselves. Assuming a role whose trust policy names a
service principal crashes moto's trust check, so each component's policy documents (the Terraform
output ``component_policies``) go onto an IAM user of its own, and the component signs with that
user's key. Then IAM enforcement is switched on and the night runs as production splits it: the
Airflow tasks (discover, validate, publish, cost, quality) signed as ``airflow``, the Ray job signed
as ``ray_worker`` (its driver runs on the head, whose S3 access is a superset, checked below).

Two checks on every S3 call: moto's (object ARNs with prefix wildcards; a denied call fails the
night) and :func:`moto_iam.evaluate` against the unaltered policy, which also checks the
``s3:prefix`` condition of listings that moto cannot.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import moto_iam as m
import pytest

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).parents[1]
DATE = dt.date(2026, 11, 24)
EMULATOR_TFVARS = {
    "name": "actrec-emu",
    "environment": "test",
    "store_prefix": "actrec",
    "enable_budget": False,  # moto's Budgets lacks ListTagsForResource: the provider waits forever
    "db_deletion_protection": False,
    "db_skip_final_snapshot": True,
    "store_force_destroy": True,
}
COMPONENTS = ("airflow", "ray_head", "ray_worker")


@dataclass
class Infra:
    emulator: m.Emulator
    outputs: dict
    store_uri: str
    bucket: str
    prefix: str
    policies: dict[str, dict]
    keys: dict[str, tuple[str, str]]
    tmp: Path

    def arn(self, rel: str) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.prefix}/{rel}"

    def env(self, component: str) -> dict[str, str]:
        key, secret = self.keys[component]
        return {
            **os.environ,
            "AWS_ENDPOINT_URL": self.emulator.endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "ACTREC_STORE": self.store_uri,
            "ACTREC_WAREHOUSE_URL": f"duckdb:///{self.tmp}/warehouse.duckdb",
            "ACTREC_AWS_CONN_ID": "none",
            "PYTHONPATH": str(REPO),
        }

    def client(self, component: str, service: str = "s3"):
        import boto3

        key, secret = self.keys[component]
        return boto3.client(
            service,
            endpoint_url=self.emulator.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def step(self, component: str, step: str, run_id: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "tests" / "iam_night.py"), step, DATE.isoformat(), run_id],
            env=self.env(component),
            capture_output=True,
            text=True,
            timeout=600,
        )


def _without(policy: dict, part: str) -> dict:
    """``policy`` with every resource containing ``part`` removed (the pre-[9/11] policy's gap)."""
    doc = json.loads(json.dumps(policy))
    for st in doc["Statement"]:
        resources = st.get("Resource")
        if isinstance(resources, list):
            st["Resource"] = [r for r in resources if part not in r]
        elif isinstance(resources, str) and part in resources:
            st["Resource"] = []
    doc["Statement"] = [st for st in doc["Statement"] if st.get("Resource") != []]
    return doc


def _user(iam, name: str, policy: dict) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="component", PolicyDocument=json.dumps(m.moto_policy(policy))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def infra(tmp_path_factory) -> Infra:
    import boto3

    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    tmp = tmp_path_factory.mktemp("iam")
    for attempt in (1, 2):
        emulator = m.Emulator(tmp / f"requests-{attempt}.jsonl")
        try:
            # The retry applies one resource at a time: moto's EC2 once lost a new security group's
            # default egress rule while other groups were being made (RevokeSecurityGroupEgress:
            # InvalidPermission.NotFound), and an apply over that half-made state could not converge.
            parallelism = 10 if attempt == 1 else 1
            outputs = m.apply_to_emulator(
                tmp / f"tf-{attempt}", emulator, EMULATOR_TFVARS, parallelism=parallelism
            )
            break
        except RuntimeError as error:
            # Seen in full suites only (never alone): an apply that stalled with no request, and
            # the EC2 race above. The first failure goes to the output.
            emulator.stop()
            if attempt == 2:
                raise
            print(
                f"terraform apply against the emulator failed; again on a fresh one:\n{error}",
                file=sys.stderr,
            )
    try:
        store_uri = outputs["store_uri"].rstrip("/")
        bucket, _, prefix = store_uri.removeprefix("s3://").partition("/")
        assert prefix == "actrec", f"the store must sit under a prefix, not the bucket root: {store_uri}"
        policies = {c: json.loads(outputs["component_policies"][c]) for c in COMPONENTS}
        policies["ray_worker_without_runs"] = _without(policies["ray_worker"], "/runs/")
        admin = {
            "endpoint_url": emulator.endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        }
        # The bucket denies every request that is not over TLS, as it must; the emulator speaks
        # HTTP (AWS would deny it too, and moto's bucket-policy check denies it). Check the policy
        # is there and says so, then remove it for the rest of the test.
        s3_admin = boto3.client("s3", **admin)
        tls = json.loads(s3_admin.get_bucket_policy(Bucket=bucket)["Policy"])
        assert any(
            st["Effect"] == "Deny"
            and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", ["false"])
            for st in tls["Statement"]
        ), f"the store bucket's policy must deny requests without TLS: {tls}"
        s3_admin.delete_bucket_policy(Bucket=bucket)
        iam = boto3.client("iam", **admin)
        keys = {c: _user(iam, f"test-{c}", doc) for c, doc in policies.items()}
        # The footage, uploaded before enforcement (by whoever owns the cameras' uploads).
        with pytest.MonkeyPatch.context() as mp:
            for k, v in {"AWS_ENDPOINT_URL": emulator.endpoint, "AWS_ACCESS_KEY_ID": "testing"}.items():
                mp.setenv(k, v)
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            store = open_store(store_uri)
            synth_footage(store, date=DATE, cameras=2, minutes=0.3, seed=909, progress=False)
            store.put_bytes(f"footage/date={DATE}/camera=cam-01/broken.mp4", os.urandom(4096))
            boto3.client("s3", **admin).put_object(
                Bucket=bucket, Key="outside-the-store/secret.txt", Body=b"x"
            )
        emulator.enforce_iam()
        yield Infra(emulator, outputs, store_uri, bucket, prefix, policies, keys, tmp)
    finally:
        emulator.stop()


def _calls_of(infra: Infra, component: str, since: int) -> list[m.Call]:
    key = infra.keys[component][0]
    return [c for c in m.s3_calls(infra.emulator.requests(since)) if c.key_id == key]


def _must_pass(proc: subprocess.CompletedProcess, what: str) -> dict:
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_night_runs_with_each_component_signed_by_its_own_policy(infra):
    run_id = f"iam-{uuid.uuid4().hex[:8]}"
    since = infra.emulator.mark()
    start = _must_pass(infra.step("airflow", "airflow-start", run_id), "the Airflow tasks before inference")
    assert start["discover"]["videos_discovered"] == 3 and start["discover"]["videos_quarantined"] == 1
    ray = _must_pass(infra.step("ray_worker", "ray", run_id), "the Ray job signed as ray_worker")
    assert ray["infer"]["videos_processed"] == 2 and ray["infer"]["events"] > 0
    end = _must_pass(infra.step("airflow", "airflow-end", run_id), "the Airflow tasks after inference")
    assert end["publish"]["status"] == "success"
    assert end["publish"]["videos_discovered"] == 3
    assert end["publish"]["videos_processed"] + end["publish"]["videos_quarantined"] == 3

    # Every call passed moto's check (no 403) and the unaltered policy, conditions included.
    for component, head_too in (("airflow", False), ("ray_worker", True)):
        calls = _calls_of(infra, component, since)
        assert calls, f"no S3 calls recorded for {component}"
        assert not [c for c in calls if c.status == 403], f"moto denied {component}"
        verdicts = m.judge(calls, [infra.policies[component]])
        assert not verdicts.denied, f"{component}'s policy denies calls the night made: {verdicts.denied[:5]}"
        if head_too:  # the Ray job's driver runs on the head: its policy must allow the same
            assert not m.judge(calls, [infra.policies["ray_head"]]).denied

    worker = m.touched(_calls_of(infra, "ray_worker", since), infra.prefix)
    airflow = m.touched(_calls_of(infra, "airflow", since), infra.prefix)
    assert "runs" in worker["s3:PutObject"] and "cache" in worker["s3:PutObject"]
    assert "events" not in set().union(*worker.values()), "inference never touches published events"
    assert "events" in airflow["s3:PutObject"], "publishing writes events/"


def test_a_worker_policy_without_runs_fails_the_night_on_runs(infra):
    """The check bites: the policy [9/11] replaced left ``runs/`` out, and a night failed there."""
    doc = infra.policies["ray_worker_without_runs"]
    assert not m.evaluate([doc], "s3:PutObject", infra.arn(f"runs/date={DATE}/run=x/metrics.json"))
    assert m.evaluate([doc], "s3:PutObject", infra.arn("cache/features/x.npz"))
    run_id = f"iam-{uuid.uuid4().hex[:8]}"
    since = infra.emulator.mark()
    _must_pass(infra.step("airflow", "airflow-start", run_id), "the Airflow tasks before inference")
    # (a second night: discovery replaces the date's manifest Data Docs, a DeleteObjects under reports/)
    rerun = _calls_of(infra, "airflow", since)
    assert any(c.action == "s3:DeleteObject" for c in rerun)
    assert not m.judge(rerun, [infra.policies["airflow"]]).denied
    proc = infra.step("ray_worker_without_runs", "ray", run_id)
    assert proc.returncode != 0
    assert (
        "AccessDenied" in proc.stderr and f"/{infra.prefix}/runs/date={DATE}/run={run_id}/" in proc.stderr
    ), proc.stderr[-3000:]


def test_the_worker_cannot_delete_events_write_models_or_leave_the_store(infra):
    s3 = infra.client("ray_worker")
    from botocore.exceptions import ClientError

    def denied(call, **kw) -> bool:
        try:
            out = call(Bucket=infra.bucket, **kw)
        except ClientError as exc:
            return exc.response["Error"]["Code"] == "AccessDenied"
        return bool(out.get("Errors"))

    events_key = f"{infra.prefix}/events/date={DATE}/events-x-1.parquet"
    assert denied(s3.delete_object, Key=events_key)
    # (a DeleteObjects request moto checks against the bucket policy only: the evaluator judges it)
    assert not m.evaluate(
        [infra.policies["ray_worker"]], "s3:DeleteObject", infra.arn(f"events/date={DATE}/x")
    )
    assert denied(s3.put_object, Key=events_key, Body=b"x")
    assert denied(s3.put_object, Key=f"{infra.prefix}/models/x/1/model.safetensors", Body=b"x")
    assert denied(s3.get_object, Key="outside-the-store/secret.txt")
    assert denied(s3.put_object, Key=f"{infra.prefix}-other/x", Body=b"x")
    worker = [infra.policies["ray_worker"]]
    bucket_arn = f"arn:aws:s3:::{infra.bucket}"
    assert not m.evaluate(worker, "s3:ListBucket", bucket_arn, {"s3:prefix": "outside-the-store/"})
    assert not m.evaluate(worker, "s3:ListBucket", bucket_arn, {"s3:prefix": ""})
    assert m.evaluate(worker, "s3:ListBucket", bucket_arn, {"s3:prefix": f"{infra.prefix}/footage/"})
    assert not m.evaluate(worker, "s3:DeleteObject", infra.arn("events/date=2026-11-24/a.parquet"))
    assert not m.evaluate(worker, "s3:PutObject", infra.arn("models/lobby/1/head.safetensors"))

    # Airflow publishes: it replaces a date's events file (an overwrite: publishing deletes nothing).
    airflow = infra.client("airflow")
    airflow.put_object(Bucket=infra.bucket, Key=events_key, Body=b"x")
    assert denied(airflow.delete_object, Key=events_key)
    assert denied(airflow.get_object, Key="outside-the-store/secret.txt")


def _layout_prefixes() -> dict[str, str]:
    """Every top-level store prefix the code writes or reads: the first segment of each key and
    prefix that ``actrec_batch.layout`` (and the publishers' and models' modules) build."""
    from actrec_batch import layout
    from actrec_batch.model.refs import STORE_MODELS_PREFIX
    from actrec_batch.pipeline import outputs

    samples = {"date": DATE, "run_id": "r", "camera_id": "cam-01", "video_key": "footage/x.mp4", "stage": "s"}
    samples |= {"extractor": "e", "sampling": "s", "content_id": "c", "segment": "0", "model": "m"}
    samples |= {"segmenting": "g", "model_id": "m@1", "key": "k"}
    found: dict[str, str] = {}
    functions = [
        f for n, f in inspect.getmembers(layout, inspect.isfunction) if n.endswith(("_key", "_prefix"))
    ]
    functions += [outputs.events_key, outputs.data_docs_prefix]
    for fn in functions:
        if fn.__module__ not in (layout.__name__, outputs.__name__):
            continue
        params = inspect.signature(fn).parameters
        unknown = [p for p in params if p not in samples]
        assert not unknown, f"{fn.__name__} takes {unknown}: add sample values here"
        key = fn(*(samples[p] for p in params))
        if key.endswith(".labels.json"):
            continue
        found.setdefault(key.split("/", 1)[0], fn.__name__)
    found.setdefault(STORE_MODELS_PREFIX, "model.refs.STORE_MODELS_PREFIX")
    return found


def test_every_prefix_the_code_uses_is_in_the_policies(infra):
    """A new prefix in the code without a policy change fails here, before it fails on AWS."""
    prefixes = _layout_prefixes()
    assert {"footage", "manifests", "runs", "cache", "checkpoints", "staging", "events", "models"} <= set(
        prefixes
    )
    for prefix, source in prefixes.items():
        arn = infra.arn(f"{prefix}/x")
        readers = [c for c in COMPONENTS if m.evaluate([infra.policies[c]], "s3:GetObject", arn)]
        writers = [c for c in COMPONENTS if m.evaluate([infra.policies[c]], "s3:PutObject", arn)]
        assert readers, f"no component may read {prefix}/ ({source} builds it): extend the access matrix"
        if prefix in ("footage", "models"):
            assert not writers, f"{prefix}/ is input: the pipeline must not write it ({writers})"
        else:
            assert writers, f"no component may write {prefix}/ ({source} builds it): extend the access matrix"
    # and nothing is granted outside the store's prefix
    for component in COMPONENTS:
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert not m.evaluate([infra.policies[component]], action, f"arn:aws:s3:::{infra.bucket}/x")
