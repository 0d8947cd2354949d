#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A mock LLM provider over HTTPS for tokentap's end-to-end tests.

Serves OpenAI Chat Completions (POST /v1/chat/completions) and Anthropic Messages
(POST /v1/messages), plain JSON and streamed SSE, over HTTP/1.1 with keep-alive, on loopback,
with a certificate signed by a CA it makes with the openssl CLI (so clients can trust the CA and
verify the server as they would a real provider). Every served request is appended as one JSON
line to the log file; the tests compare tokentap's spans with that log.

Token counts are deterministic and derived from the request, so a test knows what to expect:
  input tokens   = number of whitespace-separated words in the system prompt and messages
  output tokens  = header x-mock-output-tokens, else 5 + input % 11, capped by max_tokens
                   (capping gives finish_reason "length" / stop_reason "max_tokens")
  cache tokens   = headers x-mock-cache-read / x-mock-cache-creation
  reasoning      = header x-mock-reasoning (OpenAI completion_tokens_details, <= output)
Knobs (request headers):
  x-mock-status: 429      answer with that error status and a realistic error body
  x-mock-big: N           a response of about N KiB of content (plain or streamed)
  x-mock-delay-ms: N      wait before the response head (default 30)
  x-mock-chunk-delay-ms   wait between streamed events (default 10)
  x-mock-multi-delta: 1   Anthropic stream: an extra, earlier message_delta (usage is cumulative)
  x-test-tag: T           copied into the log line, so a test can find the line of a call
Other endpoints: GET /health and POST /internal/echo (not LLM calls; they must not become spans).
More APIs (OpenAI Responses, Embeddings, Completions, Azure, Gemini, Ollama, Bedrock): see
mock_apis.py.

