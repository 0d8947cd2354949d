// SPDX-License-Identifier: Apache-2.0
/*
 * Code-shape analysis of stripped x86-64 ELF files: finding the functions that report errors
 * from one source file and noting their shape (attach/codeshape.h says what is noted and why).
 * Probes go only on function entries found this way, never mid-instruction.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/codeshape.h"

#define SHAPE_MAX_REFS 512
#define SHAPE_PROLOGUE_INSNS 48
#define SHAPE_REASON_WINDOW 6

/* ---- ELF ------------------------------------------------------------------------------------ */

static const uint8_t *image__at(const struct shape_image *im, uint64_t vaddr, uint64_t n)
{
	int i;

	for (i = 0; i < im->nsegs; i++) {
		const struct seg *s = &im->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr <= s->filesz &&
		    n <= s->filesz - (vaddr - s->vaddr))
			return im->img + s->off + (vaddr - s->vaddr);
	}
	return NULL;
}

/* Bytes of the segment holding vaddr from vaddr on (0 when no segment holds it). */
static uint64_t image__avail(const struct shape_image *im, uint64_t vaddr)
{
	int i;

	for (i = 0; i < im->nsegs; i++) {
		const struct seg *s = &im->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz)
			return s->filesz - (vaddr - s->vaddr);
	}
	return 0;
}

uint64_t shape__file_off(const struct shape_image *im, uint64_t vaddr)
{
	const uint8_t *p = image__at(im, vaddr, 1);

	return p ? (uint64_t)(p - im->img) : 0;
}

/* .eh_frame_hdr with the usual encodings (GNU ld, lld): a sorted table of function starts. */
static void image__eh_frame_hdr(struct shape_image *im, uint64_t vaddr, uint64_t size)
{
	const uint8_t *h = image__at(im, vaddr, size);
	uint32_t count;

	if (!h || size < 12 || h[0] != 1 || (h[1] & 0x0f) != 0x0b || h[2] != 0x03 || h[3] != 0x3b)
		return;
	memcpy(&count, h + 8, 4);
	if ((uint64_t)count * 8 > size - 12)
		return;
	im->ehtab = h + 12;
	im->eh_vaddr = vaddr;
	im->eh_count = count;
}

int shape__open(struct shape_image *im, const uint8_t *img, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	int i;

	memset(im, 0, sizeof(*im));
	im->img = img;
	im->len = len;
	im->fixed = len >= sizeof(*eh) && eh->e_type == ET_EXEC;
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return -EINVAL;
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || im->nsegs == SHAPE_MAX_SEGS)
			continue;
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return -EINVAL;
		im->segs[im->nsegs++] = (struct seg){ph.p_vaddr, ph.p_offset, ph.p_filesz,
						     (ph.p_flags & PF_X) != 0};
	}
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_GNU_EH_FRAME)
			image__eh_frame_hdr(im, ph.p_vaddr, ph.p_memsz);
	}
	return im->nsegs ? 0 : -EINVAL;
}

