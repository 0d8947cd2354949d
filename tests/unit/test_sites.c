// SPDX-License-Identifier: Apache-2.0
/*
 * Probe-site selection (src/attach/sites.c): real prologues (Debian 12's libssl.so.3 SSL_write
 * and SSL_write_ex, copied as bytes), hand-assembled functions for every rejection rule, every
 * truncation of a function, and the verification child run for real against the system libssl.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "tt_test.h"
#include "tokentap_abi.h"
#include "attach/elf_syms.h"
#include "attach/sites.h"
#include "tokentap.skel.h"

/* Debian 12 libssl.so.3 (3.0.x) SSL_write at file offset 0x359c0, 131 bytes. */
static const uint8_t deb_ssl_write[] = {
    0x48, 0x83, 0xec, 0x18, 0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00, 0x48, 0x89,
    0x44, 0x24, 0x08, 0x31, 0xc0, 0x85, 0xd2, 0x78, 0x2f, 0x48, 0x89, 0xe1, 0x48, 0x63, 0xd2,
    0xe8, 0xfd, 0xfb, 0xff, 0xff, 0x85, 0xc0, 0x7e, 0x03, 0x8b, 0x04, 0x24, 0x48, 0x8b, 0x54,
    0x24, 0x08, 0x64, 0x48, 0x2b, 0x14, 0x25, 0x28, 0x00, 0x00, 0x00, 0x75, 0x44, 0x48, 0x83,
    0xc4, 0x18, 0x31, 0xd2, 0x31, 0xc9, 0x31, 0xf6, 0x31, 0xff, 0xc3, 0xe8, 0xb4, 0x99, 0xfe,
    0xff, 0x48, 0x8d, 0x15, 0x05, 0xcf, 0x04, 0x00, 0xbe, 0x46, 0x08, 0x00, 0x00, 0x48, 0x8d,
    0x3d, 0xf2, 0xc6, 0x04, 0x00, 0xe8, 0x8c, 0xa0, 0xfe, 0xff, 0x31, 0xc0, 0x31, 0xd2, 0xbe,
    0x0f, 0x01, 0x00, 0x00, 0xbf, 0x14, 0x00, 0x00, 0x00, 0xe8, 0xa9, 0x9e, 0xfe, 0xff, 0xb8,
    0xff, 0xff, 0xff, 0xff, 0xeb, 0xac, 0xe8, 0x9d, 0xab, 0xfe, 0xff};

/* The same library's SSL_write_ex (0x35a50): the call is the only emulated instruction. */
static const uint8_t deb_ssl_write_ex[] = {
    0x48, 0x83, 0xec, 0x08, 0xe8, 0x87, 0xfb, 0xff, 0xff, 0x31, 0xd2, 0x85, 0xc0, 0x0f, 0x48,
    0xc2, 0x48, 0x83, 0xc4, 0x08, 0x31, 0xd2, 0x31, 0xc9, 0x31, 0xf6, 0x31, 0xff, 0xc3};

/*
 * A small well-formed function:
 *   +0  sub $8,%rsp        +4 test %edx,%edx     +6 js +21 (entry site)
 *   +8  call +13           +13 test %eax,%eax    +15 nop (return site)
 *   +16 add $8,%rsp        +20 ret               +21 ud2
 */
static const uint8_t good_fn[] = {0x48, 0x83, 0xec, 0x08, 0x85, 0xd2, 0x78, 0x0d,
				  0xe8, 0x00, 0x00, 0x00, 0x00, 0x85, 0xc0, 0x90,
				  0x48, 0x83, 0xc4, 0x08, 0xc3, 0x0f, 0x0b};

#define OFF 0x1000

static int analyze(const uint8_t *code, size_t len, unsigned nargs, struct site_pair *p,
		   const char **why)
{
	return sites__analyze(code, len, OFF, nargs, p, why);
}

TEST(debian_ssl_write_gets_js_and_stack_check_jne)
{
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(sites__analyze(deb_ssl_write, sizeof(deb_ssl_write), 0x359c0, 3, &p, &why), 0);
	CHECK_EQ_INT(p.entry_off, 0x359c0 + 0x16); /* js: rdi, rsi, rdx intact */
	CHECK_EQ_INT(p.entry_sp_add, 0x18);	   /* after sub $0x18,%rsp */
	CHECK_EQ_INT(p.ret_off, 0x359c0 + 0x38);   /* jne __stack_chk_fail, rax final */
	CHECK_EQ_INT(p.ret_sp_add, 0x18);	   /* before add $0x18,%rsp */
}

