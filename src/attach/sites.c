// SPDX-License-Identifier: Apache-2.0
/*
 * Probe-site selection (see sites.h): decode one function with capstone, build its control flow,
 * and pick an emulated entry site and an emulated return site, or keep the classic pair.
 * Everything here errs towards the classic pair: any instruction we do not fully understand on
 * the paths that matter (an unknown stack-pointer write, an indirect jump, a tail call, two
 * `ret`s) rejects the function.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <capstone/capstone.h>

#include "tokentap_abi.h"
#include "attach/elf_syms.h"
#include "attach/sites.h"

/* How far into the prologue an entry site may be. */
#define ENTRY_SCAN_MAX 32

enum insn_kind {
	K_NORMAL = 0, /* falls through */
	K_CALL,	      /* falls through, clobbers the caller-saved registers */
	K_JCC,	      /* falls through or goes to target */
	K_JMP,	      /* goes to target */
	K_JMP_IND,    /* goes anywhere: switch table or tail call */
	K_RET,
	K_STOP, /* int3, ud2, hlt: no successor */
	K_BAD,	/* retf, iret, far jumps: reject */
};

/* Registers of interest, as bits. */
enum {
	R_RAX = 1,
	R_RDI = 2,
	R_RSI = 4,
	R_RDX = 8,
	R_RCX = 16,
	R_RSP = 32,
};

struct insn {
	uint64_t addr;
	uint64_t target;   /* direct branch target, or 0 */
	int32_t sp_effect; /* change of rsp when executed, if sp_known */
	uint8_t kind;	   /* enum insn_kind */
	uint8_t writes;	   /* R_* bits written */
	bool sp_known;	   /* sp_effect is exact */
	bool emulated;	   /* the kernel emulates an uprobe here instead of single-stepping */
	bool is_target;	   /* some branch of the function lands here */
};

struct fn_code {
	struct insn *in;
	size_t n;
	uint64_t start, end;
};

/* ---- decoding -------------------------------------------------------------------------------- */

static uint8_t reg__bit(uint16_t r)
{
	switch (r) {
	case X86_REG_RAX:
	case X86_REG_EAX:
	case X86_REG_AX:
	case X86_REG_AL:
	case X86_REG_AH:
		return R_RAX;
	case X86_REG_RDI:
	case X86_REG_EDI:
	case X86_REG_DI:
	case X86_REG_DIL:
		return R_RDI;
	case X86_REG_RSI:
	case X86_REG_ESI:
	case X86_REG_SI:
	case X86_REG_SIL:
		return R_RSI;
	case X86_REG_RDX:
	case X86_REG_EDX:
	case X86_REG_DX:
	case X86_REG_DL:
	case X86_REG_DH:
		return R_RDX;
	case X86_REG_RCX:
	case X86_REG_ECX:
	case X86_REG_CX:
	case X86_REG_CL:
	case X86_REG_CH:
		return R_RCX;
	case X86_REG_RSP:
	case X86_REG_ESP:
	case X86_REG_SP:
	case X86_REG_SPL:
		return R_RSP;
	default:
		return 0;
	}
}

/*
 * Whether arch/x86/kernel/uprobes.c emulates an uprobe on these bytes: relative jmp/jcc/call
 * (branch_setup_xol_ops), push of a 64-bit register (push_setup_xol_ops) and the one-byte nop.
 * No prefixes besides REX.B on push: the kernel refuses 0x66 and we need not guess the rest.
 */
static bool insn__emulated(const uint8_t *b, size_t size)
{
	if (size == 2 && (b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f)))
		return true;
	if (size == 5 && (b[0] == 0xe9 || b[0] == 0xe8))
		return true;
	if (size == 6 && b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f)
		return true;
	if (size == 1 && (b[0] == 0x90 || (b[0] >= 0x50 && b[0] <= 0x57)))
		return true;
	return size == 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57;
}

static enum insn_kind insn__kind(csh h, const cs_insn *ci, uint64_t *target)
{
	const cs_x86 *x = &ci->detail->x86;
	bool direct = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;

	*target = direct ? (uint64_t)x->operands[0].imm : 0;
	if (ci->id == X86_INS_INT3 || ci->id == X86_INS_UD2 || ci->id == X86_INS_UD2B ||
	    ci->id == X86_INS_HLT)
		return K_STOP;
	if (ci->id == X86_INS_RET)
		return K_RET;
	if (cs_insn_group(h, ci, CS_GRP_RET) || cs_insn_group(h, ci, CS_GRP_IRET) ||
	    ci->id == X86_INS_LJMP || ci->id == X86_INS_LCALL)
		return K_BAD;
	if (cs_insn_group(h, ci, CS_GRP_CALL) || ci->id == X86_INS_SYSCALL)
		return K_CALL;
	if (cs_insn_group(h, ci, CS_GRP_JUMP)) {
		if (ci->id == X86_INS_JMP)
			return direct ? K_JMP : K_JMP_IND;
		return direct ? K_JCC : K_BAD;
	}
	return K_NORMAL;
}

