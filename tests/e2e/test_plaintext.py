#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end, plain HTTP and GnuTLS: BPF attached, real clients on loopback.

Plain HTTP: the mock provider with --plain (an OpenAI/Anthropic-compatible server without TLS,
as a self-hosted vLLM or Ollama is reached inside a cluster), called by curl, urllib and
http.client (a keep-alive connection whose first request is a GET /health: the LLM calls after
it must still be seen). Every span is checked field by field against the mock's log and the
client's own measurements, as test_e2e.py does for TLS, plus server.port (the plain port),
tokentap.tls.library "none" and the close of the connection.

Not LLM traffic: a second tokentap run sees only plain HTTP that is not an LLM call (GET
/health, POST /internal/echo, GET / of a python http.server, new connections and keep-alive)
and must make no span and copy no byte: the stats line's plain_bytes and plain_records stay 0
while plain_socks_other counts the sockets it judged (those that POSTed elsewhere).

GnuTLS: Debian's libcurl-gnutls (gnutls_record_send/recv) against the HTTPS mock, spans as
for any TLS client with tokentap.tls.library "gnutls".

Environment and usage as test_e2e.py; the last line printed is "plaintext: N passed, N failed".
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402

E2E = h.E2E
GNUTLS_LIBS = ("/usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4",
               "/usr/lib/aarch64-linux-gnu/libcurl-gnutls.so.4")


