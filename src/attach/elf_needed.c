// SPDX-License-Identifier: Apache-2.0
/*
 * DT_NEEDED and RUNPATH of one ELF object, read with libelf from its section headers (present
 * in every shared library and executable distributions ship, stripped or not).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attach/elf_needed.h"
#include "attach/elf_syms.h"

static void elf_needed__take(Elf *e, size_t strtab, const GElf_Dyn *d, struct elf_needed *out)
{
	const char *s = elf_strptr(e, strtab, (size_t)d->d_un.d_val);

	if (!s)
		return;
	if (d->d_tag == DT_NEEDED && out->n < ELF_NEEDED_MAX && strlen(s) < ELF_NEEDED_NAME_MAX &&
	    !strchr(s, '/'))
		snprintf(out->names[out->n++], ELF_NEEDED_NAME_MAX, "%s", s);
	/* RUNPATH wins over RPATH, as with the loader (which then ignores RPATH). */
	else if (d->d_tag == DT_RUNPATH || (d->d_tag == DT_RPATH && !out->runpath[0]))
		snprintf(out->runpath, sizeof(out->runpath), "%s", s);
}

static void elf_needed__scan(Elf *e, struct elf_needed *out)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(e, scn)) != NULL) {
		Elf_Data *data;
		GElf_Dyn d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
			if (!gelf_getdyn(data, (int)i, &d) || d.d_tag == DT_NULL)
				break;
			elf_needed__take(e, sh.sh_link, &d, out);
		}
		return;
	}
}

int elf_needed__read(const char *path, struct elf_needed *out)
{
	Elf *e;
	int fd;

	memset(out, 0, sizeof(*out));
	fd = elf_syms__open(path, &e);
	if (fd < 0)
		return fd;
	if (e)
		elf_needed__scan(e, out);
	elf_syms__close(e, fd);
	return (int)out->n;
}
