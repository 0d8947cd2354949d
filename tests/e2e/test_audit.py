#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap audit mode end to end: BPF attached, the mock provider, curl as the client.

Phase 1 (TestAudit): tokentap with --audit, --policy, --capture-content and OTLP export over
mutual TLS (a TLS front with its own CA, made here with openssl, before the receiver). A mixed
workload — allowed calls (OpenAI plain, Anthropic streamed), a disallowed host (localhost where
only 127.0.0.1 is allowed), a disallowed model, an unknown OpenAI-compatible host, a failed call
(429), a known provider reached through a CONNECT proxy, a gateway whose SNI disagrees with the
Host, SNI-setting clients (curl --resolve, Python ssl, Node tls), Gemini and OpenAI Responses
calls, and curl in two fake containers (a cgroup named like containerd's / CRI-O's, with the
runtime's state files under a fake root: image rule, pod-label rule, the label rule reported
unevaluated under containerd) — must give exactly one audit record per call with the right
verdict; `tokentap audit verify` accepts the file and rejects a deleted,
an inserted and an edited line; captured messages match what was sent and received; planted
secrets (an sk- key and a PEM key in the prompt, the Authorization header) appear in no output.

Phase 2 (TestCapabilities): tokentap under `capsh --drop=...` with only the documented
capability set, a 4 KiB ring buffer and content capture off: it attaches, drops to that set in
every thread, reports a partially captured call, and no prompt text appears anywhere. Without
its capabilities it fails with a clear message.

