// SPDX-License-Identifier: Apache-2.0
/*
 * Code-shape discovery of BoringSSL's SSL_write and SSL_read in stripped static binaries.
 *
 * BoringSSL reports errors with OPENSSL_PUT_ERROR, which passes __FILE__ ("…/ssl/ssl_lib.cc")
 * and a reason code to ERR_put_error. Both entry points live in ssl_lib.cc and have a shape no
 * other function there has:
 *   SSL_write: rejects QUIC connections (`cmp qword [ssl+quic_method], 0`, reason 66), reports
 *              SSL_R_UNINITIALIZED (226) and SSL_R_SSL_HANDSHAKE_FAILURE (215), and calls
 *              ssl->method->write_app_data through a function pointer;
 *   SSL_read:  the same QUIC check (same field offset) with reason 66 and no other reason, a
 *              direct call to ssl_read_impl (a function reporting 226), then consumes what it
 *              copied (stores into ssl->s3), which SSL_peek does not.
 * The references to the file name are found by scanning the code bytes for the address (mov imm32
 * in non-PIE executables, lea rip+rel32 otherwise), each reference's function comes from
 * .eh_frame_hdr when the binary has one, and from its frame-pointer prologue after int3 padding
 * when not (Bun ships without .eh_frame); each function is then decoded with capstone.
 * Probes go only on function entries found this way, never mid-instruction.
 */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "attach/boringssl.h"
#include "attach/discovery_cache.h"
#include "tokentap_abi.h"

#define BSSL_MIN_FILE_SIZE (4u << 20) /* BoringSSL alone is more than this */
#define BSSL_MAX_SEGS 16
#define BSSL_MAX_REFS 512
#define BSSL_MAX_FNS 128
#define BSSL_FN_MAX_BYTES (64u << 10)
#define BSSL_FN_CALLS 64
#define BSSL_FN_REASONS 16
#define BSSL_PROLOGUE_INSNS 48
#define BSSL_REASON_WINDOW 6

static const char ssl_lib_name[] = "/ssl/ssl_lib.cc";

struct seg {
	uint64_t vaddr, off, filesz;
	bool exec;
};

struct image {
	const uint8_t *img;
	size_t len;
	bool fixed; /* ET_EXEC: addresses are absolute, code loads them with mov imm32 */
	struct seg segs[BSSL_MAX_SEGS];
	int nsegs;
	const uint8_t *ehtab; /* .eh_frame_hdr table: pairs of int32 relative to eh_vaddr */
	uint64_t eh_vaddr;
	uint32_t eh_count;
};

struct bssl_fn {
	uint64_t start, end;
	uint32_t reasons[BSSL_FN_REASONS];
	uint32_t nreasons;
	uint64_t calls[BSSL_FN_CALLS];
	uint32_t ncalls;
	int64_t quic_disp; /* displacement of the first `cmp qword [ssl+d], 0`, -1 none */
	bool indirect_call;
	uint32_t stores; /* stores through a pointer that is no stack slot */
};

/* ---- ELF ------------------------------------------------------------------------------------ */

static const uint8_t *image__at(const struct image *im, uint64_t vaddr, uint64_t n)
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
static uint64_t image__avail(const struct image *im, uint64_t vaddr)
{
	int i;

	for (i = 0; i < im->nsegs; i++) {
		const struct seg *s = &im->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz)
			return s->filesz - (vaddr - s->vaddr);
	}
	return 0;
}

static uint64_t image__file_off(const struct image *im, uint64_t vaddr)
{
	const uint8_t *p = image__at(im, vaddr, 1);

	return p ? (uint64_t)(p - im->img) : 0;
}

/* .eh_frame_hdr with the usual encodings (GNU ld, lld): a sorted table of function starts. */
static void image__eh_frame_hdr(struct image *im, uint64_t vaddr, uint64_t size)
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

static int image__open(struct image *im, const uint8_t *img, size_t len)
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
		if (ph.p_type != PT_LOAD || im->nsegs == BSSL_MAX_SEGS)
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

