#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end: BPF attached, a mock LLM provider over HTTPS on loopback, real clients.

Every traced call is checked three ways: tokentap's span against what the mock served (its log)
and against what the client observed and measured (its own report line). Clients: curl and
Python (libssl.so), Node.js with the official openai and @anthropic-ai/sdk packages (OpenSSL
inside the node binary).

tokentap is started once per test class: the class runs all its client workloads, gives tokentap
a second, stops it with SIGINT and reads every span; each test then checks its own workload, with
spans picked by the client's pid.

Environment:
  TOKENTAP_BIN              tokentap binary (default: build/tokentap)
  TOKENTAP_REQUIRE_BPF=1    fail, instead of skip, when not root or BPF is unavailable
  TOKENTAP_E2E_LAT_TOL_MS   latency tolerance floor in ms (default 5; the tolerance is the larger
                            of this and 10% of what the client measured)
  TOKENTAP_E2E_KEEP=1       keep the temporary directory even when every test passed
Usage: test_e2e.py [unittest arguments, e.g. -k keepalive]; the last line printed is
"e2e: N passed, N failed".
"""
import atexit
import ctypes
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

E2E = Path(__file__).resolve().parent
REPO = E2E.parents[1]
TOKENTAP = Path(os.environ.get("TOKENTAP_BIN", REPO / "build" / "tokentap"))
REQUIRE_BPF = os.environ.get("TOKENTAP_REQUIRE_BPF") == "1"
READY_TIMEOUT_S = 30
LAT_TOL_MS = float(os.environ.get("TOKENTAP_E2E_LAT_TOL_MS", "5"))
LAT_TOL_FRAC = 0.10
# Span times are wall clock converted from the kernel's monotonic clock; the mock's are
# time.time_ns() read by Python threads that share one GIL, so they can lag by several ms. They
# are compared with this slack (a wrong clock conversion is off by far more).
WALL_TOL_MS = 10
# A secret the clients send in Authorization / x-api-key: it must never show up in any output.
API_KEY = "sk-test-e2e-" + uuid.uuid4().hex
os.environ["MOCK_API_KEY"] = API_KEY

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(E2E / "clients"))
import urllib_client as pyclient  # noqa: E402  (the request builder and response reader)

SPAN_KEYS = {"trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
             "end_time_unix_nano", "status", "resource", "attributes"}
RESOURCE_KEYS = {"service.name", "process.pid", "process.executable.name",
                 "process.executable.path", "host.name"}

# ---- processes: every one started here is killed on the way out, whatever happens ----------

_procs = []


def die_with_parent():
    """Runs in each child before exec: if this runner is killed outright, so is the child (an
    orphaned tokentap would keep its probes attached)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(args, **kw):
    proc = subprocess.Popen([str(a) for a in args], preexec_fn=die_with_parent, **kw)
    _procs.append(proc)
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bounding_set():
    """The capability names (cap_...) in this process's bounding set, as capsh prints them."""
    out = subprocess.run(["capsh", "--print"], capture_output=True, text=True).stdout
    m = re.search(r"^Bounding set =(.*)$", out, re.M)
    return [c for c in m.group(1).split(",") if c] if m else []


def start_under_capsh(drop, args, work, name, env=None):
    """tokentap under capsh with the capabilities in drop removed from its bounding set; waits
    for "tokentap: ready" (or its exit). OTEL_* of this environment are not passed on."""
    out, err = work / f"{name}.out", work / f"{name}.err"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = spawn(["capsh", f"--drop={','.join(drop)}", "--", "-c", 'exec "$0" "$@"',
                      TOKENTAP, *args], stdout=o, stderr=e, env=full_env)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if b"tokentap: ready" in err.read_bytes() or proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc, out, err