/* The exact change of rsp, for the forms compilers emit in prologues and epilogues. */
static bool insn__sp_effect(const cs_insn *ci, int32_t *eff)
{
	const cs_x86 *x = &ci->detail->x86;
	const cs_x86_op *o = x->operands;

	*eff = 0;
	if (ci->id == X86_INS_PUSH || ci->id == X86_INS_POP) {
		if (x->op_count != 1 || (o[0].type == X86_OP_REG && reg__bit(o[0].reg) == R_RSP))
			return false;
		*eff = ci->id == X86_INS_PUSH ? -8 : 8;
		return true;
	}
	if ((ci->id == X86_INS_SUB || ci->id == X86_INS_ADD) && x->op_count == 2 &&
	    o[0].type == X86_OP_REG && o[0].reg == X86_REG_RSP && o[1].type == X86_OP_IMM) {
		if (o[1].imm < -0x10000 || o[1].imm > 0x10000)
			return false;
		*eff = (int32_t)(ci->id == X86_INS_SUB ? -o[1].imm : o[1].imm);
		return true;
	}
	return false;
}

static void insn__fill(csh h, const cs_insn *ci, struct insn *in)
{
	cs_regs rd, wr;
	uint8_t nrd = 0, nwr = 0, i;

	memset(in, 0, sizeof(*in));
	in->addr = ci->address;
	in->kind = (uint8_t)insn__kind(h, ci, &in->target);
	in->emulated = insn__emulated(ci->bytes, ci->size);
	if (!cs_regs_access(h, ci, rd, &nrd, wr, &nwr)) {
		for (i = 0; i < nwr; i++)
			in->writes |= reg__bit(wr[i]);
	} else {
		in->writes = 0xff;
	}
	/* A callee may clobber every argument register and rax. */
	if (in->kind == K_CALL)
		in->writes |= R_RAX | R_RDI | R_RSI | R_RDX | R_RCX;
	in->sp_known = insn__sp_effect(ci, &in->sp_effect);
	if (!in->sp_known && !(in->writes & R_RSP) && in->kind != K_CALL && in->kind != K_RET)
		in->sp_known = true; /* leaves rsp alone (calls and rets balance for the caller) */
}

static int fn__decode(csh h, const uint8_t *code, size_t len, uint64_t off, struct fn_code *fn)
{
	cs_insn *ci = cs_malloc(h);
	const uint8_t *p = code;
	size_t left = len, cap = len; /* an instruction is at least one byte */
	uint64_t addr = off;

	fn->in = calloc(cap, sizeof(*fn->in));
	fn->n = 0;
	fn->start = off;
	fn->end = off + len;
	if (!ci || !fn->in) {
		cs_free(ci, 1);
		return -ENOMEM;
	}
	while (left && fn->n < cap && cs_disasm_iter(h, &p, &left, &addr, ci))
		insn__fill(h, ci, &fn->in[fn->n++]);
	cs_free(ci, 1);
	return left ? -EINVAL : 0;
}

