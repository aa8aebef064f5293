"""An AWS emulator for the infrastructure tests: moto's server on 127.0.0.1, in its own process,
recording every request it answers, plus an IAM policy evaluator for what moto does not check.

    python tests/moto_iam.py PORT LOG.jsonl    # serves; prints the endpoint; one JSON line per request

Why both:

* moto enforces identity policies on S3 object ARNs with wildcards once ``POST /moto-api/reset-auth``
  turns authentication on, so a night signed as a component's test user fails where that
  component's policy forbids a key. That is the real check.
* moto cannot evaluate conditions on identity policies: a statement with a ``Condition`` it cannot
  resolve counts as an explicit Deny (moto 5.2 ``IAMPolicyStatement._check_conditions``), so a
  ``ListBucket`` limited by ``s3:prefix`` would deny every listing. The users moto sees therefore get
  the policy without that condition (:func:`moto_policy`), and :func:`evaluate` checks every
  recorded call (:func:`s3_calls`) against the unaltered policy, conditions included.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/[^/]+/[^/]+/(?P<service>[^/]+)/")


# --- the server ------------------------------------------------------------------------------


def _recording(app, log_path: Path):
    """WSGI middleware: one JSON line per request (method, path, query, access key, service, status,
    the keys of a DeleteObjects body and a copy source; the Action of a form-encoded call, and the
    error code and message of a failed one, to tell what an apply tripped on)."""
    lock = threading.Lock()
    out = log_path.open("a", buffering=1)

    def wrapped(environ, start_response):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = _CREDENTIAL.search(auth)
        query = environ.get("QUERY_STRING", "")
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": urllib.parse.unquote(environ.get("PATH_INFO", "")),
            "query": query,
            "key_id": m["key"] if m else None,
            "service": m["service"] if m else None,
            "copy_source": environ.get("HTTP_X_AMZ_COPY_SOURCE"),
        }
        if (
            entry["service"] == "s3"
            and entry["method"] == "POST"
            and "delete" in urllib.parse.parse_qs(query, keep_blank_values=True)
        ):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            entry["delete_keys"] = [
                el.text for el in ET.fromstring(body).iter() if el.tag.rsplit("}", 1)[-1] == "Key"
            ]
        elif entry["method"] == "POST" and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            entry["action"] = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [None])[0]
        status: list[str] = []

        def start(code, headers, exc_info=None):
            status.append(code)
            return start_response(code, headers, exc_info)

        result = app(environ, start)
        entry["status"] = int(status[0].split()[0]) if status else None
        if entry["status"] and entry["status"] >= 400 and entry["service"] != "s3":
            data = b"".join(result)
            result = [data]
            found = re.search(rb"<Code>(.*?)</Code>.*?<Message>(.*?)</Message>", data, re.S)
            entry["error"] = (found[1] + b": " + found[2]).decode(errors="replace")[:500] if found else None
        with lock:
            out.write(json.dumps(entry) + "\n")
        return result

    return wrapped


def serve(port: int, log_path: Path) -> None:
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = _recording(DomainDispatcherApplication(create_backend_app), log_path)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class Emulator:
    """moto's server in a child process of its own (so its IAM switch is its own), stopped by pid."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        import os

        # AWS managed policies (the RDS enhanced-monitoring role attaches one) exist only with this.
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "0", str(log_path)], stdout=subprocess.PIPE, text=True, env=env
        )
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the emulator did not start (printed {self.endpoint!r})")

    def enforce_iam(self) -> None:
        """From now on every request must be signed by a known key and allowed by its policies."""
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(req, timeout=30).read()

    def mark(self) -> int:
        """The number of requests recorded so far (to read only what follows)."""
        time.sleep(0.2)
        return len(self.log_path.read_text().splitlines()) if self.log_path.exists() else 0

    def requests(self, since: int = 0) -> list[dict]:
        time.sleep(0.2)
        return [json.loads(line) for line in self.log_path.read_text().splitlines()[since:]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- S3 requests as IAM actions ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One S3 request as IAM sees it: the action, the resource ARN and its condition keys."""

    key_id: str | None
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    status: int | None = None

    @property
    def object_key(self) -> str | None:
        _, _, rest = self.resource.partition(":::")
        bucket, slash, key = rest.partition("/")
        return key if slash else None


def s3_calls(requests: Iterable[dict]) -> list[Call]:
    """The IAM actions the S3 requests in ``requests`` (path-style, as :class:`Emulator` records them)
    ask for. A request this cannot map raises, so a new kind of call is never silently unchecked."""
    calls = []
    for r in requests:
        if r.get("service") != "s3":
            continue
        q = urllib.parse.parse_qs(r["query"], keep_blank_values=True)
        bucket, _, key = r["path"].lstrip("/").partition("/")
        bucket_arn, obj_arn = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{key}"
        m, kid, st = r["method"], r["key_id"], r["status"]

        def add(action, resource, context=(), _kid=kid, _st=st):
            calls.append(Call(_kid, action, resource, tuple(context), _st))

        if key:
            if m in ("GET", "HEAD") and "uploadId" in q:
                add("s3:ListMultipartUploadParts", obj_arn)
            elif m in ("GET", "HEAD") and not set(q) - {"partNumber", "versionId", "response-content-type"}:
                add("s3:GetObject", obj_arn)
            elif m == "PUT" and not set(q) - {"partNumber", "uploadId"}:
                add("s3:PutObject", obj_arn)
                if r.get("copy_source"):
                    add("s3:GetObject", "arn:aws:s3:::" + urllib.parse.unquote(r["copy_source"]).lstrip("/"))
            elif m == "POST" and ("uploads" in q or "uploadId" in q):
                add("s3:PutObject", obj_arn)
            elif m == "DELETE" and "uploadId" in q:
                add("s3:AbortMultipartUpload", obj_arn)
            elif m == "DELETE" and not q:
                add("s3:DeleteObject", obj_arn)
            else:
                raise ValueError(f"unmapped S3 object request: {r}")
        else:
            if m == "GET" and (not q or "list-type" in q or "prefix" in q):
                add("s3:ListBucket", bucket_arn, [("s3:prefix", q.get("prefix", [""])[0])])
            elif m == "HEAD" and not q:
                add("s3:ListBucket", bucket_arn)  # HeadBucket is authorised as ListBucket
            elif m == "POST" and "delete" in q:
                for k in r.get("delete_keys", ()):
                    add("s3:DeleteObject", f"{bucket_arn}/{k}")
            elif m == "PUT" and not q:
                add("s3:CreateBucket", bucket_arn)
            elif m == "GET" and "location" in q:
                add("s3:GetBucketLocation", bucket_arn)
            else:
                raise ValueError(f"unmapped S3 bucket request: {r}")
    return calls


# --- IAM policy evaluation -----------------------------------------------------------------------


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, fold: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _condition_holds(operator: str, key: str, expected: list, context: dict[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists or op.startswith(("StringNot", "ArnNot"))
    actual = context[key]
    if op == "StringLike":
        return any(_glob(str(p), actual, fold=False) for p in expected)
    if op == "StringNotLike":
        return not any(_glob(str(p), actual, fold=False) for p in expected)
    if op == "StringEquals":
        return actual in [str(p) for p in expected]
    if op == "StringNotEquals":
        return actual not in [str(p) for p in expected]
    if op == "Bool":
        return actual.lower() in [str(p).lower() for p in expected]
    raise ValueError(f"condition operator {operator} is not supported by this evaluator: extend it")


def _statement_applies(st: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    if "Action" in st:
        if not any(_glob(a, action, fold=True) for a in _as_list(st["Action"])):
            return False
    elif any(_glob(a, action, fold=True) for a in _as_list(st["NotAction"])):
        return False
    if "Resource" in st:
        if not any(_glob(r, resource, fold=False) for r in _as_list(st["Resource"])):
            return False
    elif "NotResource" in st and any(_glob(r, resource, fold=False) for r in _as_list(st["NotResource"])):
        return False
    for operator, keys in st.get("Condition", {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, _as_list(expected), context):
                return False
    return True


def evaluate(
    policies: Iterable[dict | str], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Whether identity ``policies`` allow ``action`` on ``resource``: an explicit Deny wins, then any
    Allow; otherwise the implicit deny (AWS's evaluation logic within one account, without SCPs,
    permission boundaries or session policies, none of which this project uses)."""
    context = context or {}
    allowed = False
    for policy in policies:
        doc = json.loads(policy) if isinstance(policy, str) else policy
        for st in _as_list(doc["Statement"]):
            if _statement_applies(st, action, resource, context):
                if st["Effect"] == "Deny":
                    return False
                allowed = True
    return allowed


def moto_policy(policy: dict | str) -> dict:
    """``policy`` as moto can enforce it; :func:`evaluate` checks what this gives up on the recorded
    calls:

    * the ``s3:prefix`` condition is dropped from list statements (moto would count it as a Deny);
    * where ``s3:DeleteObject`` is allowed on some keys of a bucket, it is also allowed on the bucket
      ARN: moto authorises a DeleteObjects request as ``s3:DeleteObject`` on the bucket, then checks
      each key against the bucket policy only (moto 5.2 ``_bucket_response_delete_keys``), where AWS
      checks each key against the identity policy. A single DeleteObject is checked per key by both.
    """
    doc = json.loads(policy) if isinstance(policy, str) else json.loads(json.dumps(policy))
    extra = []
    for st in _as_list(doc["Statement"]):
        if st["Effect"] == "Allow" and any(
            _glob(a, "s3:DeleteObject", fold=True) for a in _as_list(st.get("Action", []))
        ):
            buckets = {
                r.split("/", 1)[0] for r in _as_list(st.get("Resource", [])) if r.startswith("arn:aws:s3:::")
            }
            extra += (
                [{"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": sorted(buckets)}]
                if buckets
                else []
            )
    for st in _as_list(doc["Statement"]):
        cond = st.get("Condition", {})
        for op in list(cond):
            cond[op].pop("s3:prefix", None)
            if not cond[op]:
                del cond[op]
        if "Condition" in st and not cond:
            del st["Condition"]
    doc["Statement"] = _as_list(doc["Statement"]) + extra
    return doc


@dataclass
class Verdicts:
    """Every call of one component judged by :func:`evaluate` against its policy."""

    allowed: list[Call] = field(default_factory=list)
    denied: list[Call] = field(default_factory=list)


def judge(calls: Iterable[Call], policies: list[dict | str]) -> Verdicts:
    out = Verdicts()
    for call in calls:
        ok = evaluate(policies, call.action, call.resource, dict(call.context))
        (out.allowed if ok else out.denied).append(call)
    return out


def touched(calls: Iterable[Call], store_prefix: str) -> dict[str, set[str]]:
    """action -> the top-level store prefixes (``runs``, ``cache``, ...) it touched."""
    out: dict[str, set[str]] = {}
    for c in calls:
        key = c.object_key if c.object_key is not None else dict(c.context).get("s3:prefix", "")
        rel = key.removeprefix(store_prefix.rstrip("/") + "/")
        out.setdefault(c.action, set()).add(rel.split("/", 1)[0] if rel else "")
    return out


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))


