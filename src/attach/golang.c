// SPDX-License-Identifier: Apache-2.0
/*
 * Go crypto/tls discovery: recognise a Go executable from its section names, find
 * crypto/tls.(*Conn).Write/Read/Close by .symtab or, in a stripped binary, by .gopclntab, and
 * list the RET instructions of Write and Read with capstone. The file is untrusted input: every
 * offset is checked against the mapping before it is read.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <capstone/capstone.h>

#include "attach/golang.h"

#define PCLN_GO116 0xfffffffau
#define PCLN_GO118 0xfffffff0u
#define PCLN_GO120 0xfffffff1u
/* Longest function we decode: crypto/tls's Read and Write are a few KiB. */
#define GOLANG_FN_MAX_BYTES (1u << 20)
#define GOLANG_RETS_MAX 256

static const char *const go_names[GOLANG_FN__COUNT] = {
    [GOLANG_FN_WRITE] = "crypto/tls.(*Conn).Write",
    [GOLANG_FN_READ] = "crypto/tls.(*Conn).Read",
    [GOLANG_FN_CLOSE] = "crypto/tls.(*Conn).Close",
};

static const char go_buildinfo_magic[] = "\xff Go buildinf:";

/* An ELF64 little-endian file mapped read-only, with its section headers when they are sane. */
struct elf_image {
	const uint8_t *p;
	size_t len;
	Elf64_Ehdr eh;
	const uint8_t *shdrs; /* NULL when the file has none (or they point outside it) */
	const Elf64_Shdr *shstr;
};

/* ---- bounded reads -------------------------------------------------------------------------- */

static bool span_ok(size_t len, uint64_t off, uint64_t n)
{
	return off <= len && n <= len - off;
}

