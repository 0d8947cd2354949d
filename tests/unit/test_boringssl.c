// SPDX-License-Identifier: Apache-2.0
/*
 * attach/boringssl.c and attach/discovery_cache.c: code-shape discovery of SSL_write / SSL_read
 * on synthetic x86-64 ELF images assembled here byte by byte in both ERR_put_error conventions
 * (Bun's 5 arguments with mov imm32, Claude Code's 4 with mov or lea rip), with and without
 * .eh_frame_hdr; ambiguous shapes must find nothing; truncated and corrupted images must neither
 * crash nor find anything wrong. The real Bun and Claude Code binaries are analysed too when
 * tests/e2e/agents has them (or TOKENTAP_TEST_BUN / TOKENTAP_TEST_CLAUDE name them).
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shape_image.h"
#include "tt_test.h"

#include "attach/boringssl.h"
#include "attach/codeshape.h"
#include "capture/trust_gate.h"
#include "attach/discovery_cache.h"
#include "tokentap_abi.h"

static const char ssl_lib[] = "../../vendor/boringssl/ssl/ssl_lib.cc";

/* OPENSSL_PUT_ERROR(SSL, reason): the argument set-up and the call. */
static void put_error(struct asm_buf *b, uint32_t reason, uint32_t line)
{
	put_err_at(b, RO_VADDR + NAME_AT, BSSL_LIB_SSL, reason, line);
}

static void quic_check(struct asm_buf *b, bool via_rbx)
{
	if (via_rbx)
		emit(b, "\x48\x89\xfb\x48\x83\xbb\x98\x00\x00\x00\x00", 11); /* mov rbx,rdi; cmp */
	else
		emit(b, "\x48\x83\xbf\x98\x00\x00\x00\x00", 8); /* cmpq $0, 0x98(%rdi) */
	emit(b, "\x74\x00", 2);				     /* je (next) */
}

static uint64_t emit_read_impl(struct asm_buf *b)
{
	uint64_t at = fn_begin(b);

	put_error(b, BSSL_R_UNINITIALIZED, 0x345);
	put_error(b, BSSL_R_SSL_HANDSHAKE_FAILURE, 0x350);
	emit(b, "\x48\x8b\x07\xff\x90\x88\x00\x00\x00", 9); /* mov (%rdi),%rax; call *0x88(%rax) */
	fn_end(b);
	return at;
}

/* SSL_read, or SSL_peek without the consuming store. */
static uint64_t emit_read(struct asm_buf *b, uint64_t impl, bool consume)
{
	uint64_t at = fn_begin(b);

	emit1(b, 0x53); /* push rbx */
	quic_check(b, false);
	put_error(b, BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED, 0x3a3);
	call(b, impl);
	if (consume)
		emit(b, "\x48\x89\x98\x80\x00\x00\x00", 7); /* mov %rbx, 0x80(%rax) */
	emit1(b, 0x5b);
	fn_end(b);
	return at;
}

static uint64_t emit_write(struct asm_buf *b)
{
	uint64_t at = fn_begin(b);

	emit1(b, 0x53);
	quic_check(b, true);
	put_error(b, BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED, 0x3b9);
	put_error(b, BSSL_R_SSL_HANDSHAKE_FAILURE, 0x3cd);
	put_error(b, BSSL_R_UNINITIALIZED, 0x3be);
	put_error(b, 111, 0x3d3);
	emit(b, "\x48\x8b\x03\xff\x50\x48", 6); /* mov (%rbx),%rax; call *0x48(%rax) */
	emit1(b, 0x5b);
	fn_end(b);
	return at;
}

/* Another ssl_lib.cc function: SSL_shutdown-like, reasons 226 and 291. */
static void emit_other(struct asm_buf *b)
{
	fn_begin(b);
	put_error(b, BSSL_R_UNINITIALIZED, 0x3fd);
	put_error(b, 291, 0x42c);
	fn_end(b);
}

struct synth {
	uint8_t *img;
	uint64_t write, read, peek, impl;
};

