/* SPDX-License-Identifier: Apache-2.0 */
/*
 * llm/: an HTTP exchange -> an LLM call. Implements struct http_sink for one connection,
 * recognises LLM API calls (by Host/SNI, then by path and body shape for unknown hosts),
 * extracts model, tokens, ids, finish reasons and the first-chunk time from JSON and SSE
 * bodies, and emits one struct llm_call per call. Non-LLM exchanges are dropped at on_request
 * (NULL handle), so they cost nothing more.
 */
#ifndef TOKENTAP_LLM_H
#define TOKENTAP_LLM_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto/http.h"

#define LLM_STR 256
#define LLM_MAX_FINISH 8
#define LLM_MAX_CHUNK_GAPS 4096 /* chunk gaps kept per call (16 KiB); the rest are folded */

enum llm_provider {
	LLM_PROVIDER_UNKNOWN = 0,
	LLM_PROVIDER_OPENAI = 1,    /* gen_ai.provider.name "openai" */
	LLM_PROVIDER_ANTHROPIC = 2, /* "anthropic" */
	LLM_PROVIDER_OPENAI_COMPATIBLE = 3, /* unknown host speaking the OpenAI shape: "openai"
					     * with tokentap.provider.detected_by = "path" */
	LLM_PROVIDER_AZURE_OPENAI = 4, /* "azure.ai.openai" */
	LLM_PROVIDER_GEMINI = 5,       /* "gcp.gemini" (generativelanguage.googleapis.com) */
	LLM_PROVIDER_VERTEX_AI = 6,    /* "gcp.vertex_ai" (aiplatform.googleapis.com) */
	LLM_PROVIDER_BEDROCK = 7,      /* "aws.bedrock" */
	LLM_PROVIDER_OLLAMA = 8,       /* "ollama" (native API) */
	LLM_PROVIDER_OTHER = 9,        /* a known host of another provider: see provider_name */
};

/* Facts about the connection that the conn/ stage learns, possibly after the first exchange
 * started: llm/ reads them when a call finishes. Owned and updated by conn/. */
struct llm_conn_info {
	uint32_t pid;
	uint32_t last_tid;      /* thread of the most recent write */
	uint64_t conn_id;
	bool has_peer;
	char peer_addr[64];     /* numeric address of the server, from the socket */
	uint16_t peer_port;
	int tls_source;         /* enum tt_tls_source; 2 (TT_SRC_PLAINTEXT) for plain HTTP */
	char sni[LLM_STR];      /* server name from the TLS handshake when known, else "" */
	uint64_t gap_bytes;     /* size of the latest gap in the connection's streams */
};

struct llm_call {
	enum llm_provider provider;
	const char *provider_name;  /* gen_ai.provider.name, static string */
	const char *detected_by;    /* "host", "path" or "shape" */
	char operation[32];         /* gen_ai.operation.name: "chat" */
	char request_model[LLM_STR];
	char response_model[LLM_STR];
	char response_id[LLM_STR];
	char finish_reasons[LLM_MAX_FINISH][32];
	int n_finish_reasons;
	int64_t input_tokens;       /* -1 when unknown; includes cached input (conventions' meaning) */
	int64_t output_tokens;      /* -1 when unknown */
	int64_t cache_read_tokens;  /* -1 when unknown */
	int64_t cache_creation_tokens;
	const char *api_type;       /* openai.api.type ("chat_completions", "responses") or NULL */
	int64_t max_tokens;         /* -1 when not sent */
	double temperature;
	bool has_temperature;
	int stream;                 /* 1 streamed, 0 not, -1 unknown */

	uint64_t start_ns;          /* monotonic: first byte of the request written */
	uint64_t end_ns;            /* monotonic: last byte of the response read (or abort time) */
	uint64_t first_chunk_ns;    /* monotonic: first streamed chunk with content; 0 if none */

