#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A GnuTLS client of the mock provider: Debian's libcurl-gnutls.so.4, unmodified, driven
through ctypes (Debian ships no curl binary built on it). TLS goes through gnutls_record_send
and gnutls_record_recv; the peer is verified against the mock's CA.

Usage: gnutls_client.py --base https://127.0.0.1:PORT --cafile CA --spec JSON
The spec: {"calls": [CALL, ...]} as in urllib_client.py; each call on its own connection.
Latency is libcurl's own: total time minus the time the TLS handshake was done (the request is
written right after), time to first chunk likewise from the first response byte. Prints one
JSON line per call; exits nonzero when the library is not built on GnuTLS.
"""
import argparse
import ctypes as C
import json
import os
import sys
import threading

import urllib_client as base

CURLOPT_URL = 10002
CURLOPT_CAINFO = 10065
CURLOPT_POSTFIELDS = 10015
CURLOPT_POSTFIELDSIZE = 60
CURLOPT_HTTPHEADER = 10023
CURLOPT_HTTP_VERSION = 84
CURLOPT_WRITEFUNCTION = 20011
CURL_HTTP_VERSION_1_1 = 2
CURLINFO_RESPONSE_CODE = 0x200002
CURLINFO_TOTAL_TIME = 0x300003
CURLINFO_STARTTRANSFER_TIME = 0x300011
CURLINFO_APPCONNECT_TIME = 0x300021

WRITE_CB = C.CFUNCTYPE(C.c_size_t, C.c_void_p, C.c_size_t, C.c_size_t, C.c_void_p)


def load():
    lib = C.CDLL("libcurl-gnutls.so.4")
    lib.curl_version.restype = C.c_char_p
    lib.curl_easy_init.restype = C.c_void_p
    lib.curl_slist_append.restype = C.c_void_p
    lib.curl_slist_append.argtypes = [C.c_void_p, C.c_char_p]
    lib.curl_easy_perform.argtypes = [C.c_void_p]
    lib.curl_easy_cleanup.argtypes = [C.c_void_p]
    lib.curl_slist_free_all.argtypes = [C.c_void_p]
    lib.curl_easy_strerror.restype = C.c_char_p
    return lib


def info_double(lib, h, what):
    v = C.c_double()
    lib.curl_easy_getinfo(C.c_void_p(h), C.c_int(what), C.byref(v))
    return v.value


def perform(lib, args, call):
    method, path, data, headers = base.build_request(call)
    body = bytearray()
    sink = WRITE_CB(lambda p, size, n, _: body.extend(C.string_at(p, size * n)) or size * n)
    h = lib.curl_easy_init()
    hdrs = None
    for k, v in list(headers.items()) + [("Expect", "")]:
        hdrs = lib.curl_slist_append(hdrs, f"{k}:{' ' + v if v else ''}".encode())

    def opt(k, v):
        lib.curl_easy_setopt(C.c_void_p(h), C.c_int(k), v)

    opt(CURLOPT_URL, (args.base + path).encode())
    opt(CURLOPT_CAINFO, args.cafile.encode())
    opt(CURLOPT_HTTP_VERSION, C.c_long(CURL_HTTP_VERSION_1_1))
    opt(CURLOPT_HTTPHEADER, C.c_void_p(hdrs))
    opt(CURLOPT_POSTFIELDS, C.c_char_p(data))
    opt(CURLOPT_POSTFIELDSIZE, C.c_long(len(data)))
    opt(CURLOPT_WRITEFUNCTION, sink)
    rc = lib.curl_easy_perform(h)
    if rc != 0:
        raise RuntimeError(f"curl_easy_perform: {lib.curl_easy_strerror(rc).decode()}")
    code = C.c_long()
    lib.curl_easy_getinfo(C.c_void_p(h), C.c_int(CURLINFO_RESPONSE_CODE), C.byref(code))
    tls_done = info_double(lib, h, CURLINFO_APPCONNECT_TIME)
    first = info_double(lib, h, CURLINFO_STARTTRANSFER_TIME)
    total = info_double(lib, h, CURLINFO_TOTAL_TIME)
    lib.curl_easy_cleanup(h)  # gnutls_deinit: the connection closes
    lib.curl_slist_free_all(hdrs)
    return code.value, bytes(body), (total - tls_done) * 1000, (first - tls_done) * 1000


def observe(call, status, raw):
    obs = base.Observed(call["provider"])
    if call.get("stream") and status == 200:
        for event in raw.split(b"\n\n"):
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    obs.take(json.loads(line[5:]))
    elif status == 200:
        obs.take(json.loads(raw))
    return obs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    lib = load()
    version = lib.curl_version().decode()
    if "GnuTLS" not in version:
        sys.exit(f"gnutls_client: libcurl-gnutls.so.4 is not built on GnuTLS: {version}")
    for call in json.loads(args.spec)["calls"]:
        status, raw, latency, first = perform(lib, args, call)
        obs = observe(call, status, raw)
        line = {"client": "python-libcurl-gnutls", "pid": os.getpid(),
                "tid": threading.get_native_id(), "exe": os.readlink("/proc/self/exe"),
                "tag": call.get("tag"), "raw": False, "provider": call["provider"],
                "request_model": call.get("model"), "stream": bool(call.get("stream")),
                "max_tokens": call.get("sent_max_tokens"),
                "temperature": call.get("temperature"), "loose_latency": False,
                "status": status, "id": obs.id, "model": obs.model,
                "finish_reason": obs.finish_reason, "input_tokens": obs.input_tokens,
                "output_tokens": obs.output_tokens, "cache_read": obs.cache_read,
                "cache_creation": obs.cache_creation, "content_len": obs.content_len,
                "latency_ms": latency, "tls_library": version}
        if call.get("stream"):
            line["ttft_ms"] = first
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
