// SPDX-License-Identifier: Apache-2.0
/*
 * attach/awslc.c (with codeshape.c and the bssl worker): discovery of aws-lc's
 * EVP_AEAD_CTX_seal / seal_scatter / open / open_gather on synthetic x86-64 ELF images in
 * aws-lc's ERR_put_error convention (lib in edi, 0 in esi, reason in edx, file in rcx by lea rip
 * or mov imm32, line in r8d), among decoys that report other reasons, the right reasons from
 * another file or library, or no call through a pointer. Two functions of one shape or a
 * missing one must find nothing; truncated and corrupted images must neither crash nor report
 * an offset outside the file. Codex's real binary is analysed when tests/e2e/agents has it (or
 * TOKENTAP_TEST_CODEX names one); Bun and Claude Code must show no aws-lc.
 * TOKENTAP_WRITE_SEEDS=dir writes the small images as fuzzing seeds (tests/fuzz/corpus/boringssl).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shape_image.h"
#include "tt_test.h"

#include "attach/awslc.h"
#include "attach/boringssl.h"
#include "attach/codeshape.h"
#include "attach/discovery_cache.h"

#define OTHER_AT 0x100	   /* another aws-lc source file's name, in rodata */
#define EH_MAX 32	   /* functions .eh_frame_hdr can list */
#define SMALL_HDRS 0x120   /* the compact image: ELF header and 4 program headers, */
#define SMALL_RO_OFF 0x180 /* then rodata, .eh_frame_hdr and code moved here */
#define SMALL_EH_OFF 0x380
#define SMALL_TEXT_OFF 0x500
#define SMALL_RO_SIZE 0x200

static const char aead_c[] =
    "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/aws-lc-sys-0.32.2/aws-lc/"
    "crypto/fipsmodule/cipher/aead.c";
static const char e_aes_c[] = "../aws-lc/crypto/fipsmodule/cipher/e_aes.c";

enum call_kind {
	CALL_MEM,	 /* mov rax, [rdi]; call [rax+disp]: the AEAD method table */
	CALL_REG,	 /* mov r11, [rdi+8]; call r11 */
	CALL_RIP,	 /* call [rip+x]: a fixed pointer (PLT/GOT), no run-time one */
	CALL_DIRECT_ONLY /* no call through a pointer at all */
};

struct aw_opts {
	bool lea;	   /* the file name loaded with lea rip (else mov imm32) */
	bool pie;	   /* ET_DYN */
	bool eh;	   /* .eh_frame_hdr lists the functions */
	int dup;	   /* this shape (enum awslc_fn) emitted twice; -1 none */
	int missing;	   /* this shape left out; -1 none */
	int no_indirect;   /* this shape calls through no run-time pointer; -1 none */
	enum call_kind nc; /* how no_indirect calls instead */
};

struct aw_synth {
	uint8_t *img;
	uint64_t fn[AWSLC_FNS]; /* vaddrs of the true entry points (0 when left out) */
	uint64_t starts[EH_MAX];
	uint32_t nstarts;
	uint64_t text_end; /* file offset after the last function */
	bool eh;
};

static const struct aw_opts defaults = {.dup = -1, .missing = -1, .no_indirect = -1};

static uint64_t fn_start(struct asm_buf *b, struct aw_synth *s)
{
	uint64_t at = fn_begin(b);

	if (s->nstarts < EH_MAX)
		s->starts[s->nstarts++] = at;
	return at;
}

static void indirect_call(struct asm_buf *b, enum call_kind k)
{
	switch (k) {
	case CALL_MEM:
		emit(b, "\x48\x8b\x07\xff\x50\x10", 6); /* mov (%rdi),%rax; call *0x10(%rax) */
		break;
	case CALL_REG:
		emit(b, "\x4c\x8b\x5f\x08\x41\xff\xd3", 7); /* mov 8(%rdi),%r11; call *%r11 */
		break;
	case CALL_RIP:
		emit(b, "\xff\x15\x00\x01\x00\x00", 6); /* call *0x100(%rip) */
		break;
	case CALL_DIRECT_ONLY:
		call(b, b->err_fn);
		break;
	}
}