/* opts: lea / four as in asm_buf; peek adds an SSL_peek; two_writes a second SSL_write. */
static void synth__build(struct synth *s, bool lea, bool four, bool peek, bool two_writes,
			 bool eh)
{
	struct asm_buf b = {.lea = lea, .four = four, .pos = TEXT_OFF};
	uint64_t starts[8];
	uint32_t n = 0;

	memset(s, 0, sizeof(*s));
	s->img = calloc(1, IMG_SIZE);
	b.img = s->img;
	put_elf_header(s->img, eh ? 3 : 2);
	put_phdr(s->img, 0, PT_LOAD, PF_R, 0, 0x200000, TEXT_OFF);
	put_phdr(s->img, 1, PT_LOAD, PF_R | PF_X, TEXT_OFF, TEXT_VADDR, TEXT_SIZE);
	if (eh)
		put_phdr(s->img, 2, PT_GNU_EH_FRAME, PF_R, EH_OFF, EH_VADDR, 12 + 8 * 8);
	memcpy(s->img + RO_OFF + NAME_AT, ssl_lib, sizeof(ssl_lib));
	b.err_fn = starts[n++] = fn_begin(&b);
	fn_end(&b);
	s->impl = starts[n++] = emit_read_impl(&b);
	s->read = starts[n++] = emit_read(&b, s->impl, true);
	if (peek)
		s->peek = starts[n++] = emit_read(&b, s->impl, false);
	s->write = starts[n++] = emit_write(&b);
	if (two_writes)
		starts[n++] = emit_write(&b);
	starts[n] = va(&b);
	emit_other(&b);
	n++;
	if (eh)
		put_eh_frame_hdr(s->img, starts, n);
}

static void check_found(bool lea, bool four, bool peek, bool eh)
{
	struct bssl_result r;
	struct synth s;

	synth__build(&s, lea, four, peek, false, eh);
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), 0);
	CHECK_EQ_STR(r.why, "ok");
	CHECK_EQ_INT(r.write_vaddr, s.write);
	CHECK_EQ_INT(r.read_vaddr, s.read);
	CHECK_EQ_INT(r.write_off, off_of(s.write));
	CHECK_EQ_INT(r.read_off, off_of(s.read));
	CHECK(r.functions >= 4);
	free(s.img);
}

TEST(five_arg_mov_imm)
{
	check_found(false, false, false, false);
}

TEST(four_arg_mov_imm)
{
	check_found(false, true, false, false);
}

TEST(lea_rip_both_conventions)
{
	check_found(true, false, false, false);
	check_found(true, true, false, false);
}

TEST(eh_frame_hdr_function_starts)
{
	check_found(false, true, false, true);
	check_found(true, false, true, true);
}

TEST(ssl_read_preferred_over_ssl_peek)
{
	check_found(false, false, true, false);
}

TEST(two_write_shapes_trust_none)
{
	struct bssl_result r;
	struct synth s;

	synth__build(&s, false, false, false, true, false);
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	CHECK_EQ_INT(r.write_off, 0);
	CHECK_EQ_INT(r.read_off, 0);
	free(s.img);
}

TEST(no_ssl_lib_string)
{
	struct bssl_result r;
	struct synth s;

	synth__build(&s, false, false, false, false, false);
	memset(s.img + RO_OFF + NAME_AT, 'x', sizeof(ssl_lib) - 1);
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), -ENOENT);
	CHECK_EQ_STR(r.why, "no BoringSSL ssl_lib.cc");
	free(s.img);
}

TEST(not_elf_or_wrong_machine)
{
	struct bssl_result r;
	struct synth s;

	synth__build(&s, false, false, false, false, false);
	s.img[18] = 0xb7; /* e_machine EM_AARCH64 */
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), -EINVAL);
	s.img[0] = 0;
	CHECK_EQ_INT(bssl__analyse(s.img, IMG_SIZE, &r), -EINVAL);
	free(s.img);
}