__all__ = ["Call", "Emulator", "evaluate", "judge", "moto_policy", "s3_calls", "touched"]


# --- Terraform against the emulator --------------------------------------------------------------

TF_SRC = Path(__file__).parents[1] / "infra" / "terraform"
OVERRIDE_TEMPLATE = TF_SRC / "emulator" / "provider_override.tf.tmpl"


def provider_mirror() -> str | None:
    """The folder holding ``registry.terraform.io`` of this machine's offline provider mirror, if any."""
    import glob

    for hit in glob.glob("/opt/*/registry.terraform.io") + glob.glob("/usr/share/*/registry.terraform.io"):
        return str(Path(hit).parent)
    return None


def terraform_env(work: Path) -> dict[str, str]:
    """A minimal environment for Terraform: nothing of the test process's own (AWS_*, proxies, Ray
    or Airflow settings) reaches the provider, only what Terraform needs and the provider mirror."""
    import os

    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env |= {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0"}
    env |= {"AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost"}
    mirror = provider_mirror()
    if mirror:
        rc = work.parent / f"{work.name}.tfrc"
        rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    return env


def _group_dump_and_kill(proc: subprocess.Popen) -> None:
    """SIGQUIT the process group (Go programs print every goroutine's stack), then kill it."""
    import os
    import signal

    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2)