/* One aead.c function reporting reasons of lib from name, then calling as k says. */
static uint64_t emit_fn(struct asm_buf *b, struct aw_synth *s, uint64_t name, uint32_t lib,
			const uint32_t *reasons, int n, enum call_kind k)
{
	uint64_t at = fn_start(b, s);
	int i;

	emit1(b, 0x53); /* push rbx */
	for (i = 0; i < n; i++) {
		put_err_at(b, name, lib, reasons[i], 0x40 + 7 * (uint32_t)i);
		if (i == 0)
			indirect_call(b, k); /* between the error reports, as after a check */
	}
	emit1(b, 0x5b);
	fn_end(b);
	return at;
}

static const uint32_t seal_r[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_TOO_LARGE,
				  AWSLC_R_BUFFER_TOO_SMALL};
static const uint32_t scatter_r[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_INVALID_OPERATION};
static const uint32_t open_r[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_BAD_DECRYPT,
				  AWSLC_R_BUFFER_TOO_SMALL, AWSLC_R_CTRL_NOT_IMPLEMENTED};
static const uint32_t gather_r[] = {AWSLC_R_CTRL_NOT_IMPLEMENTED, AWSLC_R_OUTPUT_ALIASING};

static uint64_t emit_shape(struct asm_buf *b, struct aw_synth *s, int which, enum call_kind k)
{
	uint64_t name = RO_VADDR + NAME_AT;

	switch (which) {
	case AWSLC_SEAL:
		return emit_fn(b, s, name, AWSLC_LIB_CIPHER, seal_r, 3, k);
	case AWSLC_SEAL_SCATTER:
		return emit_fn(b, s, name, AWSLC_LIB_CIPHER, scatter_r, 2, k);
	case AWSLC_OPEN:
		return emit_fn(b, s, name, AWSLC_LIB_CIPHER, open_r, 4, k);
	default:
		return emit_fn(b, s, name, AWSLC_LIB_CIPHER, gather_r, 2, k);
	}
}

/* Functions that must match none of the four. */
static void emit_decoys(struct asm_buf *b, struct aw_synth *s)
{
	static const uint32_t init_r[] = {102, 106, 122}; /* EVP_AEAD_CTX_init-like */
	static const uint32_t scatter_buf_r[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_INVALID_OPERATION,
						 AWSLC_R_BUFFER_TOO_SMALL};
	static const uint32_t gather_bad_r[] = {AWSLC_R_OUTPUT_ALIASING,
						AWSLC_R_CTRL_NOT_IMPLEMENTED, AWSLC_R_BAD_DECRYPT};
	static const uint32_t alias_r[] = {AWSLC_R_OUTPUT_ALIASING};
	uint64_t aead = RO_VADDR + NAME_AT, e_aes = RO_VADDR + OTHER_AT;

	emit_fn(b, s, aead, AWSLC_LIB_CIPHER, init_r, 3, CALL_MEM);
	/* scatter's reasons and BUFFER_TOO_SMALL; gather's and BAD_DECRYPT: neither one. */
	emit_fn(b, s, aead, AWSLC_LIB_CIPHER, scatter_buf_r, 3, CALL_REG);
	emit_fn(b, s, aead, AWSLC_LIB_CIPHER, gather_bad_r, 3, CALL_MEM);
	emit_fn(b, s, aead, AWSLC_LIB_CIPHER, alias_r, 1, CALL_MEM);
	/* The reasons of all four, but of another library (ERR_LIB_EVP) or from another file. */
	emit_fn(b, s, aead, 6, open_r, 4, CALL_MEM);
	emit_fn(b, s, aead, 6, seal_r, 3, CALL_MEM);
	emit_fn(b, s, e_aes, AWSLC_LIB_CIPHER, seal_r, 3, CALL_MEM);
	emit_fn(b, s, e_aes, AWSLC_LIB_CIPHER, scatter_r, 2, CALL_REG);
	emit_fn(b, s, e_aes, AWSLC_LIB_CIPHER, open_r, 4, CALL_MEM);
	emit_fn(b, s, e_aes, AWSLC_LIB_CIPHER, gather_r, 2, CALL_REG);
}

/* The AEAD entry points as aws-lc has them: seal and open call through memory, the others
 * through a register. */
static const enum call_kind call_of[AWSLC_FNS] = {CALL_MEM, CALL_REG, CALL_MEM, CALL_REG};