int shape__build_id(const uint8_t *img, size_t len, char *out, size_t out_len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	int i;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return -ENOENT;
	for (i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t p;

		memcpy(&ph, img + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			continue;
		for (p = ph.p_offset; p + 12 <= ph.p_offset + ph.p_filesz;) {
			uint32_t nsz, dsz, type, j;

			memcpy(&nsz, img + p, 4);
			memcpy(&dsz, img + p + 4, 4);
			memcpy(&type, img + p + 8, 4);
			uint64_t name = p + 12, desc = name + ((nsz + 3ULL) & ~3ULL);

			if (desc + dsz > ph.p_offset + ph.p_filesz)
				break;
			if (type == NT_GNU_BUILD_ID && nsz == 4 && !memcmp(img + name, "GNU", 4) &&
			    dsz && dsz * 2 + 1 <= out_len) {
				for (j = 0; j < dsz; j++)
					snprintf(out + 2 * j, 3, "%02x", img[desc + j]);
				return 0;
			}
			p = desc + ((dsz + 3ULL) & ~3ULL);
		}
	}
	return -ENOENT;
}

/* ---- finding the functions that report errors from ssl_lib.cc ------------------------------- */

/* Virtual addresses of every "…/ssl/ssl_lib.cc" string (start of the string). */
static int image__find_names(const struct shape_image *im, const char *suffix, uint64_t *out,
			     int max)
{
	int i, n = 0;

	for (i = 0; i < im->nsegs && n < max; i++) {
		const struct seg *s = &im->segs[i];
		const uint8_t *base = im->img + s->off, *p = base, *end = base + s->filesz;

		if (s->exec)
			continue;
		while (n < max && (p = memmem(p, (size_t)(end - p), suffix,
					      strlen(suffix) + 1)) != NULL) {
			const uint8_t *start = p;

			while (start > base && start[-1] != '\0' && p - start < 256)
				start--;
			out[n++] = s->vaddr + (uint64_t)(start - base);
			p += strlen(suffix) + 1;
		}
	}
	return n;
}

static bool ref__matches(const uint8_t *c, uint64_t at, const uint64_t *names, int nnames)
{
	int32_t rel;
	uint32_t imm;
	int i;

	memcpy(&imm, c + 1, 4);
	memcpy(&rel, c + 3, 4);
	for (i = 0; i < nnames; i++) {
		/* mov $name, %ecx / %edx (non-PIE: the address fits in 32 bits) */
		if ((c[0] == 0xb9 || c[0] == 0xba) && imm == names[i])
			return true;
		/* lea name(%rip), %rcx / %rdx */
		if (c[0] == 0x48 && c[1] == 0x8d && (c[2] == 0x0d || c[2] == 0x15) &&
		    at + 7 + (int64_t)rel == names[i])
			return true;
	}
	return false;
}

/*
 * Non-PIE executables: a memmem for the 4 address bytes (fast, vectorised) instead of looking at
 * every byte, which halves the discovery time of a 250 MB binary.
 */
static int image__find_imm_refs(const struct shape_image *im, const uint64_t *names, int nnames,
				uint64_t *refs, int max)
{
	int i, k, n = 0;

	for (k = 0; k < nnames; k++) {
		uint32_t imm = (uint32_t)names[k];

		if (names[k] > UINT32_MAX)
			continue;
		for (i = 0; i < im->nsegs; i++) {
			const struct seg *s = &im->segs[i];
			const uint8_t *c = im->img + s->off, *p = c + 1, *end = c + s->filesz;

			while (s->exec && n < max && p < end &&
			       (p = memmem(p, (size_t)(end - p), &imm, 4)) != NULL) {
				if (p[-1] == 0xb9 || p[-1] == 0xba)
					refs[n++] = s->vaddr + (uint64_t)(p - 1 - c);
				p++;
			}
		}
	}
	return n;
}

/*
 * lea name(%rip), %rcx / %rdx (48 8d 0d|15 rel32): memchr finds each 8d opcode byte (vectorised)
 * instead of looking at every byte, which cuts the scan of a 250 MB text to a fraction. memchr,
 * not memmem: a sanitizer's memmem checks the whole rest of the buffer at every call.
 */
static int image__find_lea_refs(const struct shape_image *im, const uint64_t *names, int nnames,
				uint64_t *refs, int max)
{
	int i, n = 0;

	for (i = 0; i < im->nsegs; i++) {
		const struct seg *s = &im->segs[i];
		const uint8_t *c = im->img + s->off, *p = c + 1, *end = c + s->filesz;

		while (s->exec && n < max && end - p >= 7 &&
		       (p = memchr(p, 0x8d, (size_t)(end - p - 6))) != NULL) {
			uint64_t j = (uint64_t)(p - 1 - c);

			if (p[-1] == 0x48 && (p[1] == 0x0d || p[1] == 0x15) &&
			    ref__matches(p - 1, s->vaddr + j, names, nnames))
				refs[n++] = s->vaddr + j;
			p++;
		}
	}
	return n;
}

/* Code addresses that may load one of names into the file argument's register. */
static int image__find_refs(const struct shape_image *im, const uint64_t *names, int nnames,
			    uint64_t *refs, int max)
{
	int n = im->fixed ? image__find_imm_refs(im, names, nnames, refs, max) : 0;

	return n ? n : image__find_lea_refs(im, names, nnames, refs, max);
}

/* A frame-pointer prologue on a 16-byte boundary right after padding or a return. */
static bool image__prologue_at(const struct shape_image *im, uint64_t a)
{
	const uint8_t *p = image__at(im, a - 1, 5);

	return p && (p[0] == 0xcc || p[0] == 0xc3 || p[0] == 0x90) && p[1] == 0x55 &&
	       p[2] == 0x48 && p[3] == 0x89 && p[4] == 0xe5;
}

static int image__fn_by_prologue(const struct shape_image *im, uint64_t at, uint64_t *start,
				 uint64_t *end)
{
	uint64_t a, limit = at > SHAPE_FN_MAX_BYTES ? at - SHAPE_FN_MAX_BYTES : 0;

	for (a = at & ~15ULL; a > limit && !image__prologue_at(im, a); a -= 16)
		;
	if (a <= limit)
		return -ENOENT;
	*start = a;
	for (a = *start + 16; a < *start + SHAPE_FN_MAX_BYTES && !image__prologue_at(im, a); a += 16)
		;
	*end = a;
	return 0;
}

static uint64_t eh__start(const struct shape_image *im, uint32_t i)
{
	int32_t rel;

	memcpy(&rel, im->ehtab + (size_t)i * 8, 4);
	return im->eh_vaddr + (int64_t)rel;
}

static int image__fn_by_eh(const struct shape_image *im, uint64_t at, uint64_t *start, uint64_t *end)
{
	uint32_t lo = 0, hi = im->eh_count;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (eh__start(im, mid) <= at)
			lo = mid;
		else
			hi = mid;
	}
	if (!im->eh_count || eh__start(im, lo) > at)
		return -ENOENT;
	*start = eh__start(im, lo);
	*end = lo + 1 < im->eh_count ? eh__start(im, lo + 1) : *start + SHAPE_FN_MAX_BYTES;
	if (*end - *start > SHAPE_FN_MAX_BYTES)
		*end = *start + SHAPE_FN_MAX_BYTES;
	return *end > at ? 0 : -ENOENT;
}

