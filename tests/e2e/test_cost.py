#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap cost and attribution end to end: BPF attached, the mock provider, real clients.

tokentap runs from a --config file (pricing file, tenant header, fingerprint key, OTLP endpoint;
a flag overriding one of its values) and the workload mixes OpenAI and Anthropic, plain and
streamed, cached and reasoning tokens, an alias, an unknown model, a client traceparent, tenant
and organization headers, body user ids, and a pricing reload by SIGHUP (a good file, then a
broken one). Every expected number is computed here from the mock's log and the pricing data
this test wrote, never from tokentap's code:
  cost = (uncached input * input + cache read * cache_read + cache write * cache_write
          + (output - reasoning) * output + reasoning * reasoning_rate) / 1e6
  fingerprint = first 16 hex digits of HMAC-SHA256(secret file, API key)
The raw API key must appear nowhere tokentap wrote: stdout, stderr, OTLP (decoded by the
official generated code) and the OTLP request log.

Usage: test_cost.py [unittest arguments]; the last line is "cost: N passed, N failed".
"""
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(E2E))
import test_e2e as h  # noqa: E402  (mock, tokentap and client helpers)

# Prices are a thousand times list prices so that a few dozen tokens cost dollars and cents.
PRICING = {
    "_source": "tokentap e2e test_cost.py", "_date": "2026-11-23",
    "gpt-4o": {"provider": "openai", "input_per_mtok": 2500, "output_per_mtok": 10000,
               "cache_read_per_mtok": 1250},
    "o-think": {"provider": "openai", "input_per_mtok": 1100, "output_per_mtok": 4400,
                "cache_read_per_mtok": 275, "reasoning_per_mtok": 8800},
    "claude-sonnet-4-5": {"provider": "anthropic", "input_per_mtok": 3000,
                          "output_per_mtok": 15000, "cache_read_per_mtok": 300,
                          "cache_write_per_mtok": 3750},
    "team-model": {"provider": "openai", "input_per_mtok": 500, "output_per_mtok": 1500,
                   "aliases": ["acme-chat"]},
}
# After the SIGHUP: gpt-4o costs twice as much.
PRICING_2 = dict(PRICING, **{"gpt-4o": {"provider": "openai", "input_per_mtok": 5000,
                                        "output_per_mtok": 20000, "cache_read_per_mtok": 2500}})
ALIASES = {"acme-chat": "team-model"}
SECRET = os.urandom(32)
FINGERPRINT = hmac.new(SECRET, h.API_KEY.encode(), hashlib.sha256).hexdigest()[:16]


def rate(p, key, fallback):
    return p.get(key, p[fallback])


def expected_cost(log, table):
    """USD of one call from the mock's log line and a pricing dict, or None when unpriced."""
    p = table.get(ALIASES.get(log["model_requested"], log["model_requested"]))
    if p is None or log["status"] != 200:
        return None
    out = log["output_tokens"]
    reasoning = log.get("reasoning_tokens", 0) if log["provider"] == "openai" else 0
    # The mock's input_words is the uncached part for both providers.
    return (log["input_words"] * p["input_per_mtok"]
            + log["cache_read_tokens"] * rate(p, "cache_read_per_mtok", "input_per_mtok")
            + log["cache_creation_tokens"] * rate(p, "cache_write_per_mtok", "input_per_mtok")
            + (out - reasoning) * p["output_per_mtok"]
            + reasoning * rate(p, "reasoning_per_mtok", "output_per_mtok")) / 1e6


def traceparent():
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def raw_call(provider, tag, body):
    """A call whose body this test writes (user ids); the client adds no credential to it."""
    headers = {"Content-Type": "application/json", "x-mock-output-tokens": "7"}
    if provider == "openai":
        path = "/v1/chat/completions"
        headers["Authorization"] = "Bearer " + h.API_KEY
    else:
        path = "/v1/messages"
        headers["x-api-key"] = h.API_KEY
        headers["anthropic-version"] = "2023-06-01"
    return {"raw": True, "method": "POST", "path": path, "body": body, "headers": headers,
            "tag": f"{tag}-{uuid.uuid4().hex[:8]}"}