Usage: mock_provider.py --tls-dir DIR --log FILE [--port 0]; prints "mock: listening <port>".
--plain serves the same over plain HTTP (no TLS), like a self-hosted vLLM or Ollama.
"""
import argparse
import http.server
import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_apis  # noqa: E402  (the other APIs this mock serves)

DEFAULT_DELAY_MS = 30
DEFAULT_CHUNK_DELAY_MS = 10
MAX_BODY = 16 << 20
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu").split()

_ids = itertools.count(1)
_log_lock = threading.Lock()
_log_file = None


def make_certs(tls_dir):
    """Makes ca.pem (a CA) and server.pem/server.key (127.0.0.1, localhost) if missing."""
    ca, key, crt = (os.path.join(tls_dir, n) for n in ("ca.pem", "server.key", "server.pem"))
    if all(os.path.exists(p) for p in (ca, key, crt)):
        return ca, crt, key
    os.makedirs(tls_dir, exist_ok=True)
    ca_key = os.path.join(tls_dir, "ca.key")
    csr = os.path.join(tls_dir, "server.csr")
    ext = os.path.join(tls_dir, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "3", "-subj",
        "/CN=tokentap test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "3", "-extfile", ext)
    return ca, crt, key


def count_words(content):
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(count_words(p.get("text", "")) for p in content if isinstance(p, dict))
    return 0


def content_words(n, offset=0):
    return [WORDS[(offset + i) % len(WORDS)] for i in range(n)]


def now_ns():
    return time.time_ns()


def write_log(entry):
    line = json.dumps(entry, separators=(",", ":")) + "\n"
    with _log_lock:
        _log_file.write(line)
        _log_file.flush()


class Call:
    """What the mock decided to answer for one LLM request."""

    def __init__(self, provider, req, headers):
        self.provider = provider
        self.req = req
        hdr = lambda name, dflt: int(headers.get(name, dflt))
        self.stream = req.get("stream") is True
        self.model = req.get("model", "")
        suffix = "-2024-08-06" if provider == "openai" else "-20250929"
        self.response_model = self.model + suffix
        self.max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
        self.status = hdr("x-mock-status", 200)
        self.delay_ms = hdr("x-mock-delay-ms", DEFAULT_DELAY_MS)
        self.chunk_delay_ms = hdr("x-mock-chunk-delay-ms", DEFAULT_CHUNK_DELAY_MS)
        self.multi_delta = headers.get("x-mock-multi-delta") == "1"
        self.cache_read = hdr("x-mock-cache-read", 0)
        self.cache_creation = hdr("x-mock-cache-creation", 0)
        self.reasoning = hdr("x-mock-reasoning", 0)  # OpenAI: part of completion_tokens
        self.words_in = self._input_words()
        self._pick_output(headers)
        n = next(_ids)
        self.id = (f"chatcmpl-mock{os.getpid():x}x{n:06d}" if provider == "openai" else
                   f"msg_mock{os.getpid():x}x{n:06d}")
        self.created = int(time.time())

    def _input_words(self):
        n = count_words(self.req.get("system", ""))
        for m in self.req.get("messages") or []:
            if isinstance(m, dict):
                n += count_words(m.get("content", ""))
        return n

    def _pick_output(self, headers):
        big_kib = int(headers.get("x-mock-big", 0))
        if big_kib:
            # Each word plus its space averages about 6 bytes.
            self.words = content_words(big_kib * 1024 // 6)
            self.truncated = False
        else:
            want = int(headers.get("x-mock-output-tokens", 5 + self.words_in % 11))
            limit = self.max_tokens if isinstance(self.max_tokens, int) else want
            self.words = content_words(min(want, limit), self.words_in)
            self.truncated = want > limit
        self.output_tokens = len(self.words)
        if self.provider == "openai":
            self.finish_reason = "length" if self.truncated else "stop"
        else:
            self.finish_reason = "max_tokens" if self.truncated else "end_turn"

    def text(self):
        return " ".join(self.words)

    def openai_usage(self):
        prompt = self.words_in + self.cache_read
        return {"prompt_tokens": prompt, "completion_tokens": self.output_tokens,
                "total_tokens": prompt + self.output_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cache_read, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": min(self.reasoning,
                                                                      self.output_tokens),
                                              "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}

    def anthropic_usage(self, output_tokens):
        return {"input_tokens": self.words_in,
                "cache_creation_input_tokens": self.cache_creation,
                "cache_read_input_tokens": self.cache_read, "output_tokens": output_tokens,
                "service_tier": "standard"}

    def log_entry(self):
        return {"provider": self.provider, "model_requested": self.model,
                "model_response": self.response_model if self.status == 200 else None,
                "id": self.id if self.status == 200 else None, "stream": self.stream,
                "max_tokens": self.max_tokens, "input_words": self.words_in,
                "output_tokens": self.output_tokens if self.status == 200 else None,
                "cache_read_tokens": self.cache_read, "cache_creation_tokens": self.cache_creation,
                "reasoning_tokens": min(self.reasoning, self.output_tokens),
                "finish_reason": self.finish_reason if self.status == 200 else None}


def openai_body(c):
    return {"id": c.id, "object": "chat.completion", "created": c.created,
            "model": c.response_model,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": c.text(), "refusal": None,
                                     "annotations": []},
                         "logprobs": None, "finish_reason": c.finish_reason}],
            "usage": c.openai_usage(), "service_tier": "default",
            "system_fingerprint": "fp_mock0001"}


def anthropic_body(c):
    return {"id": c.id, "type": "message", "role": "assistant", "model": c.response_model,
            "content": [{"type": "text", "text": c.text()}], "stop_reason": c.finish_reason,
            "stop_sequence": None, "usage": c.anthropic_usage(c.output_tokens)}


def pieces(words, per):
    for i in range(0, len(words), per):
        yield (" " if i else "") + " ".join(words[i:i + per])


def openai_events(c):
    """The SSE events of a streamed chat completion, each a bytes object."""
    usage_opt = (c.req.get("stream_options") or {}).get("include_usage") is True
    base = {"id": c.id, "object": "chat.completion.chunk", "created": c.created,
            "model": c.response_model, "service_tier": "default",
            "system_fingerprint": "fp_mock0001"}

    def chunk(delta, finish=None):
        d = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}])
        if usage_opt:
            d["usage"] = None
        return d

    evs = [chunk({"role": "assistant", "content": "", "refusal": None})]
    per = 200 if len(c.words) > 1000 else 2
    evs += [chunk({"content": p}) for p in pieces(c.words, per)]
    evs.append(chunk({}, c.finish_reason))
    if usage_opt:
        evs.append(dict(base, choices=[], usage=c.openai_usage()))
    out = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in evs]
    return out + [b"data: [DONE]\n\n"]


def anthropic_events(c):
    def ev(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    msg = {"id": c.id, "type": "message", "role": "assistant", "model": c.response_model,
           "content": [], "stop_reason": None, "stop_sequence": None,
           "usage": c.anthropic_usage(1)}
    out = [ev("message_start", {"type": "message_start", "message": msg}),
           ev("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
           ev("ping", {"type": "ping"})]
    per = 200 if len(c.words) > 1000 else 2
    out += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": p}})
            for p in pieces(c.words, per)]
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    if c.multi_delta:
        out.append(ev("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": None, "stop_sequence": None},
                                        "usage": {"output_tokens": c.output_tokens // 2}}))
    out.append(ev("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": c.finish_reason,
                                              "stop_sequence": None},
                                    "usage": {"output_tokens": c.output_tokens}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out


def error_body(c):
    if c.provider == "openai":
        return {"error": {"message": f"Rate limit reached for {c.model} in organization "
                                     "org-mock on tokens per min (TPM): Limit 30000, Used 30000,"
                                     " Requested 120. Please try again in 240ms.",
                          "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    return {"type": "error", "error": {"type": "rate_limit_error",
                                       "message": "Number of request tokens has exceeded your "
                                                  "per-minute rate limit."},
            "request_id": "req_mock429"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1.0"
    sys_version = ""
    timeout = 60

    def setup(self):
        super().setup()
        # Without it, Nagle holds the response behind the session tickets until the client's
        # delayed ACK (40 ms), which would swamp the latencies the tests compare.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if isinstance(self.request, ssl.SSLSocket):  # not with --plain
                self.request.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.close_connection = True
            self._handshake_error = e
        else:
            self._handshake_error = None

    def handle(self):
        if self._handshake_error is None:
            super().handle()

    def log_message(self, fmt, *args):
        if os.environ.get("MOCK_VERBOSE"):
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    def read_body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        n = int(self.headers.get("content-length", 0))
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def head_bytes(self, status, headers):
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self.date_time_string()}",
                 "Server: mock-llm/1.0"]
        lines += [f"{k}: {v}" for k, v in headers]
        if self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: keep-alive")
            lines.append("Keep-Alive: timeout=30")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_plain(self, status, body, extra=()):
        data = json.dumps(body).encode()
        head = self.head_bytes(status, [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(data))), *extra])
        self.wfile.write(head + data)
        return len(data)

    def do_GET(self):
        t0 = now_ns()
        if self.path in ("/health", "/v1/health"):
            n = self.send_plain(200, {"status": "ok"})
            status = 200
        else:
            n = self.send_plain(404, {"error": "not found"})
            status = 404
        self.log_other("GET", status, t0, n)

    def log_other(self, method, status, t0, nbytes):
        write_log({"path": self.path, "method": method, "status": status,
                   "tag": self.headers.get("x-test-tag"), "client_port": self.client_address[1],
                   "t_request_received": t0, "t_response_done": now_ns(), "body_bytes": nbytes})

    def do_POST(self):
        t0 = now_ns()
        try:
            raw = self.read_body()
            req = json.loads(raw) if raw else {}
        except (ValueError, json.JSONDecodeError):
            self.close_connection = True
            n = self.send_plain(400, {"error": {"message": "bad request body"}})
            self.log_other("POST", 400, t0, n)
            return
        provider = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(
            self.path.split("?")[0])
        api = mock_apis.route(self.path) if provider is None else None
        if api is not None:  # Responses, Embeddings, Azure, Gemini, Ollama, Bedrock...
            mock_apis.serve(self, api, req, t0, write_log, now_ns)
            return
        if provider is None:
            n = self.send_plain(200, {"echo": req} if self.path.endswith("/internal/echo") else
                                {"error": "not found"})
            self.log_other("POST", 200, t0, n)
            return
        call = Call(provider, req, {k.lower(): v for k, v in self.headers.items()})
        time.sleep(call.delay_ms / 1000)
        if call.status != 200:
            nbytes = self.send_plain(call.status, error_body(call),
                                     [("Retry-After", "1"), ("x-should-retry", "true")])
        elif call.stream:
            nbytes = self.send_stream(call)
        else:
            body = openai_body(call) if provider == "openai" else anthropic_body(call)
            nbytes = self.send_plain(200, body, [("x-request-id", "req_" + call.id[-12:])])
        entry = {"path": self.path, "method": "POST", "status": call.status,
                 "tag": self.headers.get("x-test-tag"), "client_port": self.client_address[1],
                 **call.log_entry(), "t_request_received": t0, "t_response_done": now_ns(),
                 "body_bytes": nbytes}
        write_log(entry)

    def send_stream(self, call):
        """Chunked SSE: the head goes out with the first event, one chunk per event."""
        events = openai_events(call) if call.provider == "openai" else anthropic_events(call)
        head = self.head_bytes(200, [("Content-Type", "text/event-stream; charset=utf-8"),
                                     ("Cache-Control", "no-cache"),
                                     ("Transfer-Encoding", "chunked"),
                                     ("x-request-id", "req_" + call.id[-12:])])
        nbytes = 0
        big = len(events) > 50
        for i, ev in enumerate(events):
            if i and call.chunk_delay_ms and (not big or i % 50 == 0):
                time.sleep(call.chunk_delay_ms / 1000)
            data = b"%x\r\n%s\r\n" % (len(ev), ev)
            self.wfile.write(head + data if i == 0 else data)
            nbytes += len(ev)
        self.wfile.write(b"0\r\n\r\n")
        return nbytes


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global _log_file
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-dir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--plain", action="store_true",
                    help="serve plain HTTP (no TLS), like a self-hosted vLLM or Ollama")
    args = ap.parse_args()
    ca, crt, key = make_certs(args.tls_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(["http/1.1"])
    _log_file = open(args.log, "a", encoding="utf-8")
    srv = Server(("127.0.0.1", args.port), Handler)
    # The handshake runs in the handler thread (setup), not in the accepting thread.
    if not args.plain:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print(f"mock: listening {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
