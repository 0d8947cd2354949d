#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end, agents with their own TLS: Bun and Claude Code (stripped static BoringSSL),
Codex CLI (a stripped static-pie musl Rust binary: rustls 0.23 on aws-lc-rs).

None of the binaries has an SSL symbol: tokentap finds BoringSSL's SSL_write and SSL_read, and
aws-lc's EVP_AEAD_CTX_seal, _seal_scatter, _open and _open_gather under rustls, by the shape of
their code (attach/boringssl.c, attach/awslc.c) on a worker thread, caches the result per build
id (a content hash for Codex, which has none) under TOKENTAP_STATE_DIR, attaches, and lets a
connection's records through only once they start like HTTP (rustls records rebound to their TCP
socket). The agents come unmodified from npm (tests/e2e/agents, installed by
TOKENTAP_TEST_DEPS=1 deploy/deps.sh):

  Bun:         the official openai and @anthropic-ai/sdk clients of tests/e2e/clients run by
               `bun` instead of `node` (Bun's fetch; NODE_EXTRA_CA_CERTS trusts the mock's CA),
               plain and streamed; every span is checked field by field as for the OpenSSL
               clients (check_span), the thread being Bun's HTTP client thread;
  Claude Code: `claude -p` with ANTHROPIC_BASE_URL at the mock (streamed Messages API, answers
               end with end_turn); the span is checked against the mock's log line of the call.
  Codex CLI:   `codex exec` with its own model provider in config.toml (the mock's base URL,
               Responses API over SSE, WebSockets and plugins off; the mock's CA in
               CODEX_CA_CERTIFICATE; a tag and the mock's delay as extra headers): one streamed
               POST /v1/responses on one connection, checked field by field against the mock's
               "want" (test_e2e.check_want). Against the mock Codex speaks HTTP/1.1 (the mock
               offers no h2); a second run goes through h2_front.js, where it picks HTTP/2 as
               it would with api.openai.com, and cancels its stream once response.completed is
               in; a third is a fresh copy of the binary, attached from the cache at its exec.

First contact: each agent is started as a long-lived process (`bun -e` a timer, `claude mcp
serve`, `codex app-server` on stdio, which makes no network call) and the suite waits for its
attachment, so the analysis (0.1-1.2 s for a 100-300 MB binary) is done and cached before the
traced calls, and the file is not detached between them; the suite reports how long discovery
took per binary (from tokentap -v), checks the method ("boringssl-code", "aws-lc-code") and the
cache entries, and runs fresh copies of bun and codex (files no process had mapped, same
contents) that must be attached from the cache at their exec, before their first call. Every
span of an agent must come from a connection verified by an HTTP request.

Environment and usage as test_e2e.py; the last line printed is "agents: N passed, N failed".
"""
import copy
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402
from test_h2 import Front  # noqa: E402  (HTTP/2 before the mock)

AGENTS = h.E2E / "agents" / "node_modules"
BUN = AGENTS / "@oven" / "bun-linux-x64" / "bin" / "bun"
CLAUDE = AGENTS / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
CODEX = (AGENTS / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" /
         "codex")
ATTACH_TIMEOUT_S = 60  # first analysis of a 250 MB file on a loaded 2-core machine
DELAY = 100  # ms: the mock's wait, so the 10% latency tolerance covers Bun's thread hop
# The mock notes when it finished after its last write returns; with two agents' threads on a
# loaded 2-core machine that note was seen 11 ms late (span and client agreed within 1 ms).
h.WALL_TOL_MS = max(h.WALL_TOL_MS, 25)


def require_agents():
    missing = [str(p) for p in (BUN, CLAUDE, CODEX) if not os.access(p, os.X_OK)]
    if not missing:
        return
    why = f"agents not installed ({', '.join(missing)}): TOKENTAP_TEST_DEPS=1 deploy/deps.sh"
    if h.REQUIRE_BPF:
        raise AssertionError(why)
    raise unittest.SkipTest(why)


def tokentap_log(tt):
    return tt.err_path.read_text(errors="replace")


# What tokentap -v logs when it attaches to a file, per TLS library: the method ("(cached)" when
# the verdict came from TOKENTAP_STATE_DIR), the functions' addresses, the discovery time.
ATTACHED = {
    "boringssl": r"tokentap: BoringSSL probes attached to {path} \((?P<method>[^,]+), "
                 r"SSL_write (?P<SSL_write>0x[0-9a-f]+), SSL_read (?P<SSL_read>0x[0-9a-f]+), "
                 r"discovery (?P<discovery_ms>[0-9.]+) ms\)",
    "rustls": r"tokentap: rustls probes attached to {path} \((?P<method>[^,]+), "
              r"seal (?P<seal>0x[0-9a-f]+), seal_scatter (?P<seal_scatter>0x[0-9a-f]+), "
              r"open (?P<open>0x[0-9a-f]+), open_gather (?P<open_gather>0x[0-9a-f]+), "
              r"discovery (?P<discovery_ms>[0-9.]+) ms\)",
}
# The functions of each library whose addresses the log line and the cache entry name, the
# method that finds them, the cache entry's prefix.
FUNCTIONS = {"boringssl": ("SSL_write", "SSL_read"),
             "rustls": ("seal", "seal_scatter", "open", "open_gather")}
METHOD = {"boringssl": "boringssl-code", "rustls": "aws-lc-code"}
CACHE = {"boringssl": "bssl", "rustls": "awslc"}
# Per connection, once its first bytes start an HTTP request (or the HTTP/2 preface).
VERIFIED = r"tokentap: {lib} connection 0x[0-9a-f]+ of pid (\d+) verified: an HTTP request"


def wait_attached(tt, lib, path, since, timeout=ATTACH_TIMEOUT_S):
    """The log line of path's attachment for lib, written after offset since of the log."""
    pat = re.compile(ATTACHED[lib].format(path=re.escape(str(path))))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = pat.search(tokentap_log(tt)[since:])
        if m:
            return m
        time.sleep(0.1)
    raise AssertionError(f"no {lib} attachment of {path} within {timeout} s:\n"
                         f"{h.tail(tt.err_path)}")


def first_contact(tt, lib, exe, args, env, keepers, cwd=None):
    """Starts exe as a long-lived process and waits for its attachment: the discovery, timed by
    tokentap. The process (a keeper) runs on until the workloads are done: a file whose last
    user exits is detached and attached again at its next exec, and on this loaded machine an
    exec event was seen handled after the agent's first call."""
    since = len(tokentap_log(tt))
    proc = h.spawn([exe, *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    keepers.append(proc)
    got = wait_attached(tt, lib, exe, since).groupdict()
    got["discovery_ms"] = float(got["discovery_ms"])
    return got


def claude_env(mock, home):
    env = h.client_env()
    env.update({"HOME": str(home), "ANTHROPIC_BASE_URL": mock.base,
                "ANTHROPIC_API_KEY": h.API_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1"})
    return env


def run_agent(exe, args, env, cwd=None):
    """One non-interactive agent run; its wall clock bounds its calls."""
    what = Path(exe).name
    t0 = time.time_ns()
    proc = h.spawn([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what} timed out: {err[-2000:]}")
    if proc.returncode != 0:
        raise AssertionError(f"{what} exited with {proc.returncode}: {err[-2000:]} {out[-500:]}")
    return {"pid": proc.pid, "exe": os.path.realpath(exe), "t0": t0, "t1": time.time_ns(),
            "out": out}


def run_claude(mock, prompt, home):
    """One non-interactive Claude Code run against the mock."""
    return run_agent(CLAUDE, ["-p", prompt, "--model", "claude-sonnet-4-5"],
                     claude_env(mock, home))


# Codex's own model provider: the mock's Responses API, over SSE (WebSockets off: Codex would
# try a WebSocket first), plugins off (else it starts a git fetch of its plugin marketplace).
# The extra headers tag the call in the mock's log and set the mock's wait before answering.
CODEX_CONFIG = """model = "gpt-5"
model_provider = "mock"

[model_providers.mock]
name = "mock"
base_url = "{base}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
supports_websockets = false
http_headers = {{ "x-test-tag" = "{tag}", "x-mock-delay-ms" = "{delay}" }}

[features]
plugins = false
"""


def codex_home(home, base, tag=""):
    """A HOME with a Codex configuration whose provider is at base; the directory Codex runs
    in too (not the repository: no AGENTS.md or git of ours in its prompt)."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(CODEX_CONFIG.format(base=base, tag=tag,
                                                                     delay=DELAY))
    env = h.client_env()
    env.update({"HOME": str(home), "CODEX_HOME": str(home / ".codex"),
                "OPENAI_API_KEY": h.API_KEY, "CODEX_CA_CERTIFICATE": str(h.Workspace.mock.ca)})
    return env


def run_codex(exe, base, home):
    """One `codex exec` against base (the mock, or h2_front.js before it), tagged."""
    tag = f"codex-{uuid.uuid4().hex[:8]}"
    env = codex_home(home, base, tag)
    run = run_agent(exe, ["exec", "--skip-git-repo-check", "Reply with one word."], env,
                    cwd=home)
    return dict(run, tag=tag, base=base)


class TestAgents(h.TracedCase):
    tokentap_args = ["--format", "json", "-v"]

    @classmethod
    def before_tokentap(cls):
        require_agents()
        # An empty cache: the first exec of each agent is analysed, later ones come from it.
        os.environ["TOKENTAP_STATE_DIR"] = str(cls.work / "state")
        cls.home = cls.work / "home"
        cls.home.mkdir()
        cls.front = Front(cls.work, cls.mock)
        cls.keepers = []

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "front", None) is not None:
            cls.front.stop()
        for big in ("fresh-codex", "unseen-codex"):  # 294 MB each
            shutil.rmtree(cls.work / big, ignore_errors=True)

    @classmethod
    def workload_0_first_contact(cls):
        # A --version exits before its exec is looked at: processes that stay.
        env = claude_env(cls.mock, cls.home)
        return {"bun": first_contact(cls.tt, "boringssl", BUN,
                                     ["-e", "setTimeout(() => {}, 600000)"], env, cls.keepers),
                "claude": first_contact(cls.tt, "boringssl", CLAUDE, ["mcp", "serve"], env,
                                        cls.keepers)}

    @classmethod
    def workload_0_first_contact_codex(cls):
        # The app server on stdio waits for a client on its stdin and calls nobody.
        home = cls.work / "codex-keeper"
        return {"codex": first_contact(cls.tt, "rustls", CODEX, ["app-server"],
                                       codex_home(home, cls.mock.base), cls.keepers, cwd=home)}

    @classmethod
    def bun_calls(cls, sdk, provider, model, tag):
        calls = [h.call(provider, model, f"{tag}-plain", delay=DELAY, max_tokens=64,
                        temperature=0.5, text=h.words(4)),
                 h.call(provider, model, f"{tag}-stream", stream=True, delay=DELAY,
                        max_tokens=128, text=h.words(7))]
        return h.run_node(sdk, calls, node=str(BUN), warmup=True)

    @classmethod
    def workload_bun_openai(cls):
        return cls.bun_calls("openai", "openai", "gpt-4o", "bun-openai")

    @classmethod
    def workload_bun_anthropic(cls):
        return cls.bun_calls("anthropic", "anthropic", "claude-sonnet-4-5", "bun-anthropic")

    @classmethod
    def workload_bun_fresh_copy(cls):
        """A copy of bun no process had mapped: a new file (inode), the same build id. Its exec
        is attached at once from the cache, before the client's first call."""
        fresh = cls.work / "fresh-bun"
        fresh.mkdir()
        shutil.copy2(BUN, fresh / "bun")
        calls = [h.call("openai", "gpt-4o", "bun-fresh", stream=True, delay=DELAY,
                        max_tokens=32, text=h.words(2))]
        return h.run_node("openai", calls, node=str(fresh / "bun"), warmup=True)

    @classmethod
    def workload_claude(cls):
        return run_claude(cls.mock, "Reply with one word.", cls.home)

    @classmethod
    def workload_codex(cls):
        return run_codex(CODEX, cls.mock.base, cls.work / "codex-h1")

    @classmethod
    def workload_codex_h2(cls):
        return run_codex(CODEX, cls.front.base, cls.work / "codex-h2")

    @classmethod
    def workload_codex_fresh_copy(cls):
        """A copy of codex no process had mapped: attached from the cache at its exec."""
        fresh = cls.work / "fresh-codex"
        fresh.mkdir()
        shutil.copy2(CODEX, fresh / "codex")
        return run_codex(fresh / "codex", cls.mock.base, cls.work / "codex-fresh")

    @classmethod
    def workload_codex_never_seen(cls):
        """A Codex no cache knows (the copy grows by 4 KiB: a new size, a new cache key) run
        straight away, no first contact: tokentap holds it from its exec until the analysis is
        done, so its one call, made within a few hundred ms of exec, is a span."""
        unseen = cls.work / "unseen-codex"
        unseen.mkdir()
        shutil.copy2(CODEX, unseen / "codex")
        with open(unseen / "codex", "ab") as f:
            f.write(b"\0" * 4096)
        return run_codex(unseen / "codex", cls.mock.base, cls.work / "codex-unseen")

    @classmethod
    def workload_zz_stop_keepers(cls):
        for p in getattr(cls, "keepers", []):
            p.kill()
            p.wait()
        return []

    # ---- checks --------------------------------------------------------------------------

    def check_bun(self, name):
        calls = self.calls(name)
        spans = self.spans_of({c["pid"] for c in calls})
        self.assertEqual(len(spans), len(calls), f"{name}: {len(spans)} spans for {len(calls)}")
        for c in calls:
            log = self.log.get(c["tag"])
            self.assertIsNotNone(log, f"the mock has no log line for {c['tag']}")
            h.check_client_vs_log(self, c, log)
            match = [s for s in spans if s["attributes"].get("gen_ai.response.id") == log["id"]]
            self.assertEqual(len(match), 1, f"{name}: spans with id {log['id']}")
            span = copy.deepcopy(match[0])
            a = span["attributes"]
            self.assertEqual(a.pop("tokentap.tls.library", None), "boringssl", c["tag"])
            # Bun's fetch runs TLS on its own HTTP client thread, not the JS thread: the JS
            # clock sees each chunk after a hop between threads (14 ms seen under load), so the
            # span may be shorter than what the client measured, never longer (loose_latency).
            self.assertIsInstance(a.get("thread.id"), int, c["tag"])
            self.assertNotEqual(a["thread.id"], c["pid"], c["tag"])
            c = dict(c, tid=a["thread.id"], loose_latency=True)
            h.check_span(self, span, c, log, self.mock.port)

    def test_bun_openai_sdk(self):
        self.check_bun("bun_openai")

    def test_bun_anthropic_sdk(self):
        self.check_bun("bun_anthropic")

    def test_bun_fresh_copy_attached_from_cache(self):
        self.check_bun("bun_fresh_copy")
        exe = self.calls("bun_fresh_copy")[0]["exe"]
        self.assertRegex(tokentap_log(self.tt), r"BoringSSL probes attached to " +
                         re.escape(exe) + r" \(boringssl-code \(cached\)")

    def test_claude_code(self):
        run = self.calls("claude")
        logs = [e for e in self.mock.entries()
                if e["path"].startswith("/v1/messages") and e["method"] == "POST"
                and run["t0"] <= e["t_request_received"] <= run["t1"]]
        self.assertTrue(logs, "Claude Code made no /v1/messages call to the mock")
        spans = self.spans_of({run["pid"]})
        self.assertEqual(len(spans), len(logs), f"{len(spans)} spans for {len(logs)} calls")
        for log in logs:
            match = [s for s in spans if s["attributes"].get("gen_ai.response.id") == log["id"]]
            self.assertEqual(len(match), 1, f"spans with id {log['id']}")
            span, a = match[0], match[0]["attributes"]
            h.check_schema(self, span)
            self.assertEqual(span["name"], f"chat {log['model_requested']}")
            self.assertEqual(log["finish_reason"], "end_turn")
            want = {"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": log["model_requested"],
                    "gen_ai.response.model": log["model_response"],
                    "gen_ai.response.finish_reasons": [log["finish_reason"]],
                    "gen_ai.usage.input_tokens": h.expected_input(log),
                    "gen_ai.usage.output_tokens": log["output_tokens"],
                    "gen_ai.request.max_tokens": log["max_tokens"],
                    "gen_ai.request.stream": log["stream"], "url.path": "/v1/messages",
                    "server.address": "127.0.0.1", "server.port": self.mock.port,
                    "http.response.status_code": 200, "tokentap.tls.library": "boringssl"}
            for k, v in want.items():
                self.assertEqual(a.get(k), v, k)
            self.assertNotIn("tokentap.capture.partial", a)
            if log["stream"]:
                self.assertGreater(a.get("gen_ai.response.time_to_first_chunk", 0), 0)
            slack = h.WALL_TOL_MS * 1e6
            self.assertLessEqual(span["start_time_unix_nano"], log["t_request_received"] + slack)
            self.assertGreaterEqual(span["end_time_unix_nano"], log["t_response_done"] - slack)
            r = span["resource"]
            self.assertEqual(r["process.pid"], run["pid"])
            self.assertEqual(r["process.executable.path"], run["exe"])
            self.assertEqual(r["service.name"], "claude")

    def check_codex(self, name, port):
        """Exactly one span per call the mock logged for the run's tag, each right in every
        field: what the mock's "want" says, rustls, streamed, inside the mock's times, Codex's
        process. Codex sends neither max_output_tokens nor a temperature."""
        run = self.calls(name)
        logs = [e for e in self.mock.entries() if e.get("tag") == run["tag"]]
        self.assertTrue(logs, f"{name}: Codex made no call to the mock")
        spans = self.spans_of({run["pid"]})
        self.assertEqual(len(spans), len(logs), f"{name}: {len(spans)} spans for {len(logs)} "
                         f"calls")
        for log in logs:
            ctx = f"[{name} {log['id']}]"
            self.assertEqual((log["method"], log["path"], log["status"]),
                             ("POST", "/v1/responses", 200), ctx)
            self.assertIs(log["want"]["stream"], True, ctx)
            match = [s for s in spans if s["attributes"].get("gen_ai.response.id") == log["id"]]
            self.assertEqual(len(match), 1, f"{ctx} spans with that id")
            span, a = match[0], match[0]["attributes"]
            h.check_schema(self, span)
            h.check_want(self, span, log, "127.0.0.1", port, ctx)
            self.assertEqual(a.get("tokentap.tls.library"), "rustls", ctx)
            # Complete answers: over HTTP/2 Codex cancels the stream (RST_STREAM CANCEL) when it
            # has response.completed, before the server's END_STREAM: no error for that either.
            self.assertEqual(span["status"]["code"], "unset", f"{ctx} {span['status']} "
                             f"{a.get('tokentap.http2.error_code')}")
            self.assertNotIn("error.type", a, ctx)
            self.assertNotIn("gen_ai.request.temperature", a, ctx)
            self.assertIsInstance(a.get("thread.id"), int, ctx)
            h.check_resource(self, span, run, ctx)  # pid, path, name, service.name "codex"
            start, end = span["start_time_unix_nano"], span["end_time_unix_nano"]
            slack = h.WALL_TOL_MS * 1e6
            self.assertLessEqual(start, log["t_request_received"] + slack, ctx)
            self.assertGreaterEqual(end, log["t_response_done"] - slack, ctx)
            self.assertGreaterEqual(start, run["t0"], ctx)
            self.assertLessEqual(end, run["t1"], ctx)
            # The mock waits DELAY ms before its head, which goes out with the first event.
            ttft = a.get("gen_ai.response.time_to_first_chunk")
            self.assertIsInstance(ttft, (int, float), f"{ctx} time_to_first_chunk")
            self.assertGreaterEqual(ttft * 1000, DELAY - h.WALL_TOL_MS, ctx)
            self.assertLess(ttft * 1e9, end - start, ctx)
        return run, logs

    def test_codex(self):
        self.check_codex("codex", self.mock.port)

    def test_codex_http2(self):
        """Through h2_front.js Codex speaks HTTP/2 (offered h2, it takes it): the span names the
        front's port, and the front logged HTTP/2 for the call."""
        run, logs = self.check_codex("codex_h2", self.front.port)
        front = [e for e in self.front.by_tag().values() if e["tag"] == run["tag"]]
        self.assertEqual([e["http_version"] for e in front], ["2.0"])

    def test_codex_fresh_copy_attached_from_cache(self):
        self.check_codex("codex_fresh_copy", self.mock.port)
        exe = self.calls("codex_fresh_copy")["exe"]
        self.assertRegex(tokentap_log(self.tt), r"rustls probes attached to " + re.escape(exe) +
                         r" \(aws-lc-code \(cached\)")

    def test_codex_never_seen_held_until_analysed(self):
        """The first exec of a binary no cache knows: held (a ptrace interrupt) from its exec
        until its probes are attached, then released, and its first call is a span."""
        self.check_codex("codex_never_seen", self.mock.port)
        run = self.calls("codex_never_seen")
        log = tokentap_log(self.tt)
        exe = re.escape(run["exe"])
        self.assertRegex(log, rf"holding pid {run['pid']} \(\d+ threads\) until {exe} is "
                              r"analysed")
        self.assertRegex(log, rf"rustls probes attached to {exe} \(aws-lc-code, ")
        held = re.search(rf"released pid {run['pid']} after ([0-9.]+) ms \(analysed\)", log)
        self.assertIsNotNone(held, "the hold did not end with the analysis")
        print(f"agents: never-seen codex held {float(held.group(1)):.0f} ms", file=sys.stderr)

    def test_discovery_method_time_and_cache(self):
        log = tokentap_log(self.tt)
        for name, exe, lib, workload in (("bun", BUN, "boringssl", "0_first_contact"),
                                         ("claude", CLAUDE, "boringssl", "0_first_contact"),
                                         ("codex", CODEX, "rustls", "0_first_contact_codex")):
            got = self.calls(workload)[name]
            self.assertEqual(got["method"], METHOD[lib], name)
            addrs = [int(got[f], 16) for f in FUNCTIONS[lib]]
            self.assertEqual(len(set(addrs)), len(addrs), f"{name}: {got}")
            print(f"agents: {name} ({exe.stat().st_size >> 20} MB): discovery "
                  f"{got['discovery_ms']:.0f} ms, " +
                  " ".join(f"{f} {got[f]}" for f in FUNCTIONS[lib]), file=sys.stderr)
            # The verdict is cached per build id (Codex has none: a content hash, "h...") and
            # size, starting "tokentap-discovery 1".
            cached = list((self.work / "state").glob(f"{CACHE[lib]}-*-{exe.stat().st_size}"))
            self.assertEqual(len(cached), 1, name)
            words = cached[0].read_text().split()
            self.assertEqual(words[:2], ["tokentap-discovery", "1"], name)
            if lib == "boringssl":  # then the write and read file offsets and addresses in hex
                self.assertEqual([int(x, 16) for x in words[4:6]], addrs, name)
            else:  # the four functions' addresses among its hex words
                hexes = {int(x, 16) for x in words[2:] if re.fullmatch(r"(0x)?[0-9a-f]+", x)}
                self.assertLessEqual(set(addrs), hexes, f"{name}: {words}")
        # Attachments from the cache (the fresh copies of bun and codex, files attached again
        # after a detach) cost a cache lookup, not an analysis.
        for method in METHOD.values():
            cached = re.findall(r"\(" + method + r" \(cached\), .*discovery ([0-9.]+) ms", log)
            self.assertTrue(cached, method)
            for ms in cached:
                self.assertLess(float(ms), 100, method)

    def test_connections_verified_by_their_bytes(self):
        log = tokentap_log(self.tt)
        # Every process that made a span had its connection verified by its HTTP bytes first.
        for lib, name in (("boringssl", "BoringSSL"), ("rustls", "rustls")):
            verified = {int(p) for p in re.findall(VERIFIED.format(lib=name), log)}
            spans = {s["resource"]["process.pid"] for s in self.tt.spans
                     if s["attributes"].get("tokentap.tls.library") == lib}
            self.assertTrue(spans, lib)
            self.assertLessEqual(spans, verified, lib)
        # And every Codex run had its connection verified, spans or not.
        verified = {int(p) for p in re.findall(VERIFIED.format(lib="rustls"), log)}
        for name in ("codex", "codex_h2", "codex_fresh_copy"):
            pid = self.calls(name)["pid"]
            self.assertIn(pid, verified, f"{name}: no rustls connection of pid {pid} verified")

    def test_no_secret_in_output(self):
        self.assertNotIn(h.API_KEY, self.tt.out_path.read_text(errors="replace"))


def main():
    h.run_suite("agents", __name__)


if __name__ == "__main__":
    main()
