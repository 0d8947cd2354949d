#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A real, unmodified Python client of the mock provider (libssl.so: SSL_write_ex, SSL_read_ex).

Usage: urllib_client.py --base https://127.0.0.1:PORT --cafile CA --spec JSON
The spec: {"mode": "urllib" | "keepalive" | "threads", "calls": [CALL, ...]}
  urllib     each call through urllib.request on its own connection
  keepalive  every call on ONE http.client.HTTPSConnection, one after the other
  threads    every call at once, each in its own thread and connection (they start together)
CALL: {"provider": "openai"|"anthropic", "stream": bool, "model": str, "max_tokens": int,
       "temperature": float, "text": str, "headers": {...}, "tag": str}
   or {"raw": true, "method": "GET", "path": "/health", "body": {...}, "tag": str} (not LLM).
In every mode the TLS handshake is done before the clock starts, so latency_ms covers exactly
the request written and the response read, which is what tokentap's span measures (in threads
mode the threads contend for the GIL, so the line says loose_latency: only an upper bound).
Prints one JSON line per call: what the client observed and measured.
"""
import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request

API_KEY = os.environ.get("MOCK_API_KEY", "sk-test-e2e-0000")


def ms_since(t0):
    return (time.perf_counter_ns() - t0) / 1e6


def build_request(call):
    """Returns (method, path, body bytes, headers) for one call of the spec."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update(call.get("headers") or {})
    if call.get("tag"):
        headers["x-test-tag"] = call["tag"]
    if call.get("raw"):
        body = call.get("body")
        data = json.dumps(body).encode() if body is not None else None
        return call.get("method", "GET"), call["path"], data, headers
    msgs = [{"role": "user", "content": call.get("text", "Say hello to the test suite")}]
    body = {"model": call["model"], "messages": msgs}
    if call["provider"] == "openai":
        path = "/v1/chat/completions"
        headers["Authorization"] = "Bearer " + API_KEY
    else:
        path = "/v1/messages"
        headers["x-api-key"] = API_KEY
        headers["anthropic-version"] = "2023-06-01"
        body["max_tokens"] = call.get("max_tokens", 1024)
    if "max_tokens" in call:
        body["max_tokens"] = call["max_tokens"]
    if "temperature" in call:
        body["temperature"] = call["temperature"]
    if call.get("stream"):
        body["stream"] = True
        headers["Accept"] = "text/event-stream"
        if call["provider"] == "openai":
            body["stream_options"] = {"include_usage": True}
    call["sent_max_tokens"] = body.get("max_tokens")
    return "POST", path, json.dumps(body).encode(), headers


class Observed:
    """What a call's response said, filled from a plain body or from SSE events."""

    def __init__(self, provider):
        self.provider = provider
        self.id = self.model = self.finish_reason = None
        self.input_tokens = self.output_tokens = None
        self.cache_read = self.cache_creation = 0
        self.events = 0
        self.content_len = 0

    def take_openai(self, obj):
        self.id = obj.get("id", self.id)
        self.model = obj.get("model", self.model)
        for ch in obj.get("choices") or []:
            self.finish_reason = ch.get("finish_reason") or self.finish_reason
            part = ch.get("message") or ch.get("delta") or {}
            self.content_len += len(part.get("content") or "")
        usage = obj.get("usage")
        if usage:
            self.input_tokens = usage["prompt_tokens"]
            self.output_tokens = usage["completion_tokens"]
            self.cache_read = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)

    def take_anthropic_usage(self, usage):
        if "input_tokens" in usage:
            self.input_tokens = usage["input_tokens"]
        self.output_tokens = usage.get("output_tokens", self.output_tokens)
        self.cache_read = usage.get("cache_read_input_tokens", self.cache_read) or 0
        self.cache_creation = usage.get("cache_creation_input_tokens", self.cache_creation) or 0

    def take_anthropic(self, obj):
        kind = obj.get("type")
        msg = obj.get("message") if kind == "message_start" else obj
        if kind in ("message", "message_start"):
            self.id, self.model = msg["id"], msg["model"]
            self.finish_reason = msg.get("stop_reason")
            self.take_anthropic_usage(msg.get("usage") or {})
            for block in msg.get("content") or []:
                self.content_len += len(block.get("text") or "")
        elif kind == "message_delta":
            self.finish_reason = obj["delta"].get("stop_reason") or self.finish_reason
            self.take_anthropic_usage(obj.get("usage") or {})
        elif kind == "content_block_delta":
            self.content_len += len(obj["delta"].get("text") or "")

    def take(self, obj):
        (self.take_openai if self.provider == "openai" else self.take_anthropic)(obj)