Usage: test_audit.py [unittest arguments]; the last line is "audit: N passed, N failed".
"""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(E2E))
import test_e2e as h  # noqa: E402  (mock, tokentap and client helpers)

PLANTED_KEY = "sk-planted-" + uuid.uuid4().hex
PEM_BODY = "MIIEplanted" + uuid.uuid4().hex
PROMPT = (f"Summarize this: my key is {PLANTED_KEY} and\n-----BEGIN PRIVATE KEY-----\n"
          f"{PEM_BODY}\n-----END PRIVATE KEY-----\nthanks")
PROMPT_REDACTED = "Summarize this: my key is [REDACTED] and\n[REDACTED]\nthanks"
SECRETS = [h.API_KEY, PLANTED_KEY, PEM_BODY]
RUN_CAPS = ["cap_bpf", "cap_perfmon", "cap_sys_ptrace", "cap_dac_read_search", "cap_sys_admin"]
POLICY = {"version": 1, "default": "deny", "shadow_ai": "deny", "rules": [
    # Pod labels first: under containerd (no pod labels recorded) this rule cannot be
    # evaluated, which the record must say.
    {"name": "payments", "match": {"pod_labels": ["team=payments"]},
     "allow": {"models": ["gpt-4o-mini"]}},
    {"name": "agents", "match": {"image": ["ghcr.io/acme/*"]},
     "allow": {"models": ["gpt-4o*"], "hosts": ["api.openai.com"]}},
    {"name": "curl-clients", "match": {"executables": ["curl"]},
     "allow": {"hosts": ["api.openai.com", "api.anthropic.com", "127.0.0.1",
                         "generativelanguage.googleapis.com"],
               "models": ["gpt-4o*", "claude-*", "gemini-*"]}},
    {"name": "sni-clients", "match": {"executables": ["python3*", "node"]},
     "allow": {"hosts": ["api.openai.com", "api.anthropic.com"]}}]}
# A client that sets SNI: Python's ssl module and Node's tls (OpenSSL linked into node).
PY_SNI = """
import http.client, json, socket, ssl, sys
port, name, path, body, headers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], \\
    json.loads(sys.argv[5])
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=name)
c.request("POST", path, body=open(body, "rb").read(), headers=headers)
r = c.getresponse()
sys.stdout.write(str(r.status))
sys.stdout.flush()
open(body + ".resp", "wb").write(r.read())
"""
NODE_SNI = """
const https = require('node:https'), fs = require('node:fs');
const [port, name, path, body, headers] = process.argv.slice(1);
const req = https.request({host: '127.0.0.1', port: +port, servername: name, path,
  method: 'POST', rejectUnauthorized: false, headers: JSON.parse(headers)}, res => {
  const got = [];
  res.on('data', d => got.push(d));
  res.on('end', () => { fs.writeFileSync(body + '.resp', Buffer.concat(got));
    process.stdout.write(String(res.statusCode)); });
});
req.end(fs.readFileSync(body));
"""


def curl(work, tag, url, body, headers=(), extra=(), auth=True, cgroup=None):
    """One call by curl; the body goes through a file, so argv holds no prompt text. With
    cgroup, curl runs in that cgroup from its exec on (a container, as far as tokentap sees)."""
    req, resp = work / f"{tag}.req.json", work / f"{tag}.resp"
    req.write_text(json.dumps(body))
    args = ["curl", "-sS", "--cacert", h.Workspace.mock.ca, url, "--data-binary", f"@{req}",
            "-o", resp, "-w", "%{http_code}", "-H", "Content-Type: application/json",
            "-H", f"x-test-tag: {tag}", *[a for k in headers for a in ("-H", k)], *extra]
    if auth:
        args += ["-H", f"Authorization: Bearer {h.API_KEY}"]
    if cgroup is None:
        proc = h.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    else:
        proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=join_cgroup(cgroup))
        h._procs.append(proc)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"curl {tag} exited with {proc.returncode}: {err}")
    return {"tag": tag, "pid": proc.pid, "status": int(out), "resp": resp.read_bytes()}


def join_cgroup(cg):
    def pre():
        h.die_with_parent()
        with open(cg / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    return pre


# ---- containers: a fake runtime state root and a cgroup named like the runtime's -------------

CID_CONTAINERD = uuid.uuid4().hex + uuid.uuid4().hex
CID_CRIO, CID_CRIO_SANDBOX = (uuid.uuid4().hex + uuid.uuid4().hex for _ in range(2))
AGENT_IMAGE = "ghcr.io/acme/agent:1.4"


def cgroup_v2_root():
    for path in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(f"{path}/cgroup.procs"):
            return Path(path)
    raise AssertionError("no cgroup v2 mount (/sys/fs/cgroup/unified or /sys/fs/cgroup)")


def make_container_cgroups(tag):
    """A parent of our own, with a runtime-named scope per container: only leaves hold procs."""
    parent = cgroup_v2_root() / f"tokentap-audit-{tag}"
    scopes = {}
    for cid, prefix in ((CID_CONTAINERD, "cri-containerd"), (CID_CRIO, "crio")):
        scopes[cid] = parent / f"{prefix}-{cid}.scope"
        scopes[cid].mkdir(parents=True)
    return parent, scopes


def remove_cgroups(parent):
    for d in sorted(parent.glob("*.scope")) + [parent]:
        try:
            d.rmdir()
        except OSError:
            pass


def make_runtime_state(root):
    """containerd's OCI bundle (no pod labels) and CRI-O's config.json pair (container and its
    sandbox, which carries the pod's labels), as the runtimes write them."""
    bundle = root / "containerd" / "k8s.io" / CID_CONTAINERD
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.1.0", "annotations": {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "agent",
        "io.kubernetes.cri.image-name": AGENT_IMAGE,
        "io.kubernetes.cri.sandbox-name": "agent-7d9f",
        "io.kubernetes.cri.sandbox-namespace": "ml",
        "io.kubernetes.cri.sandbox-uid": str(uuid.uuid4())}}))
    for cid, ann in ((CID_CRIO, {
            "io.kubernetes.cri-o.ImageName": "docker.io/library/python:3.12",
            "io.kubernetes.cri-o.ContainerName": "k8s_app_web-1",
            "io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.cri-o.SandboxID": CID_CRIO_SANDBOX,
            "io.kubernetes.cri-o.Labels": json.dumps({"io.kubernetes.container.name": "app"})}),
            (CID_CRIO_SANDBOX, {"io.kubernetes.cri-o.Labels": json.dumps(
                {"app": "web", "team": "payments"})})):
        d = root / "crio" / cid / "userdata"
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"annotations": ann}))
    (root / "docker").mkdir()