def kill_all_but_mock(mock):
    for proc in reversed(_procs):
        if proc is not mock.proc and proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_all():
    for proc in reversed(_procs):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(kill_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def read_line(proc, timeout, what):
    """The first line a child prints on stdout, or an error saying what it printed instead."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"{what}: nothing printed within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"{what}: exited with {proc.wait()} before it was ready")
    return line.strip()


def tail(path, n=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class Prometheus:
    """A real Prometheus server in work/, scraping tokentap's endpoint (target_port) and
    evaluating rules (rule files) every second."""

    def __init__(self, work, target_port, rules=()):
        self.port = free_port()
        cfg = work / "prometheus.yml"
        # JSON strings are YAML strings: any path is quoted right.
        rule_files = "".join(f"  - {json.dumps(str(r))}\n" for r in rules)
        cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                       "  evaluation_interval: 1s\n" +
                       (f"rule_files:\n{rule_files}" if rules else "") +
                       "scrape_configs:\n  - job_name: tokentap\n    static_configs:\n"
                       f"      - targets: ['127.0.0.1:{target_port}']\n")
        self.proc = spawn(["prometheus", f"--config.file={cfg}",
                           f"--storage.tsdb.path={work / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                          stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.err", "wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {tail(work / 'prometheus.err')}")
            time.sleep(0.1)
        raise AssertionError("prometheus was not ready within 30 s")

    def url(self, path, **q):
        return f"http://127.0.0.1:{self.port}{path}" + ("?" + urllib.parse.urlencode(q) if q
                                                         else "")

    def get(self, path, **q):
        """(status, body) of a GET."""
        with urllib.request.urlopen(self.url(path, **q), timeout=10) as r:
            return r.status, r.read().decode()

    def api(self, path, **q):
        """The data of an HTTP API answer; an error answer fails the test with its message."""
        try:
            body = json.loads(self.get(path, **q)[1])
        except urllib.error.HTTPError as e:
            body = json.loads(e.read().decode() or "{}")
        if body.get("status") != "success":
            raise AssertionError(f"{path} {q}: {body.get('error', body)}")
        return body["data"]

    def query(self, promql):
        return self.api("/api/v1/query", query=promql)["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---- BPF availability ----------------------------------------------------------------------

def bpf_syscall_error():
    """Loads the smallest socket filter there is; returns why that failed, or None."""
    nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
    if nr is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    insns = (ctypes.c_uint8 * 16)(0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = (ctypes.c_uint8 * 128)()
    # prog_type SOCKET_FILTER, insn_cnt 2, insns, license
    struct.pack_into("<IIQQ", attr, 0, 1, 2, ctypes.addressof(insns), ctypes.addressof(lic))
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(5), ctypes.byref(attr), ctypes.c_long(128))
    if fd < 0:
        return "bpf(BPF_PROG_LOAD) failed: " + os.strerror(ctypes.get_errno())
    os.close(fd)
    return None


def bpf_unavailable():
    if os.geteuid() != 0:
        return "not running as root"
    if not os.access(TOKENTAP, os.X_OK):
        return f"{TOKENTAP} is not built (run make)"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    if not Path("/sys/bus/event_source/devices/uprobe").exists():
        return "the kernel has no uprobe support"
    return bpf_syscall_error()


def require_bpf():
    why = bpf_unavailable()
    if why and REQUIRE_BPF:
        raise AssertionError(f"TOKENTAP_REQUIRE_BPF=1 but BPF tests cannot run: {why}")
    if why:
        raise unittest.SkipTest(f"BPF unavailable: {why}")


# ---- the workspace: a temporary directory and the mock provider ----------------------------

class Workspace:
    dir = None
    mock = None
    failed = False

    @classmethod
    def get(cls):
        if cls.dir is None:
            cls.dir = Path(tempfile.mkdtemp(prefix="tokentap-e2e-"))
            cls.mock = Mock(cls.dir)
        return cls

    @classmethod
    def cleanup(cls):
        kill_all()
        if cls.dir is None:
            return
        shutil.rmtree(cls.dir / "fresh", ignore_errors=True)  # a 100 MB copy of node
        if cls.failed or os.environ.get("TOKENTAP_E2E_KEEP") == "1":
            print(f"e2e: temporary files kept in {cls.dir}", file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)


class Mock:
    def __init__(self, work):
        self.log = work / "mock.log"
        self.tls = work / "tls"
        self.ca = self.tls / "ca.pem"
        self.err = open(work / "mock.err", "wb")
        self.proc = spawn([sys.executable, E2E / "mock_provider.py", "--tls-dir", self.tls,
                           "--log", self.log], stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = read_line(self.proc, 30, "mock provider")
        m = re.fullmatch(r"mock: listening (\d+)", line)
        if not m:
            raise AssertionError(f"mock provider printed {line!r}")
        self.port = int(m.group(1))
        self.base = f"https://127.0.0.1:{self.port}"

    def entries(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def by_tag(self, want=()):
        """The log lines by tag, waiting a little for those of want: the mock writes a line just
        after the last byte of its answer, so a fast client can be done before that."""
        deadline = time.monotonic() + 5
        while True:
            got = {e["tag"]: e for e in self.entries() if e.get("tag")}
            if all(t in got for t in want) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


# ---- clients -------------------------------------------------------------------------------

def client_env():
    env = dict(os.environ)
    env["NODE_EXTRA_CA_CERTS"] = str(Workspace.mock.ca)
    env["MOCK_API_KEY"] = API_KEY
    return env


def record(calls):
    """Keeps every client report in the workspace, to read when a test fails."""
    with open(Workspace.dir / "clients.jsonl", "a") as f:
        for c in calls:
            f.write(json.dumps(c) + "\n")
    return calls


def run_client(args, what, timeout=120):
    proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 env=client_env(), cwd=E2E)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what} timed out after {timeout} s: {err[-2000:]}")
    if proc.returncode != 0:
        raise AssertionError(f"{what} exited with {proc.returncode}: {err[-3000:]}")
    return record([json.loads(line) for line in out.splitlines() if line.strip()])


def run_python(calls, mode="urllib"):
    spec = {"mode": mode, "calls": calls}
    mock = Workspace.mock
    got = run_client([sys.executable, E2E / "clients" / "urllib_client.py", "--base", mock.base,
                      "--cafile", mock.ca, "--spec", json.dumps(spec)], f"python client ({mode})")
    if len(got) != len(calls):
        raise AssertionError(f"python client reported {len(got)} calls of {len(calls)}")
    return got


def run_node(sdk, calls, node="node", **spec):
    spec["calls"] = calls
    mock = Workspace.mock
    got = run_client([node, E2E / "clients" / f"{sdk}_client.mjs", "--base", mock.base,
                      "--spec", json.dumps(spec)], f"node {sdk} client")
    if len(got) != len(calls):
        raise AssertionError(f"node {sdk} client reported {len(got)} calls of {len(calls)}")
    return got


def run_curl(call, work):
    """One call made by curl; curl's own timings give the latency from the request on.

    The clock starts when the TLS handshake is done (time_appconnect): curl writes the request
    right after. time_pretransfer was seen to be taken a few ms after the request was written.
    """
    method, path, data, headers = pyclient.build_request(call)
    body = work / f"{call['tag']}.req.json"
    resp = work / f"{call['tag']}.resp"
    body.write_bytes(data)
    args = ["curl", "-sS", "--cacert", Workspace.mock.ca, Workspace.mock.base + path,
            "--data-binary", f"@{body}", "-o", resp,
            "-w", "%{http_code} %{time_appconnect} %{time_starttransfer} %{time_total}"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"curl exited with {proc.returncode}: {err}")
    code, tls_done, start, total = out.split()
    raw = resp.read_bytes()
    obs = pyclient.Observed(call["provider"])
    if call.get("stream") and code == "200":
        for event in raw.split(b"\n\n"):
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    obs.take(json.loads(line[5:]))
    elif code == "200":
        obs.take(json.loads(raw))
    exe = os.path.realpath(shutil.which("curl"))
    got = {"client": "curl", "pid": proc.pid, "tid": proc.pid, "exe": exe, "tag": call["tag"],
           "raw": False, "provider": call["provider"], "request_model": call["model"],
           "stream": bool(call.get("stream")), "max_tokens": call.get("sent_max_tokens"),
           "temperature": call.get("temperature"), "loose_latency": False, "status": int(code),
           "id": obs.id, "model": obs.model, "finish_reason": obs.finish_reason,
           "input_tokens": obs.input_tokens, "output_tokens": obs.output_tokens,
           "cache_read": obs.cache_read, "cache_creation": obs.cache_creation,
           "content_len": obs.content_len,
           "latency_ms": (float(total) - float(tls_done)) * 1000}
    if call.get("stream"):
        got["ttft_ms"] = (float(start) - float(tls_done)) * 1000
    return record([got])


def call(provider, model, tag, stream=False, delay=None, text=None, **kw):
    """A call for the spec of any client; delay is the mock's wait before answering, in ms."""
    headers = dict(kw.pop("headers", {}))
    if delay is not None:
        headers["x-mock-delay-ms"] = str(delay)
    c = {"provider": provider, "model": model, "tag": f"{tag}-{uuid.uuid4().hex[:8]}",
         "stream": stream, "headers": headers, **kw}
    if text is not None:
        c["text"] = text
    return c


def words(n):
    return " ".join(["please count every word of this request"] * n)


# ---- checks --------------------------------------------------------------------------------

def tolerance(ms):
    return max(LAT_TOL_MS, LAT_TOL_FRAC * ms)


def expected_input(log):
    if log["provider"] == "openai":
        return log["input_words"] + log["cache_read_tokens"]
    return log["input_words"] + log["cache_read_tokens"] + log["cache_creation_tokens"]


def check_client_vs_log(tc, c, log):
    """The harness itself: what the client saw is what the mock says it served."""
    ctx = f"[{c['client']} {c['tag']}]"
    tc.assertEqual(c["status"], log["status"], ctx)
    tc.assertEqual(c["request_model"], log["model_requested"], ctx)
    tc.assertEqual(c["stream"], log["stream"], ctx)
    if log["status"] == 200:
        tc.assertEqual(c["id"], log["id"], ctx)
        tc.assertEqual(c["model"], log["model_response"], ctx)
        tc.assertNotEqual(c["model"], c["request_model"], ctx)
        tc.assertEqual(c["finish_reason"], log["finish_reason"], ctx)
        tc.assertEqual(c["output_tokens"], log["output_tokens"], ctx)
        tc.assertEqual(c["cache_read"], log["cache_read_tokens"], ctx)
        if log["provider"] == "openai":
            tc.assertEqual(c["input_tokens"], expected_input(log), ctx)
        else:
            tc.assertEqual(c["input_tokens"], log["input_words"], ctx)
            tc.assertEqual(c["cache_creation"], log["cache_creation_tokens"], ctx)
    served_ms = (log["t_response_done"] - log["t_request_received"]) / 1e6
    tc.assertGreaterEqual(c["latency_ms"] + WALL_TOL_MS, served_ms,
                          f"{ctx} client latency < served time")
    if c["stream"] and log["status"] == 200:
        tc.assertLess(c["ttft_ms"], c["latency_ms"], ctx)


def check_schema(tc, span):
    tc.assertEqual(set(span), SPAN_KEYS, "span keys")
    tc.assertRegex(span["trace_id"], r"^[0-9a-f]{32}$")
    tc.assertNotEqual(span["trace_id"], "0" * 32)
    tc.assertRegex(span["span_id"], r"^[0-9a-f]{16}$")
    tc.assertNotEqual(span["span_id"], "0" * 16)
    tc.assertRegex(span["parent_span_id"], r"^([0-9a-f]{16})?$")
    for k in ("start_time_unix_nano", "end_time_unix_nano"):
        tc.assertIsInstance(span[k], int, k)
    tc.assertIn(span["status"].get("code"), ("unset", "ok", "error"))
    tc.assertIsInstance(span["attributes"], dict)
    tc.assertLessEqual(RESOURCE_KEYS, set(span["resource"]), "resource keys")


def check_timing(tc, span, c, log, ctx):
    a = span["attributes"]
    start, end = span["start_time_unix_nano"], span["end_time_unix_nano"]
    tc.assertGreater(end, start, ctx)
    lat = (end - start) / 1e6
    want, tol = c["latency_ms"], tolerance(c["latency_ms"])
    tc.assertLessEqual(lat, want + tol,
                       f"{ctx} span latency {lat:.2f} ms > client's {want:.2f} ms + {tol:.1f}")
    if not c.get("loose_latency"):
        tc.assertGreaterEqual(lat, want - tol, f"{ctx} span latency {lat:.2f} ms < client's "
                              f"{want:.2f} ms - {tol:.1f}")
    # The mock got the request and finished the response inside the span.
    slack = WALL_TOL_MS * 1e6
    tc.assertLessEqual(start, log["t_request_received"] + slack, f"{ctx} span starts after the "
                       "mock had the request")
    tc.assertGreaterEqual(end, log["t_response_done"] - slack, f"{ctx} span ends before the mock "
                          "finished the response")
    ttft = a.get("gen_ai.response.time_to_first_chunk")
    if log["status"] != 200:
        return  # an error answer to a stream request is not a stream
    if not c["stream"]:
        tc.assertIsNone(ttft, f"{ctx} time_to_first_chunk on a non-stream")
        return
    tc.assertIsInstance(ttft, (int, float), f"{ctx} time_to_first_chunk missing")
    ttft_ms = ttft * 1000
    tc.assertGreater(ttft_ms, 0, ctx)
    tc.assertLess(ttft_ms, lat, f"{ctx} time_to_first_chunk >= latency")
    tol = tolerance(c["ttft_ms"])
    tc.assertLessEqual(ttft_ms, c["ttft_ms"] + tol,
                       f"{ctx} ttft {ttft_ms:.2f} ms > client's {c['ttft_ms']:.2f} ms + {tol:.1f}")
    if not c.get("loose_latency"):
        tc.assertGreaterEqual(ttft_ms, c["ttft_ms"] - tol, f"{ctx} ttft {ttft_ms:.2f} ms < "
                              f"client's {c['ttft_ms']:.2f} ms - {tol:.1f}")


def check_resource(tc, span, c, ctx):
    r = span["resource"]
    name = os.path.basename(c["exe"])
    tc.assertEqual(r.get("process.pid"), c["pid"], ctx)
    tc.assertEqual(r.get("process.executable.path"), c["exe"], ctx)
    tc.assertEqual(r.get("process.executable.name"), name, ctx)
    tc.assertEqual(r.get("service.name"), name, ctx)
    tc.assertEqual(r.get("host.name"), socket.gethostname(), ctx)


def check_span(tc, span, c, log, port):
    """One span against the client's report (c) and the mock's log line for the same call."""
    ctx = f"[{c['client']} {c['tag']}]"
    check_schema(tc, span)
    a = span["attributes"]

    def eq(key, want):
        tc.assertEqual(a.get(key), want, f"{ctx} {key}")

    tc.assertEqual(span["name"], f"chat {log['model_requested']}", ctx)
    tc.assertEqual(span["kind"], "client", ctx)
    eq("gen_ai.operation.name", "chat")
    eq("gen_ai.provider.name", log["provider"])
    eq("gen_ai.request.model", log["model_requested"])
    eq("server.address", "127.0.0.1")
    eq("server.port", port)
    eq("http.request.method", "POST")
    eq("url.path", log["path"].split("?")[0])
    eq("http.response.status_code", log["status"])
    eq("thread.id", c["tid"])
    tc.assertIs(a.get("gen_ai.request.stream", False), log["stream"], f"{ctx} request.stream")
    eq("gen_ai.request.max_tokens", log["max_tokens"])  # None: not sent, so not there
    if c.get("temperature") is None:
        tc.assertNotIn("gen_ai.request.temperature", a, ctx)
    else:
        tc.assertIsInstance(a.get("gen_ai.request.temperature"), (int, float), ctx)
        tc.assertAlmostEqual(a["gen_ai.request.temperature"], c["temperature"], 6, ctx)
    tc.assertFalse(a.get("tokentap.capture.partial", False), f"{ctx} capture partial")
    tc.assertIn(a.get("tokentap.provider.detected_by", "path"), ("path",), ctx)
    tc.assertIn(a.get("tokentap.tls.library", "openssl"), ("openssl",), ctx)
    if log["status"] == 200:
        tc.assertEqual(span["status"]["code"], "unset", ctx)
        tc.assertNotIn("error.type", a, ctx)
        eq("gen_ai.response.model", log["model_response"])
        eq("gen_ai.response.id", log["id"])
        eq("gen_ai.response.finish_reasons", [log["finish_reason"]])
        eq("gen_ai.usage.input_tokens", expected_input(log))
        eq("gen_ai.usage.output_tokens", log["output_tokens"])
        tc.assertEqual(a.get("gen_ai.usage.cache_read.input_tokens", 0),
                       log["cache_read_tokens"], f"{ctx} cache_read")
        tc.assertEqual(a.get("gen_ai.usage.cache_creation.input_tokens", 0),
                       log["cache_creation_tokens"], f"{ctx} cache_creation")
    else:
        tc.assertEqual(span["status"]["code"], "error", ctx)
        eq("error.type", str(log["status"]))
        tc.assertNotIn("gen_ai.response.id", a, ctx)
    check_resource(tc, span, c, ctx)
    check_timing(tc, span, c, log, ctx)


def check_want(tc, span, log, server, port, ctx, by="path"):
    """A span's GenAI and HTTP attributes against a mock_apis log line, whose "want" says what a
    span of that call must carry (None: absent). server is the host the client named (Host or
    the address it dialled), by how tokentap must have found the provider."""
    w, a = log["want"], span["attributes"]

    def eq(key, want):
        tc.assertEqual(a.get(key), want, f"{ctx} {key}")

    tc.assertEqual(span["name"], f"{w['operation']} {w['request_model']}", ctx)
    tc.assertEqual(span["kind"], "client", ctx)
    eq("gen_ai.operation.name", w["operation"])
    eq("gen_ai.provider.name", w["provider"])
    eq("tokentap.provider.detected_by", by)
    eq("gen_ai.request.model", w["request_model"])
    eq("gen_ai.response.model", w["response_model"])
    eq("gen_ai.response.id", w["id"])
    eq("gen_ai.response.finish_reasons", [w["finish"]] if w["finish"] else None)
    eq("gen_ai.usage.input_tokens", w["input"])
    eq("gen_ai.usage.output_tokens", w["output"])
    eq("gen_ai.usage.cache_read.input_tokens", w["cache_read"])
    eq("gen_ai.usage.cache_creation.input_tokens", w["cache_creation"])
    eq("gen_ai.usage.reasoning.output_tokens", w["reasoning"])
    eq("gen_ai.request.max_tokens", w["max_tokens"])
    eq("gen_ai.request.stream", w["stream"])
    eq("openai.api.type", w["api_type"])
    eq("server.address", server)
    eq("server.port", port)
    eq("http.request.method", "POST")
    eq("url.path", log["path"].split("?")[0])
    eq("http.response.status_code", log["status"])
    tc.assertFalse(a.get("tokentap.capture.partial", False), f"{ctx} partial")


# ---- tokentap ------------------------------------------------------------------------------

class Tokentap:
    def __init__(self, work, args):
        self.work, self.args = work, args
        self.out_path, self.err_path = work / "tokentap.out", work / "tokentap.err"
        self.proc = None
        self.spans, self.bad_lines = [], []
        self.stop_error = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = spawn([TOKENTAP, *self.args], stdout=out, stderr=err, env=env, cwd=REPO)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if b"tokentap: ready" in self.err_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"tokentap exited with {self.proc.returncode} before it was "
                                     f"ready; stderr:\n{tail(self.err_path)}")
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"tokentap did not print 'tokentap: ready' within {READY_TIMEOUT_S} s;"
                             f" stderr:\n{tail(self.err_path)}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stop_error = "tokentap did not exit within 20 s of SIGINT"
        self.read_spans()

    def read_spans(self):
        for line in self.out_path.read_text(errors="replace").splitlines():
            try:
                span = json.loads(line)
                if not isinstance(span, dict):
                    raise ValueError("not an object")
                self.spans.append(span)
            except ValueError:
                self.bad_lines.append(line)


