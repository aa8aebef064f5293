"""An S3 server on 127.0.0.1 for tests: moto over real HTTP, never moto's in-process mock.

``ensure_s3_server()`` returns the endpoint URL. If ``ACTREC_TEST_S3_ENDPOINT`` is set (for example, by
the Makefile, which starts one server for the whole run), that endpoint is used. Otherwise the function
starts a ``ThreadedMotoServer`` on a free port, once per process. ``s3_test_env(endpoint)`` gives the
environment that points boto3 at that server: set it in-process with ``monkeypatch``, or pass it to
subprocesses such as ``actrec`` CLI runs.

Run ``python tests/s3_server.py [PORT]`` to serve in the foreground. It prints the endpoint URL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

ENDPOINT_ENV = "ACTREC_TEST_S3_ENDPOINT"

_lock = threading.Lock()
_server = None
_endpoint: str | None = None


def ensure_s3_server() -> str:
    """Return the endpoint URL of a running S3 server, starting one the first time it is called."""
    external = os.environ.get(ENDPOINT_ENV)
    if external:
        return external.rstrip("/")
    global _server, _endpoint
    with _lock:
        if _endpoint is None:
            _server, _endpoint = _start_moto("127.0.0.1", 0)
        return _endpoint


def s3_test_env(endpoint: str) -> dict[str, str]:
    """The environment that points boto3 at ``endpoint`` with moto's dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _start_moto(host: str, port: int):
    from moto.server import ThreadedMotoServer

    # Otherwise werkzeug adds its own handler and logs every request to stderr.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()  # returns once the socket is bound and listening
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"


if __name__ == "__main__":
    server, endpoint = _start_moto("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(endpoint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
