/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stream of JSON objects, handed over one at a time as each completes: newline-delimited JSON
 * (Ollama's application/x-ndjson) and a top-level JSON array sent element by element (Gemini's
 * streamGenerateContent without alt=sse). Between objects, whitespace, one opening '[', commas
 * and the closing ']' are skipped. Anything else there, or an object that does not parse, is a
 * counted error after which the reader skips to the next line. One object is capped at
 * JSEQ_MAX_OBJECT bytes (json-c keeps only its tokener state, not the bytes).
 */
#ifndef TOKENTAP_LLM_JSEQ_H
#define TOKENTAP_LLM_JSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define JSEQ_MAX_OBJECT (1024u * 1024)
#define JSEQ_MAX_DEPTH 128

/* `obj` is a JSON object, owned by the reader: valid during the callback only. */
typedef void (*jseq_cb)(void *ctx, struct json_object *obj, uint64_t ts_ns);

struct jseq_stats {
	uint64_t objects;
	uint64_t errors;    /* bytes that are not a JSON object where one was expected */
	uint64_t oversized; /* objects past JSEQ_MAX_OBJECT */
};

struct jseq;

struct jseq *jseq__new(jseq_cb cb, void *ctx);
void jseq__feed(struct jseq *j, const uint8_t *data, size_t len, uint64_t ts_ns);
/* Bytes were lost: the object in progress is dropped, reading resumes at the next line. */
void jseq__gap(struct jseq *j);
/* End of stream: true (and counted as an error) when an object was left unfinished. */
bool jseq__end(struct jseq *j);
const struct jseq_stats *jseq__stats(const struct jseq *j);
void jseq__free(struct jseq *j);

#endif
