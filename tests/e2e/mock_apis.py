# SPDX-License-Identifier: Apache-2.0
"""More APIs for the mock provider (mock_provider.py hands these paths over):

  POST /v1/responses                                OpenAI Responses (plain, SSE)
  POST .../embeddings                               OpenAI Embeddings
  POST /v1/completions                              OpenAI legacy Completions (plain, SSE)
  POST /openai/deployments/{d}/chat/completions     Azure OpenAI Chat Completions (plain, SSE)
  POST /v1beta/models/{m}:generateContent           Gemini
  POST /v1beta/models/{m}:streamGenerateContent     Gemini streamed: ?alt=sse as SSE, else a
                                                    JSON array sent element by element
  POST /api/chat, /api/generate                     Ollama native (NDJSON unless "stream": false)
  POST /model/{id}/converse, /converse-stream       Bedrock Converse (JSON; AWS event stream
                                                    with both CRCs, zlib.crc32)

Bodies follow the providers' API references. Token counts are deterministic, as in the chat
mocks: input = words of the prompt (+ cache tokens), output = x-mock-output-tokens or
5 + input % 11, capped by the request's max tokens; x-mock-cache-read, x-mock-cache-creation,
x-mock-reasoning (part of the output) set the rest. x-mock-status, x-mock-delay-ms,
x-mock-chunk-delay-ms work as for chat; x-mock-bedrock-exception: T ends a ConverseStream with
that exception. Each log line carries, under "want", what a GenAI span of the call must say.
"""
import itertools
import json
import os
import re
import struct
import time
import urllib.parse
import zlib

_ids = itertools.count(1)
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()

GEMINI = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent)$")
BEDROCK = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")


def route(path):
    """The API of a POST path, or None (the chat mocks or 404 handle it)."""
    p = path.split("?")[0]
    if p == "/v1/responses":
        return "responses"
    if p == "/v1/embeddings":
        return "embeddings"
    if p == "/v1/completions":
        return "completions"
    if AZURE.match(p):
        return "azure"
    if GEMINI.match(p):
        return "gemini"
    if p in ("/api/chat", "/api/generate"):
        return "ollama"
    if BEDROCK.match(p):
        return "bedrock"
    return None


def words_of(x):
    """Words in any text a request carries (strings, parts, messages), counted recursively."""
    if isinstance(x, str):
        return len(x.split())
    if isinstance(x, list):
        return sum(words_of(e) for e in x)
    if isinstance(x, dict):
        return sum(words_of(x[k]) for k in ("text", "content", "parts", "input", "prompt")
                   if k in x)
    return 0