int bssl__build_id(const uint8_t *img, size_t len, char *out, size_t out_len)
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
static int image__find_names(const struct image *im, uint64_t *out, int max)
{
	int i, n = 0;

	for (i = 0; i < im->nsegs && n < max; i++) {
		const struct seg *s = &im->segs[i];
		const uint8_t *base = im->img + s->off, *p = base, *end = base + s->filesz;

		if (s->exec)
			continue;
		while (n < max && (p = memmem(p, (size_t)(end - p), ssl_lib_name,
					      sizeof(ssl_lib_name))) != NULL) {
			const uint8_t *start = p;

			while (start > base && start[-1] != '\0' && p - start < 256)
				start--;
			out[n++] = s->vaddr + (uint64_t)(start - base);
			p += sizeof(ssl_lib_name);
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
static int image__find_imm_refs(const struct image *im, const uint64_t *names, int nnames,
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

/* Code addresses that may load one of names into the file argument's register. */
static int image__find_refs(const struct image *im, const uint64_t *names, int nnames,
			    uint64_t *refs, int max)
{
	int i, n = im->fixed ? image__find_imm_refs(im, names, nnames, refs, max) : 0;

	if (n)
		return n;

	for (i = 0; i < im->nsegs; i++) {
		const struct seg *s = &im->segs[i];
		const uint8_t *c = im->img + s->off;
		uint64_t j;

		if (!s->exec || s->filesz < 8)
			continue;
		for (j = 0; j + 8 <= s->filesz && n < max; j++) {
			if ((c[j] == 0xb9 || c[j] == 0xba || c[j] == 0x48) &&
			    ref__matches(c + j, s->vaddr + j, names, nnames))
				refs[n++] = s->vaddr + j;
		}
	}
	return n;
}

/* A frame-pointer prologue on a 16-byte boundary right after padding or a return. */
static bool image__prologue_at(const struct image *im, uint64_t a)
{
	const uint8_t *p = image__at(im, a - 1, 5);

	return p && (p[0] == 0xcc || p[0] == 0xc3 || p[0] == 0x90) && p[1] == 0x55 &&
	       p[2] == 0x48 && p[3] == 0x89 && p[4] == 0xe5;
}

static int image__fn_by_prologue(const struct image *im, uint64_t at, uint64_t *start,
				 uint64_t *end)
{
	uint64_t a, limit = at > BSSL_FN_MAX_BYTES ? at - BSSL_FN_MAX_BYTES : 0;

	for (a = at & ~15ULL; a > limit && !image__prologue_at(im, a); a -= 16)
		;
	if (a <= limit)
		return -ENOENT;
	*start = a;
	for (a = *start + 16; a < *start + BSSL_FN_MAX_BYTES && !image__prologue_at(im, a); a += 16)
		;
	*end = a;
	return 0;
}

static uint64_t eh__start(const struct image *im, uint32_t i)
{
	int32_t rel;

	memcpy(&rel, im->ehtab + (size_t)i * 8, 4);
	return im->eh_vaddr + (int64_t)rel;
}

static int image__fn_by_eh(const struct image *im, uint64_t at, uint64_t *start, uint64_t *end)
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
	*end = lo + 1 < im->eh_count ? eh__start(im, lo + 1) : *start + BSSL_FN_MAX_BYTES;
	if (*end - *start > BSSL_FN_MAX_BYTES)
		*end = *start + BSSL_FN_MAX_BYTES;
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

static void fn__add_reason(struct bssl_fn *fn, uint32_t reason)
{
	uint32_t i;

	for (i = 0; i < fn->nreasons; i++) {
		if (fn->reasons[i] == reason)
			return;
	}
	if (fn->nreasons < BSSL_FN_REASONS)
		fn->reasons[fn->nreasons++] = reason;
}

/*
 * The reason code of an ERR_put_error call: old BoringSSL passes (lib, 0, reason, file, line),
 * the file in rcx and the reason in edx; newer passes (lib, reason, file, line), file in rdx,
 * reason in esi. The arguments are set within a few instructions of each other.
 */
static void fn__reasons(struct bssl_fn *fn, const struct insn_note *notes, size_t n)
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
		for (j = i > BSSL_REASON_WINDOW ? i - BSSL_REASON_WINDOW : 0;
		     j < n && j <= i + BSSL_REASON_WINDOW; j++) {
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

			if (notes[j].reg == X86_REG_EDI && notes[j].imm == BSSL_LIB_SSL)
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

static void fn__prologue_insn(struct bssl_fn *fn, const cs_insn *in, uint64_t *alias)
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

static void fn__insn(struct bssl_fn *fn, const cs_insn *in, struct insn_note *note,
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
		if (o0->type == X86_OP_IMM && fn->ncalls < BSSL_FN_CALLS)
			fn->calls[fn->ncalls++] = (uint64_t)o0->imm;
		else if (o0->type == X86_OP_MEM && o0->mem.base != X86_REG_RIP &&
			 o0->mem.base != X86_REG_INVALID)
			fn->indirect_call = true;
	} else if ((in->id == X86_INS_MOV || in->id == X86_INS_ADD || in->id == X86_INS_SUB) &&
		   x->op_count == 2 && o0->type == X86_OP_MEM && o0->mem.base != X86_REG_RSP &&
		   o0->mem.base != X86_REG_RBP && o0->mem.base != X86_REG_RIP) {
		fn->stores++;
	}
}

static int fn__decode(csh cs, const struct image *im, struct bssl_fn *fn, const uint64_t *names,
		      int nnames)
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
		if (n < BSSL_PROLOGUE_INSNS)
			fn__prologue_insn(fn, in, &alias);
		fn__insn(fn, in, &notes[n++], names, nnames);
	}
	fn__reasons(fn, notes, n);
	cs_free(in, 1);
	free(notes);
	return 0;
}

/* ---- telling the functions apart ------------------------------------------------------------ */

static bool fn__has_reason(const struct bssl_fn *fn, uint32_t reason)
{
	uint32_t i;

	for (i = 0; i < fn->nreasons; i++) {
		if (fn->reasons[i] == reason)
			return true;
	}
	return false;
}

static bool fn__calls(const struct bssl_fn *fn, uint64_t target)
{
	uint32_t i;

	for (i = 0; i < fn->ncalls; i++) {
		if (fn->calls[i] == target)
			return true;
	}
	return false;
}

static bool fn__is_write(const struct bssl_fn *fn)
{
	return fn->quic_disp >= 0 && fn->indirect_call &&
	       fn__has_reason(fn, BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED) &&
	       fn__has_reason(fn, BSSL_R_UNINITIALIZED) &&
	       fn__has_reason(fn, BSSL_R_SSL_HANDSHAKE_FAILURE);
}

/* Calls a function of fns that reports SSL_R_UNINITIALIZED (ssl_read_impl), other than skip. */
static bool fn__calls_read_impl(const struct bssl_fn *fn, const struct bssl_fn *fns, int n,
				const struct bssl_fn *skip)
{
	int i;

	for (i = 0; i < n; i++) {
		if (&fns[i] != skip && fns[i].start != fn->start &&
		    fn__has_reason(&fns[i], BSSL_R_UNINITIALIZED) && fn__calls(fn, fns[i].start))
			return true;
	}
	return false;
}

static bool fn__is_read(const struct bssl_fn *fn, const struct bssl_fn *w,
			const struct bssl_fn *fns, int n)
{
	return fn != w && fn->quic_disp == w->quic_disp && fn->nreasons == 1 &&
	       fn->reasons[0] == BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED &&
	       fn__calls_read_impl(fn, fns, n, w);
}

/* The one function of shape f; with several, SSL_read over SSL_peek: it calls or stores. */
static const struct bssl_fn *fns__pick_read(const struct bssl_fn *fns, int n,
					    const struct bssl_fn *w)
{
	const struct bssl_fn *best = NULL;
	int i, found = 0, storing = 0;

	for (i = 0; i < n; i++) {
		if (!fn__is_read(&fns[i], w, fns, n))
			continue;
		found++;
		if (fns[i].stores) {
			storing++;
			best = &fns[i];
		} else if (!best) {
			best = &fns[i];
		}
	}
	if (found == 1 || storing == 1)
		return best;
	return NULL;
}

static const struct bssl_fn *fns__pick_write(const struct bssl_fn *fns, int n)
{
	const struct bssl_fn *w = NULL;
	int i;

	for (i = 0; i < n; i++) {
		if (!fn__is_write(&fns[i]))
			continue;
		if (w)
			return NULL; /* ambiguous: trust none */
		w = &fns[i];
	}
	return w;
}

static int fns__collect(const struct image *im, const uint64_t *refs, int nrefs,
			struct bssl_fn *fns, int max)
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

static int bssl__classify(const struct image *im, struct bssl_fn *fns, int n,
			  struct bssl_result *res)
{
	const struct bssl_fn *w = fns__pick_write(fns, n), *r;

	if (!w) {
		res->why = "no unique SSL_write shape";
		return -ENOENT;
	}
	r = fns__pick_read(fns, n, w);
	if (!r) {
		res->why = "no unique SSL_read shape";
		return -ENOENT;
	}
	res->write_vaddr = w->start;
	res->read_vaddr = r->start;
	res->write_off = image__file_off(im, w->start);
	res->read_off = image__file_off(im, r->start);
	if (!res->write_off || !res->read_off) {
		res->why = "entry outside the file";
		return -ENOENT;
	}
	res->why = "ok";
	return 0;
}

static int bssl__decode_all(const struct image *im, const uint64_t *names, int nnames,
			    struct bssl_fn *fns, int n)
{
	csh cs;
	int i, err = 0;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	for (i = 0; i < n && !err; i++)
		err = fn__decode(cs, im, &fns[i], names, nnames);
	cs_close(&cs);
	return err;
}

int bssl__analyse(const uint8_t *img, size_t len, struct bssl_result *res)
{
	uint64_t names[8], *refs = NULL;
	struct bssl_fn *fns = NULL;
	struct image im;
	int nnames, nrefs, n, err;

	memset(res, 0, sizeof(*res));
	res->why = "not an x86-64 ELF";
	if (image__open(&im, img, len))
		return -EINVAL;
	res->why = "no BoringSSL ssl_lib.cc";
	nnames = image__find_names(&im, names, 8);
	if (!nnames)
		return -ENOENT;
	refs = calloc(BSSL_MAX_REFS, sizeof(*refs));
	fns = calloc(BSSL_MAX_FNS, sizeof(*fns));
	err = -ENOMEM;
	if (!refs || !fns)
		goto out;
	nrefs = image__find_refs(&im, names, nnames, refs, BSSL_MAX_REFS);
	n = fns__collect(&im, refs, nrefs, fns, BSSL_MAX_FNS);
	res->functions = (uint32_t)n;
	err = bssl__decode_all(&im, names, nnames, fns, n);
	if (!err)
		err = bssl__classify(&im, fns, n, res);
out:
	free(refs);
	free(fns);
	return err;
}

static int file__map(const char *path, const uint8_t **img, size_t *len)
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

int bssl__analyse_file(const char *path, struct bssl_result *res)
{
	const uint8_t *img;
	size_t len;
	int err = file__map(path, &img, &len);

	if (err) {
		memset(res, 0, sizeof(*res));
		res->why = "cannot map the file";
		return err;
	}
	err = bssl__analyse(img, len, res);
	munmap((void *)img, len);
	return err;
}

bool bssl__worth_analysing(const char *path, const struct stat *st)
{
	Elf64_Ehdr eh;
	ssize_t n;
	int fd;

	if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size < BSSL_MIN_FILE_SIZE)
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = pread(fd, &eh, sizeof(eh), 0);
	close(fd);
	return n == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	       eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64 &&
	       (eh.e_type == ET_EXEC || eh.e_type == ET_DYN);
}

/* ---- the worker thread ---------------------------------------------------------------------- */

#define BSSL_QUEUE 64

struct bssl_worker {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stop, verbose;
	char *cache_dir;
	char *jobs[BSSL_QUEUE]; /* FIFO of paths */
	uint32_t njobs, running;
	struct bssl_found *done[BSSL_QUEUE];
	uint32_t ndone;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Cache values: write offset, read offset, write vaddr, read vaddr; all 0 = no BoringSSL. */
static void found__from_cache(struct bssl_found *f, const uint64_t *v)
{
	f->from_cache = true;
	f->err = v[0] && v[1] ? 0 : -ENOENT;
	f->res.write_off = v[0];
	f->res.read_off = v[1];
	f->res.write_vaddr = v[2];
	f->res.read_vaddr = v[3];
	f->res.why = f->err ? "cached: no BoringSSL" : "ok";
}

static void worker__analyse(struct bssl_worker *w, struct bssl_found *f)
{
	uint64_t v[DCACHE_VALS], t0 = mono_us();
	char key[DCACHE_KEY_LEN];
	const uint8_t *img;
	size_t len;

	f->err = file__map(f->path, &img, &len);
	if (f->err) {
		f->res.why = "cannot map the file";
		return;
	}
	dcache__key(img, len, key, sizeof(key));
	if (dcache__get(w->cache_dir, "bssl", key, v, DCACHE_VALS) == 1) {
		found__from_cache(f, v);
	} else {
		f->err = bssl__analyse(img, len, &f->res);
		/* Only verdicts are cached; an error (ENOMEM, EINVAL) may not repeat. */
		if (f->err == 0 || f->err == -ENOENT) {
			uint64_t nv[DCACHE_VALS] = {f->res.write_off, f->res.read_off,
						    f->res.write_vaddr, f->res.read_vaddr};

			dcache__put(w->cache_dir, "bssl", key, nv, DCACHE_VALS);
		}
	}
	munmap((void *)img, len);
	f->took_us = mono_us() - t0;
}

static void *worker__main(void *arg)
{
	struct bssl_worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct bssl_found *f;
		char *path;

		while (!w->stop && (!w->njobs || w->ndone == BSSL_QUEUE))
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break;
		path = w->jobs[0];
		memmove(w->jobs, w->jobs + 1, --w->njobs * sizeof(w->jobs[0]));
		w->running = 1;
		pthread_mutex_unlock(&w->lock);
		f = calloc(1, sizeof(*f));
		if (f) {
			snprintf(f->path, sizeof(f->path), "%s", path);
			worker__analyse(w, f);
		}
		free(path);
		pthread_mutex_lock(&w->lock);
		w->running = 0;
		if (f)
			w->done[w->ndone++] = f;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct bssl_worker *bssl_worker__new(const char *cache_dir, bool verbose)
{
	struct bssl_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->verbose = verbose;
	if (cache_dir && *cache_dir)
		w->cache_dir = strdup(cache_dir);
	return w;
}

int bssl_worker__lookup(struct bssl_worker *w, const char *path, struct bssl_found *out)
{
	uint64_t v[DCACHE_VALS], t0 = mono_us();
	char key[DCACHE_KEY_LEN];
	const uint8_t *img;
	size_t len;
	int hit;

	if (!w->cache_dir || file__map(path, &img, &len))
		return 0;
	dcache__key(img, len, key, sizeof(key));
	munmap((void *)img, len);
	hit = dcache__get(w->cache_dir, "bssl", key, v, DCACHE_VALS);
	if (hit != 1)
		return 0;
	memset(out, 0, sizeof(*out));
	snprintf(out->path, sizeof(out->path), "%s", path);
	found__from_cache(out, v);
	out->took_us = mono_us() - t0;
	return 1;
}

int bssl_worker__submit(struct bssl_worker *w, const char *path)
{
	char *copy = strdup(path);
	int err = 0;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	if (!w->started) {
		if (pthread_create(&w->thread, NULL, worker__main, w))
			err = -EAGAIN;
		else
			w->started = true;
	}
	if (!err && w->njobs == BSSL_QUEUE)
		err = -EBUSY;
	if (!err) {
		w->jobs[w->njobs++] = copy;
		copy = NULL;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	free(copy);
	return err;
}

int bssl_worker__poll(struct bssl_worker *w, struct bssl_found *out)
{
	struct bssl_found *f = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->ndone) {
		f = w->done[0];
		memmove(w->done, w->done + 1, --w->ndone * sizeof(w->done[0]));
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	if (!f)
		return 0;
	*out = *f;
	free(f);
	return 1;
}

uint32_t bssl_worker__busy(struct bssl_worker *w)
{
	uint32_t n;

	pthread_mutex_lock(&w->lock);
	n = w->njobs + w->running + w->ndone;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void bssl_worker__free(struct bssl_worker *w)
{
	uint32_t i;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	/* An analysis in progress finishes first: it is bounded (one mapped file, no I/O waits). */
	if (w->started)
		pthread_join(w->thread, NULL);
	for (i = 0; i < w->njobs; i++)
		free(w->jobs[i]);
	for (i = 0; i < w->ndone; i++)
		free(w->done[i]);
	free(w->cache_dir);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}

/* ---- verification by live traffic ----------------------------------------------------------- */

/*
 * Only the start of a request verifies (in either direction: a Bun server reads them): a
 * response seen first belongs to a request written before the probes were attached, which the
 * parsers could not pair, so the connection waits for its next request instead.
 */
static const char *const request_starts[] = {
    "GET /", "POST /", "PUT /", "PATCH /", "DELETE /", "HEAD /", "OPTIONS ", "CONNECT ",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
};

bool bssl__starts_request(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(request_starts) / sizeof(request_starts[0]); i++) {
		size_t len = strlen(request_starts[i]);

		if (n >= len && !memcmp(p, request_starts[i], len))
			return true;
	}
	return false;
}

static struct bssl_gate_slot *gate__slot(struct bssl_gate *g, uint32_t pid, uint64_t conn)
{
	uint64_t h = (conn ^ ((uint64_t)pid << 32)) * 0x9e3779b97f4a7c15ULL;
	uint32_t i = (uint32_t)(h >> 40) % BSSL_GATE_SLOTS, n;

	for (n = 0; n < BSSL_GATE_SLOTS; n++, i = (i + 1) % BSSL_GATE_SLOTS) {
		struct bssl_gate_slot *s = &g->slots[i];

		if (!s->state || (s->pid == pid && s->conn_id == conn))
			return s;
	}
	return NULL;
}

/*
 * A connection not yet verified: its record passes, and verifies it, when it starts an HTTP
 * request. Anything else is held back (dropped, counted) but not held against it: probes
 * attached while a keep-alive connection was mid-exchange see its tail first, and its next
 * request verifies it. A wrong guess never shows such bytes, so nothing of it ever passes.
 */
static bool gate__judge(struct bssl_gate *g, struct bssl_gate_slot *s,
			const struct tt_data_event *d, size_t size)
{
	size_t n = size - TT_DATA_HDR_SIZE;
	bool ok;

	if (n > d->data_len)
		n = d->data_len;
	ok = bssl__starts_request(d->data, n);
	if (!ok) {
		g->held_bytes += d->data_len;
		if (s->state != BSSL_GATE_WAITING) {
			g->held_conns++;
			if (g->verbose)
				fprintf(stderr,
					"tokentap: BoringSSL connection %#llx of pid %u: held back "
					"until an HTTP request starts\n",
					(unsigned long long)d->hdr.conn_id, d->hdr.pid);
		}
		s->state = BSSL_GATE_WAITING;
		return false;
	}
	g->verified++;
	if (g->verbose)
		fprintf(stderr, "tokentap: BoringSSL connection %#llx of pid %u verified: an HTTP "
			"request\n", (unsigned long long)d->hdr.conn_id, d->hdr.pid);
	s->state = BSSL_GATE_VERIFIED;
	return true;
}

bool bssl_gate__pass(struct bssl_gate *g, const void *rec, size_t size)
{
	const struct tt_data_event *d = rec;
	struct bssl_gate_slot *s;

	if (size < sizeof(struct tt_event_hdr))
		return false;
	if (!g->slots && !(g->slots = calloc(BSSL_GATE_SLOTS, sizeof(*g->slots))))
		return false;
	if (g->used * 4 >= BSSL_GATE_SLOTS * 3) {
		memset(g->slots, 0, BSSL_GATE_SLOTS * sizeof(*g->slots));
		g->used = 0;
	}
	s = gate__slot(g, d->hdr.pid, d->hdr.conn_id);
	if (d->hdr.kind == TT_EV_CLOSE && s && s->state)
		s->state = BSSL_GATE_CLOSED; /* the SSL* may come back as a new connection */
	/*
	 * Records without payload (close, ignore, sync, socket, SNI) always pass: they carry stream
	 * positions the parsers need (the kernel sends an IGNORE instead of a first GET's bytes),
	 * and without data they can make no span.
	 */
	if (d->hdr.kind != TT_EV_DATA)
		return true;
	if (size < TT_DATA_HDR_SIZE || !s)
		return false;
	if (s->state == BSSL_GATE_VERIFIED)
		return true;
	if (s->state == BSSL_GATE_FREE)
		g->used++;
	s->pid = d->hdr.pid;
	s->conn_id = d->hdr.conn_id;
	return gate__judge(g, s, d, size);
}

void bssl_gate__free(struct bssl_gate *g)
{
	free(g->slots);
	g->slots = NULL;
}
