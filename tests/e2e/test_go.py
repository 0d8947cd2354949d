#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end, Go crypto/tls: BPF attached, a Go client built here with Debian's Go.

A Go program carries its own TLS (crypto/tls), no OpenSSL: tokentap finds
crypto/tls.(*Conn).Write/Read in the executable, by its symbols or, stripped (-ldflags='-s -w'),
by .gopclntab, and probes their entry and every RET instruction (never uretprobes: Go moves
goroutine stacks). The client (tests/e2e/clients/go, standard library only) is built once per
source version into a cache directory, unstripped and stripped; each run starts after tokentap
is ready, so the binary is found at its exec, and makes its first call once tokentap's -v log
says it probed that binary (a call made before is lost: README, Go crypto/tls). Go's own HTTP/2 client (ALPN h2) is
tested through h2_front.js (test_h2.py's front to the mock).

Every span is checked by test_e2e's check_span against the mock's log and the client's own
measurements (latency from the end of the TLS handshake, time to the first SSE event), with
tokentap.tls.library "go"; thread.id must be a thread of the client (a goroutine runs on any of
the process's threads, so the client cannot say which). tokentap's -v log must name the method
that found each binary: "symbols" for the plain build, "gopclntab" for the stripped one.

Without a Go toolchain the suite is skipped, or fails with TOKENTAP_REQUIRE_BPF=1.
Environment and usage as test_e2e.py, plus TOKENTAP_E2E_GO_CACHE (where the client binaries are
kept; default: a directory under the system temp dir). The last line printed is
"go: N passed, N failed".
"""
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402
import test_h2  # noqa: E402  (its h2_front.js runner)

E2E = h.E2E
SRC = E2E / "clients" / "go"
# ms the mock waits before answering: 10% of the latency covers the Go runtime's own work
# between the handshake (where the client's clock starts) and its first Write.
DELAY = 100
# s to wait for tokentap to probe a client after its exec: it examines a new executable when
# it starts and attaches 18 probes, 15-80 ms here, 350 ms at a load average of 47; a call before
# that is not seen, so the client waits for the test's go-ahead (--wait-stdin).
ATTACH_WAIT_S = 30


def go_bin():
    return shutil.which("go")


def build_clients():
    """The client, unstripped and stripped, built once per source version; returns the dir."""
    digest = hashlib.sha256()
    for f in sorted(SRC.iterdir()):
        digest.update(f.name.encode() + f.read_bytes())
    base = Path(os.environ.get("TOKENTAP_E2E_GO_CACHE",
                               Path(tempfile.gettempdir()) / "tokentap-e2e-go"))
    out = base / digest.hexdigest()[:16]
    if all((out / n).exists() for n in ("goclient", "goclient-stripped", "goclient-h2")):
        return out
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", CGO_ENABLED="0")
    env.setdefault("HOME", str(base))
    for name, flags in (("goclient", []), ("goclient-stripped", ["-ldflags=-s -w"])):
        tmp = out / f".{name}.tmp"
        proc = subprocess.run([go_bin(), "build", *flags, "-o", tmp, "."], cwd=SRC, env=env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise AssertionError(f"go build {name} failed: {proc.stderr[-3000:]}")
        os.replace(tmp, out / name)
    # Its own file (inode) for the h2 workload: each workload's binary is probed at its exec.
    shutil.copy2(out / "goclient-stripped", out / ".goclient-h2.tmp")
    os.replace(out / ".goclient-h2.tmp", out / "goclient-h2")
    return out


def attach_lines(tt, exe):
    return [ln for ln in tt.err_path.read_text(errors="replace").splitlines()
            if f"Go crypto/tls probes attached to {exe} (" in ln]


def run_go(tt, exe, calls, base=None, h2=False):
    """Runs the client once tokentap has probed it (its -v line for exe), so its first call is
    seen; each binary is exec'd by one workload only."""
    mock = h.Workspace.mock
    env = h.client_env()
    env["SSL_CERT_FILE"] = str(mock.ca)
    args = [exe, "--base", base or mock.base, "--spec", json.dumps({"calls": calls}),
            "--wait-stdin"] + (["--h2"] if h2 else [])
    proc = h.spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True, env=env)
    deadline = time.monotonic() + ATTACH_WAIT_S
    while not attach_lines(tt, exe) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        out, err = proc.communicate("go\n", timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"go client timed out: {err[-2000:]}")
    if proc.returncode != 0:
        raise AssertionError(f"go client exited with {proc.returncode}: {err[-3000:]}")
    got = h.record([json.loads(line) for line in out.splitlines() if line.strip()])
    if len(got) != len(calls):
        raise AssertionError(f"go client reported {len(got)} calls of {len(calls)}")
    return got


def go_calls(tag):
    return [h.call("openai", "gpt-4o", f"{tag}-plain", max_tokens=64, temperature=0.7,
                   text=h.words(3), delay=DELAY),
            h.call("openai", "gpt-4o-mini", f"{tag}-stream", stream=True, text=h.words(5),
                   delay=DELAY),
            h.call("anthropic", "claude-sonnet-4-5", f"{tag}-anthropic", stream=True,
                   max_tokens=200, delay=DELAY),
            h.call("openai", "gpt-4o", f"{tag}-429", delay=DELAY,
                   headers={"x-mock-status": "429"})]


class TestGo(h.TracedCase):
    """The Go client, plain and stripped, traced by one tokentap --format json -v."""

    tokentap_args = ["--format", "json", "-v"]

    @classmethod
    def setUpClass(cls):
        if not go_bin():
            if h.REQUIRE_BPF:
                raise AssertionError("no Go toolchain (go): deploy/deps.sh installs golang-go "
                                     "with TOKENTAP_TEST_DEPS=1")
            raise unittest.SkipTest("no Go toolchain (go)")
        cls.bin_dir = build_clients()
        super().setUpClass()

    @classmethod
    def before_tokentap(cls):
        cls.front = test_h2.Front(cls.work, cls.mock)

    @classmethod
    def workload_h2(cls):
        """HTTP/2 over TLS (ALPN h2) through h2_front.js, Go's own h2 client."""
        return run_go(cls.tt, cls.bin_dir / "goclient-h2", go_calls("go-h2")[:3],
                      cls.front.base, h2=True)

    @classmethod
    def workload_plain(cls):
        return run_go(cls.tt, cls.bin_dir / "goclient", go_calls("go"))

    @classmethod
    def workload_stripped(cls):
        return run_go(cls.tt, cls.bin_dir / "goclient-stripped", go_calls("go-stripped"))

    def check_go(self, name, port=None):
        """One span per call, each checked by check_span; the TLS library and the thread are
        checked here (check_span knows OpenSSL, and a client thread it reported itself)."""
        calls = self.calls(name)
        spans = self.spans_of({c["pid"] for c in calls})
        self.assertEqual(len(spans), len(calls), f"{name}: {len(spans)} spans for "
                         f"{len(calls)} calls")
        by_id = {s["attributes"].get("gen_ai.response.id"): s for s in spans}
        errors = [s for s in spans if "gen_ai.response.id" not in s["attributes"]]
        for c in calls:
            log = self.log.get(c["tag"])
            self.assertIsNotNone(log, f"the mock has no log line for {c['tag']}")
            h.check_client_vs_log(self, c, log)
            span = by_id.get(log["id"]) if log["id"] is not None else errors.pop(0)
            self.assertIsNotNone(span, f"{name}: no span with id {log['id']}")
            a = span["attributes"]
            self.assertEqual(a.get("tokentap.tls.library"), "go", f"[{c['tag']}] tls.library")
            tid = a.get("thread.id")
            self.assertIsInstance(tid, int, f"[{c['tag']}] thread.id")
            self.assertGreaterEqual(tid, c["pid"], f"[{c['tag']}] thread.id of another process")
            bare = copy.deepcopy(span)
            del bare["attributes"]["tokentap.tls.library"]
            # The 5-tuple was learned: the socket's peer is the server.
            self.assertEqual(a.get("network.peer.port"), port or self.mock.port, c["tag"])
            h.check_span(self, bare, dict(c, tid=tid), log, port or self.mock.port)
        return calls

    def attach_line(self, exe):
        lines = attach_lines(self.tt, exe)
        self.assertEqual(len(lines), 1, f"tokentap's attach lines for {exe}: {lines}")
        return lines[0]

    def test_plain_binary(self):
        calls = self.check_go("plain")
        self.assertRegex(self.attach_line(calls[0]["exe"]), r"\(symbols, \d+ probes")

    def test_stripped_binary(self):
        calls = self.check_go("stripped")
        self.assertRegex(self.attach_line(calls[0]["exe"]), r"\(gopclntab, \d+ probes")

    def test_h2(self):
        calls = self.check_go("h2", self.front.port)
        self.assertRegex(self.attach_line(calls[0]["exe"]), r"\(gopclntab, \d+ probes")
        front = self.front.by_tag()
        for c in calls:
            self.assertEqual(c["alpn"], "h2", c["tag"])
            self.assertEqual(front[c["tag"]]["http_version"], "2.0", c["tag"])

    def test_stripped_has_no_symbols(self):
        """The stripped client really is: no .symtab, so only .gopclntab can find its TLS."""
        out = subprocess.run(["readelf", "-S", "-W", self.bin_dir / "goclient-stripped"],
                             capture_output=True, text=True).stdout
        self.assertNotIn(".symtab", out)
        self.assertIn("gopclntab", out)

    def test_no_secret_in_output(self):
        for path in (self.tt.out_path, self.tt.err_path):
            self.assertNotIn(h.API_KEY, path.read_text(errors="replace"), str(path))


def main():
    h.run_suite("go", __name__)


if __name__ == "__main__":
    main()
