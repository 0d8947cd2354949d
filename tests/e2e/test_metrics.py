#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap metrics end to end: a known workload through the mock provider, then the same
numbers read back four ways.

  1. tokentap's own Prometheus endpoint (--prometheus), scraped while it runs: the series and
     their values; `promtool check metrics` accepts the text.
  2. A real Prometheus server started here (scrape_interval 1s) answers PromQL over its HTTP API
     with the token totals per model and tenant (--tenant-header x-tenant-id).
  3. OTLP metrics (--metrics-interval 1, and the push at exit) decoded by otlp_receiver.js with
     the generated code of @opentelemetry/otlp-transformer@0.52.1.
  4. The spans tokentap printed (--format json): costs per model.

Expected token counts come from the mock's log (what it served); models and tenants carry a
run id so calls that other processes on this host make cannot leak into the numbers.
Last line printed: "metrics: N passed, N failed".
"""
import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402

RUN = uuid.uuid4().hex[:6]
MODEL_OAI = f"gpt-4o-mini-{RUN}"
MODEL_ANT = f"claude-haiku-4-5-{RUN}"
MODEL_GAP = f"gpt-4o-gaps-{RUN}"  # a stream whose chunks the mock spaces GAP_S apart
GAP_S = 0.15
TENANT_A, TENANT_B = f"team-a-{RUN}", f"team-b-{RUN}"
TOKEN_BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                16777216, 67108864]
TIME_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
               81.92]
WAIT_S = 20


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, dict(r.headers), r.read().decode()


def parse_exposition(text):
    """{(name, frozenset(labels.items())): value} of a Prometheus text scrape."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise AssertionError(f"not an exposition line: {line!r}")
        labels = frozenset(label_re.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def series(parsed, name, **want):
    """Values of name whose labels include want."""
    return [(dict(lbl), v) for (n, lbl), v in parsed.items()
            if n == name and all(dict(lbl).get(k) == w for k, w in want.items())]


class TestMetrics(h.TracedCase):
    """One tokentap with --prometheus and OTLP metrics; a Prometheus server scraping it."""

    @classmethod
    def before_tokentap(cls):
        if not shutil.which("prometheus") or not shutil.which("promtool"):
            raise AssertionError("prometheus/promtool missing (TOKENTAP_TEST_DEPS=1 "
                                 "deploy/deps.sh installs the Debian package)")
        cls.prom_port = h.free_port()
        cls.otlp_out = cls.work / "otlp-spans.jsonl"
        cls.metrics_out = cls.work / "otlp-metrics.jsonl"
        cls.requests_out = cls.work / "otlp-requests.jsonl"
        cls.receiver = h.spawn(["node", h.E2E / "otlp_receiver.js", "--port", "0", "--out",
                                cls.otlp_out, "--metrics-out", cls.metrics_out,
                                "--requests-out", cls.requests_out],
                               stdout=subprocess.PIPE, stderr=open(cls.work / "otlp.err", "wb"),
                               text=True, cwd=h.E2E)
        line = h.read_line(cls.receiver, 30, "otlp_receiver.js")
        m = re.fullmatch(r"otlp_receiver: listening (\d+)", line)
        if not m:
            raise AssertionError(f"otlp_receiver.js printed {line!r}")
        cls.otlp_port = int(m.group(1))
        cls.prom = h.Prometheus(cls.work, cls.prom_port)

    @classmethod
    def tokentap_args_for(cls):
        return ["--format", "json", "--otlp-endpoint", f"http://127.0.0.1:{cls.otlp_port}",
                "--prometheus", f"127.0.0.1:{cls.prom_port}", "--metrics-interval", "1",
                "--tenant-header", "x-tenant-id", "--control-socket", ""]

    @classmethod
    def tearDownClass(cls):
        for p in (getattr(cls, "receiver", None), getattr(getattr(cls, "prom", None), "proc",
                                                         None)):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=10)

    # -- the workload, then reads while tokentap still runs (workloads run in name order) --

    @classmethod
    def workload_a_calls(cls):
        ta, tb = {"x-tenant-id": TENANT_A}, {"x-tenant-id": TENANT_B}
        got = h.run_curl(h.call("openai", MODEL_OAI, "m-oai-plain", text=h.words(3),
                                headers={**ta, "x-mock-output-tokens": "7"}), cls.work)
        got += h.run_curl(h.call("openai", MODEL_OAI, "m-oai-stream", stream=True,
                                 text=h.words(40),
                                 headers={**tb, "x-mock-output-tokens": "20",
                                          "x-mock-cache-read": "64"}), cls.work)
        got += h.run_python([
            h.call("anthropic", MODEL_ANT, "m-ant-plain", text=h.words(2),
                   headers={**ta, "x-mock-cache-creation": "300"}),
            h.call("anthropic", MODEL_ANT, "m-ant-stream", stream=True, text=h.words(5),
                   headers={**ta, "x-mock-output-tokens": "12"}),
            h.call("openai", MODEL_OAI, "m-oai-429", headers={**tb, "x-mock-status": "429"})])
        gap = h.call("openai", MODEL_GAP, "m-gap-stream", stream=True, text=h.words(3),
                     headers={**ta, "x-mock-output-tokens": "6",
                              "x-mock-chunk-delay-ms": str(int(GAP_S * 1000))})
        got += h.run_curl(gap, cls.work)
        # The output chunks the client received: SSE events with data, [DONE] aside.
        raw = (cls.work / f"{gap['tag']}.resp").read_bytes()
        cls.gap_chunks = len([ln for ln in raw.split(b"\n") if ln.startswith(b"data:")
                              and ln[5:].strip() != b"[DONE]"])
        return got

    @classmethod
    def run_spans(cls):
        """The spans of this run's models tokentap printed so far (stdout is line buffered)."""
        out = []
        for line in cls.tt.out_path.read_text(errors="replace").splitlines():
            try:
                span = json.loads(line)
            except ValueError:
                continue  # a line being written
            if span.get("attributes", {}).get("gen_ai.request.model", "").endswith(RUN):
                out.append(span)
        return out

    @staticmethod
    def expected(spans):
        """What the metrics must say, aggregated from the spans themselves: token sums and
        counts per (model, tenant, type), calls per (model, tenant), streams per model. (The
        spans are checked against the mock's log on their own, in test_workload_spans.)"""
        tokens, counts, calls, streams = {}, {}, {}, {}
        for span in spans:
            a = span["attributes"]
            model, tenant = a["gen_ai.request.model"], a.get("tokentap.tenant")
            calls[(model, tenant)] = calls.get((model, tenant), 0) + 1
            if "gen_ai.response.time_to_first_chunk" in a:
                streams[model] = streams.get(model, 0) + 1
            for typ in ("input", "output"):
                n = a.get(f"gen_ai.usage.{typ}_tokens")
                if n is None:
                    continue
                k = (model, tenant, typ)
                tokens[k] = tokens.get(k, 0) + n
                counts[k] = counts.get(k, 0) + 1
        return tokens, counts, calls, streams

    @classmethod
    def workload_b_read(cls):
        """Scrapes tokentap and asks Prometheus until both show every call."""
        if isinstance(cls.results["a_calls"], Exception):
            raise cls.results["a_calls"]
        deadline = time.monotonic() + WAIT_S
        while len(cls.run_spans()) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        spans = cls.run_spans()
        tokens, _, calls, _ = cls.expected(spans)
        want = {(m, t): v for (m, t, typ), v in tokens.items() if typ == "output"}
        q = ('sum by (gen_ai_request_model, tokentap_tenant) (gen_ai_client_token_usage_sum'
             f'{{gen_ai_token_type="output",gen_ai_request_model=~".*-{RUN}"}})')
        deadline = time.monotonic() + WAIT_S
        got = {}
        while time.monotonic() < deadline:
            text = http_get(f"http://127.0.0.1:{cls.prom_port}/metrics")[2]
            parsed = parse_exposition(text)
            n_calls = sum(v for _, v in series(parsed, "gen_ai_client_operation_duration_seconds"
                                               "_count") if _.get("gen_ai_request_model", "")
                          .endswith(RUN))
            got = {(r["metric"].get("gen_ai_request_model"), r["metric"].get("tokentap_tenant")):
                   float(r["value"][1]) for r in cls.prom.query(q)}
            if n_calls >= sum(calls.values()) and got == want:
                break
            time.sleep(0.5)
        status, headers, _ = http_get(f"http://127.0.0.1:{cls.prom_port}/metrics")
        health = http_get(f"http://127.0.0.1:{cls.prom_port}/healthz")
        return {"text": text, "promql": got, "want_promql": want, "status": status,
                "spans": spans,
                "content_type": headers.get("Content-Type"), "healthz": health[:1] + health[2:]}

    # -- helpers --

    def read(self):
        return self.calls("b_read")

    def otlp_points(self):
        """The data points of the last OTLP metrics push (sent at exit: the final totals)."""
        deadline = time.monotonic() + 10
        while True:
            lines = []
            if self.metrics_out.exists():
                lines = [json.loads(line) for line in self.metrics_out.read_text().splitlines()
                         if line.strip()]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(lines, "no OTLP metrics received")
        last = max(p["time_unix_nano"] for p in lines)
        return [p for p in lines if p["time_unix_nano"] == last], lines

    # -- tokentap's endpoint --

    def test_workload_spans(self):
        # The span checks proper (timing included) are test_e2e.py's. Here: one span per call,
        # with the tenant; a span captured whole has the tokens the mock served. (Another
        # process loading this host can make the ring buffer drop records: such a span is
        # marked partial and the metrics then count what it says, as they should.)
        calls = self.calls("a_calls")
        spans = self.read()["spans"]
        self.assertEqual(len(spans), 6, [s["attributes"].get("gen_ai.response.id") for s in spans])
        log = self.mock.by_tag([c["tag"] for c in calls])
        by_id = {log[c["tag"]]["id"]: log[c["tag"]] for c in calls if log[c["tag"]]["id"]}
        tenants = {}
        for s in spans:
            a = s["attributes"]
            tenants[a.get("tokentap.tenant")] = tenants.get(a.get("tokentap.tenant"), 0) + 1
            e = by_id.get(a.get("gen_ai.response.id"))
            if a.get("tokentap.capture.partial") or e is None:
                continue
            self.assertEqual(a.get("gen_ai.usage.input_tokens"), h.expected_input(e))
            self.assertEqual(a.get("gen_ai.usage.output_tokens"), e["output_tokens"])
        self.assertEqual(tenants, {TENANT_A: 4, TENANT_B: 2})
        complete = [s for s in spans if not s["attributes"].get("tokentap.capture.partial")]
        self.assertGreaterEqual(len(complete), 3, "most spans lost bytes: the host is overloaded")

    def test_scrape_endpoint(self):
        r = self.read()
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["content_type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(r["healthz"][0], 200)

    def test_promtool_check_metrics(self):
        r = self.read()
        p = subprocess.run(["promtool", "check", "metrics"], input=r["text"], text=True,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip(), "", "promtool lint findings")

    def test_scraped_series_match_workload(self):
        parsed = parse_exposition(self.read()["text"])
        tokens, counts, calls, streams = self.expected(self.read()["spans"])
        for (model, tenant, typ), want in tokens.items():
            lbl = dict(gen_ai_request_model=model, tokentap_tenant=tenant,
                       gen_ai_token_type=typ)
            got = series(parsed, "gen_ai_client_token_usage_sum", **lbl)
            self.assertEqual(sum(v for _, v in got), want, f"{lbl}")
            cnt = series(parsed, "gen_ai_client_token_usage_count", **lbl)
            self.assertEqual(sum(v for _, v in cnt), counts[(model, tenant, typ)], f"{lbl}")
            buckets = sorted(((float(l["le"]), v) for l, v in
                              series(parsed, "gen_ai_client_token_usage_bucket", **lbl)),
                             key=lambda x: x[0])
            self.assertEqual([b for b, _ in buckets], TOKEN_BOUNDS + [math.inf])
            self.assertEqual(buckets[-1][1], counts[(model, tenant, typ)])
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                             "buckets not cumulative")
        for (model, tenant), n in calls.items():
            got = series(parsed, "gen_ai_client_operation_duration_seconds_count",
                         gen_ai_request_model=model, tokentap_tenant=tenant)
            self.assertEqual(sum(v for _, v in got), n, f"duration count {model} {tenant}")
        spans = self.read()["spans"]
        errors = {}
        for sp in spans:
            a = sp["attributes"]
            if "error.type" in a:
                k = (a["gen_ai.request.model"], a["error.type"])
                errors[k] = errors.get(k, 0) + 1
        self.assertIn((MODEL_OAI, "429"), errors)
        for (model, err), n in errors.items():
            got = series(parsed, "gen_ai_client_operation_duration_seconds_count",
                         gen_ai_request_model=model, error_type=err)
            self.assertEqual([v for _, v in got], [n], f"{model} error.type={err}")
        for model in (MODEL_OAI, MODEL_ANT):
            got = series(parsed, "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                         gen_ai_request_model=model)
            self.assertEqual(sum(v for _, v in got), streams.get(model, 0), model)
            # Per output chunk: several per stream, none for plain calls.
            got = series(parsed, "gen_ai_client_operation_time_per_output_chunk_seconds_count",
                         gen_ai_request_model=model)
            if streams.get(model):
                self.assertGreater(sum(v for _, v in got), streams[model], model)
            else:
                self.assertEqual(sum(v for _, v in got), 0, model)

    def check_chunk_gaps(self, count, total, where):
        """One measurement per gap between the known stream's chunks, each about GAP_S (the
        mock sleeps GAP_S between events; a loaded machine only adds)."""
        n = self.gap_chunks - 1
        self.assertGreaterEqual(n, 4, "the mock sent too few chunks")
        self.assertEqual(count, n, f"{where}: time_per_output_chunk count")
        self.assertGreaterEqual(total, n * GAP_S * 0.8, f"{where}: sum of the gaps")
        self.assertLessEqual(total, n * GAP_S + 5.0, f"{where}: sum of the gaps")

    def test_time_per_output_chunk_scraped(self):
        parsed = parse_exposition(self.read()["text"])
        cnt = series(parsed, "gen_ai_client_operation_time_per_output_chunk_seconds_count",
                     gen_ai_request_model=MODEL_GAP)
        tot = series(parsed, "gen_ai_client_operation_time_per_output_chunk_seconds_sum",
                     gen_ai_request_model=MODEL_GAP)
        self.check_chunk_gaps(sum(v for _, v in cnt), sum(v for _, v in tot), "prometheus")

    def test_time_per_output_chunk_otlp(self):
        last, _ = self.otlp_points()
        pts = [p for p in last if p["metric"] == "gen_ai.client.operation.time_per_output_chunk"
               and p["attributes"].get("gen_ai.request.model") == MODEL_GAP]
        self.assertTrue(pts, "no OTLP time_per_output_chunk point for the known stream")
        for p in pts:
            self.assertEqual(p["unit"], "s")
            self.assertEqual(sum(p["bucket_counts"]), p["count"])
            self.assertGreaterEqual(p["min"], GAP_S * 0.8)
        self.check_chunk_gaps(sum(p["count"] for p in pts), sum(p["sum"] for p in pts), "otlp")

    def test_health_series(self):
        parsed = parse_exposition(self.read()["text"])

        def one(name, **lbl):
            got = series(parsed, name, **lbl)
            self.assertEqual(len(got), 1, name)
            return got[0][1]

        self.assertGreaterEqual(one("tokentap_spans_total"), 5)
        self.assertGreaterEqual(one("tokentap_llm_calls_total"), 5)
        self.assertGreater(one("tokentap_events_total"), 0)
        self.assertGreater(one("tokentap_bytes_total"), 0)
        self.assertGreaterEqual(one("tokentap_attached_files"), 1)
        self.assertGreaterEqual(one("tokentap_traced_processes"), 0)
        for name in ("tokentap_parse_errors_total", "tokentap_events_lost_total",
                     "tokentap_bytes_lost_total"):
            one(name)
        self.assertGreaterEqual(one("tokentap_spans_exported_total", exporter="jsonl"), 5)
        one("tokentap_spans_exported_total", exporter="otlp")
        one("tokentap_export_errors_total", exporter="otlp")
        self.assertGreater(one("tokentap_metric_points_exported_total", exporter="metrics"), 0)
        for m in ("gen_ai.client.token.usage", "tokentap.cost.usd"):
            self.assertEqual(one("tokentap_metrics_overflow_total", metric=m), 0)

    # -- a real Prometheus server --

    def test_promql_token_totals_per_model_and_tenant(self):
        r = self.read()
        self.assertTrue(r["want_promql"])
        self.assertEqual({tuple(k): v for k, v in r["promql"].items()},
                         {tuple(k): v for k, v in r["want_promql"].items()})

    # -- OTLP metrics --

    def test_otlp_metrics_match_workload(self):
        last, _ = self.otlp_points()
        tokens, counts, calls, streams = self.expected(self.read()["spans"])
        usage = [p for p in last if p["metric"] == "gen_ai.client.token.usage"
                 and p["attributes"].get("gen_ai.request.model", "").endswith(RUN)]
        got = {}
        for p in usage:
            a = p["attributes"]
            self.assertEqual(p["unit"], "{token}")
            self.assertEqual(p["type"], "histogram")
            self.assertEqual(p["temporality"], "cumulative")
            self.assertEqual(p["explicit_bounds"], TOKEN_BOUNDS)
            self.assertEqual(sum(p["bucket_counts"]), p["count"])
            for k in ("sum", "min", "max"):
                self.assertIsNotNone(p[k], f"HistogramDataPoint.{k} missing")
            self.assertLessEqual(p["min"], p["max"])
            self.assertLess(p["start_time_unix_nano"], p["time_unix_nano"])
            k = (a["gen_ai.request.model"], a.get("tokentap.tenant"), a["gen_ai.token.type"])
            got[k] = (got.get(k, (0, 0))[0] + p["sum"], got.get(k, (0, 0))[1] + p["count"])
        self.assertEqual(got, {k: (v, counts[k]) for k, v in tokens.items()})
        dur = [p for p in last if p["metric"] == "gen_ai.client.operation.duration"
               and p["attributes"].get("gen_ai.request.model", "").endswith(RUN)]
        self.assertTrue(all(p["unit"] == "s" and p["explicit_bounds"] == TIME_BOUNDS
                            for p in dur))
        self.assertEqual(sum(p["count"] for p in dur), sum(calls.values()))
        ttfc = [p for p in last if p["metric"] == "gen_ai.client.operation.time_to_first_chunk"
                and p["attributes"].get("gen_ai.request.model", "").endswith(RUN)]
        self.assertEqual(sum(p["count"] for p in ttfc), sum(streams.values()))
        for p in last:
            self.assertEqual(p["resource"].get("service.name"), "tokentap")

    def test_otlp_metrics_pushed_periodically_and_gzipped(self):
        _, everything = self.otlp_points()
        pushes = {p["time_unix_nano"] for p in everything}
        self.assertGreaterEqual(len(pushes), 2, "one push only: no periodic export")
        reqs = [json.loads(line) for line in self.requests_out.read_text().splitlines()]
        self.assertTrue(reqs)
        for r in reqs:
            self.assertEqual(r["status"], 200)
            self.assertEqual(r["headers"].get("content-encoding"), "gzip")

    def test_cost_metrics_match_spans(self):
        calls = self.calls("a_calls")
        spans = self.spans_of({c["pid"] for c in calls})
        parsed = parse_exposition(self.read()["text"])
        last, _ = self.otlp_points()
        for model in (MODEL_OAI, MODEL_ANT):
            mine = [s for s in spans if s["attributes"].get("gen_ai.request.model") == model]
            costs = [s["attributes"]["tokentap.cost.usd"] for s in mine
                     if "tokentap.cost.usd" in s["attributes"]]
            unpriced = [s for s in mine if "tokentap.cost.usd" not in s["attributes"]
                        and "gen_ai.usage.input_tokens" in s["attributes"]]
            prom = sum(v for _, v in series(parsed, "tokentap_cost_usd_total",
                                            gen_ai_request_model=model))
            otlp = sum(p["value"] for p in last if p["metric"] == "tokentap.cost.usd"
                       and p["attributes"].get("gen_ai.request.model") == model)
            self.assertAlmostEqual(prom, sum(costs), places=9, msg=model)
            self.assertAlmostEqual(otlp, sum(costs), places=9, msg=model)
            got = sum(v for _, v in series(parsed, "tokentap_cost_unpriced_calls_total",
                                           gen_ai_request_model=model))
            self.assertEqual(got, len(unpriced), model)

    def test_no_secret_in_metrics(self):
        key = h.API_KEY.encode()
        self.assertNotIn(key, self.read()["text"].encode())
        self.assertNotIn(key, self.metrics_out.read_bytes())
        self.assertNotIn(key, self.tt.err_path.read_bytes())


def main():
    h.run_suite("metrics", __name__)

if __name__ == "__main__":
    main()