/* ---- decoding one function ------------------------------------------------------------------ */

struct insn_note {
	uint16_t reg;	  /* register a `mov r32, imm` wrote, X86_REG_INVALID if none */
	uint32_t imm;
	uint16_t file_reg; /* the register the file name was loaded into, if this insn did it */
	bool branch;	   /* a jump, call or return: ends the arguments of a call */
};

static bool reg__is(uint16_t r, uint16_t r32, uint16_t r64)
{
	return r == r32 || r == r64;
}

static bool insn__loads_name(const cs_insn *in, const uint64_t *names, int nnames, uint16_t *reg)
{
	const cs_x86 *x = &in->detail->x86;
	uint64_t v;
	int i;

	if (x->op_count != 2 || x->operands[0].type != X86_OP_REG)
		return false;
	if (in->id == X86_INS_MOV && x->operands[1].type == X86_OP_IMM)
		v = (uint64_t)x->operands[1].imm;
	else if (in->id == X86_INS_LEA && x->operands[1].type == X86_OP_MEM &&
		 x->operands[1].mem.base == X86_REG_RIP)
		v = in->address + in->size + (uint64_t)x->operands[1].mem.disp;
	else
		return false;
	for (i = 0; i < nnames; i++) {
		if (v == names[i]) {
			*reg = (uint16_t)x->operands[0].reg;
			return true;
		}
	}
	return false;
}

static void fn__add_reason(struct shape_fn *fn, uint32_t reason)
{
	uint32_t i;

	for (i = 0; i < fn->nreasons; i++) {
		if (fn->reasons[i] == reason)
			return;
	}
	if (fn->nreasons < SHAPE_FN_REASONS)
		fn->reasons[fn->nreasons++] = reason;
}

/*
 * The reason code of an ERR_put_error call: old BoringSSL passes (lib, 0, reason, file, line),
 * the file in rcx and the reason in edx; newer passes (lib, reason, file, line), file in rdx,
 * reason in esi. The arguments are set within a few instructions of each other.
 */
static void fn__reasons(struct shape_fn *fn, const struct insn_note *notes, size_t n,
			uint32_t lib_code)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		uint16_t want, fr = notes[i].file_reg;
		bool lib = false;
		int64_t reason = -1;
		size_t best = SIZE_MAX;

		if (fr == X86_REG_INVALID)
			continue;
		want = reg__is(fr, X86_REG_ECX, X86_REG_RCX) ? X86_REG_EDX : X86_REG_ESI;
		for (j = i > SHAPE_REASON_WINDOW ? i - SHAPE_REASON_WINDOW : 0;
		     j < n && j <= i + SHAPE_REASON_WINDOW; j++) {
			size_t dist = j < i ? i - j : j - i;

			/* Arguments of one call: between the branches around the reference. */
			if (notes[j].branch) {
				if (j > i)
					break;
				lib = false;
				reason = -1;
				best = SIZE_MAX;
				continue;
			}

			if (notes[j].reg == X86_REG_EDI && notes[j].imm == lib_code)
				lib = true;
			/* The closest one: a neighbouring call's arguments may be in the window. */
			if (notes[j].reg == want && dist < best) {
				reason = notes[j].imm;
				best = dist;
			}
		}
		if (lib && reason >= 0)
			fn__add_reason(fn, (uint32_t)reason);
	}
}