class TracedCase(unittest.TestCase):
    """Starts tokentap, runs every workload_* of the class, stops tokentap, keeps the spans."""

    tokentap_args = ["--format", "json"]

    @classmethod
    def setUpClass(cls):
        require_bpf()
        ws = Workspace.get()
        cls.mock = ws.mock
        cls.work = ws.dir / cls.__name__
        cls.work.mkdir()
        cls.tt = None
        try:
            cls.before_tokentap()
            cls.tt = Tokentap(cls.work, cls.tokentap_args_for())
            cls.tt.start()
            cls.results = {}
            for name in sorted(n for n in dir(cls) if n.startswith("workload_")):
                try:
                    cls.results[name[len("workload_"):]] = getattr(cls, name)()
                except Exception as e:  # the test of that workload reports it
                    cls.results[name[len("workload_"):]] = e
            time.sleep(1.0)
        except BaseException:
            kill_all_but_mock(cls.mock)
            raise
        finally:
            if cls.tt is not None:
                cls.tt.stop()
        cls.log = cls.mock.by_tag()

    @classmethod
    def tokentap_args_for(cls):
        return cls.tokentap_args

    @classmethod
    def before_tokentap(cls):
        pass

    def calls(self, name):
        got = self.results.get(name)
        if isinstance(got, Exception):
            raise AssertionError(f"workload {name} failed: {got!r}") from got
        self.assertIsNotNone(got, f"no workload {name}")
        return got

    def spans_of(self, pids):
        return [s for s in self.tt.spans if s.get("resource", {}).get("process.pid") in pids]

    def check_workload(self, name):
        """Exactly one span per LLM call of the workload, each matching its call and log line."""
        calls = self.calls(name)
        llm = [c for c in calls if not c["raw"]]
        spans = self.spans_of({c["pid"] for c in calls})
        self.assertEqual(len(spans), len(llm), f"{name}: {len(spans)} spans for {len(llm)} calls:"
                         f" {[s.get('attributes', {}).get('gen_ai.response.id') for s in spans]}")
        by_id = {}
        for s in spans:
            by_id.setdefault(s["attributes"].get("gen_ai.response.id"), []).append(s)
        no_id = sorted(by_id.pop(None, []), key=lambda s: s["start_time_unix_nano"])
        for c in llm:
            log = self.log.get(c["tag"])
            self.assertIsNotNone(log, f"the mock has no log line for {c['tag']}")
            check_client_vs_log(self, c, log)
            if log["id"] is not None:
                match = by_id.get(log["id"], [])
                self.assertEqual(len(match), 1, f"{name}: spans with id {log['id']}: {len(match)}")
                span = match[0]
            else:
                same_pid = [s for s in no_id if s["resource"]["process.pid"] == c["pid"]]
                self.assertTrue(same_pid, f"{name}: no span for the error call {c['tag']}")
                span = same_pid[0]
                no_id.remove(span)
            check_span(self, span, c, log, self.mock.port)
        return calls, spans