/* Every prefix of the image: program headers or code cut off must not be read past the end. */
TEST(truncated_images_are_safe)
{
	struct bssl_result r;
	struct synth s;
	size_t len;
	int ok = 0;

	synth__build(&s, false, false, false, false, true);
	for (len = 0; len < TEXT_OFF + TEXT_SIZE; len += (len < 0x400 ? 1 : 61)) {
		uint8_t *copy = malloc(len ? len : 1);
		int err;

		memcpy(copy, s.img, len);
		err = bssl__analyse(copy, len, &r);
		if (err == 0 && (r.write_vaddr != s.write || r.read_vaddr != s.read))
			ok = -1;
		free(copy);
	}
	CHECK_EQ_INT(ok, 0);
	free(s.img);
}

/* Random bytes over the code: whatever is found must be the true entry or nothing. */
TEST(corrupted_code_finds_nothing_wrong)
{
	struct bssl_result r;
	struct synth s;
	int round, wrong = 0;

	srand(7);
	for (round = 0; round < 200; round++) {
		int i;

		synth__build(&s, round & 1, round & 2, false, false, round & 4);
		for (i = 0; i < 8; i++)
			s.img[TEXT_OFF + (size_t)(rand() % 0x300)] = (uint8_t)rand();
		if (bssl__analyse(s.img, IMG_SIZE, &r) == 0 &&
		    ((r.write_vaddr != s.write && r.write_vaddr != s.read) ||
		     (r.read_vaddr != s.read && r.read_vaddr != s.write)))
			wrong++;
		free(s.img);
	}
	CHECK_EQ_INT(wrong, 0);
}

TEST(cache_round_trip_and_bound)
{
	uint64_t in[DCACHE_VALS] = {0x1234, 0x5678, 0x9abc, 0xdef0}, out[DCACHE_VALS] = {0};
	char *dir = temp_dir(), sub[4200], key[32];
	int i, files = 0;
	struct dirent *de;
	DIR *d;

	CHECK(dir != NULL);
	snprintf(sub, sizeof(sub), "%s/state/discovery", dir);
	CHECK_EQ_INT(dcache__get(sub, "bssl", "abc-1", out, DCACHE_VALS), 0);
	CHECK_EQ_INT(dcache__put(sub, "bssl", "abc-1", in, DCACHE_VALS), 0);
	CHECK_EQ_INT(dcache__get(sub, "bssl", "abc-1", out, DCACHE_VALS), 1);
	CHECK(!memcmp(in, out, sizeof(in)));
	CHECK_EQ_INT(dcache__get(sub, "go", "abc-1", out, DCACHE_VALS), 0);
	for (i = 0; i < DCACHE_MAX + 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		dcache__put(sub, "bssl", key, in, DCACHE_VALS);
	}
	d = opendir(sub);
	while (d && (de = readdir(d)) != NULL)
		files += de->d_name[0] != '.';
	if (d)
		closedir(d);
	CHECK(files <= DCACHE_MAX);
	CHECK(files >= DCACHE_MAX - 1);
	rm_tree(sub);
	snprintf(sub, sizeof(sub), "%s/state", dir);
	rmdir(sub);
	rmdir(dir);
	free(dir);
}

TEST(cache_key_uses_build_id)
{
	uint8_t img[512] = {0};
	char key[DCACHE_KEY_LEN], id[64];
	uint32_t note[3] = {4, 4, NT_GNU_BUILD_ID};

	put_elf_header(img, 1);
	put_phdr(img, 0, PT_NOTE, PF_R, 0x100, 0x100, 20);
	memcpy(img + 0x100, note, sizeof(note));
	memcpy(img + 0x10c, "GNU\0\xde\xad\xbe\xef", 8);
	CHECK_EQ_INT(shape__build_id(img, sizeof(img), id, sizeof(id)), 0);
	CHECK_EQ_STR(id, "deadbeef");
	dcache__key(img, sizeof(img), key, sizeof(key));
	CHECK_EQ_STR(key, "deadbeef-512");
	img[0x10c] = 'X'; /* not a GNU note: a sampled content hash */
	dcache__key(img, sizeof(img), key, sizeof(key));
	CHECK(key[0] == 'h');
}