TEST(debian_ssl_write_ex_keeps_classic)
{
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(deb_ssl_write_ex, sizeof(deb_ssl_write_ex), 4, &p, &why), -ENOENT);
	CHECK_EQ_INT(p.entry_off, 0);
	CHECK(why && strstr(why, "every return"));
}

TEST(small_function_pair_and_sp)
{
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(good_fn, sizeof(good_fn), 3, &p, &why), 0);
	CHECK_EQ_INT(p.entry_off, OFF + 6);
	CHECK_EQ_INT(p.entry_sp_add, 8);
	CHECK_EQ_INT(p.ret_off, OFF + 15);
	CHECK_EQ_INT(p.ret_sp_add, 8);
}

TEST(argument_clobbered_before_emulated)
{
	/* xor %esi,%esi; test %edx,%edx; js +1; nop; ret */
	static const uint8_t code[] = {0x31, 0xf6, 0x85, 0xd2, 0x78, 0x01, 0x90, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
	CHECK(why && strstr(why, "arguments"));
}

TEST(rcx_matters_only_for_ex)
{
	/* mov %rsp,%rcx; test %edx,%edx; js +3 (-> ud2); nop; ret; ud2 */
	static const uint8_t code[] = {0x48, 0x89, 0xe1, 0x85, 0xd2, 0x78,
				       0x02, 0x90, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 4, &p, &why), -ENOENT);
	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), 0);
	CHECK_EQ_INT(p.entry_off, OFF + 5);
	CHECK_EQ_INT(p.ret_off, OFF + 7);
	CHECK_EQ_INT(p.ret_sp_add, 0);
}

TEST(push_at_entry_is_the_site)
{
	/* push %rbp; mov %rsp,%rbp; push %r12; test; js ud2; nop; pop %r12; pop %rbp; ret; ud2 */
	static const uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0x41, 0x54, 0x85, 0xd2, 0x78,
				       0x05, 0x90, 0x41, 0x5c, 0x5d, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 4, &p, &why), 0);
	CHECK_EQ_INT(p.entry_off, OFF);
	CHECK_EQ_INT(p.entry_sp_add, 0);
	CHECK_EQ_INT(p.ret_off, OFF + 10); /* the nop, before the two pops */
	CHECK_EQ_INT(p.ret_sp_add, 16);
}

TEST(push_as_return_site_counts_its_own_push)
{
	/* sub $8,%rsp; js ud2; push %rbx; pop %rbx; add $8,%rsp; ret; ud2 */
	static const uint8_t code[] = {0x48, 0x83, 0xec, 0x08, 0x78, 0x07, 0x53, 0x5b,
				       0x48, 0x83, 0xc4, 0x08, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), 0);
	CHECK_EQ_INT(p.entry_off, OFF + 4);
	CHECK_EQ_INT(p.ret_off, OFF + 6); /* push %rbx: its push and pop run after the probe */
	CHECK_EQ_INT(p.ret_sp_add, 8);
}

