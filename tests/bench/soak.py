#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap soak (`make soak DURATION=10m`): mixed traffic for a long time, then a report.

Traffic, all through the e2e mock provider over HTTPS (tests/e2e/mock_provider.py) plus the
bench TLS loop (tests/bench/tls_loop.c):
  keep-alive   OpenAI and Anthropic calls on one connection, every third streamed (~10/s)
  one-shot     a new connection per call, with a 429 and a non-LLM GET /health among them (~2/s)
  tls_loop     LLM and non-LLM (GET /) round trips at a steady rate (--loop-rate, each kind)
  node         the official openai SDK every 30 s, when node and tests/e2e/node_modules are there
tokentap runs with --format json; its spans are counted per client process as they arrive, and
its resident memory is sampled every 5 s. The report (printed, and written as JSON to --out):
zero loss (kernel drop counters, spans == LLM calls made), and flatness of memory (median of the
last third against the first third of the run, and the least-squares slope in KiB per hour).
Exit status 1 when bytes were lost, a span is missing, or memory grew (last third > first third
by more than 10% + 4 MiB).

Usage: soak.py --tokentap BIN --duration 10m [--out FILE] [--loop-rate 100]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
E2E = REPO / "tests" / "e2e"
STATS_RE = re.compile(r"tokentap: stats: (.*)")


def duration_s(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text)
    if not m:
        raise SystemExit(f"soak: bad duration {text!r} (e.g. 90s, 10m, 2h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}   # pid -> LLM calls made
        self.errors = []  # client-side failures (not tokentap's)

    def add(self, pid, n=1):
        with self.lock:
            self.calls[pid] = self.calls.get(pid, 0) + n

    def error(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)


def request(conn, provider, model, stream, headers=None):
    body = {"model": model, "messages": [{"role": "user", "content": "soak " * 20}]}
    h = {"Content-Type": "application/json", **(headers or {})}
    if provider == "openai":
        path = "/v1/chat/completions"
        h["Authorization"] = "Bearer sk-soak-not-a-secret"
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
    else:
        path = "/v1/messages"
        h.update({"x-api-key": "sk-soak-not-a-secret", "anthropic-version": "2023-06-01"})
        body["max_tokens"] = 64
        if stream:
            body["stream"] = True
    conn.request("POST", path, json.dumps(body), h)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def keepalive_loop(port, ctx, stop, counter):
    n = 0
    while not stop.is_set():
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            for _ in range(200):
                if stop.is_set():
                    break
                provider = "openai" if n % 2 == 0 else "anthropic"
                model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
                request(conn, provider, model, n % 3 == 0,
                        {"x-mock-delay-ms": "20", "x-mock-chunk-delay-ms": "2"})
                counter.add(os.getpid())
                n += 1
                time.sleep(0.05)
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            counter.error(f"keepalive: {e!r}")
            time.sleep(1)


def oneshot_loop(port, ctx, stop, counter):
    n = 0
    while not stop.is_set():
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            if n % 10 == 9:
                conn.request("GET", "/health")
                conn.getresponse().read()
            else:
                hdr = {"x-mock-delay-ms": "10"}
                if n % 10 == 4:
                    hdr["x-mock-status"] = "429"
                request(conn, "openai", "gpt-4o", n % 2 == 1, hdr)
                counter.add(os.getpid())
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            counter.error(f"oneshot: {e!r}")
        n += 1
        stop.wait(0.5)


def node_loop(port, ca, stop, counter):
    node = shutil.which("node")
    if not node or not (E2E / "node_modules" / "openai").exists():
        return
    spec = {"calls": [{"provider": "openai", "model": "gpt-4o", "tag": "soak-node",
                       "stream": False, "headers": {}}]}
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(ca), MOCK_API_KEY="sk-soak-not-a-secret")
    while not stop.wait(30):
        p = subprocess.run([node, E2E / "clients" / "openai_client.mjs", "--base",
                            f"https://127.0.0.1:{port}", "--spec", json.dumps(spec)],
                           capture_output=True, text=True, env=env, cwd=E2E, timeout=120)
        if p.returncode == 0:
            for line in p.stdout.splitlines():
                if line.strip():
                    counter.add(json.loads(line)["pid"])
        else:
            counter.error(f"node: {p.stderr[-300:]}")


def span_reader(stream, counts):
    for line in stream:
        try:
            pid = json.loads(line)["resource"]["process.pid"]
        except (ValueError, KeyError, TypeError):
            counts["bad_lines"] = counts.get("bad_lines", 0) + 1
            continue
        counts[pid] = counts.get(pid, 0) + 1