class PlainMock:
    """The mock provider over plain HTTP; it appends to the TLS mock's log, so one by_tag()
    finds the lines of both."""

    def __init__(self, work, log):
        self.err = open(work / "plain-mock.err", "wb")
        self.proc = h.spawn([sys.executable, E2E / "mock_provider.py", "--plain", "--tls-dir",
                             work / "plain-tls", "--log", log],
                            stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = h.read_line(self.proc, 30, "plain mock provider")
        m = re.fullmatch(r"mock: listening (\d+)", line)
        if not m:
            raise AssertionError(f"plain mock provider printed {line!r}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"


def run_plain_python(base, calls, mode="urllib"):
    spec = {"mode": mode, "calls": calls}
    got = h.run_client([sys.executable, E2E / "clients" / "plain_client.py", "--base", base,
                        "--spec", json.dumps(spec)], f"plain python client ({mode})")
    if len(got) != len(calls):
        raise AssertionError(f"plain python client reported {len(got)} calls of {len(calls)}")
    return got


def run_plain_curl(base, call, work):
    """One call by curl over http://. The clock starts when the TCP connection is up
    (time_connect): curl writes the request right after."""
    method, path, data, headers = h.pyclient.build_request(call)
    body, resp = work / f"{call['tag']}.req.json", work / f"{call['tag']}.resp"
    body.write_bytes(data)
    args = ["curl", "-sS", base + path, "--data-binary", f"@{body}", "-o", resp,
            "-w", "%{http_code} %{time_connect} %{time_starttransfer} %{time_total}"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    proc = h.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"curl exited with {proc.returncode}: {err}")
    code, connected, start, total = out.split()
    raw = resp.read_bytes()
    obs = h.pyclient.Observed(call["provider"])
    if call.get("stream") and code == "200":
        for event in raw.split(b"\n\n"):
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    obs.take(json.loads(line[5:]))
    elif code == "200":
        obs.take(json.loads(raw))
    got = {"client": "curl", "pid": proc.pid, "tid": proc.pid,
           "exe": os.path.realpath(shutil.which("curl")), "tag": call["tag"], "raw": False,
           "provider": call["provider"], "request_model": call["model"],
           "stream": bool(call.get("stream")), "max_tokens": call.get("sent_max_tokens"),
           "temperature": call.get("temperature"), "loose_latency": False, "status": int(code),
           "id": obs.id, "model": obs.model, "finish_reason": obs.finish_reason,
           "input_tokens": obs.input_tokens, "output_tokens": obs.output_tokens,
           "cache_read": obs.cache_read, "cache_creation": obs.cache_creation,
           "content_len": obs.content_len,
           "latency_ms": (float(total) - float(connected)) * 1000}
    if call.get("stream"):
        got["ttft_ms"] = (float(start) - float(connected)) * 1000
    return h.record([got])


def run_gnutls(calls):
    mock = h.Workspace.mock
    got = h.run_client([sys.executable, E2E / "clients" / "gnutls_client.py", "--base",
                        mock.base, "--cafile", mock.ca, "--spec", json.dumps({"calls": calls})],
                       "gnutls client")
    if len(got) != len(calls):
        raise AssertionError(f"gnutls client reported {len(got)} calls of {len(calls)}")
    return got


def stats_line(tt):
    """The counters of tokentap's last stats line, as ints where they are numbers."""
    lines = [ln for ln in tt.err_path.read_text(errors="replace").splitlines()
             if ln.startswith("tokentap: stats:")]
    if not lines:
        raise AssertionError(f"tokentap printed no stats line:\n{h.tail(tt.err_path)}")
    out = {}
    for k, v in re.findall(r"(\w+)=(\S+)", lines[-1]):
        out[k] = int(v) if v.isdigit() else v
    return out


class PlainCase(h.TracedCase):
    """A traced class with the plain mock started before tokentap."""

    @classmethod
    def before_tokentap(cls):
        cls.plain = PlainMock(cls.work, h.Workspace.mock.log)

    def check_calls(self, name, port, library):
        """Exactly one span per LLM call, each checked by test_e2e's check_span with the
        TLS library attribute checked here (check_span knows only OpenSSL)."""
        calls = self.calls(name)
        llm = [c for c in calls if not c["raw"]]
        spans = self.spans_of({c["pid"] for c in calls})
        self.assertEqual(len(spans), len(llm), f"{name}: {len(spans)} spans for {len(llm)} calls")
        by_id = {s["attributes"].get("gen_ai.response.id"): s for s in spans}
        for c in llm:
            log = self.log.get(c["tag"])
            self.assertIsNotNone(log, f"the mock has no log line for {c['tag']}")
            h.check_client_vs_log(self, c, log)
            span = by_id.get(log["id"])
            self.assertIsNotNone(span, f"{name}: no span with id {log['id']}")
            self.assertEqual(span["attributes"].get("tokentap.tls.library"), library,
                             f"[{c['tag']}] tokentap.tls.library")
            bare = copy.deepcopy(span)
            del bare["attributes"]["tokentap.tls.library"]
            h.check_span(self, bare, c, log, port)
        return calls, spans


class TestPlaintext(PlainCase):
    """Plain HTTP LLM calls from curl and Python, and GnuTLS calls, traced by one tokentap."""

    @classmethod
    def workload_curl(cls):
        return run_plain_curl(cls.plain.base, h.call("openai", "gpt-4o", "plain-curl",
                                                     max_tokens=64, temperature=0.5,
                                                     text=h.words(3)), cls.work)

    @classmethod
    def workload_curl_stream(cls):
        return run_plain_curl(cls.plain.base, h.call("openai", "llama-3.1-8b", "plain-curl-s",
                                                     stream=True, text=h.words(2)), cls.work)

    @classmethod
    def workload_urllib(cls):
        return run_plain_python(cls.plain.base, [
            h.call("openai", "qwen2.5", "plain-py-oai", text=h.words(4)),
            h.call("anthropic", "claude-haiku-4-5", "plain-py-ant", stream=True,
                   text=h.words(2)),
            h.call("openai", "qwen2.5", "plain-py-429", headers={"x-mock-status": "429"})])

    @classmethod
    def workload_keepalive(cls):
        # The connection's first request is not an LLM call: the kernel keeps judging it.
        return run_plain_python(cls.plain.base, [
            {"raw": True, "method": "GET", "path": "/health", "tag": "plain-ka-health"},
            h.call("openai", "mistral-7b", "plain-ka0", stream=True, text=h.words(2)),
            h.call("anthropic", "claude-sonnet-4-5", "plain-ka1", text=h.words(5))],
            mode="keepalive")

    @classmethod
    def workload_gnutls(cls):
        if not any(os.path.exists(p) for p in GNUTLS_LIBS):
            raise unittest.SkipTest("libcurl-gnutls.so.4 missing (Debian libcurl3-gnutls)")
        return run_gnutls([
            h.call("openai", "gpt-4o-mini", "gnutls-oai", text=h.words(3), max_tokens=50),
            h.call("anthropic", "claude-sonnet-4-5", "gnutls-ant", stream=True,
                   text=h.words(2))])

    def test_curl(self):
        self.check_calls("curl", self.plain.port, "none")

    def test_curl_stream(self):
        self.check_calls("curl_stream", self.plain.port, "none")

    def test_urllib(self):
        self.check_calls("urllib", self.plain.port, "none")

    def test_keepalive(self):
        calls, spans = self.check_calls("keepalive", self.plain.port, "none")
        self.assertEqual(len({c["pid"] for c in calls}), 1)

    def test_gnutls(self):
        if isinstance(self.results.get("gnutls"), unittest.SkipTest):
            if h.REQUIRE_BPF:
                self.fail(str(self.results["gnutls"]))
            self.skipTest(str(self.results["gnutls"]))
        calls, _ = self.check_calls("gnutls", self.mock.port, "gnutls")
        self.assertIn("GnuTLS", calls[0]["tls_library"])

    def test_stats(self):
        st = stats_line(self.tt)
        self.assertIn(st.get("plain_rung"), ("sock_length", "sys_exit"))
        self.assertGreater(st.get("plain_bytes", 0), 0)
        self.assertGreaterEqual(st.get("plain_socks_llm", 0), 4)  # curl x2, urllib x3, ka
        self.assertEqual(st.get("lost_bytes"), 0)


def plain_noise(base, n):
    """n requests that are not LLM calls, on new connections and on one keep-alive one."""
    import http.client
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    for i in range(n):
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        if i % 2:
            c.request("POST", "/internal/echo", body=b'{"model":"x","messages":[]}',
                      headers={"Content-Type": "application/json"})
        else:
            c.request("GET", "/health")
        c.getresponse().read()
        c.close()
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    for i in range(n):
        c.request("GET", f"/v1/models?i={i}")
        c.getresponse().read()
    c.close()


class TestPlainNotLLM(PlainCase):
    """Plain HTTP that is not LLM traffic: no span, no byte copied."""

    @classmethod
    def workload_noise(cls):
        srv = h.spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                      cwd=cls.work)
        m = re.search(r"port (\d+)", h.read_line(srv, 30, "python http.server"))
        if not m:
            raise AssertionError("python http.server printed no port")
        code = (f"import sys;sys.path.insert(0,{str(E2E)!r});import test_plaintext as t;"
                f"t.plain_noise({cls.plain.base!r},40);"
                f"t.plain_noise('http://127.0.0.1:{m.group(1)}',40)")
        proc = h.spawn([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=60)
        srv.kill()
        if proc.returncode != 0:
            raise AssertionError(f"noise client failed: {err[-2000:]}")
        return [{"pid": proc.pid, "raw": True}]

    def test_no_span_no_bytes(self):
        calls = self.calls("noise")
        self.assertEqual(self.spans_of({c["pid"] for c in calls}), [])
        st = stats_line(self.tt)
        self.assertIn(st.get("plain_rung"), ("sock_length", "sys_exit"))
        # Host-wide counters: another plain LLM client running at the same time (a second test
        # run) would show here too.
        self.assertEqual(st.get("plain_records"), 0)
        self.assertEqual(st.get("plain_bytes"), 0)
        self.assertEqual(st.get("plain_socks_llm"), 0)
        # The 40 connections that POSTed /internal/echo were judged; GETs are never judged.
        self.assertGreaterEqual(st.get("plain_socks_other", 0), 40)


class H2cServer:
    """tests/e2e/clients/h2c.js server: OpenAI-shaped chat over HTTP/2 without TLS."""

    def __init__(self, work, name):
        self.err = open(work / f"{name}.err", "wb")
        self.proc = h.spawn(["node", E2E / "clients" / "h2c.js", "server"],
                            stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = h.read_line(self.proc, 30, "h2c server")
        m = re.fullmatch(r"h2c: listening (\d+)", line)
        if not m:
            raise AssertionError(f"h2c server printed {line!r}")
        self.port = int(m.group(1))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run_h2c(port, calls):
    got = h.run_client(["node", E2E / "clients" / "h2c.js", "client", str(port),
                        json.dumps(calls)], "h2c client")
    if len(got) != len(calls):
        raise AssertionError(f"h2c client reported {len(got)} calls of {len(calls)}")
    return got


class TestH2c(h.TracedCase):
    """h2c (prior knowledge) from Node's http2 client: the kernel copies it only to a port in
    --h2c-ports (this test's server), user space picks the HTTP/2 parser from the preface; a
    stream the server resets ends its call with error.type http2_rst_stream. The same client
    against a server on another port is not copied at all."""

    @classmethod
    def before_tokentap(cls):
        cls.srv = H2cServer(cls.work, "h2c-listed")
        cls.other = H2cServer(cls.work, "h2c-unlisted")

    @classmethod
    def tokentap_args_for(cls):
        return cls.tokentap_args + ["--h2c-ports", str(cls.srv.port), "--stats-interval", "1"]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.srv.stop()
        cls.other.stop()

    @classmethod
    def workload_h2c(cls):
        return run_h2c(cls.srv.port, [
            {"tag": "h2c-plain", "model": "llama-3.1-8b"},
            {"tag": "h2c-stream", "model": "qwen2.5", "stream": True},
            {"tag": "h2c-reset", "model": "mistral-7b", "reset": True}])

    @classmethod
    def workload_unlisted(cls):
        return run_h2c(cls.other.port, [{"tag": "h2c-unlisted", "model": "llama-3.1-8b"}])

    def spans_by_model(self, name):
        calls = self.calls(name)
        return {s["attributes"].get("gen_ai.request.model"): s
                for s in self.spans_of({c["pid"] for c in calls})}, calls

    def test_h2c_calls(self):
        spans, calls = self.spans_by_model("h2c")
        self.assertEqual(sorted(spans), ["llama-3.1-8b", "mistral-7b", "qwen2.5"])
        for model in ("llama-3.1-8b", "qwen2.5"):
            a = spans[model]["attributes"]
            self.assertEqual(a.get("gen_ai.response.model"), model + "-2025")
            self.assertEqual(a.get("gen_ai.usage.input_tokens"), 11)
            self.assertEqual(a.get("gen_ai.usage.output_tokens"), 7)
            self.assertEqual(a.get("http.response.status_code"), 200)
            self.assertEqual(a.get("server.port"), self.srv.port)
            self.assertEqual(a.get("tokentap.tls.library"), "none")
            self.assertEqual(a.get("url.path"), "/v1/chat/completions")
            self.assertNotIn("error.type", a)
        self.assertEqual(spans["qwen2.5"]["attributes"].get("gen_ai.request.stream"), True)
        self.assertIn("gen_ai.response.time_to_first_chunk", spans["qwen2.5"]["attributes"])
        self.assertEqual(spans["llama-3.1-8b"]["attributes"].get("gen_ai.response.id"),
                         "chatcmpl-h2c-h2c-plain")

    def test_h2c_reset(self):
        spans, calls = self.spans_by_model("h2c")
        self.assertEqual([c["error"] for c in calls if c["tag"] == "h2c-reset"],
                         ["ERR_HTTP2_STREAM_ERROR"])
        s = spans.get("mistral-7b")
        self.assertIsNotNone(s, "no span for the reset stream")
        a = s["attributes"]
        self.assertEqual(a.get("error.type"), "http2_rst_stream")
        self.assertEqual(a.get("tokentap.http2.error_code"), "INTERNAL_ERROR")
        self.assertEqual(a.get("tokentap.http2.error_sender"), "server")
        self.assertEqual(s["status"]["code"], "error")

    def test_unlisted_port_not_copied(self):
        spans, _ = self.spans_by_model("unlisted")
        self.assertEqual(spans, {})
        st = stats_line(self.tt)
        self.assertGreaterEqual(st.get("plain_h2c_other", 0), 1)


def main():
    h.run_suite("plaintext", __name__)


if __name__ == "__main__":
    main()