def sni_client(work, tag, lang, name, path, body, headers):
    """One call by python or node over TLS with SNI `name` (the mock's certificate does not
    name it: verification is off, as for a client behind a gateway with its own CA)."""
    req = work / f"{tag}.req.json"
    req.write_text(json.dumps(body))
    hdrs = json.dumps({"Content-Type": "application/json", "x-test-tag": tag, **headers})
    args = ([sys.executable, "-c", PY_SNI] if lang == "python" else ["node", "-e", NODE_SNI])
    args += [str(h.Workspace.mock.port), name, path, str(req), hdrs]
    proc = h.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"{lang} {tag} exited with {proc.returncode}: {err}")
    return {"tag": tag, "pid": proc.pid, "status": int(out),
            "resp": Path(f"{req}.resp").read_bytes()}


def chat(model, text="Say hello", **kw):
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def sse_text(raw, provider):
    """The completion text of a streamed answer, concatenated as a client would."""
    text = ""
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
            continue
        ev = json.loads(line[5:])
        if provider == "anthropic" and ev.get("type") == "content_block_delta":
            text += ev["delta"].get("text", "")
        elif provider == "openai":
            for ch in ev.get("choices", []):
                text += (ch.get("delta") or {}).get("content") or ""
    return text


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for localhost and a client certificate, all PEM."""
    d.mkdir(exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=otlp-ca",
            "-keyout", d / "ca.key", "-out", d / "ca.pem")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey",
                d / "ca.key", "-CAcreateserial", "-days", "2", "-extfile", d / f"{name}.ext",
                "-out", d / f"{name}.pem")
    os.chmod(d / "client.key", 0o600)
    return d


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener, handle):
    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def tls_front(pki, backend_port):
    """TLS with a required client certificate in front of the plain-HTTP receiver."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    stats = {"handshakes": 0, "refused": 0}

    def handle(conn):
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            stats["refused"] += 1
            conn.close()
            return
        stats["handshakes"] += 1
        back = socket.create_connection(("127.0.0.1", backend_port))
        threading.Thread(target=pipe, args=(back, tls), daemon=True).start()
        pipe(tls, back)
    serve(listener, handle)
    return listener.getsockname()[1], stats


def connect_proxy(target_port):
    """A forward proxy: CONNECT anything is tunnelled to the mock."""
    listener = socket.create_server(("127.0.0.1", 0))

    def handle(conn):
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        if not head.startswith(b"CONNECT "):
            conn.close()
            return
        back = socket.create_connection(("127.0.0.1", target_port))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(back, conn), daemon=True).start()
        pipe(conn, back)
    serve(listener, handle)
    return listener.getsockname()[1]


def read_records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def verify(*files, extra=()):
    return subprocess.run([str(h.TOKENTAP), "audit", "verify", *extra, *map(str, files)],
                          capture_output=True, text=True)


