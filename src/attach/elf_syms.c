// SPDX-License-Identifier: Apache-2.0
/*
 * Symbol lookup with libelf. We compute offsets ourselves instead of letting libbpf resolve a
 * func_name per probe: a `node` binary is ~100 MB and would be parsed once per probe.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdbool.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "attach/elf_syms.h"

/* A uprobe takes a file offset: map the virtual address through its executable PT_LOAD. */
static uint64_t elf_syms__file_offset(Elf *e, uint64_t vaddr)
{
	size_t n, i;
	GElf_Phdr ph;

	if (elf_getphdrnum(e, &n))
		return 0;
	for (i = 0; i < n; i++) {
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_memsz)
			return vaddr - ph.p_vaddr + ph.p_offset;
	}
	return 0;
}

/* Symbol names may carry a version suffix ("SSL_write@@OPENSSL_3.0.0") in some tables. */
static bool elf_syms__name_is(const char *sym, const char *want)
{
	size_t len = strlen(want);

	return strncmp(sym, want, len) == 0 && (sym[len] == '\0' || sym[len] == '@');
}

static void elf_syms__match(Elf *e, const GElf_Shdr *sh, Elf_Scn *scn, const char *const *names,
			    size_t n, uint64_t *offs, int *found)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count, i, k;
	GElf_Sym sym;

	if (!data || !sh->sh_entsize)
		return;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < count && *found < (int)n; i++) {
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
		    !sym.st_value || GELF_ST_TYPE(sym.st_info) != STT_FUNC)
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (!name)
			continue;
		for (k = 0; k < n; k++) {
			if (offs[k] || name[0] != names[k][0] || !elf_syms__name_is(name, names[k]))
				continue;
			offs[k] = elf_syms__file_offset(e, sym.st_value);
			if (offs[k])
				(*found)++;
		}
	}
}

static int elf_syms__scan(Elf *e, Elf64_Word type, const char *const *names, size_t n,
			  uint64_t *offs, int found)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(e, scn)) != NULL && found < (int)n) {
		if (gelf_getshdr(scn, &sh) && sh.sh_type == type)
			elf_syms__match(e, &sh, scn, names, n, offs, &found);
	}
	return found;
}

int elf_syms__lookup(const char *path, const char *const *names, size_t n, uint64_t *offs)
{
	int fd, found = 0;
	Elf *e;

	memset(offs, 0, n * sizeof(*offs));
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (e && elf_kind(e) == ELF_K_ELF) {
		found = elf_syms__scan(e, SHT_DYNSYM, names, n, offs, 0);
		found = elf_syms__scan(e, SHT_SYMTAB, names, n, offs, found);
	}
	if (e)
		elf_end(e);
	close(fd);
	return found;
}
