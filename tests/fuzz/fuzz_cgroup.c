// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/span/resource.c src/span/attr.c
// FUZZ_LIBS:
/*
 * /proc/<pid>/cgroup files (span/resource.c, the one cgroup parser): any text, whole and cut at
 * a point chosen from its first byte. Ids found are always well formed (64 lowercase hex; a
 * lowercase 8-4-4-4-12 uuid), and a cut file never yields an id the whole file does not have
 * unless the cut made a shorter, valid one of its own (so only the shape is checked there).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "span/builder.h"

static void check_ids(const struct cgroup_ids *ids)
{
	size_t n = strlen(ids->container_id);

	if (n && n != 64)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)ids->container_id[i]) ||
		    isupper((unsigned char)ids->container_id[i]))
			abort();
	n = strlen(ids->pod_uid);
	if (n && n != 36)
		abort();
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? ids->pod_uid[i] != '-'
			 : !isxdigit((unsigned char)ids->pod_uid[i]) ||
			       isupper((unsigned char)ids->pod_uid[i]))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cgroup_ids ids;
	char *text;
	size_t cut;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if ((cgroup__parse(text, &ids) >= 0) != (ids.container_id[0] || ids.pod_uid[0]))
		abort();
	check_ids(&ids);
	cut = size ? data[0] % (size + 1) : 0;
	text[cut] = '\0';
	cgroup__parse(text, &ids);
	check_ids(&ids);
	free(text);
	return 0;
}
