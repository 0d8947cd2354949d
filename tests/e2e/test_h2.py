#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end over HTTP/2 and compressed bodies, BPF attached.

The Python mock provider speaks HTTP/1.1 only, so h2_front.js (node:http2, TLS, ALPN h2 and
http/1.1) stands in front of it: it forwards every request to the mock and streams the answer
back, gzip/br/deflate-compressed when asked (x-mock-encoding) or offered (Accept-Encoding). One
mock logic, one log, every protocol. Clients: curl --http2 / --http1.1 with --compressed, and the
official Node SDKs (HTTP/1.1, Accept-Encoding: gzip, deflate).

tokentap also sees the front's own traffic: its server side (set aside) and its HTTP/1.1 client
connections to the mock, which are LLM calls with the front's pid. Spans are therefore always
picked by the pid of the client under test.

curl's time_starttransfer is taken at the first byte of HTTP/2 SETTINGS, not of the response, so
curl's own --trace-time trace gives the client's measure: from its request header to its first
and last received body bytes.

Environment: as test_e2e.py. The last line printed is "h2: N passed, N failed".
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(E2E))
import test_e2e as h  # noqa: E402  (the shared harness)


class Front:
    """h2_front.js in front of the mock; its log says which protocol and coding each call got."""

    def __init__(self, work, mock):
        self.log = work / "front.log"
        self.proc = h.spawn(["node", E2E / "h2_front.js", "--upstream", mock.base,
                             "--tls-dir", mock.tls, "--log", self.log],
                            stdout=subprocess.PIPE, stderr=open(work / "front.err", "wb"),
                            text=True, cwd=E2E)
        line = h.read_line(self.proc, 30, "h2_front.js")
        m = re.fullmatch(r"h2front: listening (\d+)", line)
        if not m:
            raise AssertionError(f"h2_front.js printed {line!r}")
        self.port = int(m.group(1))
        self.base = f"https://127.0.0.1:{self.port}"

    def by_tag(self):
        with open(self.log) as f:
            return {e["tag"]: e for e in map(json.loads, f) if e.get("tag")}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


_TRACE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) (=>|<=|==) (.*)$")


def trace_times(path):
    """(request written, first body bytes read, last body bytes read) in ms, from curl's trace.

    Times are those of the TLS records (logged inside SSL_write and SSL_read), not of curl's
    "Send header" / "Recv data" lines, which come after the I/O and, on a loaded host, late: the
    request is the first record written after the handshake, a body piece was read in the last
    record read before its "Recv data" line.
    """
    tls_done = sent = first = last = head = rec_in = None
    for line in path.read_text(errors="replace").splitlines():
        m = _TRACE.match(line)
        if not m:
            continue
        t = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) * 1000
        if tls_done is not None and t < tls_done:
            t += 86400 * 1000  # midnight
        what = m.group(5)
        if what.startswith("Info: SSL connection using"):
            tls_done = t
        elif tls_done is None:
            continue
        elif what.startswith("Send SSL data") and sent is None:
            sent = t
        elif what.startswith("Recv SSL data"):
            rec_in = t
        elif what.startswith("Recv header"):
            head = rec_in
        elif what.startswith("Recv data"):
            first = rec_in if first is None else first
            last = rec_in
    if sent is None or head is None:
        raise AssertionError(f"no request or response in curl's trace {path}")
    return sent, (first if first is not None else head), (last if last is not None else head)


def run_curl(call, work, base, proto, compressed=False):
    """One call made by curl through the front; proto is --http2 or --http1.1."""
    method, path, data, headers = h.pyclient.build_request(call)
    tag = call["tag"]
    body, resp, trace = work / f"{tag}.req.json", work / f"{tag}.resp", work / f"{tag}.trace"
    body.write_bytes(data)
    args = ["curl", "-sS", proto, "--cacert", h.Workspace.mock.ca, base + path,
            "--data-binary", f"@{body}", "-o", resp, "--trace-ascii", trace, "--trace-time",
            "-w", "%{http_code} %{http_version}"]
    if compressed:
        args.append("--compressed")
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    proc = h.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"curl exited with {proc.returncode}: {err}")
    code, version = out.split()
    sent, first, last = trace_times(trace)
    obs = h.pyclient.Observed(call["provider"])
    raw = resp.read_bytes()
    if call.get("stream") and code == "200":
        for event in raw.split(b"\n\n"):
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    obs.take(json.loads(line[5:]))
    elif code == "200":
        obs.take(json.loads(raw))
    got = {"client": "curl", "pid": proc.pid, "tid": proc.pid, "tag": tag, "raw": False,
           "exe": os.path.realpath(shutil.which("curl")), "provider": call["provider"],
           "request_model": call["model"], "stream": bool(call.get("stream")),
           "max_tokens": call.get("sent_max_tokens"), "temperature": call.get("temperature"),
           "loose_latency": False, "status": int(code), "http_version": version,
           "id": obs.id, "model": obs.model, "finish_reason": obs.finish_reason,
           "input_tokens": obs.input_tokens, "output_tokens": obs.output_tokens,
           "cache_read": obs.cache_read, "cache_creation": obs.cache_creation,
           "content_len": obs.content_len, "latency_ms": last - sent}
    if call.get("stream"):
        got["ttft_ms"] = first - sent
    return h.record([got])