def wait_for(path, pattern, after, timeout=10):
    """Waits until tokentap's stderr has a line matching pattern past byte offset after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_bytes()[after:].decode(errors="replace")
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"tokentap never logged /{pattern}/; stderr:\n{h.tail(path)}")


class TestCost(h.TracedCase):
    @classmethod
    def before_tokentap(cls):
        cls.pricing = cls.work / "pricing.json"
        cls.pricing.write_text(json.dumps(PRICING, indent=1))
        cls.secret = cls.work / "fingerprint.key"
        cls.secret.write_bytes(SECRET)
        cls.secret.chmod(0o600)
        cls.otlp_out = cls.work / "otlp.jsonl"
        cls.otlp_requests = cls.work / "otlp-requests.jsonl"
        cls.receiver = h.spawn(["node", E2E / "otlp_receiver.js", "--port", "0", "--out",
                                cls.otlp_out, "--requests-out", cls.otlp_requests],
                               stdout=subprocess.PIPE,
                               stderr=open(cls.work / "otlp.err", "wb"), text=True, cwd=E2E)
        line = h.read_line(cls.receiver, 30, "otlp_receiver.js")
        m = re.fullmatch(r"otlp_receiver: listening (\d+)", line)
        if not m:
            raise AssertionError(f"otlp_receiver.js printed {line!r}")
        cls.config = cls.work / "tokentap.conf"
        cls.config.write_text(
            "# test_cost.py\n"
            "format = text\n"  # overridden by --format json on the command line
            f"otlp-endpoint = http://127.0.0.1:{m.group(1)}\n"
            f"pricing = {cls.pricing}\n"
            "tenant-header = x-tenant-id\n"
            f"fingerprint_key = \"{cls.secret}\"\n"
            "control-socket = \"\"\n")
        cls.config.chmod(0o600)
        cls.tp = {}  # tag prefix -> (trace id, parent id) sent

    @classmethod
    def tokentap_args_for(cls):
        return ["--config", cls.config, "--format", "json"]

    @classmethod
    def tearDownClass(cls):
        receiver = getattr(cls, "receiver", None)
        if receiver is not None and receiver.poll() is None:
            receiver.terminate()
            receiver.wait(timeout=10)

    @classmethod
    def workload_a_cost(cls):
        tid, pid = traceparent()
        cls.tp["oa-plain"] = (tid, pid)
        auth = {"OpenAI-Organization": "org-test", "OpenAI-Project": "proj_test"}
        calls = [
            h.call("openai", "gpt-4o", "oa-plain", headers={
                "x-mock-cache-read": "4000", "x-mock-output-tokens": "60", "x-tenant-id": "acme",
                "traceparent": f"00-{tid}-{pid}-01", **auth}),
            h.call("openai", "gpt-4o", "oa-stream", stream=True, headers={
                "x-mock-cache-read": "1234", "x-mock-output-tokens": "33",
                "x-tenant-id": "beta"}),
            h.call("openai", "o-think", "oa-reason", headers={
                "x-mock-output-tokens": "50", "x-mock-reasoning": "30"}),
            h.call("openai", "acme-chat", "oa-alias", headers={"x-mock-output-tokens": "9"}),
            h.call("openai", "mystery-model-x", "oa-unknown"),
            h.call("openai", "gpt-4o", "oa-badtp", headers={
                "traceparent": f"00-{'0' * 32}-{pid}-01"}),
            h.call("anthropic", "claude-sonnet-4-5", "an-plain", headers={
                "x-mock-cache-read": "3000", "x-mock-cache-creation": "2000",
                "x-mock-output-tokens": "40"}),
            h.call("anthropic", "claude-sonnet-4-5", "an-stream", stream=True, headers={
                "x-mock-cache-read": "777", "x-mock-cache-creation": "555",
                "x-mock-output-tokens": "21"}),
            h.call("openai", "gpt-4o", "oa-429", headers={"x-mock-status": "429"}),
            raw_call("openai", "raw-user", {"model": "gpt-4o", "user": "end-user-7",
                                            "messages": [{"role": "user", "content": "hi"}]}),
            raw_call("anthropic", "raw-meta", {
                "model": "claude-sonnet-4-5", "max_tokens": 64,
                "metadata": {"user_id": "anthropic-user-9"},
                "messages": [{"role": "user", "content": "hello there"}]}),
        ]
        return h.run_python(calls)

    @classmethod
    def workload_b_node(cls):
        tid, pid = traceparent()
        cls.tp["node-tp"] = (tid, pid)
        return h.run_node("openai", [h.call("openai", "gpt-4o", "node-tp", headers={
            "traceparent": f"00-{tid}-{pid}-01", "x-mock-cache-read": "100"},
            delay=h.NODE_DELAY)])

    @classmethod
    def workload_z_reload(cls):
        """SIGHUP with a good file (new prices), then with a broken one (prices stay)."""
        err = cls.tt.err_path
        got = []
        mark = err.stat().st_size
        cls.pricing.write_text(json.dumps(PRICING_2))
        cls.tt.proc.send_signal(signal.SIGHUP)
        cls.reload_ok = wait_for(err, r"pricing: loaded 4 models", mark)
        got += h.run_python([h.call("openai", "gpt-4o", "reload-new",
                                    headers={"x-mock-cache-read": "500"})])
        mark = err.stat().st_size
        cls.pricing.write_text('{"gpt-4o": {"provider": "openai", "input_per_')
        cls.tt.proc.send_signal(signal.SIGHUP)
        cls.reload_bad = wait_for(err, r"keeping the previous table \(4 models\)", mark)
        got += h.run_python([h.call("openai", "gpt-4o", "reload-kept",
                                    headers={"x-mock-cache-read": "600"})])
        return got

    # ---- helpers ---------------------------------------------------------------------------

    def span_for(self, tag):
        """The one span of the call whose tag starts with tag, and the mock's log line."""
        logs = [v for k, v in self.log.items() if k.startswith(tag + "-")]
        self.assertEqual(len(logs), 1, f"log lines of {tag}")
        log = logs[0]
        if log["id"]:
            spans = [s for s in self.tt.spans
                     if s["attributes"].get("gen_ai.response.id") == log["id"]]
        else:  # an error answer has no id: the client's pid and the status find it
            pids = {c["pid"] for c in self.calls("a_cost") if c["tag"] == log["tag"]}
            spans = [s for s in self.spans_of(pids)
                     if s["attributes"].get("http.response.status_code") == log["status"]]
        self.assertEqual(len(spans), 1, f"spans of {tag}")
        return spans[0], log

    def table_for(self, tag):
        return PRICING_2 if tag.startswith("reload") else PRICING

    # ---- cost ------------------------------------------------------------------------------

    def test_cost_per_span_and_total_to_the_cent(self):
        self.calls("a_cost")
        self.calls("z_reload")
        tags = ["oa-plain", "oa-stream", "oa-reason", "oa-alias", "an-plain", "an-stream",
                "raw-user", "raw-meta", "oa-badtp", "reload-new", "reload-kept"]
        total_span = total_want = 0.0
        for tag in tags:
            span, log = self.span_for(tag)
            want = expected_cost(log, self.table_for(tag))
            got = span["attributes"].get("tokentap.cost.usd")
            self.assertIsNotNone(want, tag)
            self.assertIsInstance(got, float, f"{tag}: tokentap.cost.usd {got!r}")
            self.assertAlmostEqual(got, want, delta=1e-9, msg=tag)
            self.assertEqual(round(got, 2), round(want, 2), tag)
            total_span += got
            total_want += want
        self.assertGreater(total_want, 10.0)  # the check is not about fractions of a cent
        self.assertEqual(round(total_span, 2), round(total_want, 2))

    def test_cached_and_reasoning_tokens_change_the_cost(self):
        self.calls("a_cost")
        span, log = self.span_for("oa-plain")
        self.assertEqual(log["cache_read_tokens"], 4000)
        no_discount = (log["input_words"] + 4000) * 2500e-6 + log["output_tokens"] * 10000e-6
        self.assertLess(span["attributes"]["tokentap.cost.usd"], no_discount - 4.9)
        span, log = self.span_for("oa-reason")
        self.assertEqual(log["reasoning_tokens"], 30)
        as_output = log["input_words"] * 1100e-6 + 50 * 4400e-6
        self.assertAlmostEqual(span["attributes"]["tokentap.cost.usd"] - as_output,
                               30 * (8800 - 4400) / 1e6, delta=1e-9)

    def test_unknown_model_has_no_cost_and_is_logged(self):
        self.calls("a_cost")
        span, log = self.span_for("oa-unknown")
        self.assertGreater(span["attributes"].get("gen_ai.usage.output_tokens", 0), 0)
        self.assertNotIn("tokentap.cost.usd", span["attributes"])
        self.assertIn("no price for model 'mystery-model-x-2024-08-06'",
                      self.tt.err_path.read_text())

    def test_error_without_usage_has_no_cost(self):
        self.calls("a_cost")
        span, _ = self.span_for("oa-429")
        self.assertNotIn("tokentap.cost.usd", span["attributes"])

    def test_sighup_reload(self):
        self.calls("z_reload")
        self.assertIn("loaded 4 models", self.reload_ok)
        self.assertIn("not valid JSON", self.reload_bad)
        new, _ = self.span_for("reload-new")
        kept, _ = self.span_for("reload-kept")
        self.assertIn("tokentap.cost.usd", new["attributes"])
        self.assertIn("tokentap.cost.usd", kept["attributes"])

    # ---- attribution -----------------------------------------------------------------------

    def test_fingerprint_org_project_tenant_user(self):
        self.calls("a_cost")
        a, _ = self.span_for("oa-plain")
        a = a["attributes"]
        self.assertEqual(a.get("tokentap.api_key.fingerprint"), FINGERPRINT)
        self.assertEqual(a.get("tokentap.openai.organization"), "org-test")
        self.assertEqual(a.get("tokentap.openai.project"), "proj_test")
        self.assertEqual(a.get("tokentap.tenant"), "acme")
        s, _ = self.span_for("oa-stream")
        self.assertEqual(s["attributes"].get("tokentap.tenant"), "beta")
        self.assertNotIn("tokentap.openai.organization", s["attributes"])
        s, _ = self.span_for("an-plain")  # x-api-key, the same key: the same fingerprint
        self.assertEqual(s["attributes"].get("tokentap.api_key.fingerprint"), FINGERPRINT)
        self.assertNotIn("tokentap.tenant", s["attributes"])
        s, _ = self.span_for("raw-user")
        self.assertEqual(s["attributes"].get("tokentap.user"), "end-user-7")
        s, _ = self.span_for("raw-meta")
        self.assertEqual(s["attributes"].get("tokentap.user"), "anthropic-user-9")
        self.assertEqual(s["attributes"].get("tokentap.api_key.fingerprint"), FINGERPRINT)

    def test_traceparent_joins_the_callers_trace(self):
        self.calls("a_cost")
        self.calls("b_node")
        for tag in ("oa-plain", "node-tp"):
            span, _ = self.span_for(tag)
            tid, pid = self.tp[tag]
            self.assertEqual(span["trace_id"], tid, tag)
            self.assertEqual(span["parent_span_id"], pid, tag)
            self.assertNotEqual(span["span_id"], pid, tag)
        span, _ = self.span_for("oa-badtp")  # an all-zero trace id is not a trace
        self.assertEqual(span["parent_span_id"], "")
        self.assertNotEqual(span["trace_id"], "0" * 32)
        span, _ = self.span_for("oa-stream")
        self.assertEqual(span["parent_span_id"], "")

    def otlp_spans(self):
        deadline = time.monotonic() + 10
        while True:
            spans = []
            if self.otlp_out.exists():
                spans = [json.loads(x) for x in self.otlp_out.read_text().splitlines() if x]
            if len(spans) >= len(self.tt.spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def test_otlp_carries_cost_attribution_and_trace(self):
        self.calls("a_cost")
        by_id = {s["span_id"]: s for s in self.otlp_spans()}
        for tag in ("oa-plain", "an-stream", "raw-user"):
            js, _ = self.span_for(tag)
            ot = by_id.get(js["span_id"])
            self.assertIsNotNone(ot, f"{tag}: not exported over OTLP")
            self.assertEqual(ot["trace_id"], js["trace_id"], tag)
            self.assertEqual(ot.get("parent_span_id") or "", js["parent_span_id"], tag)
            for key in ("tokentap.cost.usd", "tokentap.api_key.fingerprint", "tokentap.tenant",
                        "tokentap.user", "tokentap.openai.organization"):
                self.assertEqual(ot["attributes"].get(key), js["attributes"].get(key),
                                 f"{tag} {key}")

    def test_api_key_appears_nowhere(self):
        self.calls("a_cost")
        self.otlp_spans()
        outputs = [self.tt.out_path, self.tt.err_path, self.otlp_out, self.otlp_requests]
        for path in outputs:
            self.assertTrue(path.exists(), path)
            data = path.read_bytes()
            self.assertNotIn(h.API_KEY.encode(), data, path)
            self.assertNotIn(h.API_KEY[-20:].encode(), data, path)
        self.assertGreater(self.otlp_requests.stat().st_size, 0)
        self.assertEqual(self.secret.read_bytes(), SECRET)  # used, not replaced


def main():
    h.run_suite("cost", __name__)

if __name__ == "__main__":
    main()