class Call:
    def __init__(self, api, path, req, headers):
        self.api, self.path, self.req, self.h = api, path.split("?")[0], req, headers
        self.query = urllib.parse.parse_qs(path.partition("?")[2])
        num = lambda k, d=0: int(headers.get(k, d))
        self.status = num("x-mock-status", 200)
        self.delay_ms = num("x-mock-delay-ms", 30)
        self.chunk_delay_ms = num("x-mock-chunk-delay-ms", 10)
        self.cache_read = num("x-mock-cache-read")
        self.cache_creation = num("x-mock-cache-creation")
        self.reasoning = num("x-mock-reasoning")
        self.exception = headers.get("x-mock-bedrock-exception")
        self.n = next(_ids)
        getattr(self, "_parse_" + api)()
        want = num("x-mock-output-tokens", 5 + self.words_in % 11)
        cap = self.max_tokens if isinstance(self.max_tokens, int) else want
        self.output = min(want, cap)
        self.truncated = want > cap
        self.reasoning = min(self.reasoning, self.output)
        self.words = [WORDS[(self.words_in + i) % len(WORDS)] for i in range(self.output)]

    # -- requests ----------------------------------------------------------------------------

    def _parse_responses(self):
        r = self.req
        self.model, self.stream = r.get("model", ""), r.get("stream") is True
        self.max_tokens = r.get("max_output_tokens")
        self.words_in = words_of(r.get("input", "")) + words_of(r.get("instructions", ""))

    def _parse_embeddings(self):
        r = self.req
        self.model, self.stream, self.max_tokens = r.get("model", ""), False, None
        self.inputs = r.get("input") if isinstance(r.get("input"), list) else [r.get("input")]
        self.words_in = words_of(self.inputs)

    def _parse_completions(self):
        r = self.req
        self.model, self.stream = r.get("model", ""), r.get("stream") is True
        self.max_tokens = r.get("max_tokens")
        self.words_in = words_of(r.get("prompt", ""))

    def _parse_azure(self):
        r = self.req
        m = AZURE.match(self.path)
        self.deployment, self.azure_op = urllib.parse.unquote(m.group(1)), m.group(2)
        self.model = r.get("model") or self.deployment
        self.stream = r.get("stream") is True
        self.max_tokens = r.get("max_completion_tokens", r.get("max_tokens"))
        self.words_in = words_of(r.get("messages", []))
        if self.azure_op == "embeddings":
            self.inputs = r.get("input") if isinstance(r.get("input"), list) else [r.get("input")]
            self.words_in = words_of(self.inputs)

    def _parse_gemini(self):
        m = GEMINI.match(self.path)
        self.model = m.group(2)
        self.stream = m.group(3) == "streamGenerateContent"
        self.sse = self.query.get("alt") == ["sse"]
        gc = self.req.get("generationConfig") or {}
        self.max_tokens = gc.get("maxOutputTokens")
        self.words_in = words_of(self.req.get("contents", [])) + \
            words_of(self.req.get("systemInstruction", {}))

    def _parse_ollama(self):
        r = self.req
        self.chat = self.path == "/api/chat"
        self.model = r.get("model", "")
        self.stream = r.get("stream") is not False  # Ollama streams unless told not to
        self.max_tokens = (r.get("options") or {}).get("num_predict")
        self.words_in = words_of(r.get("messages", []) if self.chat else r.get("prompt", ""))

    def _parse_bedrock(self):
        m = BEDROCK.match(self.path)
        self.model = urllib.parse.unquote(m.group(1))
        self.stream = m.group(2) == "converse-stream"
        self.max_tokens = (self.req.get("inferenceConfig") or {}).get("maxTokens")
        self.words_in = words_of(self.req.get("messages", [])) + \
            words_of(self.req.get("system", []))

    # -- what the span must say ----------------------------------------------------------------

    def want(self):
        """The GenAI attributes a span of this call must carry (None: must be absent)."""
        api, chat = self.api, getattr(self, "azure_op", "chat/completions")
        op = {"embeddings": "embeddings", "completions": "text_completion",
              "gemini": "generate_content"}.get(api, "chat")
        if api == "ollama" and not self.chat or api == "azure" and chat == "completions":
            op = "text_completion"
        if api == "azure" and chat == "embeddings":
            op = "embeddings"
        w = {"operation": op, "request_model": self.model, "stream": self.stream,
             "max_tokens": self.max_tokens,
             "provider": {"gemini": "gcp.gemini", "ollama": "ollama", "bedrock": "aws.bedrock",
                          "azure": "azure.ai.openai"}.get(api, "openai"),
             "api_type": "responses" if api == "responses" else
             "chat_completions" if api == "azure" and op == "chat" else None,
             "response_model": None, "id": None, "finish": None, "input": None,
             "output": None, "cache_read": None, "cache_creation": None, "reasoning": None}
        if self.status != 200:
            return w
        w["response_model"], w["id"] = self.response_model(), self.response_id()
        if op == "embeddings":
            w["input"] = self.words_in
            return w
        if self.exception:  # a Bedrock exception mid-stream: no usage, no stop reason
            return w
        stop = {"responses": ("stop", "max_output_tokens"), "gemini": ("STOP", "MAX_TOKENS"),
                "bedrock": ("end_turn", "max_tokens")}.get(api, ("stop", "length"))
        w["finish"] = stop[self.truncated]
        w["output"] = self.output
        w["input"] = self.words_in
        if api in ("responses", "azure"):  # cached_tokens always sent, included in input
            w["cache_read"] = self.cache_read
            w["input"] += self.cache_read
        if api == "gemini" and self.cache_read:  # cachedContentTokenCount, in promptTokenCount
            w["cache_read"] = self.cache_read
            w["input"] += self.cache_read
        if api == "bedrock" and (self.cache_read or self.cache_creation):  # apart from input
            w["cache_read"], w["cache_creation"] = self.cache_read, self.cache_creation
            w["input"] += self.cache_read + self.cache_creation
        if api in ("responses", "azure", "gemini") and self.reasoning:
            w["reasoning"] = self.reasoning
        if api in ("azure", "completions") and not self.stream_usage():
            w["input"] = w["output"] = w["cache_read"] = w["reasoning"] = None
        return w

    def stream_usage(self):
        """Chat Completions streams carry usage only when the client asks for it."""
        return not self.stream or (self.req.get("stream_options") or {}).get("include_usage")

    def response_model(self):
        if self.api in ("ollama", "bedrock"):
            return self.model if self.api == "ollama" else None
        if self.api == "gemini":
            return self.model + "-001"
        if self.api == "embeddings" or getattr(self, "azure_op", "") == "embeddings":
            return self.model
        return self.model + "-2025-04-14"

    def response_id(self):
        pid = os.getpid()
        if getattr(self, "azure_op", "") == "embeddings":
            return None
        return {"responses": f"resp_mock{pid:x}x{self.n:06d}",
                "completions": f"cmpl-mock{pid:x}x{self.n:06d}",
                "azure": f"chatcmpl-az{pid:x}x{self.n:06d}",
                "gemini": f"gem{pid:x}x{self.n:06d}"}.get(self.api)

    def text(self):
        return " ".join(self.words)

    def pieces(self, per=2):
        for i in range(0, len(self.words), per):
            yield (" " if i else "") + " ".join(self.words[i:i + per])


