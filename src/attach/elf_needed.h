/* SPDX-License-Identifier: Apache-2.0 */
/* attach/: the libraries an ELF object asks its loader for (DT_NEEDED) and where (RUNPATH). */
#ifndef TOKENTAP_ELF_NEEDED_H
#define TOKENTAP_ELF_NEEDED_H

#include <stdint.h>

#define ELF_NEEDED_MAX 64
#define ELF_NEEDED_NAME_MAX 128
#define ELF_NEEDED_PATH_MAX 1024

struct elf_needed {
	char names[ELF_NEEDED_MAX][ELF_NEEDED_NAME_MAX]; /* "libssl.so.3", ... (longer: dropped) */
	uint32_t n;
	char runpath[ELF_NEEDED_PATH_MAX]; /* DT_RUNPATH, else DT_RPATH; "" when neither */
};

/* Reads the dynamic section of path. Returns how many names, 0 for a static or non-ELF file,
 * or -errno when it cannot be opened. */
int elf_needed__read(const char *path, struct elf_needed *out);

#endif
