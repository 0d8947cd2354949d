#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Raw TLS peers for tokentap's reliability tests (libssl.so underneath, so both are traced).

Client:  raw_tls.py client --port P --cafile CA [--request FILE] [--garbage N] [--repeat N]
                    [--read-max N] [--read-timeout S] [--hold] [--conns N]
  writes the request bytes of FILE (or N random bytes), --repeat times, on each of --conns
  connections, reads
  until the peer closes, --read-max bytes, or --read-timeout seconds, prints one JSON line
  {"pid", "got", "error"} per connection (and "ready" with --hold, then sleeps until killed).
Server:  raw_tls.py server --cert PEM --key PEM --behaviour NAME
  prints "raw_tls: listening PORT"; reads each connection's request head (and the body its
  Content-Length announces), then misbehaves:
    reset        a response head and half its body, then a TCP reset
    cut          a response head and half its body, then close_notify and FIN (half-close:
                 the client still writes)
    close_body   a complete response whose body is delimited by the close (no length)
    hang         a streamed response head and three events, then nothing, connection open
    huge_head    a response with 256 KiB of header fields
    endless      a chunked streamed response that never ends (until the client goes away)
    silent       reads the request and answers nothing
"""
import argparse
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

OPENAI_EVENT = (b'data: {"id":"chatcmpl-rel","object":"chat.completion.chunk","model":"gpt-4o",'
                b'"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}\n\n')
JSON_BODY = (b'{"id":"chatcmpl-rel","object":"chat.completion","model":"gpt-4o",'
             b'"choices":[{"index":0,"message":{"role":"assistant","content":"'
             + b"x" * 4000 + b'"},"finish_reason":"stop"}],'
             b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}')


def read_request(conn):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while len(body) < n:
        d = conn.recv(65536)
        if not d:
            break
        body += d
    return head


def serve_one(conn, behaviour):
    if read_request(conn) is None:
        return
    if behaviour == "silent":
        time.sleep(3600)
    elif behaviour in ("reset", "cut"):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(JSON_BODY)).encode() + b"\r\n\r\n" + JSON_BODY[:len(JSON_BODY) // 2])
        time.sleep(0.2)
        if behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        conn = conn.unwrap()  # close_notify: the TLS half-close
        conn.shutdown(socket.SHUT_WR)
        time.sleep(2)
    elif behaviour == "close_body":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close"
                     b"\r\n\r\n" + JSON_BODY)
    elif behaviour == "hang":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            conn.sendall(b"%x\r\n%s\r\n" % (len(OPENAI_EVENT), OPENAI_EVENT))
        time.sleep(3600)
    elif behaviour == "huge_head":
        fields = b"".join(b"X-Filler-%06d: %s\r\n" % (i, b"v" * 100) for i in range(2400))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + fields
                     + b"Content-Length: " + str(len(JSON_BODY)).encode() + b"\r\n\r\n"
                     + JSON_BODY)
    elif behaviour == "endless":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(OPENAI_EVENT) * 64, OPENAI_EVENT * 64)
        while True:
            conn.sendall(chunk)
    conn.close()


def server(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    print(f"raw_tls: listening {ls.getsockname()[1]}", flush=True)

    def one(sock):
        try:
            with ctx.wrap_socket(sock, server_side=True) as conn:
                serve_one(conn, a.behaviour)
        except (OSError, ssl.SSLError, ValueError):
            pass

    while True:
        sock, _ = ls.accept()
        threading.Thread(target=one, args=(sock,), daemon=True).start()


def client_one(a, ctx, payload):
    out = {"pid": os.getpid(), "got": 0, "error": None}
    conn = None
    try:
        sock = socket.create_connection(("127.0.0.1", a.port))
        conn = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        for _ in range(a.repeat):
            conn.sendall(payload)
        conn.settimeout(a.read_timeout)
        while a.read_max <= 0 or out["got"] < a.read_max:
            d = conn.recv(16384)
            if not d:
                break
            out["got"] += len(d)
    except (OSError, ssl.SSLError) as e:
        out["error"] = type(e).__name__
    return out, conn


def client(a):
    ctx = ssl.create_default_context(cafile=a.cafile)
    payload = open(a.request, "rb").read() if a.request else os.urandom(a.garbage)
    keep = []
    for _ in range(a.conns):
        out, conn = client_one(a, ctx, payload)
        keep.append(conn)
        if not a.hold:
            print(json.dumps(out), flush=True)
    if a.hold:
        print("ready", flush=True)
        time.sleep(3600)
    for c in keep:
        if c is not None:
            c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("client", "server"))
    ap.add_argument("--port", type=int)
    ap.add_argument("--cafile")
    ap.add_argument("--request")
    ap.add_argument("--garbage", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="write the payload this many times")
    ap.add_argument("--read-max", type=int, default=0)
    ap.add_argument("--read-timeout", type=float, default=10)
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--behaviour", default="silent")
    a = ap.parse_args()
    (server if a.role == "server" else client)(a)


if __name__ == "__main__":
    sys.exit(main())