# ---- bodies ---------------------------------------------------------------------------------

def responses_object(c, status):
    out = {"id": c.response_id(), "object": "response", "created_at": int(time.time()),
           "status": status, "error": None,
           "incomplete_details": ({"reason": "max_output_tokens"}
                                  if status == "incomplete" else None),
           "instructions": c.req.get("instructions"), "max_output_tokens": c.max_tokens,
           "model": c.response_model(), "output": [], "parallel_tool_calls": True,
           "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
           "store": True, "temperature": c.req.get("temperature", 1.0), "text":
           {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
           "truncation": "disabled", "usage": None, "user": None, "metadata": {}}
    if status in ("completed", "incomplete"):
        out["output"] = [{"type": "message", "id": f"msg_mock{c.n:06d}", "status": status,
                          "role": "assistant", "content": [{"type": "output_text",
                                                            "text": c.text(),
                                                            "annotations": []}]}]
        out["usage"] = {"input_tokens": c.words_in + c.cache_read,
                        "input_tokens_details": {"cached_tokens": c.cache_read},
                        "output_tokens": c.output,
                        "output_tokens_details": {"reasoning_tokens": c.reasoning},
                        "total_tokens": c.words_in + c.cache_read + c.output}
    return out


def responses_events(c):
    final = "incomplete" if c.truncated else "completed"
    seq = itertools.count()
    msg = f"msg_mock{c.n:06d}"

    def ev(kind, **data):
        d = {"type": kind, "sequence_number": next(seq), **data}
        return f"event: {kind}\ndata: {json.dumps(d)}\n\n".encode()

    out = [ev("response.created", response=responses_object(c, "in_progress")),
           ev("response.in_progress", response=responses_object(c, "in_progress")),
           ev("response.output_item.added", output_index=0, item={
               "id": msg, "status": "in_progress", "type": "message", "role": "assistant",
               "content": []}),
           ev("response.content_part.added", item_id=msg, output_index=0, content_index=0,
              part={"type": "output_text", "text": "", "annotations": []})]
    out += [ev("response.output_text.delta", item_id=msg, output_index=0, content_index=0,
               delta=p) for p in c.pieces()]
    out += [ev("response.output_text.done", item_id=msg, output_index=0, content_index=0,
               text=c.text()),
            ev("response.content_part.done", item_id=msg, output_index=0, content_index=0,
               part={"type": "output_text", "text": c.text(), "annotations": []}),
            ev("response.output_item.done", output_index=0,
               item=responses_object(c, final)["output"][0]),
            ev("response." + final, response=responses_object(c, final))]
    return out


def completions_chunk(c, text, finish, usage=None):
    d = {"id": c.response_id(), "object": "text_completion", "created": int(time.time()),
         "model": c.response_model(), "system_fingerprint": "fp_mock",
         "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        d["usage"] = usage
    return d


def completions_usage(c):
    return {"prompt_tokens": c.words_in, "completion_tokens": c.output,
            "total_tokens": c.words_in + c.output}


def completions_events(c):
    finish = "length" if c.truncated else "stop"
    evs = [completions_chunk(c, p, None) for p in c.pieces()]
    evs.append(completions_chunk(c, "", finish))
    if (c.req.get("stream_options") or {}).get("include_usage"):
        d = completions_chunk(c, "", None, completions_usage(c))
        d["choices"] = []
        evs.append(d)
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in evs] + [b"data: [DONE]\n\n"]


def azure_usage(c):
    return {"prompt_tokens": c.words_in + c.cache_read, "completion_tokens": c.output,
            "total_tokens": c.words_in + c.cache_read + c.output,
            "prompt_tokens_details": {"cached_tokens": c.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": c.reasoning, "audio_tokens": 0}}


def azure_chunk(c, delta, finish):
    return {"id": c.response_id(), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": c.response_model(),
            "system_fingerprint": "fp_mock", "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None,
                 "content_filter_results": {}}]}


def azure_events(c):
    finish = "length" if c.truncated else "stop"
    evs = [{"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}]
    evs.append(azure_chunk(c, {"role": "assistant", "content": ""}, None))
    evs += [azure_chunk(c, {"content": p}, None) for p in c.pieces()]
    evs.append(azure_chunk(c, {}, finish))
    if (c.req.get("stream_options") or {}).get("include_usage"):
        last = azure_chunk(c, {}, None)
        last["choices"], last["usage"] = [], azure_usage(c)
        evs.append(last)
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in evs] + [b"data: [DONE]\n\n"]


def azure_body(c):
    if c.azure_op == "embeddings":
        return embeddings_body(c)
    return {"id": c.response_id(), "object": "chat.completion", "created": int(time.time()),
            "model": c.response_model(), "system_fingerprint": "fp_mock",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": "length" if c.truncated else "stop",
                         "message": {"role": "assistant", "content": c.text()},
                         "logprobs": None, "content_filter_results": {}}],
            "usage": azure_usage(c)}