class TestAudit(h.TracedCase):
    @classmethod
    def before_tokentap(cls):
        cls.audit = cls.work / "audit.log"
        cls.policy = cls.work / "policy.json"
        cls.policy.write_text(json.dumps(POLICY))
        os.chmod(cls.policy, 0o600)
        cls.otlp_out = cls.work / "otlp.jsonl"
        cls.receiver = h.spawn(["node", E2E / "otlp_receiver.js", "--port", "0", "--out",
                                cls.otlp_out], stdout=subprocess.PIPE,
                               stderr=open(cls.work / "otlp.err", "wb"), text=True, cwd=E2E)
        m = re.fullmatch(r"otlp_receiver: listening (\d+)",
                         h.read_line(cls.receiver, 30, "otlp_receiver.js"))
        if not m:
            raise AssertionError("otlp_receiver.js did not start")
        cls.pki = make_pki(cls.work / "pki")
        cls.tls_port, cls.tls_stats = tls_front(cls.pki, int(m.group(1)))
        cls.proxy_port = connect_proxy(cls.mock.port)
        cls.runtime = cls.work / "runtime"
        make_runtime_state(cls.runtime)
        cls.cg_parent, cls.cgroups = make_container_cgroups(uuid.uuid4().hex[:8])

    @classmethod
    def tokentap_args_for(cls):
        p = cls.pki
        return ["--format", "json", "--audit", cls.audit, "--audit-fsync-interval", "0",
                "--policy", cls.policy, "--capture-content", "--control-socket", "",
                "--otlp-endpoint", f"https://localhost:{cls.tls_port}", "--otlp-ca", p / "ca.pem",
                "--otlp-client-cert", p / "client.pem", "--otlp-client-key", p / "client.key",
                "--containerd-state", cls.runtime / "containerd",
                "--crio-state", cls.runtime / "crio", "--docker-state", cls.runtime / "docker"]

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "cg_parent", None):
            remove_cgroups(cls.cg_parent)
        r = getattr(cls, "receiver", None)
        if r is not None and r.poll() is None:
            r.terminate()
            r.wait(timeout=10)

    @classmethod
    def workload_calls(cls):
        P, w = cls.mock.port, cls.work
        base = f"https://127.0.0.1:{P}"
        calls = {}
        calls["allowed"] = curl(w, "allowed", base + "/v1/chat/completions",
                                chat("gpt-4o-mini", PROMPT), [f"Host: api.openai.com:{P}"])
        calls["stream"] = curl(w, "stream", base + "/v1/messages",
                               chat("claude-sonnet-4-5", "Tell me a story", max_tokens=50,
                                    stream=True, system="You are terse"),
                               [f"Host: api.anthropic.com:{P}", "anthropic-version: 2023-06-01"])
        calls["bad_host"] = curl(w, "bad_host", f"https://localhost:{P}/v1/chat/completions",
                                 chat("gpt-4o"))
        calls["bad_model"] = curl(w, "bad_model", base + "/v1/chat/completions",
                                  chat("gpt-3.5-turbo"), [f"Host: api.openai.com:{P}"])
        calls["unknown_host"] = curl(w, "unknown_host", base + "/v1/chat/completions",
                                     chat("gpt-4o"))
        calls["failed"] = curl(w, "failed", base + "/v1/chat/completions", chat("gpt-4o"),
                               [f"Host: api.openai.com:{P}", "x-mock-status: 429"])
        calls["tunnel"] = curl(w, "tunnel", "https://api.openai.com/v1/chat/completions",
                               chat("gpt-4o"), [],
                               ["-k", "-x", f"http://127.0.0.1:{cls.proxy_port}"])
        # SNI: curl names the server it resolves (here a provider's name on a loopback
        # address); a gateway name with a provider's Host is a tunnel fronting the provider.
        calls["sni_curl"] = curl(w, "sni_curl", f"https://api.openai.com:{P}/v1/chat/completions",
                                 chat("gpt-4o"), [],
                                 ["-k", "--resolve", f"api.openai.com:{P}:127.0.0.1"])
        calls["sni_mismatch"] = curl(
            w, "sni_mismatch", f"https://gateway.corp.example:{P}/v1/chat/completions",
            chat("gpt-4o"), [f"Host: api.openai.com:{P}"],
            ["-k", "--resolve", f"gateway.corp.example:{P}:127.0.0.1"])
        calls["sni_python"] = sni_client(
            w, "sni_python", "python", "api.anthropic.com", "/v1/messages",
            chat("claude-sonnet-4-5", max_tokens=20),
            {"Host": f"api.anthropic.com:{P}", "anthropic-version": "2023-06-01"})
        calls["sni_node"] = sni_client(w, "sni_node", "node", "api.openai.com",
                                       "/v1/chat/completions", chat("gpt-4o"),
                                       {"Host": f"api.openai.com:{P}"})
        # Content capture of more APIs: Gemini (streamed SSE) and OpenAI Responses (streamed).
        calls["gemini"] = curl(
            w, "gemini", base + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            {"systemInstruction": {"parts": [{"text": "You are terse"}]},
             "contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
            [f"Host: generativelanguage.googleapis.com:{P}"])
        calls["responses"] = curl(w, "responses", base + "/v1/responses",
                                  {"model": "gpt-4o-mini", "instructions": "You are terse",
                                   "input": PROMPT, "stream": True},
                                  [f"Host: api.openai.com:{P}"])
        # Containers: curl in a cgroup named like containerd's / CRI-O's, whose runtime state
        # (image, pod, labels) sits under the fake roots given to tokentap.
        calls["ctr_image"] = curl(w, "ctr_image", base + "/v1/chat/completions", chat("gpt-4o"),
                                  [f"Host: api.openai.com:{P}"],
                                  cgroup=cls.cgroups[CID_CONTAINERD])
        calls["ctr_label"] = curl(w, "ctr_label", base + "/v1/chat/completions", chat("gpt-4o"),
                                  [f"Host: api.openai.com:{P}"], cgroup=cls.cgroups[CID_CRIO])
        return calls

    def records(self):
        return read_records(self.audit)

    def record_of(self, name):
        c = self.calls("calls")[name]
        got = [r for r in self.records() if r["process"]["pid"] == c["pid"]]
        self.assertEqual(len(got), 1, f"{name}: {len(got)} audit records for pid {c['pid']}")
        return got[0]

    def span_of(self, name):
        c = self.calls("calls")[name]
        got = self.spans_of({c["pid"]})
        self.assertEqual(len(got), 1, f"{name}: {len(got)} spans")
        return got[0]

    def mine(self, pid_of):
        """Other processes on this host make AI calls too: only ours count."""
        pids = {c["pid"] for c in self.calls("calls").values()}
        return [x for x in pid_of if x[0] in pids]

    def test_one_record_per_call_with_its_verdict(self):
        calls = self.calls("calls")
        recs = self.mine([(r["process"]["pid"], r) for r in self.records()])
        self.assertEqual(len(recs), len(calls))
        self.assertEqual(len({pid for pid, _ in recs}), len(calls))
        want = {"allowed": [], "stream": [], "failed": [],
                "bad_host": ["host_not_allowed", "shadow_ai"], "bad_model": ["model_not_allowed"],
                "unknown_host": ["shadow_ai"], "tunnel": ["shadow_ai"],
                "sni_curl": ["shadow_ai"], "sni_mismatch": ["shadow_ai"], "gemini": [],
                "responses": [], "sni_python": ["shadow_ai"], "sni_node": [],
                "ctr_image": [],
                "ctr_label": ["model_not_allowed"]}
        rules = {"sni_python": "sni-clients", "sni_node": "sni-clients", "ctr_image": "agents",
                 "ctr_label": "payments"}
        for name, violations in want.items():
            r = self.record_of(name)
            self.assertEqual(r["violations"], violations, name)
            self.assertEqual(r["verdict"], "denied" if violations else "allowed", name)
            self.assertEqual(r["policy_rule"], rules.get(name, "curl-clients"), name)
        self.assertEqual(self.record_of("unknown_host")["shadow_ai_reason"],
                         "unknown_provider_host")
        self.assertEqual(self.record_of("bad_host")["destination"]["server_address"], "localhost")
        tunnel = self.record_of("tunnel")
        self.assertEqual(tunnel["shadow_ai_reason"], "provider_via_proxy")
        self.assertEqual(tunnel["destination"]["server_address"], "api.openai.com")
        self.assertEqual(tunnel["destination"]["peer_port"], self.proxy_port)
        self.assertFalse(self.record_of("allowed")["shadow_ai"])
        failed = self.record_of("failed")
        self.assertEqual(failed["status"], {"http_status": 429, "outcome": "error",
                                            "error_type": "429"})
        denied = self.mine([(int(m.group(1)), m.group(0)) for m in re.finditer(
            r"^tokentap: policy: denied pid=(\d+) .*$", self.tt.err_path.read_text(), re.M)])
        self.assertEqual(len(denied), 8, denied)

    def test_policy_by_image_and_pod_label(self):
        img = self.record_of("ctr_image")
        self.assertEqual(img["container"]["id"], CID_CONTAINERD)
        self.assertEqual({k: img["container"][k] for k in
                          ("runtime", "image", "name", "pod_name", "pod_namespace")},
                         {"runtime": "containerd", "image": AGENT_IMAGE, "name": "agent",
                          "pod_name": "agent-7d9f", "pod_namespace": "ml"})
        # containerd records no pod labels: the label rule is reported, not passed over
        self.assertEqual(img["policy_unevaluated"], ["payments: pod_labels_unknown"])
        lab = self.record_of("ctr_label")
        self.assertEqual(lab["container"]["id"], CID_CRIO)
        self.assertEqual((lab["container"]["runtime"], lab["container"]["pod_name"]),
                         ("cri-o", "web-1"))
        self.assertEqual(lab["policy_unevaluated"], [])
        span = self.span_of("ctr_label")["attributes"]
        self.assertEqual(span["container.image.name"], "docker.io/library/python:3.12")
        self.assertEqual(span["tokentap.policy.rule"], "payments")
        # outside containers nothing is unknown
        self.assertEqual(self.record_of("allowed")["policy_unevaluated"], [])

    def test_sni_in_spans_and_records(self):
        want = {"sni_curl": ("api.openai.com", "curl"), "sni_python": ("api.anthropic.com", "python"),
                "sni_node": ("api.openai.com", "node"),
                "sni_mismatch": ("gateway.corp.example", "curl")}
        for name, (sni, client) in want.items():
            r, s = self.record_of(name), self.span_of(name)
            self.assertEqual(self.calls("calls")[name]["status"], 200, name)
            self.assertEqual(r["destination"]["tls_server_name"], sni, f"{name} ({client})")
            self.assertEqual(s["attributes"].get("tls.client.server_name"), sni, name)
            self.assertEqual(r["destination"]["tls_library"], "openssl", name)
        # A provider's name in the handshake, served from a loopback address (the mock): a
        # gateway or DNS override answering for the provider.
        for name in ("sni_curl", "sni_python"):
            self.assertEqual(self.record_of(name)["shadow_ai_reason"],
                             "provider_name_private_address", name)
        # Node's TLS runs over memory BIOs: the kernel side never sees its socket, so there is
        # no peer address to judge, and the call is not flagged.
        node = self.record_of("sni_node")
        self.assertIsNone(node["destination"]["peer_address"])
        self.assertFalse(node["shadow_ai"])
        self.assertIn("127.0.0.1", self.record_of("sni_curl")["shadow_ai_detail"])
        self.assertEqual(self.record_of("sni_python")["provider"], "anthropic")
        bad = self.record_of("sni_mismatch")
        self.assertEqual(bad["destination"]["server_address"], "api.openai.com")
        self.assertEqual(bad["shadow_ai_reason"], "sni_host_mismatch")
        self.assertIn("gateway.corp.example", bad["shadow_ai_detail"])
        # curl sends no SNI for an IP address: none is made up.
        self.assertIsNone(self.record_of("allowed")["destination"]["tls_server_name"])
        self.assertNotIn("tls.client.server_name", self.span_of("allowed")["attributes"])

    def test_record_fields(self):
        r = self.record_of("allowed")
        curl_exe = os.path.realpath(shutil.which("curl"))
        p = r["process"]
        self.assertEqual(p["executable"], curl_exe)
        self.assertEqual(p["executable_sha256"],
                         hashlib.sha256(Path(curl_exe).read_bytes()).hexdigest())
        self.assertEqual((p["uid"], p["user"]), (os.getuid(), "root"))
        self.assertEqual(p["ppid"], os.getpid())
        self.assertEqual(p["parent_executable"], os.path.realpath(sys.executable))
        self.assertIn("Authorization: [REDACTED]", p["command_line"])
        self.assertEqual(p["facts"], "exec")
        self.assertEqual(r["host"], socket.gethostname())
        self.assertEqual(r["destination"]["server_address"], "api.openai.com")
        self.assertEqual(r["destination"]["server_port"], self.mock.port)
        self.assertEqual(r["destination"]["peer_address"], "127.0.0.1")
        self.assertEqual(r["destination"]["tls_library"], "openssl")
        self.assertEqual((r["provider"], r["detected_by"], r["operation"], r["api"]),
                         ("openai", "host", "chat", "POST /v1/chat/completions"))
        log = self.mock.by_tag(["allowed"])["allowed"]
        self.assertEqual(r["model"], {"request": "gpt-4o-mini",
                                      "response": log["model_response"]})
        self.assertEqual(r["tokens"]["output"], log["output_tokens"])
        self.assertRegex(r["api_key_fingerprint"] or "", r"^[0-9a-f]{16}$")
        self.assertEqual(r["trace_id"], self.span_of("allowed")["trace_id"])

    def test_verify_accepts_and_detects_tampering(self):
        ok = verify(self.audit)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertRegex(ok.stdout, r"^audit verify: OK: \d+ records, seq 0\.\.")
        lines = self.audit.read_text().splitlines(keepends=True)
        cases = {
            "deleted": (lines[:1] + lines[2:], ":2:", "missing"),
            "inserted": (lines[:2] + [lines[1]] + lines[2:], ":3:", "inserted"),
            "edited": (lines[:1] + [lines[1].replace('"duration_ms":', '"duration_ms":1')]
                       + lines[2:], ":3:", "prev_hash"),
        }
        for name, (content, where, what) in cases.items():
            bad = self.work / f"audit-{name}.log"
            bad.write_text("".join(content))
            res = verify(bad)
            self.assertEqual(res.returncode, 1, f"{name}: {res.stdout}{res.stderr}")
            self.assertIn(f"audit-{name}.log{where}", res.stderr, name)
            self.assertIn(what, res.stderr, name)
        head = re.search(r"sha256 ([0-9a-f]{64})", self.tt.err_path.read_text())
        self.assertIsNotNone(head, "tokentap did not print the chain head")
        self.assertEqual(verify(self.audit, extra=["--expect-head", head.group(1)]).returncode, 0)
        cut = self.work / "audit-cut.log"
        cut.write_text("".join(lines[:-1]))
        self.assertEqual(verify(cut, extra=["--expect-head", head.group(1)]).returncode, 1)

    def test_captured_messages_match_what_was_sent(self):
        a = self.span_of("allowed")["attributes"]
        self.assertEqual(json.loads(a["gen_ai.input.messages"]),
                         [{"role": "user", "parts": [{"type": "text",
                                                      "content": PROMPT_REDACTED}]}])
        sent = json.loads(self.calls("calls")["allowed"]["resp"])
        self.assertEqual(json.loads(a["gen_ai.output.messages"]), [
            {"role": "assistant", "parts": [{"type": "text",
                                             "content": sent["choices"][0]["message"]["content"]}],
             "finish_reason": sent["choices"][0]["finish_reason"]}])
        s = self.span_of("stream")["attributes"]
        streamed = sse_text(self.calls("calls")["stream"]["resp"], "anthropic")
        self.assertTrue(streamed)
        out = json.loads(s["gen_ai.output.messages"])
        self.assertEqual(out[0]["parts"], [{"type": "text", "content": streamed}])
        self.assertEqual(json.loads(s["gen_ai.system_instructions"]),
                         [{"type": "text", "content": "You are terse"}])

    def test_captured_gemini_and_responses(self):
        user = [{"role": "user", "parts": [{"type": "text", "content": PROMPT_REDACTED}]}]
        terse = [{"type": "text", "content": "You are terse"}]
        g = self.span_of("gemini")["attributes"]
        raw = self.calls("calls")["gemini"]["resp"]
        chunks = [json.loads(x[5:]) for x in raw.split(b"\n") if x.startswith(b"data:")]
        text = "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])
                       for p in cand["content"]["parts"])
        self.assertTrue(text)
        self.assertEqual(json.loads(g["gen_ai.input.messages"]), user)
        self.assertEqual(json.loads(g["gen_ai.system_instructions"]), terse)
        self.assertEqual(json.loads(g["gen_ai.output.messages"]), [
            {"role": "assistant", "parts": [{"type": "text", "content": text}],
             "finish_reason": chunks[-1]["candidates"][0]["finishReason"]}])
        r = self.span_of("responses")["attributes"]
        raw = self.calls("calls")["responses"]["resp"]
        done = [json.loads(x[5:]) for x in raw.split(b"\n") if x.startswith(b"data:")][-1]
        self.assertEqual(done["type"], "response.completed")
        text = done["response"]["output"][0]["content"][0]["text"]
        self.assertEqual(json.loads(r["gen_ai.input.messages"]), user)
        self.assertEqual(json.loads(r["gen_ai.system_instructions"]), terse)
        self.assertEqual(json.loads(r["gen_ai.output.messages"]), [
            {"role": "assistant", "parts": [{"type": "text", "content": text}],
             "finish_reason": "stop"}])

    def test_otlp_over_mutual_tls(self):
        self.assertGreaterEqual(self.tls_stats["handshakes"], 1)
        spans = [json.loads(x) for x in self.otlp_out.read_text().splitlines() if x.strip()]
        spans = self.mine([(s["resource"]["process.pid"], s) for s in spans])
        self.assertEqual(len(spans), len(self.calls("calls")))
        spans = [s for _, s in spans]
        byid = {s["span_id"]: s for s in spans}
        a = self.span_of("allowed")
        self.assertEqual(byid[a["span_id"]]["attributes"]["gen_ai.input.messages"],
                         a["attributes"]["gen_ai.input.messages"])
        self.assertEqual(byid[a["span_id"]]["attributes"]["tokentap.policy.verdict"], "allowed")

    def test_secrets_appear_nowhere(self):
        outputs = {"stdout": self.tt.out_path, "stderr": self.tt.err_path,
                   "audit": self.audit, "otlp": self.otlp_out}
        for name, path in outputs.items():
            text = Path(path).read_text(errors="replace")
            self.assertTrue(text, f"{name} is empty")
            for secret in SECRETS:
                self.assertNotIn(secret, text, f"a planted secret in {name}")
            self.assertNotIn("BEGIN PRIVATE KEY", text, name)