static ssize_t fn__index(const struct fn_code *fn, uint64_t addr)
{
	size_t lo = 0, hi = fn->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (fn->in[mid].addr == addr)
			return (ssize_t)mid;
		if (fn->in[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Marks branch targets; a branch into the middle of an instruction makes the decode unusable. */
static int fn__mark_targets(struct fn_code *fn, bool *leaves)
{
	size_t i;

	*leaves = false;
	for (i = 0; i < fn->n; i++) {
		struct insn *in = &fn->in[i];
		ssize_t t;

		if (in->kind == K_JMP_IND || in->kind == K_BAD)
			*leaves = true;
		if (in->kind != K_JMP && in->kind != K_JCC)
			continue;
		if (in->target < fn->start || in->target >= fn->end) {
			*leaves = true; /* a tail call: a return that passes no site of ours */
			continue;
		}
		t = fn__index(fn, in->target);
		if (t < 0)
			return -EINVAL;
		fn->in[t].is_target = true;
	}
	return 0;
}

/* ---- the sites ------------------------------------------------------------------------------- */

/*
 * The first emulated instruction of the straight-line prologue: nothing before it branches,
 * calls, is a branch target (it runs exactly once, before anything else), writes an argument
 * register or moves rsp in a way we cannot follow.
 */
static int fn__entry_site(const struct fn_code *fn, uint8_t argmask, size_t *at, uint16_t *add)
{
	int32_t delta = 0;
	size_t i;

	for (i = 0; i < fn->n && i < ENTRY_SCAN_MAX; i++) {
		const struct insn *in = &fn->in[i];

		if (i > 0 && in->is_target)
			return -ENOENT;
		if (in->emulated) {
			*at = i;
			*add = (uint16_t)-delta;
			return -delta >= 0 && -delta <= 0xffff ? 0 : -ENOENT;
		}
		if (in->kind != K_NORMAL || (in->writes & argmask) || !in->sp_known)
			return -ENOENT;
		delta += in->sp_effect;
	}
	return -ENOENT;
}

/* Whether a walk from insn `from` reaches `to` or `avoid`; a walk stops at `avoid`. */
static bool fn__reaches(const struct fn_code *fn, size_t from, size_t to, size_t avoid)
{
	size_t *stack = calloc(fn->n + 1, sizeof(*stack)), sp = 0;
	bool *seen = calloc(fn->n, sizeof(*seen)), hit = true;

	if (!stack || !seen)
		goto out;
	hit = false;
	stack[sp++] = from;
	while (sp && !hit) {
		size_t i = stack[--sp];
		const struct insn *in;

		if (i >= fn->n || seen[i])
			continue;
		if (i == to || i == avoid) {
			hit = true;
			break;
		}
		seen[i] = true;
		in = &fn->in[i];
		if (in->kind == K_JMP || in->kind == K_JCC) {
			ssize_t t = fn__index(fn, in->target);

			if (t >= 0)
				stack[sp++] = (size_t)t;
		}
		/* A call in the last position never returns here (__stack_chk_fail, abort). */
		if (in->kind == K_NORMAL || in->kind == K_JCC || in->kind == K_CALL)
			stack[sp++] = i + 1;
	}
out:
	free(stack);
	free(seen);
	return hit; /* an allocation failure answers "reaches": the caller then rejects */
}

/*
 * Walking back from the only `ret`: a straight line of non-branches that leave rax alone and
 * move rsp knowably, entered only from its first instruction, preceded by an emulated one S.
 * rax at S is then the return value and sp at S is the entry sp minus what the line pops.
 */
static int fn__return_site(const struct fn_code *fn, size_t entry, size_t *at, uint16_t *add)
{
	size_t i, r = fn->n, nret = 0;
	int32_t delta = 0; /* entry sp - sp, at the instruction being looked at */

	for (i = 0; i < fn->n; i++) {
		if (fn->in[i].kind == K_RET) {
			r = i;
			nret++;
		}
	}
	if (nret != 1)
		return -ENOENT;
	for (i = r; i-- > entry + 1;) {
		const struct insn *in = &fn->in[i];

		if (fn->in[i + 1].is_target || !in->sp_known)
			return -ENOENT;
		delta += in->sp_effect; /* S's own push runs after the probe: it counts too */
		if (in->emulated && in->kind != K_CALL && in->kind != K_JMP) {
			if (delta < 0 || delta > 0xffff)
				return -ENOENT;
			/* A branch away from S must never come back to S or to the ret. */
			if (in->kind == K_JCC &&
			    fn__reaches(fn, (size_t)fn__index(fn, in->target), r, i))
				return -ENOENT;
			*at = i;
			*add = (uint16_t)delta;
			return 0;
		}
		if (in->kind != K_NORMAL || (in->writes & R_RAX))
			return -ENOENT;
	}
	return -ENOENT;
}

static int fn__pick(struct fn_code *fn, unsigned nargs, struct site_pair *out, const char **why)
{
	uint8_t argmask = R_RDI | R_RSI | R_RDX | (nargs > 3 ? R_RCX : 0);
	size_t e, r;
	bool leaves;

	if (fn__mark_targets(fn, &leaves)) {
		*why = "branch into an instruction";
		return -EINVAL;
	}
	if (fn__entry_site(fn, argmask, &e, &out->entry_sp_add)) {
		*why = "no emulated instruction before the arguments are overwritten";
		return -ENOENT;
	}
	if (leaves) {
		*why = "tail call or indirect jump";
		return -ENOENT;
	}
	if (fn__return_site(fn, e, &r, &out->ret_sp_add)) {
		*why = "no emulated instruction that every return passes with rax set";
		return -ENOENT;
	}
	out->entry_off = fn->in[e].addr;
	out->ret_off = fn->in[r].addr;
	return 0;
}

int sites__analyze(const uint8_t *code, size_t len, uint64_t off, unsigned nargs,
		   struct site_pair *out, const char **why)
{
	struct fn_code fn = {0};
	csh h;
	int err;

	memset(out, 0, sizeof(*out));
	*why = "cannot decode";
	if (!len || len > SITES_FN_MAX || !off)
		return -EINVAL;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &h) != CS_ERR_OK)
		return -EINVAL;
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	err = fn__decode(h, code, len, off, &fn);
	if (!err)
		err = fn__pick(&fn, nargs, out, why);
	if (err)
		memset(out, 0, sizeof(*out));
	free(fn.in);
	cs_close(&h);
	return err;
}

/* ---- the BPF cookie -------------------------------------------------------------------------- */

static bool fn__is_ex(enum attach_fn fn)
{
	return fn == ATTACH_FN_SSL_WRITE_EX || fn == ATTACH_FN_SSL_READ_EX;
}

static bool fn__is_read(enum attach_fn fn)
{
	return fn == ATTACH_FN_SSL_READ || fn == ATTACH_FN_SSL_READ_EX;
}

uint64_t sites__cookie(enum attach_fn fn, bool ret, uint16_t sp_add, bool verify)
{
	uint64_t c = sp_add;

	c |= fn__is_read(fn) ? TT_SITE_DIR_BIT : 0;
	c |= fn__is_ex(fn) ? TT_SITE_EX_BIT : 0;
	c |= verify ? TT_SITE_VERIFY_BIT : 0;
	c |= (uint64_t)TT_SRC_OPENSSL << TT_SITE_SOURCE_SHIFT;
	c |= (uint64_t)(fn * 2 + (ret ? 1 : 0)) << TT_SITE_ID_SHIFT;
	return c;
}

/* ---- one file -------------------------------------------------------------------------------- */

static void elf__match_sizes(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, const uint64_t *offs,
			     uint64_t *sizes)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0, i, k;
	GElf_Sym sym;

	for (i = 0; data && i < count; i++) {
		uint64_t off;

		if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || !sym.st_size)
			continue;
		off = elf_syms__file_offset(e, sym.st_value);
		for (k = 0; off && k < ATTACH_FN__COUNT; k++) {
			if (offs[k] == off)
				sizes[k] = sym.st_size;
		}
	}
}