def embeddings_body(c):
    return {"object": "list", "model": c.model,
            "data": [{"object": "embedding", "index": i,
                      "embedding": [round(((i + 1) * (j + 3) % 17) / 17 - 0.5, 6)
                                    for j in range(8)]} for i in range(len(c.inputs))],
            "usage": {"prompt_tokens": c.words_in, "total_tokens": c.words_in}}


def gemini_usage(c, final):
    u = {"promptTokenCount": c.words_in + c.cache_read,
         "totalTokenCount": c.words_in + c.cache_read + (c.output if final else 0),
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": c.words_in + c.cache_read}]}
    if final:
        if c.output - c.reasoning:
            u["candidatesTokenCount"] = c.output - c.reasoning
        if c.reasoning:
            u["thoughtsTokenCount"] = c.reasoning
    if c.cache_read:
        u["cachedContentTokenCount"] = c.cache_read
    return u


def gemini_chunk(c, text, final):
    cand = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if final:
        cand["finishReason"] = "MAX_TOKENS" if c.truncated else "STOP"
    return {"candidates": [cand], "usageMetadata": gemini_usage(c, final),
            "modelVersion": c.response_model(), "responseId": c.response_id()}


def gemini_chunks(c):
    parts = list(c.pieces()) or [""]
    return [gemini_chunk(c, p, i == len(parts) - 1) for i, p in enumerate(parts)]


def ollama_line(c, text, done):
    d = {"model": c.model, "created_at": "2025-06-01T10:00:00.000000Z"}
    if c.chat:
        d["message"] = {"role": "assistant", "content": text}
    else:
        d["response"] = text
    d["done"] = done
    if done:
        d.update({"done_reason": "length" if c.truncated else "stop",
                  "total_duration": 4883583458, "load_duration": 1334875,
                  "prompt_eval_count": c.words_in, "prompt_eval_duration": 342546000,
                  "eval_count": c.output, "eval_duration": 4535599000})
        if not c.chat:
            d["context"] = [1, 2, 3]
    return d


def bedrock_usage(c):
    u = {"inputTokens": c.words_in, "outputTokens": c.output,
         "totalTokens": c.words_in + c.output + c.cache_read + c.cache_creation}
    if c.cache_read or c.cache_creation:
        u["cacheReadInputTokens"] = c.cache_read
        u["cacheWriteInputTokens"] = c.cache_creation
    return u


def bedrock_body(c):
    return {"output": {"message": {"role": "assistant", "content": [{"text": c.text()}]}},
            "stopReason": "max_tokens" if c.truncated else "end_turn",
            "usage": bedrock_usage(c), "metrics": {"latencyMs": 321}}


def es_message(headers, payload):
    """One AWS event-stream message: prelude, string headers, payload, both CRC-32s."""
    hb = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        hb += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def bedrock_events(c):
    def ev(kind, data):
        data = dict(data, p="abcdefghijklmnopqrstuvwxyz"[:5 + len(kind) % 20])  # AWS pads
        return es_message([(":event-type", kind), (":content-type", "application/json"),
                           (":message-type", "event")], json.dumps(data).encode())

    out = [ev("messageStart", {"role": "assistant"})]
    if c.exception:
        out.append(es_message([(":exception-type", c.exception),
                               (":content-type", "application/json"),
                               (":message-type", "exception")],
                              b'{"message":"Too many tokens, please wait before trying again."}'))
        return out
    out += [ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}})
            for p in c.pieces()]
    out += [ev("contentBlockStop", {"contentBlockIndex": 0}),
            ev("messageStop", {"stopReason": "max_tokens" if c.truncated else "end_turn"}),
            ev("metadata", {"usage": bedrock_usage(c), "metrics": {"latencyMs": 321}})]
    return out


