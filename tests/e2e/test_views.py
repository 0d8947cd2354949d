#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap's views end to end: `tokentap top` in tmux and `tokentap report` in headless Chromium.

One live agent (BPF attached, --format json, a private --control-socket) traces a workload of
curl and Python calls against the mock provider while `tokentap top` runs in a tmux pane
connected to that socket. The screen is read with capture-pane after each keystroke and every
number checked (calls, tokens, latency percentiles, error rate, spend) against the spans the
agent wrote in the same run. Then the window shrinks to 80x24 and `q` must exit 0.

The agent's spans (plus a hostile span and bad lines) become a report; Chromium renders it:
every chart must have drawn ink, the totals on the page must equal the sums over the spans, and
no string from a span may have become markup. The screenshot is kept with TOKENTAP_E2E_KEEP=1.

Environment: as test_e2e.py (TOKENTAP_BIN, TOKENTAP_REQUIRE_BPF=1 also makes a missing tmux or
chromium a failure instead of a skip). Last line printed: "views: N passed, N failed".
"""
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

KEY_NAMES = {"1": "PROCESS", "2": "POD/CONTAINER", "3": "PROVIDER", "4": "MODEL", "5": "TENANT",
             "6": "API KEY"}


def need_tool(name):
    if shutil.which(name):
        return
    msg = f"{name} is not installed (TOKENTAP_TEST_DEPS=1 deploy/deps.sh installs it)"
    if h.REQUIRE_BPF:
        raise AssertionError(msg)
    raise unittest.SkipTest(msg)


# ---- what top should show, computed from the spans the way its help says -------------------

def fmt_count(v):
    return "%.0f" % v if v < 100000 else ("%.1fk" % (v / 1e3) if v < 1e8 else "%.1fM" % (v / 1e6))


def fmt_dur(s):
    if s is None:
        return "-"
    if s < 1:
        return "%.0fms" % (s * 1000)
    return "%.2fs" % s if s < 10 else ("%.1fs" % s if s < 100 else "%.0fs" % s)


def fmt_pct(f):
    if f is None:
        return "-"
    return "%.1f%%" % (f * 100) if 0 < f * 100 < 10 else "%.0f%%" % (f * 100)


def fmt_usd(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if v < 0.001:
        return "%.1e" % v
    if v < 0.01:
        return "%.4f" % v
    return "%.3f" % v if v < 10 else ("%.2f" % v if v < 10000 else "%.0f" % v)


def count(text):
    """A count as top prints it (1234, 123.4k, 1.2M)."""
    mult = {"k": 1e3, "M": 1e6}.get(text[-1], 1)
    return float(text[:-1] if mult != 1 else text) * mult


def seconds(text):
    """A duration as top prints it (850ms, 1.25s); '-' sorts last."""
    if text == "-":
        return float("-inf")
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])


def percentile(vals, p):
    """Nearest rank, as top and report compute it."""
    if not vals:
        return None
    vals = sorted(vals)
    rank = int(p * len(vals))
    if rank < p * len(vals):
        rank += 1
    return vals[max(1, min(rank, len(vals))) - 1]


def printable(s):
    return "".join(c if 0x20 <= ord(c) < 0x7f else "?" for c in s)[:47]


def span_key(span, group):
    a, r = span["attributes"], span["resource"]
    if group == "PROCESS":
        return printable(f"{r.get('process.executable.name') or r.get('service.name') or '?'}"
                         f"[{r.get('process.pid', 0)}]")
    if group == "POD/CONTAINER":
        if r.get("k8s.pod.name"):
            ns = r.get("k8s.namespace.name")
            return printable((ns + "/" if ns else "") + r["k8s.pod.name"])
        return printable(r.get("container.id", "(host)")[:12])
    if group == "PROVIDER":
        return printable(a.get("gen_ai.provider.name") or "(unknown)")
    if group == "MODEL":
        return printable(a.get("gen_ai.request.model") or a.get("gen_ai.response.model")
                         or "(unknown)")
    if group == "TENANT":
        return printable(a.get("tokentap.tenant") or "(none)")
    return printable(a.get("tokentap.api_key.fingerprint") or "(none)")


def is_error(span):
    return span["status"].get("code") == "error" or "error.type" in span["attributes"]


def expected_rows(spans, group):
    rows = {}
    for s in spans:
        rows.setdefault(span_key(s, group), []).append(s)
    out = {}
    for key, ss in rows.items():
        a = [s["attributes"] for s in ss]
        costs = [x["tokentap.cost.usd"] for x in a if isinstance(x.get("tokentap.cost.usd"),
                                                                (int, float))]
        lats = [(s["end_time_unix_nano"] - s["start_time_unix_nano"]) / 1e9 for s in ss]
        ttfc = [x["gen_ai.response.time_to_first_chunk"] for x in a
                if "gen_ai.response.time_to_first_chunk" in x]
        out[key] = {
            "CALLS": fmt_count(len(ss)),
            "IN": fmt_count(sum(x.get("gen_ai.usage.input_tokens", 0) for x in a)),
            "OUT": fmt_count(sum(x.get("gen_ai.usage.output_tokens", 0) for x in a)),
            "$": fmt_usd(sum(costs) if costs else None),
            "LAT50": fmt_dur(percentile(lats, 0.5)), "LAT95": fmt_dur(percentile(lats, 0.95)),
            "FC50": fmt_dur(percentile(ttfc, 0.5)), "FC95": fmt_dur(percentile(ttfc, 0.95)),
            "ERR%": fmt_pct(sum(map(is_error, ss)) / len(ss)),
        }
    return out


# ---- the screen ----------------------------------------------------------------------------

class Screen:
    def __init__(self, text, group):
        self.lines = text.split("\n")
        self.group = group
        self.header_at = next((i for i, line in enumerate(self.lines)
                               if line.startswith(group + " ")), None)
        if self.header_at is None:
            raise AssertionError(f"no {group} header on the screen:\n{text}")
        self.cols = self.lines[self.header_at][len(group):].split()
        self.rows, self.more = [], 0
        for line in self.lines[self.header_at + 1:]:
            m = re.match(r"\.\.\. (\d+) more", line)
            if m:
                self.more = int(m.group(1))
            if line.startswith("calls/s ") or not line.strip() or m:
                break
            f = line.split()
            self.rows.append((f[0], dict(zip(self.cols, f[1:]))))

    def row(self, key):
        for k, vals in self.rows:
            if k == key or (k.endswith("~") and key.startswith(k[:-1])):
                return vals
        raise AssertionError(f"no row {key!r} among {[k for k, _ in self.rows]}")

    def line_starting(self, prefix):
        return next((line for line in self.lines if line.startswith(prefix)), None)


class Tmux:
    made = 0

    def __init__(self, work):
        Tmux.made += 1
        self.sock = f"tokentap-views-{os.getpid()}-{Tmux.made}"
        self.exit_file = work / "top.exit"
        self.started = False

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              check=check, timeout=10)

    def start(self, cmd, width, height):
        env = dict(os.environ, LANG="C.UTF-8")
        shell = f"{cmd}; echo $? > {self.exit_file}"
        subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d", "-s",
                        "top", "-x", str(width), "-y", str(height), shell], env=env, check=True,
                       timeout=10)
        self.started = True

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def capture(self):
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def stop(self):
        if self.started:
            self.run("kill-server", check=False)


def read_spans(path):
    """Every complete line the agent has written so far."""
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]


class TestViews(unittest.TestCase):
    """The agent traces every process of the host, other suites' clients too: top shows all of
    them, so its screen is compared with every span the agent wrote since top connected."""

    @classmethod
    def setUpClass(cls):
        h.require_bpf()
        need_tool("tmux")
        ws = h.Workspace.get()
        cls.work = ws.dir / "views"
        cls.work.mkdir()
        cls.sock = cls.work / "ctl.sock"
        args = ["--format", "json", "--control-socket", cls.sock]
        help_text = subprocess.run([h.TOKENTAP, "--help"], capture_output=True, text=True).stdout
        cls.tenants = "--tenant-header" in help_text
        if cls.tenants:
            args += ["--tenant-header", "x-tenant-id"]
        cls.tt = h.Tokentap(cls.work, args).start()
        cls.tmux = None
        try:
            cls.start_top()
            pids = cls.run_workload()
            cls.wait_spans(pids)
        except BaseException:
            if cls.tmux:
                cls.tmux.stop()
            cls.tt.stop()
            raise

    @classmethod
    def start_top(cls):
        """Starts top; skip is how many spans the agent wrote before top connected. A span
        written while top was connecting could be on either side: then start again."""
        for attempt in range(5):
            cls.tmux = Tmux(cls.work)
            cls.skip = len(read_spans(cls.tt.out_path))
            cls.tmux.start(f"{h.TOKENTAP} top -s {cls.sock} -w 600", 140, 40)
            cls.wait_screen(lambda s: "health:" in s, "top connected to the agent")
            if len(read_spans(cls.tt.out_path)) == cls.skip:
                return
            cls.tmux.stop()
        raise AssertionError("spans kept arriving while top connected")

    @classmethod
    def run_workload(cls):
        c = h.call
        tenant = (lambda t: {"x-tenant-id": t}) if cls.tenants else (lambda t: {})
        got = h.run_python([
            c("openai", "gpt-4o", "v-plain1", text=h.words(3), headers=tenant("acme")),
            c("openai", "gpt-4o", "v-plain2", text=h.words(5), delay=120,
              headers=tenant("acme")),
            c("openai", "gpt-4o", "v-stream", stream=True, text=h.words(2),
              headers=tenant("globex")),
            c("anthropic", "claude-sonnet-4-5", "v-ant", text=h.words(4)),
            c("anthropic", "claude-haiku-4-5", "v-ant-stream", stream=True, text=h.words(1)),
            c("openai", "gpt-4o-mini", "v-429", headers={"x-mock-status": "429"})])
        got += h.run_curl(c("openai", "gpt-4o-mini", "v-curl1", text=h.words(6)), cls.work)
        got += h.run_curl(c("openai", "gpt-4.1", "v-curl2", stream=True, text=h.words(2)),
                          cls.work)
        cls.n_calls = len(got)
        return [g["pid"] for g in got]

    @classmethod
    def wait_spans(cls, pids, timeout=10):
        """Until the agent has written a span for every call of the workload."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [s for s in read_spans(cls.tt.out_path)
                    if s["resource"].get("process.pid") in pids]
            if len(mine) >= len(pids) or time.monotonic() > deadline:
                if len(mine) != len(pids):
                    raise AssertionError(f"the agent wrote {len(mine)} spans for {len(pids)}"
                                         " calls")
                return
            time.sleep(0.1)

    @classmethod
    def wait_screen(cls, cond, what, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            text = cls.tmux.capture()
            if cond(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.1)

    def snapshot(self, group, cond=None, timeout=15):
        """The screen and the spans top got, at a moment both agree on how many there were."""
        deadline = time.monotonic() + timeout
        while True:
            before = read_spans(self.tt.out_path)
            text = self.tmux.capture()
            after = read_spans(self.tt.out_path)
            spans = after[self.skip:]
            total = re.search(r"(?m)^total: calls (\d+) ", text)
            if (len(before) == len(after) and total and int(total.group(1)) == len(spans)
                    and re.search(rf"(?m)^{re.escape(group)} ", text)
                    and (cond is None or cond(text))):
                self.spans = spans
                return Screen(text, group)
            if time.monotonic() > deadline:
                raise AssertionError(f"no agreeing screen for {group} ({len(spans)} spans since "
                                     f"top connected); screen:\n{text}")
            time.sleep(0.2)

    def press(self, key, group, cond=None):
        """Sends a key and returns the screen once it shows the change asked for."""
        self.tmux.keys(key)
        return self.snapshot(group, cond)

    def check_rows(self, screen, group, columns):
        want = expected_rows(self.spans, group)
        self.assertEqual(len(screen.rows) + screen.more, len(want), f"{group} rows: "
                         f"{screen.rows}")
        for key, got in screen.rows:
            vals = next((v for k, v in want.items() if k == key or
                         (key.endswith("~") and k.startswith(key[:-1]))), None)
            self.assertIsNotNone(vals, f"{group}: a row {key!r} no span has")
            for col in columns:
                self.assertEqual(got.get(col), vals[col], f"{group} {key} {col}: {got}")

    # The tests run in name order and share the one top: each leaves it as the next expects.

    def test_1_rates(self):
        s = self.snapshot("MODEL")
        self.assertIn("CALL/s", s.cols)
        for key in expected_rows(self.spans, "MODEL"):
            self.assertGreater(float(s.row(key)["CALL/s"]), 0, key)
        self.assertTrue(s.line_starting("health: lost events"), s.lines)
        self.assertTrue(s.line_starting("q quit"), s.lines)

    def test_2_totals_by_model(self):
        s = self.press("t", "MODEL", lambda t: " totals " in t)
        self.assertEqual(s.cols, ["CALLS", "IN", "OUT", "$/h", "$", "LAT50", "LAT95", "FC50",
                                  "FC95", "ERR%"])
        self.check_rows(s, "MODEL", ["CALLS", "IN", "OUT", "$", "LAT50", "LAT95", "FC50",
                                     "FC95", "ERR%"])
        (self.work / "top-totals.txt").write_text("\n".join(s.lines))
        tin = sum(x["attributes"].get("gen_ai.usage.input_tokens", 0) for x in self.spans)
        costs = [x["attributes"]["tokentap.cost.usd"] for x in self.spans
                 if "tokentap.cost.usd" in x["attributes"]]
        self.assertIn(f"total: calls {len(self.spans)} ", s.line_starting("total:"))
        self.assertIn(f" $ {fmt_usd(sum(costs) if costs else None)} ", s.line_starting("total:"))
        self.assertIn(f"tokens in {fmt_count(tin)} ", s.line_starting("total:"))

    def test_3_group_keys(self):
        for key in ("3", "1", "2", "5", "6"):
            group = KEY_NAMES[key]
            s = self.press(key, group)
            self.check_rows(s, group, ["CALLS", "IN", "OUT", "ERR%", "LAT50"])
        # g goes round to the next grouping: from API KEY back to PROCESS.
        s = self.press("g", "PROCESS")
        self.check_rows(s, "PROCESS", ["CALLS", "IN", "OUT"])

    def test_4_sort(self):
        self.press("4", "MODEL")
        s = self.press("i", "MODEL", lambda t: "sort IN v" in t)
        ins = [count(v["IN"]) for _, v in s.rows]
        self.assertEqual(ins, sorted(ins, reverse=True), s.rows)
        s = self.press("r", "MODEL", lambda t: "sort IN ^" in t)
        ins = [count(v["IN"]) for _, v in s.rows]
        self.assertEqual(ins, sorted(ins), s.rows)
        s = self.press("n", "MODEL", lambda t: "sort MODEL ^" in t)
        keys = [k for k, _ in s.rows]
        self.assertEqual(keys, sorted(keys), s.rows)
        s = self.press("l", "MODEL", lambda t: "sort LAT50 v" in t)
        self.check_rows(s, "MODEL", ["LAT50"])
        lats = [seconds(v["LAT50"]) for _, v in s.rows]
        self.assertEqual(lats, sorted(lats, reverse=True), s.rows)
        s = self.press(">", "MODEL", lambda t: "sort LAT95 v" in t)
        self.check_rows(s, "MODEL", ["CALLS", "LAT95"])
        self.tmux.keys("?")
        self.wait_screen(lambda t: "any key closes this help" in t, "the help")
        s = self.press("x", "MODEL", lambda t: "any key closes" not in t)
        self.check_rows(s, "MODEL", ["CALLS", "LAT95"])

    def test_5_small_terminal(self):
        self.tmux.run("resize-window", "-t", "top", "-x", "80", "-y", "24")
        s = self.snapshot("MODEL", lambda t: len(t.rstrip("\n").split("\n")) == 24 and
                          max(len(x) for x in t.split("\n")) <= 80)
        text = "\n".join(s.lines)
        (self.work / "top-80x24.txt").write_text(text)
        lines = text.rstrip("\n").split("\n")
        self.assertTrue(lines[0].startswith("tokentap top"), lines[0])
        self.assertTrue(lines[-1].startswith("q quit"), lines[-1])
        self.assertTrue(lines[-3].startswith("calls/s"), lines[-3])
        self.assertIn(f"total: calls {len(self.spans)} ", text)
        self.check_rows(s, "MODEL", ["CALLS", "IN", "OUT", "LAT95"])

    def test_6_quit(self):
        self.tmux.keys("q")
        deadline = time.monotonic() + 5
        while not self.tmux.exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.tmux.exit_file.exists(), "top did not exit on q")
        self.assertEqual(self.tmux.exit_file.read_text().strip(), "0")

    def test_8_standalone(self):
        """--standalone starts its own agent: a curl call shows up as its own process row."""
        tmux = Tmux(self.work / "standalone")
        tmux.exit_file.parent.mkdir(exist_ok=True)
        try:
            tmux.start(f"{h.TOKENTAP} top --standalone -g process", 120, 30)
            deadline = time.monotonic() + h.READY_TIMEOUT_S
            while "health:" not in tmux.capture():
                self.assertLess(time.monotonic(), deadline, f"no agent:\n{tmux.capture()}")
                time.sleep(0.2)
            got = h.run_curl(h.call("openai", "gpt-4o", "v-standalone", text=h.words(2)),
                             self.work)[0]
            tmux.keys("t")
            key = f"curl[{got['pid']}]"
            deadline = time.monotonic() + 10
            while True:
                text = tmux.capture()
                if re.search(rf"(?m)^{re.escape(key)} ", text) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            row = Screen(text, "PROCESS").row(key)
            self.assertEqual(row["CALLS"], "1", text)
            self.assertEqual(row["IN"], str(got["input_tokens"]), text)
            self.assertEqual(row["OUT"], str(got["output_tokens"]), text)
            tmux.keys("q")
            deadline = time.monotonic() + 10
            while not tmux.exit_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(tmux.exit_file.read_text().strip(), "0")
        finally:
            tmux.stop()

    # ---- the report, from the same spans ------------------------------------------------------

    def test_7_report(self):
        need_tool("chromium")
        src = self.work / "report-in.jsonl"
        every = read_spans(self.tt.out_path)  # the whole run, as a user would record it
        hostile = json.loads(json.dumps(every[-1]))
        hostile["attributes"]["gen_ai.request.model"] = "</script><img src=x onerror=alert(1)>"
        hostile["attributes"]["tokentap.tenant"] = "<b>tenant</b>"
        hostile["attributes"]["tokentap.cost.usd"] = 0.125
        hostile["status"]["message"] = "\"><script>alert(2)</script>"
        lines = [json.dumps(s) for s in every + [hostile]]
        lines[3:3] = ["not json at all", '{"type":"stats","events_lost":0}']
        src.write_text("\n".join(lines) + "\n")
        spans = every + [hostile]
        out = self.work / "report.html"
        proc = subprocess.run([h.TOKENTAP, "report", src, "-o", out], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        dom = self.chromium(out, "--dump-dom")
        shot = self.work / "report.png"
        self.chromium(out, f"--screenshot={shot}", "--window-size=1400,3000")
        self.assertTrue(shot.exists() and shot.stat().st_size > 20000, "no screenshot")
        self.assertEqual(shot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
        print(f"views: report screenshot {shot}", file=sys.stderr)
        self.check_charts(dom)
        self.check_totals(dom, spans, bad=2)
        self.assertNotIn("<img", dom)
        self.assertNotIn("<b>tenant", dom)
        self.assertNotIn("alert(2)</script>", dom)
        self.assertIn("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;", dom)

    def chromium(self, page, *args):
        prof = self.work / "chromium-profile"
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={prof}", "--virtual-time-budget=5000", *args,
               page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        return proc.stdout

    def check_charts(self, dom):
        body = re.search(r"<body([^>]*)>", dom).group(1)
        total = re.search(r'data-charts-total="(\d+)"', body)
        drawn = re.search(r'data-charts-rendered="(\d+)"', body)
        self.assertTrue(total and drawn, f"the page script did not finish: <body{body}>")
        canvases = re.findall(r"<canvas[^>]*>", dom)
        self.assertEqual(int(total.group(1)), 7)
        self.assertEqual(len(canvases), 7)
        self.assertEqual(drawn.group(1), total.group(1), "some charts drew nothing")
        for c in canvases:
            self.assertIn('data-nonblank="1"', c)

    def check_totals(self, dom, spans, bad):
        def value(name):
            m = re.search(rf'id="total-{name}" data-value="([^"]*)"', dom)
            self.assertTrue(m, f"no total-{name} on the page")
            return m.group(1)

        attrs = [s["attributes"] for s in spans]
        costs = [a["tokentap.cost.usd"] for a in attrs if "tokentap.cost.usd" in a]
        self.assertEqual(int(value("calls")), len(spans))
        self.assertEqual(int(value("errors")), sum(map(is_error, spans)))
        self.assertEqual(int(value("input-tokens")),
                         sum(a.get("gen_ai.usage.input_tokens", 0) for a in attrs))
        self.assertEqual(int(value("output-tokens")),
                         sum(a.get("gen_ai.usage.output_tokens", 0) for a in attrs))
        self.assertEqual(int(value("streamed")),
                         sum("gen_ai.response.time_to_first_chunk" in a for a in attrs))
        self.assertAlmostEqual(float(value("spend")), sum(costs), places=9)
        self.assertEqual(int(value("bad-lines")), bad)
        self.assertEqual(int(value("lines")), len(spans) + bad)


def main():
    h.run_suite("views", __name__)


if __name__ == "__main__":
    main()