def terraform(
    work: Path, *args: str, timeout: float = 600, stalled: Emulator | None = None
) -> subprocess.CompletedProcess:
    """``terraform ARGS`` in ``work`` (its own process group, no stdin); raises with its output when
    it fails, or when it runs past ``timeout`` s, or when ``stalled``'s emulator has seen no request
    from it for 120 s (then its goroutine stacks are in the error)."""
    import shutil
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [shutil.which("terraform") or "terraform", *args, "-no-color"],
            cwd=work,
            env=terraform_env(work),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        start = last_change = time.monotonic()
        seen = stalled.mark() if stalled else 0
        why = None
        while proc.poll() is None:
            time.sleep(2)
            now = time.monotonic()
            if stalled is not None:
                count = stalled.mark()
                if count != seen:
                    seen, last_change = count, now
                elif now - last_change > 120:
                    why = "the emulator saw no request from it for 120 s"
            if now - start > timeout:
                why = f"it ran past {timeout:.0f} s"
            if why:
                _group_dump_and_kill(proc)
                proc.wait()
                break
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if why or proc.returncode:
        raise RuntimeError(
            f"terraform {' '.join(args)} failed in {work} ({why or f'exit {proc.returncode}'}):\n"
            f"{stdout[-4000:]}\n{stderr[-6000:]}"
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def apply_to_emulator(
    work: Path,
    emulator: Emulator,
    tfvars: dict,
    *,
    src: Path = TF_SRC,
    override: str | None = None,
    parallelism: int = 10,
) -> dict:
    """Copy the root module ``src`` (with the files it reads: ``infra/airflow``, ``dags/``) under
    ``work``, point its provider at ``endpoint`` (an override file from ``infra/terraform/emulator/``),
    ``init`` + ``apply`` with ``tfvars``; returns the outputs' values. Raises RuntimeError (with
    the emulator's failed calls) when the apply fails or stalls; the caller retries on a fresh
    emulator, since a half-applied state cannot be trusted to converge. ``parallelism``: Terraform's
    concurrent operations (its default 10; 1 rules out races in moto's EC2 security groups)."""
    import shutil

    repo = src.parents[1]
    root = work / "infra" / "terraform"
    shutil.copytree(
        src, root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "emulator", "*_override.tf")
    )
    for extra in ("infra/airflow", "dags"):
        if (repo / extra).is_dir():
            shutil.copytree(repo / extra, work / extra, ignore=shutil.ignore_patterns("__pycache__"))
    text = override if override is not None else OVERRIDE_TEMPLATE.read_text()
    (root / "emulator_override.tf").write_text(text.replace("${endpoint}", emulator.endpoint))
    (root / "emulator.auto.tfvars.json").write_text(json.dumps(tfvars))
    terraform(root, "init", "-backend=false", "-input=false", timeout=300)
    try:
        terraform(
            root, "apply", "-auto-approve", "-input=false", f"-parallelism={parallelism}", stalled=emulator
        )
    except RuntimeError as error:
        failed = [
            f"{r.get('service')} {r.get('action') or r['method'] + ' ' + r['path']}: {r.get('status')} {r.get('error')}"
            for r in emulator.requests()
            if (r.get("status") or 0) >= 400 and r.get("service") != "s3"
        ]
        raise RuntimeError(f"{error}\nthe emulator's failed calls (not S3): {failed or 'none'}") from error
    outputs = json.loads(terraform(root, "output", "-json", timeout=120).stdout)
    return {name: out["value"] for name, out in outputs.items()}
