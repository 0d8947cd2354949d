#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Python client of urllib_client.py over plain HTTP (no TLS), as a self-hosted vLLM or
Ollama is reached inside a cluster: urllib.request and http.client, unmodified, on sockets.

Usage: plain_client.py --base http://127.0.0.1:PORT --spec JSON (modes urllib and keepalive, the
calls as in urllib_client.py). The connection is made before the clock starts, so latency_ms
covers the request written and the response read. Prints one JSON line per call.
"""
import argparse
import http.client
import json
import urllib.request

import urllib_client as base


class PreConnectedHandler(urllib.request.HTTPHandler):
    """Lets urllib use a connection made before the clock started."""

    def __init__(self, conn):
        super().__init__()
        self.conn = conn

    def http_open(self, req):
        return self.do_open(lambda host, **kw: self.conn, req)


def connect(args):
    host, port = args.base.split("://", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.connect()
    return conn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    if not args.base.startswith("http://"):
        ap.error("--base must be an http:// URL")
    # urllib_client's runners, with plain connections in place of TLS ones.
    base.connect = connect
    base.PreConnectedHandler = PreConnectedHandler
    spec = json.loads(args.spec)
    runner = {"urllib": base.run_urllib, "keepalive": base.run_keepalive}
    runner[spec.get("mode", "urllib")](args, spec["calls"])


if __name__ == "__main__":
    main()