def read_sse(resp, obs, t0):
    """Reads an SSE body as it arrives; returns the time to the first event, in ms."""
    buf, ttft = b"", None
    while True:
        data = resp.read1(65536)
        if not data:
            break
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                if ttft is None:
                    ttft = ms_since(t0)
                payload = line[5:].strip()
                obs.events += 1
                if payload != b"[DONE]":
                    obs.take(json.loads(payload))
    return ttft


def read_response(resp, call, t0):
    out = {"status": resp.status}
    if call.get("raw"):
        out["body_len"] = len(resp.read())
        return out
    obs = Observed(call["provider"])
    if call.get("stream") and resp.status == 200:
        out["ttft_ms"] = read_sse(resp, obs, t0)
    else:
        body = resp.read()
        if resp.status == 200:
            obs.take(json.loads(body))
        else:
            out["error_body"] = json.loads(body)
    out.update(id=obs.id, model=obs.model, finish_reason=obs.finish_reason,
               input_tokens=obs.input_tokens, output_tokens=obs.output_tokens,
               cache_read=obs.cache_read, cache_creation=obs.cache_creation,
               content_len=obs.content_len, events=obs.events)
    return out


class PreConnectedHandler(urllib.request.HTTPSHandler):
    """Lets urllib use a connection whose TLS handshake was done before the clock started."""

    def __init__(self, conn):
        super().__init__(context=conn._context)
        self.conn = conn

    def https_open(self, req):
        return self.do_open(lambda host, **kw: self.conn, req)


def connect(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    host, port = args.base.split("://", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
    conn.connect()
    return conn


def call_urllib(args, conn, call):
    method, path, data, headers = build_request(call)
    req = urllib.request.Request(args.base + path, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(PreConnectedHandler(conn))
    t0 = time.perf_counter_ns()
    try:
        resp = opener.open(req)
    except urllib.error.HTTPError as e:
        resp = e
    with resp:
        out = read_response(resp, call, t0)
    out["latency_ms"] = ms_since(t0)
    return out


def call_http_client(args, conn, call):
    method, path, data, headers = build_request(call)
    t0 = time.perf_counter_ns()
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = read_response(resp, call, t0)
    out["latency_ms"] = ms_since(t0)
    return out


def report(call, out, via):
    line = {"client": "python-" + ("urllib" if via == "threads" else via),
            "pid": os.getpid(), "tid": threading.get_native_id(),
            "exe": os.readlink("/proc/self/exe"), "tag": call.get("tag"),
            "raw": bool(call.get("raw")), "provider": call.get("provider"),
            "request_model": call.get("model"), "stream": bool(call.get("stream")),
            "max_tokens": call.get("sent_max_tokens"), "temperature": call.get("temperature"),
            "loose_latency": via == "threads", **out}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def run_urllib(args, calls):
    for call in calls:
        conn = connect(args)
        try:
            report(call, call_urllib(args, conn, call), "urllib")
        finally:
            conn.close()


def run_keepalive(args, calls):
    conn = connect(args)
    try:
        for call in calls:
            report(call, call_http_client(args, conn, call), "http.client")
    finally:
        conn.close()


def run_threads(args, calls):
    lock = threading.Lock()
    barrier = threading.Barrier(len(calls))
    results, errors = [], []

    def worker(call):
        try:
            conn = connect(args)
            barrier.wait(timeout=30)
            out = call_urllib(args, conn, call)
            with lock:
                # GIL contention among the threads can delay the clock, not the bytes.
                report(call, out, "threads")
        except Exception as e:  # reported below, so the runner sees which call failed
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    spec = json.loads(args.spec)
    runner = {"urllib": run_urllib, "keepalive": run_keepalive, "threads": run_threads}
    runner[spec.get("mode", "urllib")](args, spec["calls"])


if __name__ == "__main__":
    main()