static uint64_t rd_uint(const uint8_t *p, unsigned size)
{
	uint32_t v32;
	uint64_t v64;

	if (size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

/* ---- the ELF file ------------------------------------------------------------------------- */

static const Elf64_Shdr *elf__shdr(const struct elf_image *img, unsigned i, Elf64_Shdr *out)
{
	if (!img->shdrs || i >= img->eh.e_shnum)
		return NULL;
	memcpy(out, img->shdrs + (size_t)i * sizeof(*out), sizeof(*out));
	return out;
}

static int elf__open(struct elf_image *img)
{
	uint64_t shsz;

	if (img->len < sizeof(img->eh))
		return -EINVAL;
	memcpy(&img->eh, img->p, sizeof(img->eh));
	if (memcmp(img->eh.e_ident, ELFMAG, SELFMAG) || img->eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    img->eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return -EINVAL;
	/* The register ABI read by bpf/go_tls.bpf.c is amd64's. */
	if (img->eh.e_machine != EM_X86_64)
		return -ENOTSUP;
	shsz = (uint64_t)img->eh.e_shnum * sizeof(Elf64_Shdr);
	img->shdrs = NULL;
	if (img->eh.e_shnum && img->eh.e_shentsize == sizeof(Elf64_Shdr) &&
	    span_ok(img->len, img->eh.e_shoff, shsz))
		img->shdrs = img->p + img->eh.e_shoff;
	return 0;
}

/* A section's name, or "" when it cannot be read. */
static const char *elf__section_name(const struct elf_image *img, const Elf64_Shdr *sh)
{
	Elf64_Shdr strs;
	const char *s;

	if (!elf__shdr(img, img->eh.e_shstrndx, &strs) || strs.sh_type != SHT_STRTAB ||
	    !span_ok(img->len, strs.sh_offset, strs.sh_size) || sh->sh_name >= strs.sh_size)
		return "";
	s = (const char *)img->p + strs.sh_offset + sh->sh_name;
	return memchr(s, 0, strs.sh_size - sh->sh_name) ? s : "";
}

/* The section called name whose bytes lie inside the file, or NULL. */
static bool elf__section(const struct elf_image *img, const char *name, Elf64_Shdr *out)
{
	unsigned i;

	for (i = 0; i < img->eh.e_shnum; i++) {
		if (elf__shdr(img, i, out) && out->sh_type != SHT_NOBITS &&
		    strcmp(elf__section_name(img, out), name) == 0)
			return span_ok(img->len, out->sh_offset, out->sh_size);
	}
	return false;
}

/* File offset of a virtual address in a PT_LOAD segment; *avail = bytes of it in the file. */
static int elf__vaddr_off(const struct elf_image *img, uint64_t va, uint64_t *off, uint64_t *avail)
{
	uint64_t phsz = (uint64_t)img->eh.e_phnum * sizeof(Elf64_Phdr);
	Elf64_Phdr ph;
	unsigned i;

	if (img->eh.e_phentsize != sizeof(Elf64_Phdr) || !span_ok(img->len, img->eh.e_phoff, phsz))
		return -EINVAL;
	for (i = 0; i < img->eh.e_phnum; i++) {
		memcpy(&ph, img->p + img->eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || va < ph.p_vaddr || va - ph.p_vaddr >= ph.p_filesz)
			continue;
		*off = ph.p_offset + (va - ph.p_vaddr);
		*avail = ph.p_filesz - (va - ph.p_vaddr);
		return span_ok(img->len, *off, *avail) ? 0 : -EINVAL;
	}
	return -ENOENT;
}

/* ---- is it Go? ------------------------------------------------------------------------------ */

static bool elf__is_go(const struct elf_image *img)
{
	Elf64_Shdr sh;

	if (img->shdrs)
		return elf__section(img, ".go.buildinfo", &sh) ||
		       elf__section(img, ".gopclntab", &sh) ||
		       elf__section(img, ".data.rel.ro.gopclntab", &sh);
	/* No section headers at all (sstrip): the build info blob still says Go. */
	return memmem(img->p, img->len, go_buildinfo_magic, sizeof(go_buildinfo_magic) - 1);
}

/* ---- .symtab -------------------------------------------------------------------------------- */

/* Ranges of the names found in .symtab; returns how many, 0 when there is no .symtab. */
static int symtab__find(const struct elf_image *img, struct golang_range *out)
{
	Elf64_Shdr symtab, strtab;
	uint64_t i, nsyms;
	int found = 0;

	if (!elf__section(img, ".symtab", &symtab) || symtab.sh_entsize != sizeof(Elf64_Sym) ||
	    !elf__shdr(img, symtab.sh_link, &strtab) ||
	    !span_ok(img->len, strtab.sh_offset, strtab.sh_size))
		return 0;
	nsyms = symtab.sh_size / sizeof(Elf64_Sym);
	for (i = 0; i < nsyms; i++) {
		const char *name;
		Elf64_Sym sym;
		int k;

		memcpy(&sym, img->p + symtab.sh_offset + i * sizeof(sym), sizeof(sym));
		if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_value || !sym.st_size ||
		    sym.st_name >= strtab.sh_size)
			continue;
		name = (const char *)img->p + strtab.sh_offset + sym.st_name;
		for (k = 0; k < GOLANG_FN__COUNT; k++) {
			size_t nl = strlen(go_names[k]) + 1;

			if (out[k].start || nl > strtab.sh_size - sym.st_name ||
			    memcmp(name, go_names[k], nl))
				continue;
			out[k].start = sym.st_value;
			out[k].end = sym.st_value + sym.st_size;
			found++;
		}
	}
	return found;
}

/* ---- .gopclntab ----------------------------------------------------------------------------- */

struct pcln {
	const uint8_t *tab;
	size_t len;
	uint32_t magic;
	unsigned ptr; /* pointer size: 4 or 8 */
	uint64_t nfunc;
	uint64_t text;	   /* base of the 1.18+ entry offsets */
	uint64_t funcname; /* offset of the function name table */
	uint64_t ftab;	   /* offset of the function table (pclnOffset) */
};

static int pcln__header(struct pcln *p, uint64_t text)
{
	unsigned words = 8; /* nfunc, nfiles, [textStart], funcname, cu, filetab, pctab, pcln */
	const uint8_t *w;

	if (p->len < 8)
		return -EINVAL;
	p->magic = (uint32_t)rd_uint(p->tab, 4);
	p->ptr = p->tab[7];
	if ((p->magic != PCLN_GO116 && p->magic != PCLN_GO118 && p->magic != PCLN_GO120) ||
	    p->tab[4] || p->tab[5] || (p->tab[6] != 1 && p->tab[6] != 2 && p->tab[6] != 4) ||
	    (p->ptr != 4 && p->ptr != 8))
		return -EINVAL;
	if (p->magic == PCLN_GO116)
		words = 7;
	if (!span_ok(p->len, 8, (uint64_t)words * p->ptr))
		return -EINVAL;
	w = p->tab + 8;
	p->nfunc = rd_uint(w, p->ptr);
	p->text = p->magic == PCLN_GO116 ? 0 : rd_uint(w + 2 * p->ptr, p->ptr);
	/* A position-independent binary leaves textStart to a relocation: 0 in the file. */
	if (!p->text)
		p->text = text;
	p->funcname = rd_uint(w + (words - 5) * p->ptr, p->ptr);
	p->ftab = rd_uint(w + (words - 1) * p->ptr, p->ptr);
	if (!p->nfunc || p->nfunc >= p->len || p->funcname >= p->len || p->ftab >= p->len)
		return -EINVAL;
	return 0;
}

/* Size of one functab entry: {entryoff, funcoff} as uint32 (1.18+) or uintptr (1.16). */
static unsigned pcln__ftab_entry(const struct pcln *p)
{
	return p->magic == PCLN_GO116 ? 2 * p->ptr : 8;
}

/* Entry PC of function i (i == nfunc: the end of the last one), 0 when out of bounds. */
static uint64_t pcln__entry(const struct pcln *p, uint64_t i)
{
	unsigned es = pcln__ftab_entry(p);
	uint64_t off = p->ftab + i * es;

	if (!span_ok(p->len, off, es))
		return 0;
	if (p->magic == PCLN_GO116)
		return rd_uint(p->tab + off, p->ptr);
	return p->text + rd_uint(p->tab + off, 4);
}

/* Name of function i, NUL-terminated inside the table, or NULL. */
static const char *pcln__name(const struct pcln *p, uint64_t i)
{
	unsigned es = pcln__ftab_entry(p), half = es / 2;
	uint64_t off = p->ftab + i * es, func, name_at;
	int32_t name_off;

	if (!span_ok(p->len, off, es))
		return NULL;
	/* _func starts with the entry (uint32 offset, or uintptr in 1.16), then int32 nameOff. */
	func = rd_uint(p->tab + off + half, half);
	if (func >= p->len - p->ftab)
		return NULL;
	func += p->ftab + (p->magic == PCLN_GO116 ? p->ptr : 4);
	if (!span_ok(p->len, func, 4))
		return NULL;
	name_off = (int32_t)rd_uint(p->tab + func, 4);
	name_at = p->funcname + (uint64_t)(int64_t)name_off;
	if (name_off < 0 || name_at >= p->len)
		return NULL;
	if (!memchr(p->tab + name_at, 0, p->len - name_at))
		return NULL;
	return (const char *)p->tab + name_at;
}

int golang__pclntab_find(const uint8_t *tab, size_t len, uint64_t text, const char *const *names,
			 size_t n, struct golang_range *out)
{
	struct pcln p = {.tab = tab, .len = len};
	uint64_t i;
	size_t k;
	int found = 0;

	memset(out, 0, n * sizeof(*out));
	if (pcln__header(&p, text))
		return -EINVAL;
	/* The table must hold nfunc + 1 entries (the last one closes the last function). */
	if (!span_ok(len, p.ftab, (p.nfunc + 1) * pcln__ftab_entry(&p)))
		return -EINVAL;
	for (i = 0; i < p.nfunc; i++) {
		const char *name = pcln__name(&p, i);

		if (!name)
			return -EINVAL;
		for (k = 0; k < n; k++) {
			uint64_t start, end;

			if (out[k].start || strcmp(name, names[k]))
				continue;
			start = pcln__entry(&p, i);
			end = pcln__entry(&p, i + 1);
			if (!start || end <= start)
				return -EINVAL;
			out[k].start = start;
			out[k].end = end;
			found++;
		}
	}
	return found;
}

/* The pclntab of a file without section headers: its header, searched for at aligned places. */
static const uint8_t *pcln__scan(const struct elf_image *img, uint64_t text, size_t *len)
{
	static const char *const probe[] = {"runtime.main"};
	struct golang_range r;
	size_t off;

	for (off = 0; off + 16 <= img->len; off += 8) {
		const uint8_t *q = img->p + off;

		if (q[3] != 0xff || q[2] != 0xff || q[1] != 0xff || (q[0] & 0xf0) != 0xf0 || q[4] ||
		    q[5])
			continue;
		*len = img->len - off;
		if (golang__pclntab_find(q, *len, text, probe, 1, &r) == 1)
			return q;
	}
	return NULL;
}

static int pclntab__find(const struct elf_image *img, struct golang_range *out)
{
	Elf64_Shdr sh;
	uint64_t text = 0;
	const uint8_t *tab = NULL;
	size_t len = 0;

	if (elf__section(img, ".text", &sh))
		text = sh.sh_addr;
	if (elf__section(img, ".gopclntab", &sh) ||
	    elf__section(img, ".data.rel.ro.gopclntab", &sh)) {
		tab = img->p + sh.sh_offset;
		len = sh.sh_size;
	} else if (!img->shdrs) {
		tab = pcln__scan(img, text, &len);
	}
	if (!tab)
		return 0;
	return golang__pclntab_find(tab, len, text, go_names, GOLANG_FN__COUNT, out);
}

/* ---- RET instructions ----------------------------------------------------------------------- */

int golang__ret_offsets(const uint8_t *code, size_t len, uint64_t base, uint64_t **rets)
{
	uint64_t addr = 0, *out = NULL;
	const uint8_t *p = code;
	size_t left = len;
	csh cs;
	cs_insn *insn;
	int n = 0;

	*rets = NULL;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOMEM;
	insn = cs_malloc(cs);
	out = calloc(GOLANG_RETS_MAX, sizeof(*out));
	while (insn && out && left && n <= GOLANG_RETS_MAX &&
	       cs_disasm_iter(cs, &p, &left, &addr, insn)) {
		/* Past the cap, a return would go unprobed: refuse the function instead. */
		if (insn->id == X86_INS_RET && n++ < GOLANG_RETS_MAX)
			out[n - 1] = base + insn->address;
	}
	/* Stopped early: bytes that are no instruction, so the bounds are not a function's. */
	if (!insn || !out)
		n = -ENOMEM;
	else if (n > GOLANG_RETS_MAX)
		n = -E2BIG;
	else if (left)
		n = -EINVAL;
	if (n >= 0)
		*rets = out;
	else
		free(out);
	if (insn)
		cs_free(insn, 1);
	cs_close(&cs);
	return n;
}

/* ---- the plan --------------------------------------------------------------------------------*/

static int plan__site(const struct elf_image *img, const struct golang_range *r, bool rets,
		      struct golang_site *site)
{
	uint64_t off, avail, len = r->end - r->start;
	int n;

	if (elf__vaddr_off(img, r->start, &off, &avail) || !off)
		return -EINVAL;
	site->entry = off;
	if (!rets)
		return 0;
	if (len > avail || len > GOLANG_FN_MAX_BYTES)
		return -EINVAL;
	n = golang__ret_offsets(img->p + off, len, off, &site->rets);
	if (n <= 0)
		return n ? n : -EINVAL; /* no RET at all: these are not the bounds of a function */
	site->nrets = (uint32_t)n;
	return 0;
}

static int plan__fill(const struct elf_image *img, struct golang_plan *plan)
{
	struct golang_range r[GOLANG_FN__COUNT] = {};
	int k, err;

	plan->method = "symbols";
	if (symtab__find(img, r) < 2 || !r[GOLANG_FN_WRITE].start || !r[GOLANG_FN_READ].start) {
		plan->method = "gopclntab";
		if (pclntab__find(img, r) < 0)
			return -EINVAL;
	}
	/* A Go program without crypto/tls (or whose linker dropped Read or Write). */
	if (!r[GOLANG_FN_WRITE].start || !r[GOLANG_FN_READ].start)
		return 0;
	for (k = 0; k < GOLANG_FN__COUNT; k++) {
		if (!r[k].start)
			continue;
		err = plan__site(img, &r[k], k != GOLANG_FN_CLOSE, &plan->fn[k]);
		if (err)
			return err;
	}
	return 1;
}

int golang__discover(const char *path, struct golang_plan *plan)
{
	struct elf_image img = {};
	struct stat st;
	void *map;
	int fd, err;

	memset(plan, 0, sizeof(*plan));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	img.p = map;
	img.len = (size_t)st.st_size;
	err = elf__open(&img) ? 0 : elf__is_go(&img) ? plan__fill(&img, plan) : 0;
	munmap(map, img.len);
	/* A Go file whose tables do not add up is not probed: a wrong guess is worse than none. */
	if (err <= 0)
		golang__plan_free(plan);
	return err < 0 ? 0 : err;
}

void golang__plan_free(struct golang_plan *plan)
{
	int k;

	for (k = 0; k < GOLANG_FN__COUNT; k++)
		free(plan->fn[k].rets);
	memset(plan, 0, sizeof(*plan));
}

/* ---- attaching ------------------------------------------------------------------------------ */

struct link_set {
	struct bpf_link **links;
	uint32_t n, cap;
};

static int link_set__add(struct link_set *s, struct bpf_program *prog, const char *path,
			 uint64_t off)
{
	struct bpf_link *l;

	if (!prog || !off)
		return 0;
	if (s->n == s->cap)
		return -E2BIG;
	l = bpf_program__attach_uprobe_opts(prog, -1, path, (size_t)off, NULL);
	if (!l)
		return errno ? -errno : -EINVAL;
	s->links[s->n++] = l;
	return 0;
}

static int link_set__site(struct link_set *s, struct bpf_program *entry, struct bpf_program *ret,
			  const struct golang_site *site, const char *path)
{
	int err = link_set__add(s, entry, path, site->entry);
	uint32_t i;

	for (i = 0; i < site->nrets && !err; i++)
		err = link_set__add(s, ret, path, site->rets[i]);
	return err;
}

int golang__attach(const struct golang_plan *plan, const struct golang_progs *progs,
		   const char *path, struct bpf_link ***links, uint32_t *nlinks)
{
	const struct golang_site *w = &plan->fn[GOLANG_FN_WRITE], *r = &plan->fn[GOLANG_FN_READ];
	struct link_set s = {.cap = 3 + w->nrets + r->nrets};
	int err;

	*links = NULL;
	*nlinks = 0;
	s.links = calloc(s.cap, sizeof(*s.links));
	if (!s.links)
		return -ENOMEM;
	/* Return probes first: an entry without its returns would only fill the stash. */
	err = link_set__site(&s, NULL, progs->write_ret, w, path);
	if (!err)
		err = link_set__site(&s, NULL, progs->read_ret, r, path);
	if (!err)
		err = link_set__add(&s, progs->write, path, w->entry);
	if (!err)
		err = link_set__add(&s, progs->read, path, r->entry);
	if (!err)
		err = link_set__add(&s, progs->close, path, plan->fn[GOLANG_FN_CLOSE].entry);
	if (err) {
		while (s.n)
			bpf_link__destroy(s.links[--s.n]);
		free(s.links);
		return err;
	}
	*links = s.links;
	*nlinks = s.n;
	return 0;
}