def slope_kib_per_hour(samples):
    if len(samples) < 3:
        return 0.0
    ts = [t for t, _ in samples]
    vs = [v for _, v in samples]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return 3600 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokentap", required=True)
    ap.add_argument("--duration", default="10m")
    ap.add_argument("--out", default=str(REPO / "build" / "soak" / "report.json"))
    ap.add_argument("--loop-rate", type=float, default=100)
    a = ap.parse_args()
    seconds = duration_s(a.duration)
    work = Path(a.out).parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    procs = []

    def spawn(args, **kw):
        p = subprocess.Popen([str(x) for x in args], **kw)
        procs.append(p)
        return p

    try:
        mock = spawn([sys.executable, E2E / "mock_provider.py", "--tls-dir", work / "tls",
                      "--log", work / "mock.log"], stdout=subprocess.PIPE, text=True,
                     stderr=subprocess.DEVNULL)
        port = int(mock.stdout.readline().split()[-1])
        loop = work / "tls_loop"
        subprocess.run(["cc", "-O2", "-std=gnu11", HERE / "tls_loop.c", "-lssl", "-lcrypto",
                        "-o", loop], check=True)
        loop_srv = spawn([loop, "server"], stdout=subprocess.PIPE, text=True)
        loop_port = int(loop_srv.stdout.readline().split()[1])
        err = open(work / "tokentap.err", "wb")
        tt = spawn([a.tokentap, "--format", "json", "--control-socket", ""],
                   stdout=subprocess.PIPE, stderr=err, text=True)
        while b"tokentap: ready" not in (work / "tokentap.err").read_bytes():
            if tt.poll() is not None:
                raise SystemExit("soak: tokentap exited before it was ready")
            time.sleep(0.05)
        spans = {}
        reader = threading.Thread(target=span_reader, args=(tt.stdout, spans), daemon=True)
        reader.start()
        ctx = ssl.create_default_context(cafile=str(work / "tls" / "ca.pem"))
        stop, counter = threading.Event(), Counter()
        threads = [threading.Thread(target=f, args=args, daemon=True) for f, args in (
            (keepalive_loop, (port, ctx, stop, counter)),
            (oneshot_loop, (port, ctx, stop, counter)),
            (node_loop, (port, work / "tls" / "ca.pem", stop, counter)))]
        loops = [spawn([loop, "client", "--port", loop_port, "--kind", kind, "--seconds",
                        seconds, "--rate", a.loop_rate, "--warmup", 10],
                       stdout=subprocess.PIPE, text=True) for kind in ("llm", "web")]
        for t in threads:
            t.start()
        t0, samples = time.monotonic(), []
        while time.monotonic() - t0 < seconds:
            samples.append((time.monotonic() - t0, rss_kib(tt.pid)))
            time.sleep(min(5, max(0.1, seconds - (time.monotonic() - t0))))
        stop.set()
        for t in threads:
            t.join(timeout=150)
        for p, kind in zip(loops, ("llm", "web")):
            out = p.communicate(timeout=60)[0]
            r = json.loads(out.splitlines()[0])
            if kind == "llm":
                counter.add(r["pid"], r["rts"] + 10)
        time.sleep(2)
        tt.send_signal(signal.SIGINT)
        tt.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
    st = {}
    for line in (work / "tokentap.err").read_text(errors="replace").splitlines():
        m = STATS_RE.search(line)
        if m:
            st = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
    missing = {pid: (n, spans.get(pid, 0)) for pid, n in counter.calls.items()
               if spans.get(pid, 0) != n}
    third = max(1, len(samples) // 3)
    first = statistics.median(v for _, v in samples[:third])
    last = statistics.median(v for _, v in samples[-third:])
    report = {
        "duration_s": seconds, "tokentap_exit": tt.returncode,
        "llm_calls_made": sum(counter.calls.values()),
        "spans_for_them": sum(spans.get(p, 0) for p in counter.calls),
        "calls_without_span": missing, "client_errors": counter.errors,
        "lost_records": int(st.get("lost_records", -1)), "lost_bytes": int(st.get("lost_bytes", -1)),
        "stats": st, "rss_kib_first_third": first, "rss_kib_last_third": last,
        "rss_kib_max": max(v for _, v in samples),
        "rss_slope_kib_per_hour": round(slope_kib_per_hour(samples), 1),
        "rss_samples": samples}
    report["zero_loss"] = (report["lost_records"] == 0 and report["lost_bytes"] == 0 and
                           not missing)
    report["flat"] = last <= first * 1.10 + 4096
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"soak: {seconds:.0f} s, {report['llm_calls_made']} LLM calls, "
          f"{report['spans_for_them']} spans; lost_records={report['lost_records']} "
          f"lost_bytes={report['lost_bytes']}; calls without a span: {missing or 'none'}")
    print(f"soak: RSS first third {first} KiB, last third {last} KiB, max "
          f"{report['rss_kib_max']} KiB, slope {report['rss_slope_kib_per_hour']} KiB/h -> "
          f"{'flat' if report['flat'] else 'GROWING'}; tokentap exit {tt.returncode}")
    if counter.errors:
        print(f"soak: client errors (not tokentap's): {counter.errors[:5]}")
    print(f"soak: report written to {a.out}")
    ok = report["zero_loss"] and report["flat"] and tt.returncode == 0
    print(f"soak: {'1 passed, 0 failed' if ok else '0 passed, 1 failed'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