def error_answer(c):
    """(status, content type, body, extra headers) of an error as each provider sends it."""
    if c.api == "gemini":
        return {"error": {"code": c.status, "message": "Resource has been exhausted (e.g. "
                          "check quota).", "status": "RESOURCE_EXHAUSTED"}}, []
    if c.api == "bedrock":
        return {"message": "Too many requests, please wait before trying again."}, \
            [("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/")]
    if c.api == "ollama":
        return {"error": f"model \"{c.model}\" not found, try pulling it first"}, []
    return {"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                      "code": "rate_limit_exceeded"}}, []


# ---- serving --------------------------------------------------------------------------------

def serve(h, api, req, t0, write_log, now_ns):
    """Answers one request on handler h (mock_provider's Handler) and logs it."""
    c = Call(api, h.path, req, {k.lower(): v for k, v in h.headers.items()})
    time.sleep(c.delay_ms / 1000)
    if c.status != 200:
        body, extra = error_answer(c)
        nbytes = h.send_plain(c.status, body, extra)
    elif not c.stream:
        body = {"responses": lambda: responses_object(
                    c, "incomplete" if c.truncated else "completed"),
                "embeddings": lambda: embeddings_body(c),
                "completions": lambda: completions_chunk(
                    c, c.text(), "length" if c.truncated else "stop", completions_usage(c)),
                "azure": lambda: azure_body(c),
                "gemini": lambda: gemini_chunk(c, c.text(), True),
                "ollama": lambda: ollama_line(c, c.text(), True),
                "bedrock": lambda: bedrock_body(c)}[api]()
        nbytes = h.send_plain(200, body)
    else:
        nbytes = send_stream(h, c)
    t_done = now_ns()  # before anything else: the span must end after this
    want = c.want()
    write_log({"path": h.path, "method": "POST", "status": c.status, "api": api,
               "tag": h.headers.get("x-test-tag"), "client_port": h.client_address[1],
               "provider": want["provider"], "model_requested": want["request_model"],
               "model_response": want["response_model"], "id": want["id"],
               "stream": c.stream, "want": want, "t_request_received": t0,
               "t_response_done": t_done, "body_bytes": nbytes})


def stream_parts(c):
    """(content type, list of body pieces) of a streamed answer."""
    if c.api == "responses":
        return "text/event-stream; charset=utf-8", responses_events(c)
    if c.api == "completions":
        return "text/event-stream; charset=utf-8", completions_events(c)
    if c.api == "azure":
        return "text/event-stream; charset=utf-8", azure_events(c)
    if c.api == "gemini" and c.sse:
        return "text/event-stream", [b"data: " + json.dumps(d).encode() + b"\r\n\r\n"
                                     for d in gemini_chunks(c)]
    if c.api == "gemini":
        chunks = [json.dumps(d, indent=2).encode() for d in gemini_chunks(c)]
        parts = [b"[" + chunks[0]] + [b"\n,\r\n" + x for x in chunks[1:]]
        return "application/json; charset=UTF-8", parts[:-1] + [parts[-1] + b"\n]"]
    if c.api == "ollama":
        lines = [ollama_line(c, p, False) for p in c.pieces()] + [ollama_line(c, "", True)]
        return "application/x-ndjson", [json.dumps(d).encode() + b"\n" for d in lines]
    return "application/vnd.amazon.eventstream", bedrock_events(c)


def send_stream(h, c):
    """Chunked: the head goes out with the first piece, then one chunk per piece."""
    ctype, parts = stream_parts(c)
    extra = [("x-amzn-RequestId", f"mock-{c.n:08d}")] if c.api == "bedrock" else []
    head = h.head_bytes(200, [("Content-Type", ctype), ("Cache-Control", "no-cache"),
                              ("Transfer-Encoding", "chunked"), *extra])
    nbytes = 0
    for i, part in enumerate(parts):
        if i and c.chunk_delay_ms:
            time.sleep(c.chunk_delay_ms / 1000)
        data = b"%x\r\n%s\r\n" % (len(part), part)
        h.wfile.write(head + data if i == 0 else data)
        nbytes += len(part)
    h.wfile.write(b"0\r\n\r\n")
    return nbytes