/* Registers known to hold the first argument (rdi) near the function start, as a bitmask. */
static bool alias__has(uint64_t set, uint16_t r)
{
	return r < 64 && (set >> r) & 1;
}

static void fn__prologue_insn(struct shape_fn *fn, const cs_insn *in, uint64_t *alias)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *o0 = &x->operands[0], *o1 = &x->operands[1];

	if (fn->quic_disp >= 0)
		return;
	if (in->id == X86_INS_CMP && x->op_count == 2 && o0->type == X86_OP_MEM && o0->size == 8 &&
	    o1->type == X86_OP_IMM && o1->imm == 0 && alias__has(*alias, (uint16_t)o0->mem.base) &&
	    o0->mem.index == X86_REG_INVALID && o0->mem.disp > 0) {
		fn->quic_disp = o0->mem.disp;
		return;
	}
	if (in->id == X86_INS_CALL) {
		*alias &= ~(1ULL << X86_REG_RDI);
		return;
	}
	if (x->op_count == 2 && o0->type == X86_OP_REG && o0->reg < 64) {
		if (in->id == X86_INS_MOV && o1->type == X86_OP_REG && alias__has(*alias, o1->reg))
			*alias |= 1ULL << o0->reg;
		else if (in->id != X86_INS_CMP && in->id != X86_INS_TEST)
			*alias &= ~(1ULL << o0->reg);
	}
}

static bool insn__is_branch(const cs_insn *in)
{
	uint8_t i;

	for (i = 0; i < in->detail->groups_count; i++) {
		uint8_t g = in->detail->groups[i];

		if (g == CS_GRP_JUMP || g == CS_GRP_CALL || g == CS_GRP_RET)
			return true;
	}
	return false;
}

static void fn__insn(struct shape_fn *fn, const cs_insn *in, struct insn_note *note,
		     const uint64_t *names, int nnames)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *o0 = &x->operands[0];

	note->reg = X86_REG_INVALID;
	note->file_reg = X86_REG_INVALID;
	note->branch = insn__is_branch(in);
	if (insn__loads_name(in, names, nnames, &note->file_reg))
		return;
	if (in->id == X86_INS_MOV && x->op_count == 2 && o0->type == X86_OP_REG &&
	    x->operands[1].type == X86_OP_IMM) {
		note->reg = (uint16_t)o0->reg;
		note->imm = (uint32_t)x->operands[1].imm;
	} else if (in->id == X86_INS_CALL && x->op_count == 1) {
		if (o0->type == X86_OP_IMM && fn->ncalls < SHAPE_FN_CALLS)
			fn->calls[fn->ncalls++] = (uint64_t)o0->imm;
		else if ((o0->type == X86_OP_MEM && o0->mem.base != X86_REG_RIP &&
			  o0->mem.base != X86_REG_INVALID) ||
			 o0->type == X86_OP_REG)
			fn->indirect_call = true; /* through a pointer loaded at run time */
	} else if ((in->id == X86_INS_MOV || in->id == X86_INS_ADD || in->id == X86_INS_SUB) &&
		   x->op_count == 2 && o0->type == X86_OP_MEM && o0->mem.base != X86_REG_RSP &&
		   o0->mem.base != X86_REG_RBP && o0->mem.base != X86_REG_RIP) {
		fn->stores++;
	}
}