# ---- the traced suite ----------------------------------------------------------------------

# ms: the mock's wait before answering Node. Node's own work between handing the request to fetch
# and its SSL_write, and between its last SSL_read and the end of the body stream, adds 1-4 ms to
# what the client measures (seen with uprobes); at this latency 10% covers it with room to spare.
NODE_DELAY = 100


class TestTraced(TracedCase):
    """Every client and call shape, traced by one tokentap --format json."""

    @classmethod
    def workload_curl_plain(cls):
        return run_curl(call("openai", "gpt-4o", "curl-plain", max_tokens=64, temperature=0.7,
                             text=words(3)), cls.work)

    @classmethod
    def workload_curl_stream(cls):
        return run_curl(call("openai", "gpt-4o-mini", "curl-stream", stream=True, max_tokens=4,
                             text=words(2)), cls.work)

    @classmethod
    def workload_urllib_openai(cls):
        return run_python([
            call("openai", "gpt-4.1", "py-oai-plain", text=words(4), temperature=0.25,
                 headers={"x-mock-cache-read": "1024"}),
            call("openai", "gpt-4.1", "py-oai-stream", stream=True, text=words(5),
                 max_tokens=300)])

    @classmethod
    def workload_urllib_anthropic(cls):
        return run_python([
            call("anthropic", "claude-sonnet-4-5", "py-ant-plain", text=words(6),
                 headers={"x-mock-cache-read": "2048", "x-mock-cache-creation": "300"}),
            call("anthropic", "claude-sonnet-4-5", "py-ant-stream", stream=True, text=words(2),
                 headers={"x-mock-cache-read": "77", "x-mock-multi-delta": "1"}),
            call("anthropic", "claude-haiku-4-5", "py-ant-short", stream=True, max_tokens=3)])

    @classmethod
    def workload_node_openai(cls):
        return run_node("openai", [
            call("openai", "gpt-4o", "node-oai-plain", delay=NODE_DELAY, max_tokens=100,
                 temperature=0.3, text=words(2)),
            call("openai", "gpt-4o", "node-oai-stream", stream=True, delay=NODE_DELAY,
                 text=words(7))])

    @classmethod
    def workload_node_anthropic(cls):
        return run_node("anthropic", [
            call("anthropic", "claude-opus-4-1", "node-ant-plain", delay=NODE_DELAY,
                 headers={"x-mock-cache-creation": "512"}),
            call("anthropic", "claude-opus-4-1", "node-ant-stream", stream=True,
                 delay=NODE_DELAY, max_tokens=2000, temperature=1.0,
                 headers={"x-mock-cache-read": "4096"})])

    @classmethod
    def workload_keepalive(cls):
        calls = []
        for i in range(50):
            provider = "openai" if i % 2 == 0 else "anthropic"
            model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
            calls.append(call(provider, model, f"ka{i}", stream=i % 3 == 0, delay=3,
                              text=words(1 + i % 4),
                              headers={"x-mock-chunk-delay-ms": "1",
                                       "x-mock-output-tokens": str(3 + i)}))
        return run_python(calls, mode="keepalive")

    @classmethod
    def workload_threads(cls):
        # In flight together; answers staggered so the clients' clocks are not all read at once.
        return run_python([call("openai" if i % 2 else "anthropic", f"model-t{i}", f"thr{i}",
                                stream=i % 4 == 1, delay=40 + 9 * i, text=words(1 + i % 3))
                           for i in range(20)], mode="threads")

    @classmethod
    def workload_node_concurrent(cls):
        return run_node("openai", [call("openai", "gpt-4o", f"nodec{i}", stream=i % 2 == 0,
                                        delay=40 + 5 * i) for i in range(20)], concurrent=True)

    @classmethod
    def workload_big(cls):
        got = run_python([call("openai", "gpt-4o", "big-py-plain", headers={"x-mock-big": "400"}),
                          call("anthropic", "claude-sonnet-4-5", "big-py-stream", stream=True,
                               max_tokens=200000, headers={"x-mock-big": "300"})])
        got += run_curl(call("openai", "gpt-4o", "big-curl-stream", stream=True,
                             headers={"x-mock-big": "350"}), cls.work)
        got += run_node("anthropic", [
            call("anthropic", "claude-sonnet-4-5", "big-node-stream", stream=True,
                 max_tokens=200000, delay=NODE_DELAY, headers={"x-mock-big": "300"})])
        got += run_node("openai", [call("openai", "gpt-4o", "big-node-plain", delay=NODE_DELAY,
                                        headers={"x-mock-big": "500"})])
        return got

    @classmethod
    def workload_fresh_node(cls):
        """A node executable that did not exist when tokentap became ready."""
        fresh = Workspace.dir / "fresh"
        fresh.mkdir(exist_ok=True)
        copy = fresh / "node-fresh"
        shutil.copy2(os.path.realpath(shutil.which("node")), copy)
        # tokentap learns of the new file from the exec event; give it time to attach.
        return run_node("openai", [
            call("openai", "gpt-4o", "fresh-plain", delay=NODE_DELAY),
            call("openai", "gpt-4o", "fresh-stream", stream=True, delay=NODE_DELAY)],
            node=copy, delay_ms=2000)

    @classmethod
    def workload_http429(cls):
        got = run_curl(call("openai", "gpt-4o", "e429-curl", headers={"x-mock-status": "429"}),
                       cls.work)
        got += run_node("anthropic", [call("anthropic", "claude-sonnet-4-5", "e429-node",
                                           delay=NODE_DELAY, headers={"x-mock-status": "429"})],
                        max_retries=0)
        got += run_python([call("openai", "gpt-4o-mini", "e429-py", stream=True,
                                headers={"x-mock-status": "429"})])
        return got

    @classmethod
    def workload_non_llm(cls):
        tag = "nonllm-" + uuid.uuid4().hex[:8]
        return run_python([
            {"raw": True, "method": "GET", "path": "/health", "tag": tag + "-a"},
            {"raw": True, "method": "POST", "path": "/internal/echo", "tag": tag + "-b",
             "body": {"model": "gpt-4o", "note": "JSON, but not an LLM API"}},
            call("openai", "gpt-4o", "nonllm-chat"),
            {"raw": True, "method": "GET", "path": "/health", "tag": tag + "-c"}],
            mode="keepalive")

    # -- tokentap itself --

    def test_tokentap_exits_0_on_sigint(self):
        self.assertIsNone(self.tt.stop_error)
        self.assertEqual(self.tt.proc.returncode, 0, tail(self.tt.err_path))

    def test_stdout_carries_spans_only(self):
        self.assertEqual(self.tt.bad_lines, [], "non-JSON lines on stdout")
        self.assertTrue(self.tt.spans, "no spans at all")
        for s in self.tt.spans:
            check_schema(self, s)
        ids = [s["span_id"] for s in self.tt.spans]
        self.assertEqual(len(ids), len(set(ids)), "span ids repeat")

    def test_no_secret_in_output(self):
        for path in (self.tt.out_path, self.tt.err_path):
            data = path.read_bytes()
            self.assertNotIn(API_KEY.encode(), data, f"API key in {path.name}")
            self.assertNotIn(API_KEY[-16:].encode(), data, f"part of the API key in {path.name}")

    def test_mock_server_side_is_not_a_client_span(self):
        self.assertEqual(self.spans_of({self.mock.proc.pid}), [],
                         "spans attributed to the mock server's process")

    # -- clients --

    def test_curl_openai_plain(self):
        self.check_workload("curl_plain")

    def test_curl_openai_stream(self):
        self.check_workload("curl_stream")

    def test_urllib_openai_plain_and_stream(self):
        self.check_workload("urllib_openai")

    def test_urllib_anthropic_plain_and_stream(self):
        self.check_workload("urllib_anthropic")

    def test_node_openai_sdk(self):
        self.check_workload("node_openai")

    def test_node_anthropic_sdk(self):
        self.check_workload("node_anthropic")

    def test_keepalive_50_calls_on_one_connection(self):
        calls, spans = self.check_workload("keepalive")
        self.assertEqual(len(spans), 50)
        ports = {self.log[c["tag"]]["client_port"] for c in calls}
        self.assertEqual(len(ports), 1, "the 50 calls did not share one connection")
        in_order = [s["attributes"]["gen_ai.response.id"]
                    for s in sorted(spans, key=lambda s: s["start_time_unix_nano"])]
        self.assertEqual(in_order, [c["id"] for c in calls])

    def test_20_concurrent_calls_python_threads(self):
        calls, spans = self.check_workload("threads")
        self.assertEqual(len(spans), 20)
        self.assertEqual(len({c["tid"] for c in calls}), 20)
        self.assertEqual(len({self.log[c["tag"]]["client_port"] for c in calls}), 20)
        starts = [s["start_time_unix_nano"] for s in spans]
        ends = [s["end_time_unix_nano"] for s in spans]
        self.assertLess(max(starts), min(ends), "the 20 calls were not in flight together")

    def test_20_concurrent_calls_node(self):
        calls, spans = self.check_workload("node_concurrent")
        self.assertEqual(len(spans), 20)
        self.assertEqual(len({s["attributes"]["gen_ai.response.id"] for s in spans}), 20)

    def test_big_responses(self):
        calls, spans = self.check_workload("big")
        for c in calls:
            self.assertGreater(self.log[c["tag"]]["body_bytes"], 300 * 1024, c["tag"])
            self.assertGreater(c["content_len"], 250 * 1024, c["tag"])

    def test_executable_started_after_ready(self):
        calls, spans = self.check_workload("fresh_node")
        for s in spans:
            self.assertEqual(s["resource"]["process.executable.path"],
                             str(Workspace.dir / "fresh" / "node-fresh"))
            self.assertEqual(s["resource"]["process.executable.name"], "node-fresh")

    def test_http_429(self):
        calls, spans = self.check_workload("http429")
        self.assertEqual(len(spans), 3)
        tags = [c["tag"] for c in calls]
        served = [e for e in self.mock.entries() if e.get("tag") in tags]
        self.assertEqual(len(served), 3, "a client retried the 429")

    def test_non_llm_requests_make_no_span(self):
        calls, spans = self.check_workload("non_llm")
        self.assertEqual([c["raw"] for c in calls], [True, True, False, True])
        self.assertEqual(len(spans), 1)