/* The worker: a file analysed off the caller's thread, then served from the cache. */
TEST(worker_analyses_then_caches)
{
	char *dir = temp_dir(), path[4200];
	struct bssl_found got;
	struct bssl_worker *w;
	struct synth s;
	struct stat st;
	FILE *f;
	int i;

	synth__build(&s, false, false, false, false, false);
	snprintf(path, sizeof(path), "%s/agent", dir);
	f = fopen(path, "wb");
	fwrite(s.img, 1, IMG_SIZE, f);
	fclose(f);
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK(bssl__worth_analysing(path, &st));
	w = bssl_worker__new(dir, false);
	CHECK_EQ_INT(bssl_worker__lookup(w, path, &got), 0);
	CHECK_EQ_INT(bssl_worker__submit(w, path), 0);
	for (i = 0; i < 500 && bssl_worker__poll(w, &got) != 1; i++)
		usleep(10000);
	CHECK_EQ_INT(got.err, 0);
	CHECK(!got.from_cache);
	CHECK_EQ_INT(got.res.write_off, off_of(s.write));
	CHECK_EQ_INT(got.res.read_off, off_of(s.read));
	CHECK_EQ_INT(bssl_worker__busy(w), 0);
	CHECK_EQ_INT(bssl_worker__lookup(w, path, &got), 1);
	CHECK(got.from_cache);
	CHECK_EQ_INT(got.res.write_off, off_of(s.write));
	CHECK_EQ_INT(got.res.read_off, off_of(s.read));
	bssl_worker__free(w);
	unlink(path);
	rm_tree(dir);
	free(dir);
	free(s.img);
}

/* Real agent binaries, when present (tests/e2e/agents installs them; the environment names
 * others). */
static void check_real(const char *env, const char *installed)
{
	const char *path = getenv(env) ? getenv(env) : installed;
	struct bssl_result r;

	if (!path || access(path, R_OK))
		return;
	CHECK_EQ_INT(bssl__analyse_file(path, &r), 0);
	CHECK(r.write_off != 0 && r.read_off != 0 && r.write_off != r.read_off);
	fprintf(stderr, "  %s: SSL_write %#llx SSL_read %#llx\n", path,
		(unsigned long long)r.write_vaddr, (unsigned long long)r.read_vaddr);
}

