/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OTLP protobuf encoding, separate from the transport so tests can check the bytes alone.
 */
#ifndef TOKENTAP_EXPORT_OTLP_ENCODE_H
#define TOKENTAP_EXPORT_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "span/span.h"

#ifndef TOKENTAP_VERSION
#define TOKENTAP_VERSION "0.1.0"
#endif
#define OTLP_SCOPE_NAME "tokentap"

/*
 * Packs spans[0..n) as one ExportTraceServiceRequest: one ResourceSpans per distinct resource
 * (by pointer), in order of first appearance, each with one ScopeSpans "tokentap". Strings that
 * are not valid UTF-8 are repaired (receivers reject them). Returns a malloc'd buffer and its
 * size in *len, or NULL when out of memory.
 */
uint8_t *otlp__encode(const struct span *const *spans, size_t n, size_t *len);

#endif