static int fn__decode(csh cs, const struct shape_image *im, struct shape_fn *fn,
		      const uint64_t *names, int nnames, uint32_t lib)
{
	size_t size = fn->end - fn->start, n = 0, left;
	const uint8_t *code, *p;
	uint64_t addr = fn->start, alias = 1ULL << X86_REG_RDI;
	struct insn_note *notes;
	cs_insn *in;

	/* The last function of a segment: its bound guessed past the end. */
	if (size > image__avail(im, fn->start))
		size = image__avail(im, fn->start);
	code = image__at(im, fn->start, size);
	if (!code || !size)
		return 0; /* nothing to decode: the function shows no shape */
	notes = calloc(size, sizeof(*notes));
	in = cs_malloc(cs);
	if (!notes || !in) {
		free(notes);
		if (in)
			cs_free(in, 1);
		return -ENOMEM;
	}
	fn->quic_disp = -1;
	for (p = code, left = size; left;) {
		/* Undecodable bytes (padding, data): resynchronise on the next byte. */
		if (!cs_disasm_iter(cs, &p, &left, &addr, in)) {
			p++, left--, addr++;
			continue;
		}
		if (n < SHAPE_PROLOGUE_INSNS)
			fn__prologue_insn(fn, in, &alias);
		fn__insn(fn, in, &notes[n++], names, nnames);
	}
	fn__reasons(fn, notes, n, lib);
	cs_free(in, 1);
	free(notes);
	return 0;
}

bool shape_fn__has_reason(const struct shape_fn *fn, uint32_t reason)
{
	uint32_t i;

	for (i = 0; i < fn->nreasons; i++) {
		if (fn->reasons[i] == reason)
			return true;
	}
	return false;
}

bool shape_fn__calls(const struct shape_fn *fn, uint64_t target)
{
	uint32_t i;

	for (i = 0; i < fn->ncalls; i++) {
		if (fn->calls[i] == target)
			return true;
	}
	return false;
}

static int fns__collect(const struct shape_image *im, const uint64_t *refs, int nrefs,
			struct shape_fn *fns, int max)
{
	int i, j, n = 0;

	for (i = 0; i < nrefs && n < max; i++) {
		uint64_t start, end;
		int err = im->eh_count ? image__fn_by_eh(im, refs[i], &start, &end)
				       : image__fn_by_prologue(im, refs[i], &start, &end);

		if (err)
			continue;
		for (j = 0; j < n && fns[j].start != start; j++)
			;
		if (j < n)
			continue;
		memset(&fns[n], 0, sizeof(fns[n]));
		fns[n].start = start;
		fns[n].end = end;
		n++;
	}
	return n;
}

static int fns__decode(const struct shape_image *im, const uint64_t *names, int nnames,
		       uint32_t lib, struct shape_fn *fns, int n)
{
	csh cs;
	int i, err = 0;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	for (i = 0; i < n && !err; i++)
		err = fn__decode(cs, im, &fns[i], names, nnames, lib);
	cs_close(&cs);
	return err;
}

int shape__map_file(const char *path, const uint8_t **img, size_t *len)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		close(fd);
		return -EINVAL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	*img = p;
	*len = (size_t)st.st_size;
	return 0;
}

int shape__functions(const struct shape_image *im, const char *suffix, uint32_t lib_code,
		     struct shape_fn *fns, int max)
{
	uint64_t names[8], *refs;
	int nnames, nrefs, n, err;

	nnames = image__find_names(im, suffix, names, 8);
	if (!nnames)
		return -ENOENT;
	refs = calloc(SHAPE_MAX_REFS, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	nrefs = image__find_refs(im, names, nnames, refs, SHAPE_MAX_REFS);
	n = fns__collect(im, refs, nrefs, fns, max);
	free(refs);
	err = fns__decode(im, names, nnames, lib_code, fns, n);
	return err ? err : n;
}

int shape__analyse(const uint8_t *img, size_t len, const char *suffix, uint32_t lib_code,
		   const char *missing, shape_classify_fn classify, void *result,
		   const char **why, uint32_t *functions)
{
	struct shape_fn *fns;
	struct shape_image im;
	int n, err;

	*why = "not an x86-64 ELF";
	if (shape__open(&im, img, len))
		return -EINVAL;
	fns = calloc(SHAPE_MAX_FNS, sizeof(*fns));
	if (!fns) {
		*why = "out of memory";
		return -ENOMEM;
	}
	n = shape__functions(&im, suffix, lib_code, fns, SHAPE_MAX_FNS);
	*why = n == -ENOENT ? missing : "out of memory";
	err = n < 0 ? n : 0;
	if (!err) {
		*functions = (uint32_t)n;
		err = classify(&im, fns, n, result);
	}
	free(fns);
	return err;
}