/*
 * Sizes of the functions at offs[] from .dynsym, if the file is an x86-64 shared library: the
 * verification child must dlopen it, so executables (node) keep the classic pair.
 */
static bool elf__fn_sizes(Elf *e, const uint64_t *offs, uint64_t *sizes)
{
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	GElf_Shdr sh;
	GElf_Phdr ph;
	size_t nph, i;

	if (!gelf_getehdr(e, &eh) || eh.e_type != ET_DYN || eh.e_machine != EM_X86_64 ||
	    elf_getphdrnum(e, &nph))
		return false;
	for (i = 0; i < nph; i++) {
		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_INTERP)
			return false;
	}
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_DYNSYM)
			break;
	}
	if (!scn)
		return false;
	elf__match_sizes(e, scn, &sh, offs, sizes);
	return true;
}

/* The OpenSSL read/write functions: the ones sites are planned for. */
static bool fn__planned(int i)
{
	return i <= ATTACH_FN_SSL_READ_EX;
}

static const char *const fn_label[] = {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"};

/* Analyses each planned function of an open file. Returns how many got a candidate pair. */
static int sites__analyze_file(int fd, const uint64_t *offs, const uint64_t *sizes,
			       struct site_pair *pairs, bool verbose)
{
	uint8_t *code = malloc(SITES_FN_MAX);
	int i, found = 0;

	for (i = 0; code && i < ATTACH_FN__COUNT; i++) {
		const char *why = "no symbol size";
		ssize_t got = -1;

		if (!fn__planned(i) || !offs[i])
			continue;
		if (sizes[i] && sizes[i] <= SITES_FN_MAX)
			got = pread(fd, code, sizes[i], (off_t)offs[i]);
		if (got == (ssize_t)sizes[i] &&
		    !sites__analyze(code, sizes[i], offs[i], i >= ATTACH_FN_SSL_WRITE_EX ? 4 : 3,
				    &pairs[i], &why)) {
			found++;
			continue;
		}
		if (verbose)
			fprintf(stderr, "tokentap: probe sites: %s keeps the classic pair: %s\n",
				fn_label[i], why);
	}
	free(code);
	return found;
}

int sites__plan(const struct sites_bpf *bpf, const char *path, const uint64_t *offs,
		struct site_pair *pairs, bool verbose)
{
	uint64_t sizes[ATTACH_FN__COUNT] = {0};
	int fd, found = 0;
	bool lib = false;
	Elf *e;

	memset(pairs, 0, ATTACH_FN__COUNT * sizeof(*pairs));
	if (!bpf || !bpf->entry || !bpf->ret)
		return 0;
	fd = elf_syms__open(path, &e);
	if (fd < 0)
		return 0;
	if (e)
		lib = elf__fn_sizes(e, offs, sizes);
	if (lib)
		found = sites__analyze_file(fd, offs, sizes, pairs, verbose);
	elf_syms__close(e, fd);
	if (!found)
		return 0;
	return sites__verify(bpf, path, offs, pairs, verbose);
}