TEST(real_binaries_when_given)
{
	struct stat st;

	check_real("TOKENTAP_TEST_BUN", "tests/e2e/agents/node_modules/@oven/bun-linux-x64/bin/bun");
	check_real("TOKENTAP_TEST_CLAUDE",
		   "tests/e2e/agents/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
	/* Small files and non-ELF files are never analysed. */
	CHECK_EQ_INT(stat("/proc/self/exe", &st), 0);
	CHECK(!bssl__worth_analysing("/etc/hostname", &st) || st.st_size >= (4 << 20));
}


static struct tt_data_event rec_ev;

static size_t rec(uint16_t kind, uint32_t pid, uint64_t conn, const char *data)
{
	size_t n = data ? strlen(data) : 0;

	memset(&rec_ev, 0, TT_DATA_HDR_SIZE);
	rec_ev.hdr.kind = kind;
	rec_ev.hdr.source = TT_SRC_BORINGSSL;
	rec_ev.hdr.pid = pid;
	rec_ev.hdr.conn_id = conn;
	rec_ev.data_len = (uint32_t)n;
	memcpy(rec_ev.data, data ? data : "", n);
	return kind == TT_EV_DATA ? TT_DATA_HDR_SIZE + n : sizeof(struct tt_close_event);
}

TEST(starts_request)
{
	CHECK(trust__starts_request((const uint8_t *)"POST /v1/messages HTTP/1.1\r\n", 28));
	CHECK(trust__starts_request((const uint8_t *)"GET /health HTTP/1.1\r\n", 22));
	CHECK(trust__starts_request((const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24));
	CHECK(!trust__starts_request((const uint8_t *)"HTTP/1.1 200 OK\r\n", 17)); /* a response */
	CHECK(!trust__starts_request((const uint8_t *)"PRI * HTTP/2.0\r\n", 16));   /* cut short */
	CHECK(!trust__starts_request((const uint8_t *)"POST", 4));
	CHECK(!trust__starts_request((const uint8_t *)"POSTAL /", 8));
	CHECK(!trust__starts_request((const uint8_t *)"\x16\x03\x01\x02\x00", 5)); /* TLS */
	CHECK(!trust__starts_request((const uint8_t *)"{\"model\":1}", 11));
	CHECK(!trust__starts_request(NULL, 0));
}

TEST(gate_passes_http_connections_only)
{
	struct trust_gate g = {0};
	size_t n;
	int i;

	n = rec(TT_EV_DATA, 10, 0xa0, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 10, 0xa0, "{\"model\":\"gpt-4o\"}"); /* later bytes: no check */
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	/* A wrong guess: nothing of it ever passes, however long it runs. */
	for (i = 0; i < 100; i++) {
		n = rec(TT_EV_DATA, 10, 0xb0, i & 1 ? "\x01\x02garbage" : "{\"not\": \"http\"}");
		CHECK(!trust_gate__pass(&g, &rec_ev, n));
	}
	n = rec(TT_EV_SOCK, 10, 0xb0, NULL); /* no payload: passes, makes no span */
	CHECK(trust_gate__pass(&g, &rec_ev, sizeof(struct tt_sock_event)));
	CHECK_EQ_INT(g.held_conns, 1);
	CHECK(g.held_bytes > 100);
	/* Probes attached mid-response: the tail is held back, the next request verifies. */
	n = rec(TT_EV_DATA, 11, 0xc0, "ens\":5}}\r\n0\r\n\r\n");
	CHECK(!trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 11, 0xc0, "POST /v1/messages HTTP/1.1\r\n");
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 11, 0xc0, "\x01 any later bytes");
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 12, 0xb0, "GET /health HTTP/1.1\r\n"); /* same SSL*, other process */
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	CHECK_EQ_INT(g.verified, 3);
	CHECK_EQ_INT(g.held_conns, 2);
	/* Closed: the address may be a new connection, judged by its own bytes. */
	n = rec(TT_EV_CLOSE, 11, 0xc0, NULL);
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 11, 0xc0, "garbage");
	CHECK(!trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_CLOSE, 11, 0xc0, NULL);
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 11, 0xc0, "HTTP/1.1 200 OK\r\n"); /* a response to an unseen request */
	CHECK(!trust_gate__pass(&g, &rec_ev, n));
	n = rec(TT_EV_DATA, 11, 0xc0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
	CHECK(trust_gate__pass(&g, &rec_ev, n));
	CHECK(!trust_gate__pass(&g, &rec_ev, 8)); /* shorter than a header */
	trust_gate__free(&g);
}

TEST(gate_memory_is_bounded)
{
	struct trust_gate g = {0};
	uint64_t i;
	int wrong = 0;

	for (i = 1; i <= 5 * TRUST_GATE_SLOTS; i++) {
		size_t n = rec(TT_EV_DATA, 7, i * 64, i % 3 ? "GET / HTTP/1.1\r\n" : "junk");

		if (trust_gate__pass(&g, &rec_ev, n) != (i % 3 != 0))
			wrong++;
		CHECK(g.used <= TRUST_GATE_SLOTS);
		if (g.used > TRUST_GATE_SLOTS)
			break;
	}
	CHECK_EQ_INT(wrong, 0);
	trust_gate__free(&g);
}

int main(void)
{
	RUN(five_arg_mov_imm);
	RUN(four_arg_mov_imm);
	RUN(lea_rip_both_conventions);
	RUN(eh_frame_hdr_function_starts);
	RUN(ssl_read_preferred_over_ssl_peek);
	RUN(two_write_shapes_trust_none);
	RUN(no_ssl_lib_string);
	RUN(not_elf_or_wrong_machine);
	RUN(truncated_images_are_safe);
	RUN(corrupted_code_finds_nothing_wrong);
	RUN(cache_round_trip_and_bound);
	RUN(cache_key_uses_build_id);
	RUN(worker_analyses_then_caches);
	RUN(real_binaries_when_given);
	RUN(starts_request);
	RUN(gate_passes_http_connections_only);
	RUN(gate_memory_is_bounded);
	TT_DONE();
}