TEST(two_rets_keep_classic)
{
	/* test; js +1; ret; nop; ret */
	static const uint8_t code[] = {0x85, 0xd2, 0x78, 0x01, 0xc3, 0x90, 0xc3};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(rax_written_after_site)
{
	/* js ud2; nop; xor %eax,%eax; ret; ud2 */
	static const uint8_t code[] = {0x78, 0x04, 0x90, 0x31, 0xc0, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(branch_into_epilogue)
{
	/* js +3 (-> the add); nop; nop; nop; add $8,%rsp ... the add is a target: no return site */
	static const uint8_t code[] = {0x78, 0x03, 0x90, 0x90, 0x90, 0x48, 0x83, 0xc4, 0x08, 0xc3};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(tail_call_keeps_classic)
{
	/* js +5 (-> jmp out); nop; nop; ret; ... jmp far outside */
	static const uint8_t code[] = {0x78, 0x03, 0x90, 0x90, 0xc3, 0xe9, 0x00, 0x10, 0x00, 0x00};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
	CHECK(why && strstr(why, "tail call"));
}

TEST(return_site_in_a_loop)
{
	/* +0 js ud2; +2 nop; +3 nop; +4 jne +3 (back to +3? no: to +2); +6 ret; +7 ud2 */
	static const uint8_t code[] = {0x78, 0x05, 0x90, 0x90, 0x75, 0xfc, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	/* jne at +4 is the candidate S; its target +2 leads back to S: S could fire twice. */
	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(jump_into_prologue)
{
	/* +0 sub $8,%rsp; +4 test; +6 js ud2; ... +8 jmp +4 makes +4 a target: loop */
	static const uint8_t code[] = {0x48, 0x83, 0xec, 0x08, 0x85, 0xd2, 0x78, 0x05,
				       0xeb, 0xfa, 0x90, 0xc3, 0x90, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(unknown_rsp_write_rejects)
{
	/* leave before the emulated instruction: rsp unknown */
	static const uint8_t code[] = {0xc9, 0x78, 0x02, 0x90, 0xc3, 0x0f, 0x0b};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -ENOENT);
}

TEST(undecodable_and_empty)
{
	static const uint8_t code[] = {0x78, 0x02, 0x90, 0x48};
	struct site_pair p;
	const char *why = NULL;

	CHECK_EQ_INT(analyze(code, sizeof(code), 3, &p, &why), -EINVAL);
	CHECK_EQ_INT(analyze(code, 0, 3, &p, &why), -EINVAL);
	CHECK_EQ_INT(p.entry_off, 0);
}

/* Every truncation: no crash, and a pair found always lies inside the bytes given. */
TEST(every_truncation_is_safe)
{
	size_t len, ok = 0;

	for (len = 1; len <= sizeof(deb_ssl_write); len++) {
		uint8_t *copy = malloc(len); /* exact size: ASan catches any overread */
		struct site_pair p;
		const char *why = NULL;

		memcpy(copy, deb_ssl_write, len);
		if (!sites__analyze(copy, len, OFF, 3, &p, &why)) {
			ok++;
			CHECK(p.entry_off >= OFF && p.entry_off < OFF + len);
			CHECK(p.ret_off > p.entry_off && p.ret_off < OFF + len);
		}
		free(copy);
	}
	CHECK(ok > 0);
}

TEST(cookie_layout)
{
	uint64_t c = sites__cookie(ATTACH_FN_SSL_READ_EX, true, 0x18, true);

	CHECK_EQ_INT(c & TT_SITE_SP_MASK, 0x18);
	CHECK(c & TT_SITE_DIR_BIT);
	CHECK(c & TT_SITE_EX_BIT);
	CHECK(c & TT_SITE_VERIFY_BIT);
	CHECK_EQ_INT((c >> TT_SITE_SOURCE_SHIFT) & 0xff, TT_SRC_OPENSSL);
	CHECK_EQ_INT((c >> TT_SITE_ID_SHIFT) & 0xff, 2 * ATTACH_FN_SSL_READ_EX + 1);
	c = sites__cookie(ATTACH_FN_SSL_WRITE, false, 0, false);
	CHECK(!(c & (TT_SITE_DIR_BIT | TT_SITE_EX_BIT | TT_SITE_VERIFY_BIT)));
	CHECK_EQ_INT((c >> TT_SITE_ID_SHIFT) & 0xff, 0);
}

/* The verification child, run in a fork against the system libssl: four calls reported. */
TEST(verification_child_reports_four_calls)
{
	static const char *lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
	int to[2], from[2], status = 0, lines = 0, fn, ret, ok = 0, wrote = -1;
	char buf[4096] = {0}, *line, *save = NULL;
	unsigned long long a, b, c;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (access(lib, R_OK)) {
		CHECK(1); /* no system libssl here: nothing to run */
		return;
	}
	CHECK(!pipe(to) && !pipe(from));
	pid = fork();
	if (pid == 0) {
		char *argv[] = {"tokentap", SITES_CHILD_ARG, (char *)lib, NULL};

		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		_exit(sites__child_main(3, argv));
	}
	close(to[0]);
	close(from[1]);
	CHECK_EQ_INT(write(to[1], "g", 1), 1);
	while ((n = read(from[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%d %llx %llx %llx %d", &fn, &a, &b, &c, &ret) != 5)
			continue;
		lines++;
		/* SSL_read gets exactly what SSL_write sent; the _ex variants return 1. */
		if (fn == ATTACH_FN_SSL_WRITE)
			wrote = ret;
		ok += fn == ATTACH_FN_SSL_WRITE	 ? ret > 50
		      : fn == ATTACH_FN_SSL_READ ? ret == wrote
						 : ret == 1;
		CHECK(a != 0 && b != 0);
		CHECK((fn >= ATTACH_FN_SSL_WRITE_EX) == (c != 0));
	}
	CHECK_EQ_INT(lines, 4);
	CHECK_EQ_INT(ok, 4);
	close(to[1]);
	close(from[0]);
}

/* ---- with BPF: verification of real and of deliberately wrong sites ------------------------ */

static bool require_bpf(void)
{
	const char *v = getenv("TOKENTAP_REQUIRE_BPF");

	return v && strcmp(v, "1") == 0;
}

static int quiet(enum libbpf_print_level l, const char *fmt, va_list ap)
{
	return 0;
}

/* The skeleton with only the two site programs loaded. */
static struct tokentap_bpf *sites_skel(struct sites_bpf *bpf)
{
	struct tokentap_bpf *s;
	struct bpf_program *p;

	if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK))
		return NULL;
	libbpf_set_print(quiet);
	s = tokentap_bpf__open();
	if (!s)
		return NULL;
	bpf_object__for_each_program(p, s->obj)
	{
		bpf_program__set_autoload(p, p == s->progs.uprobe_ssl_site_enter ||
						 p == s->progs.uprobe_ssl_site_return);
	}
	if (tokentap_bpf__load(s)) {
		tokentap_bpf__destroy(s);
		return NULL;
	}
	bpf->entry = s->progs.uprobe_ssl_site_enter;
	bpf->ret = s->progs.uprobe_ssl_site_return;
	bpf->checks_fd = bpf_map__fd(s->maps.site_checks);
	return s;
}

TEST(verification_keeps_right_sites_and_rejects_wrong_ones)
{
	static const char *lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
	static const char *const names[] = {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"};
	uint64_t offs[ATTACH_FN__COUNT] = {0};
	struct site_pair pairs[ATTACH_FN__COUNT], bad[ATTACH_FN__COUNT];
	struct sites_bpf bpf = {0};
	struct tokentap_bpf *s;
	int kept;

	if (access(lib, R_OK) || elf_syms__lookup(lib, names, 4, offs) != 4) {
		CHECK(1); /* no Debian-style libssl here */
		return;
	}
	s = sites_skel(&bpf);
	if (!s) {
		fprintf(stderr, "  skipped: BPF not usable%s\n",
			require_bpf() ? " (TOKENTAP_REQUIRE_BPF=1 makes this a failure)" : "");
		CHECK(!require_bpf());
		return;
	}
	kept = sites__plan(&bpf, lib, offs, pairs, false);
	CHECK(kept >= 0 && kept <= 4);
	/* Debian 12's build: SSL_write and SSL_read verified, the _ex variants classic. */
	if (pairs[ATTACH_FN_SSL_WRITE].entry_off - offs[ATTACH_FN_SSL_WRITE] == 0x16) {
		CHECK_EQ_INT(kept, 2);
		CHECK(pairs[ATTACH_FN_SSL_READ].entry_off != 0);
		CHECK_EQ_INT(pairs[ATTACH_FN_SSL_WRITE_EX].entry_off, 0);
	}
	if (!kept) {
		tokentap_bpf__destroy(s);
		return;
	}
	/* A wrong stack delta, and a return site where rax is not the return value: rejected. */
	memcpy(bad, pairs, sizeof(bad));
	bad[ATTACH_FN_SSL_WRITE].entry_sp_add += 8;
	bad[ATTACH_FN_SSL_READ].ret_off = bad[ATTACH_FN_SSL_READ].entry_off;
	bad[ATTACH_FN_SSL_READ].ret_sp_add = bad[ATTACH_FN_SSL_READ].entry_sp_add;
	CHECK_EQ_INT(sites__verify(&bpf, lib, offs, bad, false), kept - 2);
	CHECK_EQ_INT(bad[ATTACH_FN_SSL_WRITE].entry_off, 0);
	CHECK_EQ_INT(bad[ATTACH_FN_SSL_READ].entry_off, 0);
	/* The right ones again, after the wrong: still kept (no state left behind). */
	memcpy(bad, pairs, sizeof(bad));
	CHECK_EQ_INT(sites__verify(&bpf, lib, offs, bad, false), kept);
	tokentap_bpf__destroy(s);
}

int main(int argc, char **argv)
{
	RUN(debian_ssl_write_gets_js_and_stack_check_jne);
	RUN(debian_ssl_write_ex_keeps_classic);
	RUN(small_function_pair_and_sp);
	RUN(argument_clobbered_before_emulated);
	RUN(rcx_matters_only_for_ex);
	RUN(push_at_entry_is_the_site);
	RUN(push_as_return_site_counts_its_own_push);
	RUN(two_rets_keep_classic);
	RUN(rax_written_after_site);
	RUN(branch_into_epilogue);
	RUN(tail_call_keeps_classic);
	RUN(return_site_in_a_loop);
	RUN(jump_into_prologue);
	RUN(unknown_rsp_write_rejects);
	RUN(undecodable_and_empty);
	RUN(every_truncation_is_safe);
	RUN(cookie_layout);
	RUN(verification_child_reports_four_calls);
	RUN(verification_keeps_right_sites_and_rejects_wrong_ones);
	TT_DONE();
}
