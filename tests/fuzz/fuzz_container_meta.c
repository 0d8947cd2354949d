// SPDX-License-Identifier: Apache-2.0
/*
 * Container runtime state files (audit/container_meta.c) are written by whoever owns the
 * container: parse anything as each runtime's file, then match label selectors against what
 * came out. Strings stay within their buffers and labels within their bound.
 */
// FUZZ_SOURCES: src/audit/container_meta.c
// FUZZ_LIBS: -ljson-c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/container_meta.h"

static const char *const runtimes[] = {"containerd", "cri-o", "docker"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct container_info ci = {0};

	if (size < 1)
		return 0;
	if (container_info__parse(runtimes[data[0] % 3], (const char *)data + 1, size - 1, &ci)) {
		container_info__clear(&ci);
		return 0;
	}
	if (strnlen(ci.image, sizeof(ci.image)) == sizeof(ci.image) ||
	    strnlen(ci.name, sizeof(ci.name)) == sizeof(ci.name) ||
	    strnlen(ci.pod_uid, sizeof(ci.pod_uid)) == sizeof(ci.pod_uid) ||
	    ci.n_labels > CONTAINER_MAX_LABELS)
		abort();
	for (size_t i = 0; i < ci.n_labels; i++)
		if (!strchr(ci.labels[i], '='))
			abort();
	container_info__has_label(&ci, "team=pay*");
	container_info__has_label(&ci, "app");
	container_info__clear(&ci);
	return 0;
}
