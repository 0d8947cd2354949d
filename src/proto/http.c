// SPDX-License-Identifier: Apache-2.0
/* Helpers shared by the HTTP parsers (http1.c now, http2.c later). */
#include <string.h>
#include <strings.h>

#include "proto/http.h"

const struct http_header *http_head__find(const struct http_head *h, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < h->num_headers; i++) {
		const struct http_header *hd = &h->headers[i];

		if (hd->name_len == n && strncasecmp(hd->name, name, n) == 0)
			return hd;
	}
	return NULL;
}

const char *http2__error_name(uint32_t code)
{
	static const char *const names[] = {
	    "NO_ERROR",
	    "PROTOCOL_ERROR",
	    "INTERNAL_ERROR",
	    "FLOW_CONTROL_ERROR",
	    "SETTINGS_TIMEOUT",
	    "STREAM_CLOSED",
	    "FRAME_SIZE_ERROR",
	    "REFUSED_STREAM",
	    "CANCEL",
	    "COMPRESSION_ERROR",
	    "CONNECT_ERROR",
	    "ENHANCE_YOUR_CALM",
	    "INADEQUATE_SECURITY",
	    "HTTP_1_1_REQUIRED",
	};

	return code < sizeof(names) / sizeof(names[0]) ? names[code] : "UNKNOWN";
}