static void synth__build(struct aw_synth *s, const struct aw_opts *o)
{
	struct asm_buf b = {.lea = o->lea, .pos = TEXT_OFF};
	int i;

	memset(s, 0, sizeof(*s));
	s->img = calloc(1, IMG_SIZE);
	s->eh = o->eh;
	b.img = s->img;
	put_elf_header(s->img, o->eh ? 3 : 2);
	if (o->pie)
		s->img[16] = ET_DYN; /* e_type */
	put_phdr(s->img, 0, PT_LOAD, PF_R, 0, 0x200000, TEXT_OFF);
	put_phdr(s->img, 1, PT_LOAD, PF_R | PF_X, TEXT_OFF, TEXT_VADDR, TEXT_SIZE);
	if (o->eh)
		put_phdr(s->img, 2, PT_GNU_EH_FRAME, PF_R, EH_OFF, EH_VADDR, 12 + 8 * EH_MAX);
	memcpy(s->img + RO_OFF + NAME_AT, aead_c, sizeof(aead_c));
	memcpy(s->img + RO_OFF + OTHER_AT, e_aes_c, sizeof(e_aes_c));
	b.err_fn = fn_start(&b, s); /* ERR_put_error */
	fn_end(&b);
	emit_decoys(&b, s);
	for (i = 0; i < AWSLC_FNS; i++) {
		enum call_kind k = i == o->no_indirect ? o->nc : call_of[i];

		if (i == o->missing)
			continue;
		s->fn[i] = emit_shape(&b, s, i, k);
		if (i == o->dup)
			emit_shape(&b, s, i, k);
	}
	emit_fn(&b, s, RO_VADDR + NAME_AT, AWSLC_LIB_CIPHER, (const uint32_t[]){107}, 1,
		CALL_MEM); /* a last function, EVP_AEAD_CTX_cleanup-like */
	s->text_end = b.pos;
	if (o->eh)
		put_eh_frame_hdr(s->img, s->starts, s->nstarts);
}

/*
 * The same program in a few KiB (fuzzing seeds, every-prefix truncation): the name, the
 * .eh_frame_hdr and the code at other file offsets than their segments' alignment suggests,
 * at the same virtual addresses.
 */
static size_t synth__compact(const struct aw_synth *s, uint8_t **out)
{
	uint64_t text = s->text_end - TEXT_OFF;
	size_t len = SMALL_TEXT_OFF + text;
	uint8_t *img = calloc(1, len);
	int n = 0;

	put_elf_header(img, s->eh ? 4 : 2);
	img[16] = s->img[16];
	put_phdr(img, n++, PT_LOAD, PF_R, SMALL_RO_OFF, RO_VADDR, SMALL_RO_SIZE);
	memcpy(img + SMALL_RO_OFF, s->img + RO_OFF, SMALL_RO_SIZE);
	put_phdr(img, n++, PT_LOAD, PF_R | PF_X, SMALL_TEXT_OFF, TEXT_VADDR, text);
	memcpy(img + SMALL_TEXT_OFF, s->img + TEXT_OFF, text);
	if (s->eh) {
		put_phdr(img, n++, PT_LOAD, PF_R, SMALL_EH_OFF, EH_VADDR, 12 + 8 * EH_MAX);
		put_phdr(img, n++, PT_GNU_EH_FRAME, PF_R, SMALL_EH_OFF, EH_VADDR, 12 + 8 * EH_MAX);
		memcpy(img + SMALL_EH_OFF, s->img + EH_OFF, 12 + 8 * EH_MAX);
	}
	*out = img;
	return len;
}

static uint64_t small_off(uint64_t vaddr)
{
	return vaddr - TEXT_VADDR + SMALL_TEXT_OFF;
}

static void check_all_found(const struct awslc_result *r, const struct aw_synth *s,
			    uint64_t (*off)(uint64_t))
{
	int i;

	CHECK_EQ_STR(r->why, "ok");
	for (i = 0; i < AWSLC_FNS; i++) {
		CHECK_EQ_INT(r->vaddr[i], s->fn[i]);
		CHECK_EQ_INT(r->off[i], off(s->fn[i]));
	}
	CHECK_EQ_INT(r->functions, 11); /* every function naming aead.c */
}

