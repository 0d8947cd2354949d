#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap's benchmark report (`make bench`): numbers, not a pass/fail test.

Measured side by side in one run on this machine, printed as a table and written as JSON:
  cost      added cost per SSL call: a TLS request/response loop on loopback (tls_loop, linked
            against the system libssl.so.3) bare, with an empty uprobe+uretprobe pair on the same
            functions (the floor), and with tokentap; LLM connections (POST
            /v1/chat/completions) and other TLS connections (GET /), 2 KiB and 64 KiB responses.
            Client and server share CPU 1, so a round trip's wall time is the CPU time both
            sides spend on it; tokentap runs on CPU 0 and its own CPU time is reported apart.
            tokentap runs twice: with --probe-sites classic (uprobe+uretprobe at each
            function's entry, like the floor) and with the default emulated probe sites.
  probes    the probes alone, kernel side (sites_cost.c): SSL_write/SSL_read calls that return
            at once on a private copy of libssl no other tracer sees: bare, floor, tokentap's
            programs classic and on emulated sites; ns added per call, ratio to the floor.
  rate      the highest rate of LLM calls/s held for a few seconds with zero bytes lost and
            zero spans missing (tokentap's final stats line and its spans, by client pid).
  pipeline  user space alone (tests/bench/pipeline_bench.c): MB/s and calls/s on one core.
  memory    tokentap's resident memory idle, with 10,000 open TLS connections (each sent one
            request; the answers come after the sample), during the sustained rate; time from
            start to "tokentap: ready" with 500 extra processes that map libssl.

Usage: bench.py --build DIR --tokentap BIN --out FILE [--quick] [--only cost,probes,rate,...]
Needs root (BPF). Other load on the machine makes numbers noisy: the load average at the start
is part of the report.
"""
import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LIBSSL_CANDIDATES = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/aarch64-linux-gnu/libssl.so.3",
                     "/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib64/libssl.so.3"]
STATS_RE = re.compile(r"tokentap: stats: (.*)")

_procs = []


def spawn(args, **kw):
    p = subprocess.Popen([str(a) for a in args], **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def kill_all():
    for p in reversed(_procs):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def foreign_tracers(mine):
    """Pids, other than ours, that hold BPF programs on perf events (uprobes, tracepoints): other
    tracers slow the loop down too, so a sample taken while one runs is not clean."""
    try:
        out = subprocess.run(["bpftool", "perf", "list", "-j"], capture_output=True, text=True,
                             timeout=30).stdout
        return {e["pid"] for e in json.loads(out or "[]")} - set(mine)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return set()


def clean_sample(fn, mine, tries=3):
    """fn() run while no other tracer is attached, retried a few times; (result, clean)."""
    for i in range(tries):
        before = foreign_tracers(mine)
        r = fn()
        after = foreign_tracers(mine)
        if not before and not after:
            return r, True
        time.sleep(1 + i)
    return r, False


def bpf_progs():
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def bpf_prog_ns(ids):
    """Run count and run time (ns) summed over the BPF programs of these ids (needs
    kernel.bpf_stats_enabled=1)."""
    cnt = ns = 0
    for p in bpf_progs():
        if p["id"] in ids:
            cnt += p.get("run_cnt", 0)
            ns += p.get("run_time_ns", 0)
    return cnt, ns


def bpf_stats(on):
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1" if on else "0")


def libssl():
    for p in LIBSSL_CANDIDATES:
        if os.path.exists(p):
            return os.path.realpath(p)
    raise SystemExit("bench: no libssl.so.3 found")


# ---- processes under test ----------------------------------------------------------------------

class Server:
    def __init__(self, tools, work, cpu=None):
        self.pid = None
        self.stats = work / "server.stats"
        self.stats.write_text("")
        args = [tools / "tls_loop", "server", "--stats", self.stats]
        if cpu is not None:
            args = ["taskset", "-c", str(cpu)] + args
        self.proc = spawn(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening (\d+)\n", line)
        if not m:
            raise SystemExit(f"bench: tls_loop server printed {line!r}")
        self.port = int(m.group(1))

    def last(self, wait=True):
        """The server side of the last connection that ended: ssl_calls, rts, cpu_us."""
        deadline = time.monotonic() + (5 if wait else 0)
        n = self.seen if hasattr(self, "seen") else 0
        while True:
            lines = [l for l in self.stats.read_text().splitlines() if l.strip()]
            if len(lines) > n or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        self.seen = len(lines)
        if not lines:
            return None
        f = lines[-1].split()
        return {"ssl_calls": int(f[1]), "rts": int(f[3]), "cpu_us": int(f[5])}

    def calls_per_rt(self):
        x = self.last(wait=False) if hasattr(self, "seen") else self.last()
        return x["ssl_calls"] / max(1, x["rts"]) if x else None

    def close(self):
        stop(self.proc, signal.SIGKILL)


def client(tools, port, kind, resp, iters=None, seconds=None, rate=None, conns=1, cpu=None,
           warmup=100):
    args = [tools / "tls_loop", "client", "--port", port, "--kind", kind, "--resp-bytes", resp,
            "--warmup", warmup, "--conns", conns]
    if iters:
        args += ["--iters", iters]
    if seconds:
        args += ["--seconds", seconds]
    if rate:
        args += ["--rate", rate]
    if cpu is not None:
        args = ["taskset", "-c", str(cpu)] + args
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"tls_loop client failed: {out.stderr[-2000:]}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


class Floor:
    def __init__(self, tools, lib):
        self.proc = spawn([tools / "floor", tools / "floor.bpf.o", lib], stdout=subprocess.PIPE,
                          text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("floor: attached"):
            raise SystemExit(f"bench: floor printed {line!r}")

    def close(self):
        stop(self.proc, signal.SIGINT)


class Tokentap:
    def __init__(self, bin, work, name, args=(), cpu=None):
        self.out = work / f"{name}.out"
        self.err = work / f"{name}.err"
        cmd = [bin, "--format", "json", "--control-socket", "", *args]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        before = {p["id"] for p in bpf_progs()}
        self.t0 = time.monotonic()
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = spawn(cmd, stdout=o, stderr=e, env=env)
        deadline = time.monotonic() + 60
        while b"tokentap: ready" not in self.err.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: tokentap did not start:\n{self.err.read_text()[-2000:]}")
            time.sleep(0.01)
        self.ready_s = time.monotonic() - self.t0
        self.pid = self.proc.pid
        # Its programs: those loaded meanwhile (another tracer starting now would count too).
        self.prog_ids = {p["id"] for p in bpf_progs()} - before
        self.stats = None

    def close(self):
        stop(self.proc, signal.SIGINT, timeout=60)
        m = None
        for line in self.err.read_text(errors="replace").splitlines():
            m = STATS_RE.search(line) or m
        self.stats = dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}
        return self.stats

    def spans_by_pid(self):
        counts = {}
        with open(self.out, errors="replace") as f:
            for line in f:
                try:
                    pid = json.loads(line)["resource"]["process.pid"]
                except (ValueError, KeyError, TypeError):
                    continue
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    def stat(self, key):
        return int(self.stats.get(key, 0))


# ---- (a) cost per SSL call ---------------------------------------------------------------------

# bare: nothing attached; floor: empty uprobe+uretprobe pairs; classic: tokentap with the same
# pairs (--probe-sites classic); tokentap: the default, probes on emulated instructions.
MODES = ("bare", "floor", "classic", "tokentap")
TT_MODES = ("classic", "tokentap")

def bench_cost(a, tools, work, lib):
    shapes = [("llm", 2048), ("web", 2048), ("llm", 65536), ("web", 65536)]
    iters = {2048: 2000 if a.quick else 4000, 65536: 500 if a.quick else 1500}
    reps = 2 if a.quick else 3
    server = Server(tools, work, cpu=1)
    bpf_stats(True)
    samples = {}  # (mode, kind, resp) -> list of runs
    tt_spans, tt_losses, unclean = {}, [], 0
    try:
        for rep in range(reps):
            for mode in MODES:
                probe = None
                if mode == "floor":
                    probe = Floor(tools, lib)
                elif mode == "classic":
                    probe = Tokentap(a.tokentap, work, f"cost{rep}c", ["--probe-sites", "classic"],
                                     cpu=0)
                elif mode == "tokentap":
                    probe = Tokentap(a.tokentap, work, f"cost{rep}", cpu=0)
                mine = [probe.proc.pid] if probe else []
                try:
                    for kind, resp in shapes:
                        def one():
                            tt = mode in TT_MODES
                            c0 = cpu_s(probe.pid) if tt else 0
                            b0 = bpf_prog_ns(probe.prog_ids)[1] if tt else 0
                            r = client(tools, server.port, kind, resp, iters=iters[resp], cpu=1)[0]
                            r["server"] = server.last()
                            r["tt_cpu_s"] = cpu_s(probe.pid) - c0 if tt else 0
                            r["bpf_ns"] = bpf_prog_ns(probe.prog_ids)[1] - b0 if tt else 0
                            return r
                        r, clean = clean_sample(one, mine)
                        unclean += not clean
                        r["clean"] = clean
                        r["calls_per_rt"] = (r["ssl_calls"] + r["server"]["ssl_calls"]) / r["rts"]
                        r["cpu_per_rt"] = (r["cpu_us"] + r["server"]["cpu_us"]) / r["rts"]
                        samples.setdefault((mode, kind, resp), []).append(r)
                finally:
                    if probe:
                        probe.close()
                if mode in TT_MODES:
                    spans = probe.spans_by_pid()
                    for kind, resp in shapes:
                        r = samples[(mode, kind, resp)][-1]
                        want = r["rts"] + 100 if kind == "llm" else 0
                        tt_spans.setdefault((mode, kind, resp), []).append(
                            (spans.get(r["pid"], 0), want))
                    tt_losses.append({"mode": mode, **{k: probe.stat(k) for k in
                                                       ("lost_records", "lost_bytes")}})
    finally:
        bpf_stats(False)
        server.close()
    rows = []
    for kind, resp in shapes:
        def med(mode, key):
            return statistics.median(s[key] for s in samples[(mode, kind, resp)])
        def tt_per_call(mode, key, scale):
            n = sum(s["rts"] * s["calls_per_rt"] for s in samples[(mode, kind, resp)])
            return sum(s[key] for s in samples[(mode, kind, resp)]) * scale / n
        calls = med("bare", "calls_per_rt")
        cpu = {m: med(m, "cpu_per_rt") for m in MODES}
        wall = {m: med(m, "us_p50") for m in MODES}
        tt_cpu = tt_per_call("tokentap", "tt_cpu_s", 1e6)
        # Every tokentap program that ran (uprobes, and the syscall tracepoints, which also run
        # for the rest of the host): exact, whatever else the machine does.
        tt_bpf = tt_per_call("tokentap", "bpf_ns", 1e-3)
        floor_add, tt_add = cpu["floor"] - cpu["bare"], cpu["tokentap"] - cpu["bare"]
        classic_add = cpu["classic"] - cpu["bare"]
        rows.append({
            "connection": "LLM (POST /v1/chat/completions)" if kind == "llm" else "other TLS (GET /)",
            "kind": kind, "response_bytes": resp, "ssl_calls_per_round_trip": round(calls, 2),
            "cpu_us_per_round_trip": cpu, "wall_us_per_round_trip_p50": wall,
            "floor_added_us_per_call": floor_add / calls, "tokentap_added_us_per_call": tt_add / calls,
            "ratio_to_floor": tt_add / floor_add if floor_add > 0 else None,
            # tokentap --probe-sites classic: uprobe+uretprobe at every function's entry, as the
            # floor; the default (auto) puts them on emulated instructions (src/attach/sites.c).
            "classic_added_us_per_call": classic_add / calls,
            "classic_ratio_to_floor": classic_add / floor_add if floor_add > 0 else None,
            "classic_bpf_us_per_call": tt_per_call("classic", "bpf_ns", 1e-3),
            "wall_ratio_to_floor": ((wall["tokentap"] - wall["bare"]) / (wall["floor"] - wall["bare"])
                                    if wall["floor"] > wall["bare"] else None),
            "tokentap_cpu_us_per_call": tt_cpu,
            "tokentap_bpf_us_per_call": tt_bpf,
            "spans_seen_expected": tt_spans[("tokentap", kind, resp)],
            "classic_spans_seen_expected": tt_spans[("classic", kind, resp)],
            "clean_samples": sum(s["clean"] for m in MODES for s in samples[(m, kind, resp)])})
    return {"rows": rows, "reps": reps, "iters": iters, "tokentap_losses": tt_losses,
            "samples_with_other_tracers": unclean,
            "method": "CPU time (user+system) of the client and server processes per round trip, "
                      "both pinned to CPU 1; tokentap pinned to CPU 0; median of reps; "
                      "'tokentap' = default probe sites (auto), 'classic' = --probe-sites classic"}


# ---- (a2) the probes alone ----------------------------------------------------------------------

def bench_probes(a, tools, work, lib):
    """The kernel-side cost per call of each way of probing (tests/bench/sites_cost.c): SSL_write
    and SSL_read calls that return at once, on a private, unlinked copy of libssl that no other
    tracer on the host attaches to, probes attached to that process only; best batch of each
    mode, median over runs."""
    runs = []
    for _ in range(3 if a.quick else 7):
        out = subprocess.run(["taskset", "-c", "1", tools / "sites_cost", tools / "floor.bpf.o",
                              lib], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"sites_cost failed: {out.stderr[-2000:]}")
        runs.append(json.loads(out.stdout))
    modes = ("bare", "floor", "classic", "sites")
    rows = []
    for fn, key in (("SSL_write", "ssl_write_ns"), ("SSL_read", "ssl_read_ns")):
        ns = {m: statistics.median(r[m][key] for r in runs) for m in modes}
        added = {m: ns[m] - ns["bare"] for m in modes if m != "bare"}
        rows.append({"function": fn, "ns_per_call": ns, "added_ns": added,
                     "classic_ratio_to_floor": (added["classic"] / added["floor"]
                                                if added["floor"] > 0 else None),
                     "ratio_to_floor": (added["sites"] / added["floor"]
                                        if added["floor"] > 0 else None)})
    return {"rows": rows, "runs": len(runs), "sites_verified": [r["sites_verified"] for r in runs],
            "method": "tests/bench/sites_cost.c pinned to CPU 1: best of 40 batches of 2000 calls "
                      "per mode, median over runs; SSL calls with a negative length (prologue and "
                      "return path only)"}


# ---- (b) sustained rate ------------------------------------------------------------------------

def bench_rate(a, tools, work, lib):
    conns = 4
    seconds = 3 if a.quick else 5
    server = Server(tools, work)
    steps, best = [], None
    try:
        # What the machine does flat out with nothing attached, for scale.
        flat = client(tools, server.port, "llm", 2048, seconds=seconds, conns=conns)
        bare_max = sum(r["rts"] for r in flat) / max(r["elapsed_s"] for r in flat)
        # ... and with only the empty probes attached: what any uprobe tracer leaves.
        fl = Floor(tools, lib)
        try:
            flat = client(tools, server.port, "llm", 2048, seconds=seconds, conns=conns)
        finally:
            fl.close()
        floor_max = sum(r["rts"] for r in flat) / max(r["elapsed_s"] for r in flat)
        for target in a.rates:
            tt = Tokentap(a.tokentap, work, f"rate{target}")
            rss = []
            try:
                c0 = cpu_s(tt.pid)
                t0 = time.monotonic()
                res = client(tools, server.port, "llm", 2048, seconds=seconds,
                             rate=target / conns, conns=conns, warmup=20)
                wall = time.monotonic() - t0
                rss.append(rss_kib(tt.pid))
                cpu = cpu_s(tt.pid) - c0
            finally:
                tt.close()
            spans = tt.spans_by_pid()
            rts = sum(r["rts"] for r in res)
            want = rts + 20 * conns
            got = sum(spans.get(r["pid"], 0) for r in res)
            achieved = rts / max(r["elapsed_s"] for r in res)
            client_calls = sum(r["ssl_calls"] for r in res) / max(1, rts)
            ssl_per_call = client_calls + (server.calls_per_rt() or 2)
            step = {"target_calls_s": target, "achieved_calls_s": round(achieved),
                    "ssl_calls_s": round(achieved * ssl_per_call),
                    "lost_records": tt.stat("lost_records"), "lost_bytes": tt.stat("lost_bytes"),
                    "spans": got, "calls": want, "tokentap_rss_kib": max(r for r in rss if r),
                    "tokentap_cpu_pct": round(100 * cpu / wall, 1)}
            step["zero_loss"] = (step["lost_records"] == 0 and step["lost_bytes"] == 0 and
                                 got == want)
            step["held"] = achieved >= 0.9 * target
            steps.append(step)
            print(f"bench: rate {target}/s -> {step}", file=sys.stderr)
            if step["zero_loss"] and step["held"]:
                best = step
            if not step["held"]:
                break
    finally:
        server.close()
    return {"conns": conns, "seconds": seconds, "bare_flat_out_calls_s": round(bare_max),
            "floor_flat_out_calls_s": round(floor_max),
            "steps": steps, "best": best}


# ---- (c) user space alone ----------------------------------------------------------------------

def bench_pipeline(a, tools, work, lib):
    out = subprocess.run([str(tools / "pipeline_bench"), "--seconds", "1" if a.quick else "3"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"pipeline_bench failed: {out.stderr[-2000:]}")
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    return {"rows": rows}


# ---- (d) memory and start-up -------------------------------------------------------------------

def bench_memory(a, tools, work, lib):
    res = {}
    tt = Tokentap(a.tokentap, work, "idle")
    time.sleep(2)
    res["idle_rss_kib"] = rss_kib(tt.pid)
    tt.close()
    res.update(many_connections(a, tools, work, 2000 if a.quick else 10000))
    res.update(startup(a, tools, work, 500))
    return res


def many_connections(a, tools, work, n):
    tt = Tokentap(a.tokentap, work, "conns")
    srv = spawn([tools / "tls_loop", "hold-server"], stdout=subprocess.PIPE, text=True)
    port = int(srv.stdout.readline().split()[1])
    cli = spawn([tools / "tls_loop", "hold", "--port", port, "--conns", n],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    res = {"open_connections": n}
    try:
        t0 = time.monotonic()
        line = cli.stdout.readline()
        if not line.startswith("holding"):
            raise RuntimeError(f"tls_loop hold printed {line!r}")
        res["open_seconds"] = round(time.monotonic() - t0, 2)
        time.sleep(2)  # tokentap drains the ring buffer
        res["rss_kib_open"] = rss_kib(tt.pid)
        srv.send_signal(signal.SIGUSR1)
        srv.stdout.readline()  # "answered N"
        cli.stdin.write("go\n")
        cli.stdin.flush()
        done = cli.stdout.readline()
        res["answers_read"] = int(done.split()[1]) if done.startswith("done") else None
        time.sleep(2)
        res["rss_kib_after"] = rss_kib(tt.pid)
    finally:
        stop(cli, signal.SIGKILL)
        stop(srv, signal.SIGKILL)
        tt.close()
    res["spans_for_held_connections"] = tt.spans_by_pid().get(cli.pid, 0)
    res["conns_open_at_exit"] = tt.stat("conns_open")
    return res


def startup(a, tools, work, n):
    base = []
    for _ in range(3):
        tt = Tokentap(a.tokentap, work, "start0")
        base.append(tt.ready_s)
        tt.close()
    idle = [spawn([tools / "tls_loop", "idle"]) for _ in range(n)]
    time.sleep(2)
    loaded = []
    try:
        for _ in range(3):
            tt = Tokentap(a.tokentap, work, "start500")
            loaded.append(tt.ready_s)
            tt.close()
    finally:
        for p in idle:
            p.kill()
        for p in idle:
            p.wait()
    nproc = sum(1 for d in os.listdir("/proc") if d.isdigit())
    return {"ready_s_baseline": round(statistics.median(base), 3),
            "ready_s_with_extra_procs": round(statistics.median(loaded), 3),
            "extra_procs": n, "procs_on_host_after": nproc}


# ---- report ------------------------------------------------------------------------------------

def machine():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(), "mem_mib": mem,
            "load_avg_at_start": os.getloadavg()}


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def print_report(r):
    m = r["machine"]
    print(f"tokentap bench  {m['date']}  {m['cpu']} x{m['cpus']}  kernel {m['kernel']}  "
          f"load {m['load_avg_at_start'][0]:.2f}")
    if "cost" in r:
        print("\n(a) added cost per SSL call: CPU µs per round trip of the traced client+server "
              f"({r['cost']['samples_with_other_tracers']} samples taken while other tracers ran)")
        print("  classic = tokentap --probe-sites classic; tokentap = default (emulated sites)")
        print(f"  {'connection':34} {'resp':>6} {'calls':>5} {'bare':>7} {'floor':>7} "
              f"{'classic':>7} {'tokentap':>8} {'floor+/call':>11} {'cl+/call':>8} {'cl ratio':>8}"
              f" {'tt+/call':>9} {'ratio':>6} {'tt cpu/call':>11} {'bpf/call':>8}")
        for x in r["cost"]["rows"]:
            u = x["cpu_us_per_round_trip"]
            print(f"  {x['connection']:34} {x['response_bytes']:>6} {x['ssl_calls_per_round_trip']:>5}"
                  f" {fmt(u['bare']):>7} {fmt(u['floor']):>7} {fmt(u['classic']):>7}"
                  f" {fmt(u['tokentap']):>8} {fmt(x['floor_added_us_per_call'], 2):>11}"
                  f" {fmt(x['classic_added_us_per_call'], 2):>8} {fmt(x['classic_ratio_to_floor'], 2):>8}"
                  f" {fmt(x['tokentap_added_us_per_call'], 2):>9}"
                  f" {fmt(x['ratio_to_floor'], 2):>6} {fmt(x['tokentap_cpu_us_per_call'], 2):>11}"
                  f" {fmt(x['tokentap_bpf_us_per_call'], 2):>8}")
    if "probes" in r:
        print("\n(a2) the probes alone, kernel side: ns per SSL call that returns at once, on a "
              "private copy of libssl (no other tracer)")
        print(f"  {'function':10} {'bare':>6} {'floor+':>7} {'classic+':>9} {'sites+':>7} "
              f"{'classic/floor':>13} {'sites/floor':>11}")
        for x in r["probes"]["rows"]:
            d = x["added_ns"]
            print(f"  {x['function']:10} {x['ns_per_call']['bare']:6.0f} {d['floor']:7.0f} "
                  f"{d['classic']:9.0f} {d['sites']:7.0f} "
                  f"{fmt(x['classic_ratio_to_floor'], 2):>13} {fmt(x['ratio_to_floor'], 2):>11}")
    if "rate" in r:
        b = r["rate"]
        print(f"\n(b) sustained rate, 2 KiB responses, {b['conns']} connections, {b['seconds']} s "
              f"per step (flat out: bare {b['bare_flat_out_calls_s']} calls/s, empty probes "
              f"{b['floor_flat_out_calls_s']} calls/s)")
        for s in b["steps"]:
            print(f"  target {s['target_calls_s']:>6}/s achieved {s['achieved_calls_s']:>6}/s "
                  f"ssl {s['ssl_calls_s']:>6}/s lost {s['lost_records']} rec {s['lost_bytes']} B "
                  f"spans {s['spans']}/{s['calls']} rss {s['tokentap_rss_kib']} KiB "
                  f"cpu {s['tokentap_cpu_pct']}%  {'OK' if s['zero_loss'] and s['held'] else 'X'}")
        best = b["best"]
        print("  best zero-loss: " + (f"{best['achieved_calls_s']} LLM calls/s = "
                                      f"{best['ssl_calls_s']} SSL calls/s" if best else "none"))
    if "pipeline" in r:
        print("\n(c) user space alone, one core")
        for x in r["pipeline"]["rows"]:
            if x["scenario"] == "conns":
                print(f"  {x['conns']} open connections (replayed): "
                      f"{x['bytes_per_conn']:.0f} B each")
                continue
            print(f"  {x['scenario']:8} to {x['stage']:4}: {x['mb_s']:8.1f} MB/s "
                  f"{x['calls_s']:9.0f} calls/s  ({x['calls']}/{x['expected_calls']} calls)")
    if "memory" in r:
        x = r["memory"]
        print("\n(d) memory and start-up")
        print(f"  idle RSS {x['idle_rss_kib']} KiB; {x['open_connections']} open TLS connections: "
              f"{x['rss_kib_open']} KiB (after they closed: {x['rss_kib_after']} KiB; spans "
              f"{x['spans_for_held_connections']}, conns_open at exit {x['conns_open_at_exit']})")
        print(f"  ready in {x['ready_s_baseline']} s; with {x['extra_procs']} extra processes "
              f"({x['procs_on_host_after']} on the host after): {x['ready_s_with_extra_procs']} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--tokentap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="cost,probes,rate,pipeline,memory")
    ap.add_argument("--rates", default="2000,4000,6000,8000,10000,12000,15000,20000")
    a = ap.parse_args()
    a.rates = [int(x) for x in a.rates.split(",")]
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (BPF)")
    tools = Path(a.build) / "bench"
    work = tools / "work"
    work.mkdir(parents=True, exist_ok=True)
    lib = libssl()
    report = {"machine": machine(), "libssl": lib, "tokentap": str(a.tokentap)}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for name in a.only.split(","):
            print(f"bench: {name} ...", file=sys.stderr)
            report[name] = globals()[f"bench_{name}"](a, tools, work, lib)
    finally:
        kill_all()
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    print(f"\nbench: report written to {a.out}")


if __name__ == "__main__":
    main()
