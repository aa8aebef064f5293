"""A Ray head of the caller's own on 127.0.0.1, for tests and benchmarks.

``ray start --head --block`` runs in its own process group and is stopped by signalling that
process (it drains, then stops its own processes); whatever of its group survives the grace period
is killed. Never ``ray stop``: it stops every Ray on the machine, a parallel suite's included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
# Ports of the head's own: another Ray on this machine (a parallel suite) holds the defaults, and a
# job agent that cannot bind 52365 leaves the head refusing jobs ("No available agent").
AGENT_PORTS = (
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_head_args(dashboard_port: int, temp: str | Path, num_cpus: int = 2) -> list[str]:
    """``ray start --head`` arguments of a head with its Jobs API (dashboard) on
    ``127.0.0.1:dashboard_port``, its files in ``temp``, and every agent on a free port."""
    return [
        "--port=0",
        f"--num-cpus={num_cpus}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        *(f"--{name}={free_port()}" for name in AGENT_PORTS),
    ]


@contextlib.contextmanager
def own_ray_head(
    args: Sequence[str], *, env: Mapping[str, str], log: Path, grace_s: float = 60
) -> Iterator[subprocess.Popen]:
    """Run ``ray start --head --block <args>`` (writing its output to ``log``) for the ``with`` block;
    yields the process. The caller waits for whatever it needs from the head (its address file, its
    Jobs API) and should check ``poll()`` while it waits."""
    with open(log, "w") as out:
        head = subprocess.Popen(
            [RAY, "start", "--head", "--block", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield head
        finally:
            if head.poll() is None:
                head.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=grace_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(head.pid, signal.SIGKILL)  # its own group only
            head.wait()


def wait_for_dashboard(
    head: subprocess.Popen, address: str, log: Path, timeout_s: float = 90, steady_s: float = 5.0
) -> None:
    """Until the head's dashboard (the Jobs API) at ``address`` (``http://127.0.0.1:PORT``) has
    answered HTTP for ``steady_s`` seconds in a row (on a loaded machine it may refuse connections
    again just after its first answer, while its modules start); fails with the head's log if the
    head exits or ``timeout_s`` passes first."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    deadline = time.monotonic() + timeout_s
    up_since = None
    while True:
        assert head.poll() is None, f"the Ray head exited ({head.returncode}):\n{log.read_text()[-3000:]}"
        try:
            opener.open(f"{address}/api/version", timeout=5).close()
            answered = True
        except urllib.error.HTTPError:
            answered = True  # it answers (token auth may refuse this request): it is up
        except OSError:
            answered = False
        now = time.monotonic()
        up_since = (up_since or now) if answered else None
        if up_since is not None and now - up_since >= steady_s:
            return
        assert now < deadline, f"the Ray head at {address} did not answer steadily in {timeout_s:g} s"
        time.sleep(0.5)


@contextlib.contextmanager
def driver_auth_mode(mode: str):
    """This process as a Ray driver in auth ``mode`` (``token`` or ``disabled``), restored after.

    Ray 2.60 turns token auth on by itself when ``RAY_AUTH_MODE`` is unset and ``~/.ray/auth_token``
    exists (and a first local ``ray.init()`` writes that file): a driver of a cluster started with
    another mode then refuses its own nodes' calls ("Missing authorization header"); the GCS takes
    the driver for dead and destroys its actors as they are created. Ray reads the mode once per
    process and caches the token: both are refreshed here, on entry and on exit, as Ray's own test
    utilities do (``reset_auth_token_state``)."""
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = mode
    _reset_auth_state()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before
        _reset_auth_state()


def _reset_auth_state() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # the config first: a draining gRPC thread may reload the token meanwhile
    AuthenticationTokenLoader.instance().reset_cache()