	char server_address[LLM_STR];
	int server_port;
	char method[16];
	char path[LLM_STR];         /* without the query string */
	int status_code;            /* 0 when no response */
	char error_type[64];        /* "" when the call succeeded */

	uint32_t pid, tid;
	uint64_t conn_id;
	int tls_source;             /* copied from llm_conn_info.tls_source when the call ends */
	bool partial;               /* bytes of this call were lost in capture */
	uint64_t lost_bytes;

	/* Cost and attribution (issue 4; filled by llm/tenant.c and the shapes). */
	int64_t reasoning_tokens;   /* -1 when unknown; part of output_tokens (OpenAI) */
	char api_key_fingerprint[17]; /* 16 hex digits of HMAC-SHA256(key); "" when no key */
	char openai_organization[LLM_STR];
	char openai_project[LLM_STR];
	char user[LLM_STR];         /* request body user (OpenAI) or metadata.user_id (Anthropic) */
	char tenant[LLM_STR];       /* value of the first --tenant-header present */
	bool has_trace_parent;      /* a valid W3C traceparent came with the request */
	uint8_t trace_id[16];       /* from traceparent */
	uint8_t parent_span_id[8];

	/* Audit (issue 6): where the socket really went, and content when --capture-content. */
	char peer_address[64];      /* numeric address the socket is connected to; "" unknown */
	int peer_port;              /* 0 unknown */
	const char *input_messages; /* gen_ai.input.messages JSON, redacted and capped; NULL unless
				     * captured; valid during the callback only */
	const char *output_messages;     /* gen_ai.output.messages */
	const char *system_instructions; /* gen_ai.system_instructions */
	char tls_server_name[LLM_STR];   /* SNI of the connection (tls.client.server_name); "" */

	/* HTTP/2 RST_STREAM or GOAWAY that ended the call: the error code's name ("CANCEL") and
	 * who sent it ("client" or "server"); NULL otherwise. Static strings. */
	const char *http2_error_code;
	const char *http2_error_sender;
	/* Streams: seconds between consecutive output chunks (SSE events with data, NDJSON
	 * objects, event-stream messages), in arrival order; valid during the callback only.
	 * Past LLM_MAX_CHUNK_GAPS a call's gaps are folded: counted and summed. */
	const float *chunk_gaps;
	uint32_t n_chunk_gaps;
	uint32_t chunk_gaps_folded;
	double chunk_gaps_folded_s;
};

typedef void (*llm_call_cb)(void *ctx, const struct llm_call *call);

struct llm_stats {
	uint64_t calls;
	uint64_t non_llm_exchanges;
	uint64_t json_errors;     /* bodies that did not parse as the provider's JSON */
	uint64_t body_overflow;   /* bodies past LLM_MAX_BODY (call marked partial) */
	uint64_t undecoded_bodies; /* responses with a Content-Encoding we do not decode: the
				    * call is reported without token fields */
	uint64_t framing_errors;  /* AWS event-stream messages dropped (CRC, malformed, oversized)
				   * or cut short */
};

/* Largest request or non-streamed response body buffered for JSON extraction. */
#define LLM_MAX_BODY (8u * 1024 * 1024)

struct llm_conn;

/* `info` stays owned by the caller and must outlive the llm_conn. */
struct llm_conn *llm_conn__new(const struct llm_conn_info *info, llm_call_cb cb, void *cb_ctx);
/* The sink to give the HTTP parser of this connection. */
const struct http_sink *llm_conn__sink(struct llm_conn *lc);
void llm_conn__free(struct llm_conn *lc);
/* Packs exchanges that only wait for their response (their request parsed): a connection
 * with a call in flight then holds a few hundred bytes instead of the whole call. Call about
 * once a second; the next byte of the response unpacks it. */
void llm_conn__trim(struct llm_conn *lc);
/* Process-wide counters (all connections). */
const struct llm_stats *llm__stats(void);

#endif
