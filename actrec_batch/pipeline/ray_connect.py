"""Connecting to Ray: a cluster at an address, the one ``ray job submit`` names, or a local Ray
of the run's own; and making that connection ahead of inference (:func:`connect_ahead`), so a
local Ray's start-up overlaps what a run does before inference.

Nothing here imports Ray at module level: ``actrec run`` imports this before discovery.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.errors import ConfigError
from actrec_batch.pipeline.work import FAULT_ENV

log = logging.getLogger(__name__)


def check_driver_address(settings: Settings) -> None:
    """A driver cannot connect to a Jobs API address (http://host:8265): say so before any work."""
    address = settings.ray_address
    if address and address.startswith(("http://", "https://")):
        raise ConfigError(
            f"bad setting ray_address = {address!r} (--ray-address / ACTREC_RAY_ADDRESS): that is a Ray Jobs "
            "API address, which `ray job submit` and the Airflow task use. Fix: for a driver, use 'auto' "
            "or ray://host:10001"
        )


# A connection made ahead of inference (connect_ahead): its settings and outcome, for connect() to take.
_early: tuple[Settings, Future] | None = None


def connect_ahead(settings: Settings) -> None:
    """Connect now, for the next :func:`connect` (the run's inference) to take: its result, or its
    error, raised there and not here, so a run fails where it did without this. ``actrec run``
    calls it in the main thread while discovery runs in another (``ray.init`` wants the main
    thread: it sets the SIGTERM handler there, and the processes of a local Ray it starts die
    with the thread that started them). :func:`release_early` stops a Ray that no :func:`connect`
    took (the run failed first, or had nothing to compute). No-op for the local runner."""
    global _early
    if settings.runner != "ray":
        return
    release_early()
    future: Future = Future()
    try:
        future.set_result(_connect_now(settings))
    except Exception as exc:  # noqa: BLE001 - raised by the connect() that takes it
        future.set_exception(exc)
    _early = (settings, future)


def release_early() -> None:
    """Stop the Ray :func:`connect_ahead` started, if no :func:`connect` took it."""
    global _early
    early, _early = _early, None
    if early is None:
        return
    try:
        started = early[1].result()
    except Exception as exc:  # noqa: BLE001 - never connected: nothing to stop
        log.debug("early Ray connection failed, unused: %s", exc)
        return
    disconnect(started)


def connect(settings: Settings) -> bool:
    """Connect to (or start) Ray. Returns True when this call started a local Ray that
    :func:`disconnect` should stop.

    ``ACTREC_RAY_ADDRESS`` wins; otherwise ``RAY_ADDRESS`` (set by ``ray job submit``) is used; with
    neither, a local Ray starts on 127.0.0.1. Takes the connection :func:`connect_ahead` made.
    """
    global _early
    if _early is not None and _early[0] != settings:  # begun for other settings: not this connection
        release_early()
    early, _early = _early, None
    if early is not None:
        return early[1].result()
    return _connect_now(settings)


def _connect_now(settings: Settings) -> bool:
    import ray

    if ray.is_initialized():
        return False
    check_driver_address(settings)
    address = settings.ray_address
    env = {k: os.environ[k] for k in FAULT_ENV if os.environ.get(k)}
    kwargs: dict[str, Any] = {
        "namespace": "actrec",
        "logging_level": logging.WARNING,
        "log_to_driver": True,
    }
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    started = False
    try:
        if address and address != "local":
            ray.init(address=address, **kwargs)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)  # inside `ray job submit`: RAY_ADDRESS names the cluster
        else:
            if settings.local_ray_cpus:
                kwargs["num_cpus"] = settings.local_ray_cpus
            # address="local": always a new Ray of our own. Without it, ray.init() joins whatever cluster
            # /tmp/ray/ray_current_cluster names (another `ray start` on the same host).
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
            started = True
    except ConnectionError as exc:
        raise ConfigError(
            f"bad setting ray_address = {address!r} (--ray-address / ACTREC_RAY_ADDRESS): cannot connect "
            f"({' '.join(str(exc).split())[:200]}). Fix: start the cluster (if it uses token authentication, "
            "set RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN), or unset it for a local Ray"
        ) from None
    log.info(
        "ray: %s", "started locally on 127.0.0.1" if started else f"connected to {address or 'RAY_ADDRESS'}"
    )
    return started


def disconnect(started: bool) -> None:
    import ray

    if started and ray.is_initialized():
        ray.shutdown()
