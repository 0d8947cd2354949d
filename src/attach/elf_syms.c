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

uint64_t elf_syms__file_offset(Elf *e, uint64_t vaddr)
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

/* Records sym if it is a defined function with one of the wanted names. */
static void elf_syms__consider(Elf *e, const GElf_Sym *sym, const char *name,
			       const char *const *names, size_t n, uint64_t *offs, int *found)
{
	size_t k;

	if (sym->st_shndx == SHN_UNDEF || !sym->st_value || GELF_ST_TYPE(sym->st_info) != STT_FUNC)
		return;
	for (k = 0; k < n; k++) {
		if (offs[k] || name[0] != names[k][0] || !elf_syms__name_is(name, names[k]))
			continue;
		offs[k] = elf_syms__file_offset(e, sym->st_value);
		if (offs[k])
			(*found)++;
	}
}

static void elf_syms__match(Elf *e, const GElf_Shdr *sh, Elf_Scn *scn, const char *const *names,
			    size_t n, uint64_t *offs, int *found)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count, i;
	GElf_Sym sym;

	if (!data || !sh->sh_entsize)
		return;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < count && *found < (int)n; i++) {
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym))
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (name)
			elf_syms__consider(e, &sym, name, names, n, offs, found);
	}
}

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

/* The symbol chain of one name in a .gnu.hash table (every index checked against the file). */
static void elf_syms__gnu_chain(Elf *e, const uint32_t *buckets, const uint32_t *chain,
				size_t nbuckets, size_t nchain, uint32_t symoffset,
				Elf_Data *dynsym, const GElf_Shdr *dsh, const char *const *names,
				size_t n, uint64_t *offs, int *found)
{
	size_t nsyms = dsh->sh_entsize ? dsh->sh_size / dsh->sh_entsize : 0, k;

	for (k = 0; k < n; k++) {
		uint32_t h = gnu_hash(names[k]), idx = buckets[h % nbuckets];

		for (; idx >= symoffset && idx - symoffset < nchain && idx < nsyms; idx++) {
			uint32_t ch = chain[idx - symoffset];
			const char *name;
			GElf_Sym sym;

			if ((ch | 1) == (h | 1) && gelf_getsym(dynsym, (int)idx, &sym) &&
			    (name = elf_strptr(e, dsh->sh_link, sym.st_name)) != NULL)
				elf_syms__consider(e, &sym, name, names, n, offs, found);
			if (ch & 1)
				break;
		}
	}
}

/*
 * Exported names through .gnu.hash: a few probes per name instead of a walk over every symbol
 * (node exports ~100k; the walk cost 23 ms on the exec path, where a new process is racing us
 * to its first SSL_write). Returns false when the file has no usable table.
 */
static bool elf_syms__gnu_hash(Elf *e, const char *const *names, size_t n, uint64_t *offs,
			       int *found)
{
	const unsigned char host_data =
	    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
	Elf_Scn *scn = NULL, *dscn;
	GElf_Shdr sh, dsh;
	GElf_Ehdr eh;
	Elf_Data *raw, *dynsym;
	const uint32_t *w;
	size_t words, bloom_words;

	if (!gelf_getehdr(e, &eh) || eh.e_ident[EI_DATA] != host_data)
		return false;
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_HASH)
			break;
	}
	if (!scn || !(raw = elf_rawdata(scn, NULL)) || !raw->d_buf || raw->d_size < 16 ||
	    !(dscn = elf_getscn(e, sh.sh_link)) || !gelf_getshdr(dscn, &dsh) ||
	    dsh.sh_type != SHT_DYNSYM || !(dynsym = elf_getdata(dscn, NULL)))
		return false;
	w = raw->d_buf;
	words = raw->d_size / 4;
	bloom_words = (size_t)w[2] * (eh.e_ident[EI_CLASS] == ELFCLASS64 ? 2 : 1);
	if (!w[0] || w[2] > words || 4 + bloom_words + w[0] > words)
		return false;
	elf_syms__gnu_chain(e, w + 4 + bloom_words, w + 4 + bloom_words + w[0], w[0],
			    words - 4 - bloom_words - w[0], w[1], dynsym, &dsh, names, n, offs,
			    found);
	return true;
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

int elf_syms__open(const char *path, Elf **e)
{
	int fd;

	*e = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (*e && elf_kind(*e) != ELF_K_ELF) {
		elf_end(*e);
		*e = NULL;
	}
	return fd;
}

void elf_syms__close(Elf *e, int fd)
{
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
}

int elf_syms__lookup(const char *path, const char *const *names, size_t n, uint64_t *offs)
{
	int fd, found = 0;
	Elf *e;

	memset(offs, 0, n * sizeof(*offs));
	fd = elf_syms__open(path, &e);
	if (fd < 0)
		return fd;
	if (e) {
		/* .gnu.hash covers every defined export; without it, walk .dynsym. */
		if (!elf_syms__gnu_hash(e, names, n, offs, &found))
			found = elf_syms__scan(e, SHT_DYNSYM, names, n, offs, 0);
		/* Executables that link OpenSSL statically may keep it in .symtab only. */
		found = elf_syms__scan(e, SHT_SYMTAB, names, n, offs, found);
	}
	elf_syms__close(e, fd);
	return found;
}