def cap_mask(names):
    nums = {"cap_dac_read_search": 2, "cap_sys_ptrace": 19, "cap_sys_admin": 21,
            "cap_perfmon": 38, "cap_bpf": 39}
    return sum(1 << nums[n] for n in names)


class TestCapabilities(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_bpf()
        if not shutil.which("capsh"):
            raise AssertionError("capsh is missing (Debian package libcap2-bin)")
        ws = h.Workspace.get()
        cls.mock = ws.mock
        cls.work = ws.dir / cls.__name__
        cls.work.mkdir()

    def start(self, drop, args, name):
        return h.start_under_capsh(drop, args, self.work, name)

    def test_runs_with_only_the_documented_set(self):
        drop = [c for c in h.bounding_set() if c not in RUN_CAPS]
        audit = self.work / "caps-audit.log"
        word = "zebracornflake" + uuid.uuid4().hex[:8]
        proc, out, err = self.start(drop, ["--format", "json", "--audit", audit,
                                           "--ringbuf-size", "4096", "--control-socket", ""],
                                    "caps")
        self.assertIsNone(proc.poll(), err.read_text())
        try:
            status = {}
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("CapEff:", "CapPrm:")):
                        status.setdefault(line.split(":")[0], set()).add(int(line.split()[1], 16))
            allowed = cap_mask(RUN_CAPS)
            for kind, masks in status.items():
                for m in masks:
                    self.assertEqual(m & ~allowed, 0, f"{kind} {m:x} beyond the documented set")
            base = f"https://127.0.0.1:{self.mock.port}/v1/chat/completions"
            small = curl(self.work, "caps-small", base, chat("gpt-4o", f"tell {word} a joke"))
            big = curl(self.work, "caps-big", base, chat("gpt-4o"), ["x-mock-big: 1024"])
            time.sleep(1.0)
        finally:
            proc.send_signal(2)
            proc.wait(timeout=20)
        self.assertEqual(proc.returncode, 0, err.read_text())
        self.assertIn("capabilities dropped to", err.read_text())
        recs = {r["process"]["pid"]: r for r in read_records(audit)}
        self.assertIn(small["pid"], recs)
        self.assertIn(big["pid"], recs)
        r = recs[big["pid"]]
        self.assertTrue(r["capture"]["partial"] or r["status"]["error_type"] == "capture_gap", r)
        for path in (out, err, audit):
            self.assertNotIn(word, Path(path).read_text(errors="replace"), path)
        self.assertEqual(verify(audit).returncode, 0)

    def test_fails_clearly_without_capabilities(self):
        proc, out, err = self.start(["cap_sys_admin", "cap_bpf", "cap_perfmon"], [], "nocaps")
        proc.wait(timeout=20)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(err.read_text(), r"missing capabilities (cap_perfmon,cap_bpf|"
                         r"cap_bpf,cap_perfmon): run as root")
        # CAP_BPF and CAP_PERFMON alone: enough on kernels whose uprobe PMU accepts
        # CAP_PERFMON; this one asks for CAP_SYS_ADMIN, and says so.
        proc, out, err = self.start(["cap_sys_admin"], [], "noadmin")
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(timeout=20)
        else:
            self.assertIn("add cap_sys_admin", err.read_text())


def main():
    h.run_suite("audit", __name__)

if __name__ == "__main__":
    main()