static void check_found(struct aw_opts o)
{
	struct awslc_result r;
	struct aw_synth s;
	uint8_t *small;
	size_t len;

	synth__build(&s, &o);
	CHECK_EQ_INT(awslc__analyse(s.img, IMG_SIZE, &r), 0);
	check_all_found(&r, &s, off_of);
	len = synth__compact(&s, &small);
	CHECK(len < 4096);
	CHECK_EQ_INT(awslc__analyse(small, len, &r), 0);
	check_all_found(&r, &s, small_off);
	free(small);
	free(s.img);
}

static void check_none(struct aw_opts o, const char *why)
{
	struct awslc_result r;
	struct aw_synth s;
	int i;

	synth__build(&s, &o);
	CHECK_EQ_INT(awslc__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	CHECK_EQ_STR(r.why, why);
	for (i = 0; i < AWSLC_FNS; i++)
		CHECK_EQ_INT(r.off[i], 0);
	free(s.img);
}

TEST(four_entry_points_mov_imm32)
{
	struct aw_opts o = defaults;

	check_found(o);
}

TEST(four_entry_points_lea_rip)
{
	struct aw_opts o = defaults;

	o.lea = true;
	check_found(o);
	o.pie = true;
	check_found(o);
}

TEST(eh_frame_hdr_function_starts)
{
	struct aw_opts o = defaults;

	o.eh = true;
	check_found(o);
	o.lea = true;
	check_found(o);
	o.pie = true;
	check_found(o);
}

TEST(two_functions_of_one_shape_trust_none)
{
	struct aw_opts o = defaults;
	int i;

	for (i = 0; i < AWSLC_FNS; i++) {
		o.dup = i;
		o.eh = i & 1;
		check_none(o, "no unique shape for each AEAD entry point");
	}
}

TEST(a_missing_entry_point_finds_none)
{
	struct aw_opts o = defaults;
	int i;

	for (i = 0; i < AWSLC_FNS; i++) {
		o.missing = i;
		o.lea = i & 1;
		check_none(o, "no unique shape for each AEAD entry point");
	}
}

/* A fixed pointer (call [rip+x]) or a direct call is not the AEAD's method. */
TEST(no_call_through_a_pointer_is_no_match)
{
	struct aw_opts o = defaults;
	int i;

	for (i = 0; i < AWSLC_FNS; i++) {
		o.no_indirect = i;
		o.nc = i & 1 ? CALL_RIP : CALL_DIRECT_ONLY;
		check_none(o, "no unique shape for each AEAD entry point");
	}
}

/*
 * -ENOENT sets nothing: the entry points found before the missing one leave no vaddr behind (a
 * partial verdict would reach the log and the cache).
 */
TEST(no_match_leaves_no_vaddr)
{
	struct aw_opts o = defaults;
	struct awslc_result r;
	struct aw_synth s;
	int i;

	o.missing = AWSLC_OPEN_GATHER;
	synth__build(&s, &o);
	CHECK_EQ_INT(awslc__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	for (i = 0; i < AWSLC_FNS; i++)
		CHECK_EQ_INT(r.vaddr[i], 0);
	free(s.img);
}

TEST(no_aead_c_or_not_x86_elf)
{
	struct aw_opts o = defaults;
	struct awslc_result r;
	struct aw_synth s;

	synth__build(&s, &o);
	s.img[RO_OFF + NAME_AT + sizeof(aead_c) - 2] = 'h'; /* ".../aead.h" */
	CHECK_EQ_INT(awslc__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	CHECK_EQ_STR(r.why, "no aws-lc aead.c");
	CHECK_EQ_INT(r.functions, 0);
	s.img[RO_OFF + NAME_AT + sizeof(aead_c) - 2] = 'c';
	s.img[18] = 0xb7; /* e_machine EM_AARCH64 */
	CHECK_EQ_INT(awslc__analyse(s.img, IMG_SIZE, &r), -EINVAL);
	CHECK_EQ_STR(r.why, "not an x86-64 ELF");
	CHECK_EQ_INT(awslc__analyse(s.img, 10, &r), -EINVAL);
	CHECK_EQ_INT(awslc__analyse(NULL, 0, &r), -EINVAL);
	free(s.img);
}

/* BoringSSL's own analysis must not take aws-lc for it, nor aws-lc's BoringSSL. */
TEST(bssl_finds_no_boringssl_in_it)
{
	struct aw_opts o = defaults;
	struct bssl_result r;
	struct aw_synth s;

	synth__build(&s, &o);
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	CHECK_EQ_STR(r.why, "no BoringSSL ssl_lib.cc");
	free(s.img);
}

/* An analysis that may fail but must stay inside len and report only offsets inside it. */
static bool analyse_is_sane(const uint8_t *img, size_t len, const struct aw_synth *s, bool exact)
{
	struct awslc_result r;
	int i;

	if (awslc__analyse(img, len, &r) != 0)
		return !r.off[0] && !r.off[1] && !r.off[2] && !r.off[3];
	for (i = 0; i < AWSLC_FNS; i++) {
		if (!r.off[i] || r.off[i] >= len)
			return false;
		if (exact && (r.vaddr[i] != s->fn[i] || r.off[i] != small_off(s->fn[i])))
			return false;
	}
	return true;
}

/* Every prefix of a small image, each in an exact-size heap block (ASan sees any overread). */
TEST(every_prefix_is_safe)
{
	struct aw_opts o = defaults;
	int variant, bad = 0, found = 0;

	for (variant = 0; variant < 4; variant++) {
		struct aw_synth s;
		uint8_t *small;
		size_t len, cut;

		o.eh = variant & 1;
		o.lea = variant & 2;
		synth__build(&s, &o);
		len = synth__compact(&s, &small);
		for (cut = 0; cut <= len; cut++) {
			uint8_t *copy = malloc(cut ? cut : 1);
			struct awslc_result r;

			memcpy(copy, small, cut);
			bad += !analyse_is_sane(copy, cut, &s, true);
			found += awslc__analyse(copy, cut, &r) == 0;
			free(copy);
		}
		free(small);
		free(s.img);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(found >= 4); /* at least the whole images */
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* Random bytes anywhere in the image, headers included: no crash, no offset outside it. */
TEST(random_byte_flips_are_safe)
{
	struct aw_opts o = defaults;
	int variant, round, bad = 0;

	for (variant = 0; variant < 4; variant++) {
		struct aw_synth s;
		uint8_t *small;
		size_t len;

		o.eh = variant & 1;
		o.lea = variant & 2;
		synth__build(&s, &o);
		len = synth__compact(&s, &small);
		for (round = 0; round < 500; round++) {
			uint8_t *copy = malloc(len);
			int i, flips = 1 + (int)(rng() % 8);

			memcpy(copy, small, len);
			for (i = 0; i < flips; i++) {
				/* Half the flips in the headers, where bounds come from. */
				size_t at = rng() & 1 ? rng() % SMALL_HDRS : rng() % len;

				copy[at] ^= (uint8_t)(1u << (rng() % 8));
			}
			bad += !analyse_is_sane(copy, len, &s, false);
			free(copy);
		}
		free(small);
		free(s.img);
	}
	CHECK_EQ_INT(bad, 0);
}

/* Random bytes over the code alone: whatever is found is a function entry of the image. */
TEST(corrupted_code_reports_only_entries)
{
	struct aw_opts o = defaults;
	int round, wrong = 0;

	for (round = 0; round < 300; round++) {
		struct awslc_result r;
		struct aw_synth s;
		int i;

		o.eh = round & 1;
		o.lea = round & 2;
		synth__build(&s, &o);
		for (i = 0; i < 6; i++)
			s.img[off_of(s.starts[1]) + rng() % (s.text_end - off_of(s.starts[1]))] =
			    (uint8_t)rng();
		if (awslc__analyse(s.img, IMG_SIZE, &r) == 0) {
			for (i = 0; i < AWSLC_FNS; i++) {
				uint32_t j;

				for (j = 0; j < s.nstarts && s.starts[j] != r.vaddr[i]; j++)
					;
				wrong += j == s.nstarts || r.off[i] != off_of(r.vaddr[i]);
			}
		}
		free(s.img);
	}
	CHECK_EQ_INT(wrong, 0);
}

static void write_file(const char *path, const uint8_t *img, size_t len)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_EQ_INT(fwrite(img, 1, len, f), len);
	fclose(f);
}

/* TOKENTAP_WRITE_SEEDS=dir: the compact images as seeds for tests/fuzz/fuzz_boringssl.c. */
TEST(seed_images)
{
	const char *dir = getenv("TOKENTAP_WRITE_SEEDS");
	struct aw_opts o = defaults;
	int variant;

	for (variant = 0; variant < 2; variant++) {
		struct awslc_result r;
		struct aw_synth s;
		char path[4200];
		uint8_t *small;
		size_t len;

		o.lea = variant;
		o.eh = variant;
		synth__build(&s, &o);
		len = synth__compact(&s, &small);
		CHECK(len < (64u << 10));
		CHECK_EQ_INT(awslc__analyse(small, len, &r), 0);
		if (dir) {
			snprintf(path, sizeof(path), "%s/%s", dir,
				 variant ? "awslc_lea_eh" : "awslc_mov");
			write_file(path, small, len);
		}
		free(small);
		free(s.img);
	}
}

/* The bssl worker: no BoringSSL, aws-lc's four, then the same verdict from the cache. */
TEST(worker_finds_awslc_then_caches)
{
	char *dir = temp_dir(), path[4200], key[DCACHE_KEY_LEN], cached[4200];
	struct aw_opts o = defaults;
	struct bssl_found got;
	struct bssl_worker *w;
	struct aw_synth s;
	int i;

	CHECK(dir != NULL);
	if (!dir)
		return;
	synth__build(&s, &o);
	snprintf(path, sizeof(path), "%s/codex", dir);
	write_file(path, s.img, IMG_SIZE);
	w = bssl_worker__new(dir, false);
	CHECK_EQ_INT(bssl_worker__lookup(w, path, &got), 0);
	CHECK_EQ_INT(bssl_worker__submit(w, path), 0);
	for (i = 0; i < 500 && bssl_worker__poll(w, &got) != 1; i++)
		usleep(10000);
	CHECK_EQ_INT(got.err, -ENOENT);
	CHECK_EQ_INT(got.aead_err, 0);
	CHECK(!got.from_cache);
	for (i = 0; i < AWSLC_FNS; i++) {
		CHECK_EQ_INT(got.aead.off[i], off_of(s.fn[i]));
		CHECK_EQ_INT(got.aead.vaddr[i], s.fn[i]);
	}
	dcache__key(s.img, IMG_SIZE, key, sizeof(key));
	snprintf(cached, sizeof(cached), "%s/awslc-%s", dir, key);
	CHECK_EQ_INT(access(cached, R_OK), 0);
	memset(&got, 0, sizeof(got));
	CHECK_EQ_INT(bssl_worker__lookup(w, path, &got), 1);
	CHECK(got.from_cache);
	CHECK_EQ_INT(got.err, -ENOENT);
	CHECK_EQ_INT(got.aead_err, 0);
	CHECK_EQ_STR(got.aead.why, "ok");
	for (i = 0; i < AWSLC_FNS; i++) {
		CHECK_EQ_INT(got.aead.off[i], off_of(s.fn[i]));
		CHECK_EQ_INT(got.aead.vaddr[i], s.fn[i]);
	}
	bssl_worker__free(w);
	rm_tree(dir);
	free(dir);
	free(s.img);
}

/* A file without (all of) aws-lc is cached as such: -ENOENT and nothing else from the cache. */
TEST(worker_caches_no_awslc)
{
	char *dir = temp_dir(), path[4200];
	struct aw_opts o = defaults;
	struct bssl_found got;
	struct bssl_worker *w;
	struct aw_synth s;
	int i;

	CHECK(dir != NULL);
	if (!dir)
		return;
	o.missing = AWSLC_OPEN_GATHER; /* the other three found first */
	synth__build(&s, &o);
	snprintf(path, sizeof(path), "%s/other", dir);
	write_file(path, s.img, IMG_SIZE);
	w = bssl_worker__new(dir, false);
	CHECK_EQ_INT(bssl_worker__submit(w, path), 0);
	for (i = 0; i < 500 && bssl_worker__poll(w, &got) != 1; i++)
		usleep(10000);
	CHECK_EQ_INT(got.aead_err, -ENOENT);
	CHECK_EQ_INT(bssl_worker__lookup(w, path, &got), 1);
	CHECK(got.from_cache);
	CHECK_EQ_INT(got.aead_err, -ENOENT);
	for (i = 0; i < AWSLC_FNS; i++) {
		CHECK_EQ_INT(got.aead.off[i], 0);
		CHECK_EQ_INT(got.aead.vaddr[i], 0);
	}
	bssl_worker__free(w);
	rm_tree(dir);
	free(dir);
	free(s.img);
}

static int analyse_path(const char *path, struct awslc_result *r, size_t *size)
{
	const uint8_t *img;
	int err = shape__map_file(path, &img, size);

	if (err)
		return err;
	err = awslc__analyse(img, *size, r);
	munmap((void *)img, *size);
	return err;
}

#define CODEX_0_169_0_SIZE 294277432u

/* Codex CLI (rustls on aws-lc), when installed or named. */
TEST(real_codex_when_given)
{
	static const uint64_t want[AWSLC_FNS] = {0x1125fad0, 0x1125fbf0, 0x1125fd10, 0x1125fed0};
	const char *path = getenv("TOKENTAP_TEST_CODEX");
	struct awslc_result r;
	size_t size;
	int i;

	if (!path)
		path = "tests/e2e/agents/node_modules/@openai/codex-linux-x64/vendor/"
		       "x86_64-unknown-linux-musl/bin/codex";
	/* Not installed: nothing to analyse, unless CI, where the agents must be there. */
	if (access(path, R_OK)) {
		CHECK(!getenv("TOKENTAP_REQUIRE_BPF"));
		return;
	}
	CHECK_EQ_INT(analyse_path(path, &r, &size), 0);
	for (i = 0; i < AWSLC_FNS; i++)
		CHECK(r.off[i] != 0 && r.off[i] < size);
	if (size == CODEX_0_169_0_SIZE) {
		for (i = 0; i < AWSLC_FNS; i++)
			CHECK_EQ_INT(r.vaddr[i], want[i]);
	}
	fprintf(stderr,
		"  %s: seal %#llx seal_scatter %#llx open %#llx open_gather %#llx (%u fns)\n", path,
		(unsigned long long)r.vaddr[0], (unsigned long long)r.vaddr[1],
		(unsigned long long)r.vaddr[2], (unsigned long long)r.vaddr[3], r.functions);
}

/* Bun and Claude Code carry BoringSSL, whose own TLS is what tokentap probes: no aws-lc. */
static void check_no_awslc(const char *env, const char *installed)
{
	const char *path = getenv(env) ? getenv(env) : installed;
	struct awslc_result r;
	struct bssl_result b;
	size_t size;

	if (access(path, R_OK)) {
		CHECK(!getenv("TOKENTAP_REQUIRE_BPF"));
		return;
	}
	CHECK_EQ_INT(analyse_path(path, &r, &size), -ENOENT);
	CHECK_EQ_INT(bssl__analyse_file(path, &b), 0);
}

TEST(bun_and_claude_have_no_awslc)
{
	check_no_awslc("TOKENTAP_TEST_BUN",
		       "tests/e2e/agents/node_modules/@oven/bun-linux-x64/bin/bun");
	check_no_awslc("TOKENTAP_TEST_CLAUDE",
		       "tests/e2e/agents/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
}

int main(void)
{
	RUN(four_entry_points_mov_imm32);
	RUN(four_entry_points_lea_rip);
	RUN(eh_frame_hdr_function_starts);
	RUN(two_functions_of_one_shape_trust_none);
	RUN(a_missing_entry_point_finds_none);
	RUN(no_call_through_a_pointer_is_no_match);
	RUN(no_match_leaves_no_vaddr);
	RUN(no_aead_c_or_not_x86_elf);
	RUN(bssl_finds_no_boringssl_in_it);
	RUN(every_prefix_is_safe);
	RUN(random_byte_flips_are_safe);
	RUN(corrupted_code_reports_only_entries);
	RUN(seed_images);
	RUN(worker_finds_awslc_then_caches);
	RUN(worker_caches_no_awslc);
	RUN(real_codex_when_given);
	RUN(bun_and_claude_have_no_awslc);
	TT_DONE();
}
