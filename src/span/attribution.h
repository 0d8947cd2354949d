/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The caller's identity and trace context on a span: the tokentap.* attribution attributes
 * and, when the request carried a W3C traceparent, its trace id and parent span id.
 */
#ifndef TOKENTAP_SPAN_ATTRIBUTION_H
#define TOKENTAP_SPAN_ATTRIBUTION_H

#include "../llm/llm.h"
#include "span.h"

void span__add_attribution(struct span *s, const struct llm_call *c);

#endif