# ---- OTLP ----------------------------------------------------------------------------------

def same_value(x, y):
    if isinstance(x, float) or isinstance(y, float):
        return (isinstance(x, (int, float)) and isinstance(y, (int, float))
                and math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same_value(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(same_value(a, b) for a, b in zip(x, y))
    return type(x) is type(y) and x == y


def normalized(span):
    s = dict(span)
    st = s.get("status") or {}
    s["status"] = {"code": st.get("code"), "message": st.get("message") or ""}
    s["parent_span_id"] = s.get("parent_span_id") or ""
    return s


class TestOtlp(TracedCase):
    """--format json and --otlp-endpoint together: the collector gets the same spans."""

    @classmethod
    def before_tokentap(cls):
        cls.otlp_out = cls.work / "otlp.jsonl"
        script = E2E / "otlp_receiver.js"
        if not script.exists():
            raise AssertionError(f"{script} is missing")
        cls.receiver = spawn(["node", script, "--port", "0", "--out", cls.otlp_out],
                             stdout=subprocess.PIPE, stderr=open(cls.work / "otlp.err", "wb"),
                             text=True, cwd=E2E)
        line = read_line(cls.receiver, 30, "otlp_receiver.js")
        m = re.fullmatch(r"otlp_receiver: listening (\d+)", line)
        if not m:
            raise AssertionError(f"otlp_receiver.js printed {line!r}")
        cls.otlp_port = int(m.group(1))

    @classmethod
    def tokentap_args_for(cls):
        return ["--format", "json", "--otlp-endpoint", f"http://127.0.0.1:{cls.otlp_port}"]

    @classmethod
    def tearDownClass(cls):
        receiver = getattr(cls, "receiver", None)
        if receiver is not None and receiver.poll() is None:
            receiver.terminate()
            receiver.wait(timeout=10)

    @classmethod
    def workload_mixed(cls):
        got = run_curl(call("openai", "gpt-4o", "otlp-curl", stream=True, max_tokens=10),
                       cls.work)
        got += run_curl(call("openai", "gpt-4o", "otlp-429", headers={"x-mock-status": "429"}),
                        cls.work)
        got += run_python([call("anthropic", "claude-sonnet-4-5", "otlp-py", temperature=0.5,
                                headers={"x-mock-cache-read": "10"}),
                           call("anthropic", "claude-sonnet-4-5", "otlp-py-s", stream=True)])
        got += run_node("openai", [call("openai", "gpt-4o", "otlp-node", delay=NODE_DELAY),
                                   call("openai", "gpt-4o", "otlp-node-s", stream=True,
                                        delay=NODE_DELAY)])
        return got

    def otlp_spans(self, want):
        """The receiver's spans, waiting a little for the last export to be written."""
        deadline = time.monotonic() + 10
        while True:
            spans = []
            if self.otlp_out.exists():
                spans = [json.loads(line) for line in self.otlp_out.read_text().splitlines()
                         if line.strip()]
            if len(spans) >= want or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def test_json_spans_are_right(self):
        self.check_workload("mixed")

    def test_otlp_spans_equal_json_spans(self):
        # Independent of whether the JSON spans are right (the test above): are they the same?
        calls = self.calls("mixed")
        self.assertTrue(self.spans_of({c["pid"] for c in calls}), "no JSON spans of the clients")
        everything = self.tt.spans
        otlp = self.otlp_spans(len(everything))
        by_id = {s.get("span_id"): s for s in otlp}
        self.assertEqual(len(by_id), len(otlp), "span ids repeat in OTLP")
        self.assertEqual(set(by_id), {s["span_id"] for s in everything},
                         "the collector did not get the same set of spans")
        for js in everything:
            want, got = normalized(js), normalized(by_id[js["span_id"]])
            for key in sorted(SPAN_KEYS):
                self.assertTrue(same_value(want.get(key), got.get(key)),
                                f"span {js['span_id']} {key}: json {want.get(key)!r} "
                                f"!= otlp {got.get(key)!r}")


# ---- the harness without tokentap: clients really talk to the mock, and its log is right ---

class TestHarness(unittest.TestCase):
    """Runs without BPF: proves the mock and the clients before tokentap is judged by them."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Workspace.get().mock
        cls.work = Workspace.dir / "harness"
        cls.work.mkdir(exist_ok=True)

    def check(self, calls):
        log = self.mock.by_tag([c["tag"] for c in calls if c.get("tag")])
        for c in calls:
            if not c["raw"]:
                self.assertIn(c["tag"], log)
                check_client_vs_log(self, c, log[c["tag"]])
        return log

    def test_curl(self):
        got = run_curl(call("openai", "gpt-4o", "h-curl", max_tokens=2), self.work)
        got += run_curl(call("openai", "gpt-4o", "h-curl-s", stream=True), self.work)
        got += run_curl(call("anthropic", "claude-x", "h-curl-a", stream=True,
                             headers={"x-mock-cache-creation": "9"}), self.work)
        log = self.check(got)
        self.assertEqual(log[got[0]["tag"]]["finish_reason"], "length")

    def test_python(self):
        got = run_python([call("openai", "gpt-4o", "h-py", headers={"x-mock-cache-read": "5"}),
                          call("anthropic", "claude-x", "h-py-s", stream=True, max_tokens=2,
                               headers={"x-mock-multi-delta": "1"})])
        log = self.check(got)
        self.assertEqual(log[got[1]["tag"]]["finish_reason"], "max_tokens")
        self.assertEqual(got[1]["output_tokens"], 2)

    def test_python_keepalive_one_connection(self):
        got = run_python([call("openai", "m", f"h-ka{i}", stream=i % 2 == 1, delay=1)
                          for i in range(6)] +
                         [{"raw": True, "method": "GET", "path": "/health", "tag": "h-ka-health"}],
                         mode="keepalive")
        log = self.check(got)
        self.assertEqual(len({log[c["tag"]]["client_port"] for c in got}), 1)
        self.assertEqual(got[-1]["status"], 200)

    def test_python_threads(self):
        got = run_python([call("openai", "m", f"h-thr{i}", delay=20 + i) for i in range(8)],
                         mode="threads")
        log = self.check(got)
        self.assertEqual(len({log[c["tag"]]["client_port"] for c in got}), 8)

    def test_node_openai(self):
        got = run_node("openai", [call("openai", "gpt-4o", "h-no", temperature=0.1),
                                  call("openai", "gpt-4o", "h-no-s", stream=True, max_tokens=3)])
        log = self.check(got)
        self.assertEqual(got[1]["finish_reason"], "length")
        # The warm-up left a connection the SDK calls reused: no handshake in their latency.
        warm = [e for e in self.mock.entries() if e.get("tag") == f"warmup-{got[0]['pid']}"]
        self.assertTrue(warm)
        self.assertEqual({log[c["tag"]]["client_port"] for c in got},
                         {warm[-1]["client_port"]})

    def test_node_anthropic(self):
        got = run_node("anthropic", [call("anthropic", "claude-x", "h-na",
                                          headers={"x-mock-cache-read": "3"}),
                                     call("anthropic", "claude-x", "h-na-s", stream=True)])
        self.check(got)

    def test_node_sdk_429_not_retried(self):
        got = run_node("openai", [call("openai", "gpt-4o", "h-429",
                                       headers={"x-mock-status": "429"})], max_retries=0)
        self.check(got)
        self.assertEqual(got[0]["status"], 429)
        self.assertEqual(len([e for e in self.mock.entries() if e.get("tag") == got[0]["tag"]]),
                         1)

    def test_big(self):
        got = run_node("openai", [call("openai", "gpt-4o", "h-big", stream=True,
                                       headers={"x-mock-big": "300"})])
        log = self.check(got)
        self.assertGreater(log[got[0]["tag"]]["body_bytes"], 300 * 1024)
        self.assertGreater(got[0]["content_len"], 250 * 1024)


# ---- main ----------------------------------------------------------------------------------

class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def run_suite(name, module):
    """Runs a suite module's tests; the last line printed is "<name>: N passed, N failed"."""
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result)
    Workspace.failed = True  # until the run says otherwise
    try:
        result = unittest.main(module=module, testRunner=runner, exit=False).result
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        Workspace.failed = failed > 0
    finally:
        Workspace.cleanup()
    sys.stderr.flush()
    for test, reason in result.skipped:
        print(f"{name}: skipped {test}: {reason}")
    print(f"{name}: {result.passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def main():
    run_suite("e2e", __name__)

if __name__ == "__main__":
    main()