def run_node(sdk, calls, base, **spec):
    spec["calls"] = calls
    got = h.run_client(["node", E2E / "clients" / f"{sdk}_client.mjs", "--base", base,
                        "--spec", json.dumps(spec)], f"node {sdk} client")
    if len(got) != len(calls):
        raise AssertionError(f"node {sdk} client reported {len(got)} calls of {len(calls)}")
    return got


def enc(coding):
    return {"x-mock-encoding": coding}


class TestH2(h.TracedCase):
    """HTTP/2 and Content-Encoding through one tokentap --format json."""

    @classmethod
    def before_tokentap(cls):
        cls.front = Front(cls.work, cls.mock)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "front", None) is not None:
            cls.front.stop()

    def curl(self, **kw):
        return run_curl(work=self.work, base=self.front.base, **kw)

    @classmethod
    def workload_curl_h2_plain(cls):
        return run_curl(h.call("openai", "gpt-4o", "h2-plain", max_tokens=64, temperature=0.7,
                               text=h.words(3)), cls.work, cls.front.base, "--http2")

    @classmethod
    def workload_curl_h2_stream(cls):
        return run_curl(h.call("openai", "gpt-4o", "h2-stream", stream=True),
                        cls.work, cls.front.base, "--http2")

    @classmethod
    def workload_curl_h2_anthropic_stream(cls):
        return run_curl(h.call("anthropic", "claude-sonnet-4-5", "h2-anth", stream=True,
                               headers={"x-mock-cache-read": "7"}),
                        cls.work, cls.front.base, "--http2")

    @classmethod
    def workload_curl_h2_gzip_stream(cls):
        # Events 40 ms apart: a first chunk timed at any later event would be far off.
        return run_curl(h.call("openai", "gpt-4o", "h2-gz-s", stream=True, delay=60,
                               headers={**enc("gzip"), "x-mock-chunk-delay-ms": "40"}),
                        cls.work, cls.front.base, "--http2", compressed=True)

    @classmethod
    def workload_curl_h2_br(cls):
        return run_curl(h.call("openai", "gpt-4o", "h2-br", headers=enc("br")),
                        cls.work, cls.front.base, "--http2", compressed=True)

    @classmethod
    def workload_curl_h2_error(cls):
        return run_curl(h.call("openai", "gpt-4o", "h2-429",
                               headers={**enc("gzip"), "x-mock-status": "429"}),
                        cls.work, cls.front.base, "--http2", compressed=True)

    @classmethod
    def workload_curl_h1_gzip(cls):
        return run_curl(h.call("openai", "gpt-4o", "h1-gz", headers=enc("gzip")),
                        cls.work, cls.front.base, "--http1.1", compressed=True)

    @classmethod
    def workload_curl_h1_br_stream(cls):
        return run_curl(h.call("anthropic", "claude-x", "h1-br-s", stream=True,
                               headers=enc("br")),
                        cls.work, cls.front.base, "--http1.1", compressed=True)

    @classmethod
    def workload_curl_h1_deflate(cls):
        return run_curl(h.call("openai", "gpt-4o", "h1-defl", headers=enc("deflate")),
                        cls.work, cls.front.base, "--http1.1", compressed=True)

    @classmethod
    def workload_node_openai_compressed(cls):
        # Without x-mock-encoding the front answers in the best coding the SDK's fetch offers.
        return run_node("openai", [
            h.call("openai", "gpt-4o", "sdk-auto", delay=h.NODE_DELAY),
            h.call("openai", "gpt-4o", "sdk-auto-s", stream=True, delay=h.NODE_DELAY),
            h.call("openai", "gpt-4o", "sdk-gz-s", stream=True, delay=h.NODE_DELAY,
                   headers=enc("gzip")),
        ], cls.front.base)

    @classmethod
    def workload_node_anthropic_compressed(cls):
        return run_node("anthropic", [
            h.call("anthropic", "claude-x", "sdk-a-s", stream=True, delay=h.NODE_DELAY),
        ], cls.front.base)

    def check_front(self, name, version, coding):
        """The call really went as the test means: that protocol, that coding ("auto": the
        client offered one in Accept-Encoding and got it)."""
        front = self.front.by_tag()
        for c in self.calls(name):
            e = front.get(c["tag"])
            self.assertIsNotNone(e, f"the front has no line for {c['tag']}")
            self.assertEqual(e["http_version"], version, c["tag"])
            if coding == "auto":
                self.assertIn(e["encoding"], ("br", "gzip", "deflate"), c["tag"])
                self.assertIn(e["encoding"], e["accept"], c["tag"])
            else:
                self.assertEqual(e["encoding"], coding, c["tag"])
            if c["client"] == "curl":
                self.assertEqual(c["http_version"], "2" if version == "2.0" else version,
                                 c["tag"])

    def check(self, name):
        """One span per call, right in every attribute and time (test_e2e.check_span), with
        the front's port as the server's."""
        calls = self.calls(name)
        spans = self.spans_of({c["pid"] for c in calls})
        self.assertEqual(len(spans), len(calls), f"{name}: {len(spans)} spans for "
                         f"{len(calls)} calls")
        by_id = {s["attributes"].get("gen_ai.response.id"): s for s in spans}
        for c in calls:
            log = self.log.get(c["tag"])
            self.assertIsNotNone(log, f"the mock has no log line for {c['tag']}")
            h.check_client_vs_log(self, c, log)
            span = by_id.get(log["id"]) if log["id"] else next(
                (s for s in spans if "gen_ai.response.id" not in s["attributes"]), None)
            self.assertIsNotNone(span, f"{name}: no span for {c['tag']}")
            h.check_span(self, span, c, log, self.front.port)

    def test_curl_http2_plain(self):
        self.check_front("curl_h2_plain", "2.0", None)
        self.check("curl_h2_plain")

    def test_curl_http2_stream(self):
        self.check_front("curl_h2_stream", "2.0", None)
        self.check("curl_h2_stream")

    def test_curl_http2_anthropic_stream(self):
        self.check("curl_h2_anthropic_stream")

    def test_curl_http2_gzip_stream_first_chunk_time(self):
        self.check_front("curl_h2_gzip_stream", "2.0", "gzip")
        self.check("curl_h2_gzip_stream")  # includes the first-chunk time vs curl's

    def test_curl_http2_br(self):
        self.check_front("curl_h2_br", "2.0", "br")
        self.check("curl_h2_br")

    def test_curl_http2_error_status(self):
        self.check("curl_h2_error")

    def test_curl_http1_gzip_br_deflate(self):
        for name, coding in (("curl_h1_gzip", "gzip"), ("curl_h1_br_stream", "br"),
                             ("curl_h1_deflate", "deflate")):
            self.check_front(name, "1.1", coding)
            self.check(name)

    def test_node_sdks_with_compression(self):
        calls = self.calls("node_openai_compressed")
        front = self.front.by_tag()
        self.assertEqual([front[c["tag"]]["encoding"] is not None for c in calls], [True] * 3)
        self.assertEqual(front[calls[2]["tag"]]["encoding"], "gzip")
        self.check("node_openai_compressed")
        self.check_front("node_anthropic_compressed", "1.1", "auto")
        self.check("node_anthropic_compressed")

    def test_counters(self):
        """The stats line at exit: HTTP/2 connections parsed, bodies decoded, nothing corrupt."""
        err = (self.work / "tokentap.err").read_text(errors="replace")
        stats = [ln for ln in err.splitlines() if ln.startswith("tokentap: stats:")]
        self.assertTrue(stats, "no stats line")
        kv = dict(re.findall(r"(\w+)=(\S+)", stats[-1]))
        self.assertGreaterEqual(int(kv.get("h2_conns", 0)), 6, stats[-1])
        self.assertGreaterEqual(int(kv.get("decoded", 0)), 9, stats[-1])
        for k in ("h2_parse_errors", "h2_hpack_failures", "decode_corrupt", "decode_capped",
                  "decode_unsupported"):
            self.assertEqual(kv.get(k), "0", f"{k} in {stats[-1]}")

    def test_front_is_not_a_client_of_itself(self):
        """The front's server side (h2 and h1) is set aside: its spans are only its own calls
        to the mock, one per LLM call forwarded."""
        llm = sum(len([c for c in self.calls(n) if not c["raw"]])
                  for n in self.results if not isinstance(self.results[n], Exception))
        spans = self.spans_of({self.front.proc.pid})
        self.assertEqual(len(spans), llm)
        for s in spans:
            self.assertEqual(s["attributes"].get("server.port"), self.mock.port)


def main():
    h.run_suite("h2", __name__)


if __name__ == "__main__":
    main()
