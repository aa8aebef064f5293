"""Run moto's S3-compatible server on 127.0.0.1 on a free port until SIGTERM/SIGINT.

Usage: python scripts/s3_server.py ENDPOINT_FILE
Writes ``http://127.0.0.1:<port>`` to ENDPOINT_FILE once the server answers.
"""

from __future__ import annotations

import signal
import sys
import threading
import urllib.request
from pathlib import Path

from moto.server import ThreadedMotoServer


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10).read()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(endpoint)
    tmp.replace(out)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
