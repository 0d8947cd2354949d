// SPDX-License-Identifier: Apache-2.0
/*
 * The user-space pipeline after capture: conn/ -> http1 -> llm/ -> sse, fed chunks whose
 * direction, size, loss and connection the fuzzer chooses. Input: a sequence of operations,
 * each one byte of opcode then, for data, one byte of length and that many bytes.
 */
// FUZZ_SOURCES: src/conn/conn.c src/proto/http1.c src/proto/http.c src/proto/sse.c src/llm/llm.c src/llm/openai.c src/llm/anthropic.c src/llm/tenant.c src/llm/content.c src/llm/detect.c src/llm/gemini.c src/llm/ollama.c src/llm/bedrock.c src/llm/jseq.c src/proto/eventstream.c src/proto/decode.c src/util/redact.c src/proto/http2.c src/proto/parser.c src/util/zpack.c
// FUZZ_LIBS: -ljson-c -lcrypto -lz -lbrotlidec -lzstd -lnghttp2
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conn/conn.h"

static void on_call(void *ctx, const struct llm_call *c)
{
	/* Touch every string so ASan sees an unterminated one. */
	size_t n = strlen(c->request_model) + strlen(c->response_model) + strlen(c->response_id) +
		   strlen(c->path) + strlen(c->server_address) + strlen(c->error_type);
	*(size_t *)ctx += n + 1;
}

enum { OP_DATA = 0, OP_LOST = 1, OP_CLOSE = 2, OP_SOCK = 3, OP_EXIT = 4, OP_TICK = 5, OP_IGNORE = 6,
       OP_SYNC = 7 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn_opts o = { .max_conns = 4, .request_timeout_ns = 5000000000ull };
	uint64_t seq[4][2] = {}, now = 1;
	size_t sink = 0, i = 0;
	struct conn_table *t = conn_table__new(&o, on_call, &sink);

	while (i < size) {
		uint8_t op = data[i++];
		int conn = (op >> 3) & 3, dir = (op >> 5) & 1;
		struct cap_conn_key key = { .pid = 1 + (conn & 1), .conn_id = (uint64_t)conn + 1 };

		now += 1000000;
		switch (op & 7) {
		case OP_DATA:
		case OP_LOST: {
			size_t len = i < size ? data[i++] : 0;
			struct cap_chunk c = { .key = key, .tid = 9, .dir = dir, .seq = seq[conn][dir],
					       .call_start_ns = now, .call_end_ns = now + 10 };

			if (len > size - i)
				len = size - i;
			c.len = c.call_len = (uint32_t)len;
			c.data = data + i;
			i += len;
			seq[conn][dir] += len;
			if ((op & 7) == OP_DATA)
				conn_table__on_chunk(t, &c);
			break;
		}
		case OP_CLOSE: {
			struct cap_close cl = { .key = key, .ts_ns = now, .write_seq = seq[conn][0],
						.read_seq = seq[conn][1] };
			conn_table__on_close(t, &cl);
			seq[conn][0] = seq[conn][1] = 0;
			break;
		}
		case OP_SOCK: {
			struct cap_sock s = { .key = key, .ts_ns = now, .family = 2, .dport = 443 };
			conn_table__on_sock(t, &s);
			break;
		}
		case OP_IGNORE:
		case OP_SYNC: {
			/* the kernel's positions now: after OP_LOST they report the loss */
			struct cap_close cl = { .key = key, .ts_ns = now, .write_seq = seq[conn][0],
						.read_seq = seq[conn][1] };
			if ((op & 7) == OP_IGNORE)
				conn_table__on_ignore(t, &cl);
			else
				conn_table__on_sync(t, &cl);
			break;
		}
		case OP_EXIT:
			conn_table__on_exit(t, key.pid, now);
			memset(seq, 0, sizeof(seq));
			break;
		default:
			conn_table__tick(t, now + 10000000000ull);
		}
	}
	conn_table__close_all(t, now);
	conn_table__free(t);
	return 0;
}
