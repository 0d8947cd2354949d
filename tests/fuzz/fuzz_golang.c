// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/attach/golang.c
// FUZZ_LIBS: -lcapstone -lbpf
/*
 * Go binary discovery on hostile files: the input is read as a .gopclntab image, as amd64 code
 * (RET finding), and as a whole file handed to golang__discover through a memfd (ELF headers,
 * sections, symbols, the pclntab search). Whatever is found must lie inside the input; a
 * violation aborts.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>

#include "attach/golang.h"

static const char *const names[] = {"crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read",
				    "runtime.main"};

static void fuzz__pclntab(const uint8_t *data, size_t size)
{
	struct golang_range r[3];
	int n = golang__pclntab_find(data, size, 0x401000, names, 3, r), i;

	for (i = 0; n > 0 && i < 3; i++) {
		if (r[i].start && r[i].end <= r[i].start)
			abort();
	}
}

static int is_prefix(uint8_t b)
{
	return (b >= 0x40 && b <= 0x4f) ||
	       memchr("\x26\x2e\x36\x3e\x64\x65\x66\x67\xf0\xf2\xf3", b, 11) != NULL;
}

static void fuzz__code(const uint8_t *data, size_t size)
{
	uint64_t *rets;
	int n = golang__ret_offsets(data, size, 0, &rets), i;

	/* Inside the code, in order, each at a return: C3 or C2, after any prefixes. */
	for (i = 0; i < n; i++) {
		size_t at = rets[i];

		if (at >= size || (i && rets[i] <= rets[i - 1]))
			abort();
		while (at < size && is_prefix(data[at]))
			at++;
		if (at >= size || (data[at] != 0xc3 && data[at] != 0xc2))
			abort();
	}
	free(rets);
}

static void fuzz__file(const uint8_t *data, size_t size)
{
	struct golang_plan plan;
	char path[64];
	int fd = memfd_create("fuzz_golang", MFD_CLOEXEC), k;
	uint32_t i;

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (golang__discover(path, &plan) > 0) {
			for (k = 0; k < GOLANG_FN__COUNT; k++) {
				if (plan.fn[k].entry >= size)
					abort();
				for (i = 0; i < plan.fn[k].nrets; i++) {
					if (plan.fn[k].rets[i] >= size)
						abort();
				}
			}
			golang__plan_free(&plan);
		}
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz__pclntab(data, size);
	fuzz__code(data, size < 4096 ? size : 4096);
	fuzz__file(data, size);
	return 0;
}
