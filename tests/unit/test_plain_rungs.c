// SPDX-License-Identifier: Apache-2.0
/*
 * The plain HTTP capture ladder (bpf/plain.bpf.c, src/capture/capture.c): its kprobe and fentry
 * programs pass the verifier (loaded here on their own with autoload on; their SEC("?...")
 * leaves them off by default), capture__open picks the rung this kernel can attach
 * and says why it passed over the ones above it, and a forced rung the kernel cannot attach
 * turns plain capture off without failing TLS capture. Needs root; skips without BPF unless
 * TOKENTAP_REQUIRE_BPF=1.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "capture/capture.h"
#include "tokentap.skel.h"
#include "tt_test.h"

/* TT_LIBBPF_LOG=1 shows libbpf's messages (verifier logs included). */
static int quiet(enum libbpf_print_level l, const char *fmt, va_list ap)
{
	return getenv("TT_LIBBPF_LOG") ? vfprintf(stderr, fmt, ap) : 0;
}

static bool require_bpf(void)
{
	const char *v = getenv("TOKENTAP_REQUIRE_BPF");

	return v && strcmp(v, "1") == 0;
}

static bool prefix_is(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

static bool has_kprobes(void)
{
	return !access("/sys/bus/event_source/devices/kprobe/type", F_OK);
}

/*
 * Loads the skeleton with only the plain programs whose names start with `want` (and their
 * return halves `want_ret`) switched on. Returns the load's result and
 * counts in *loaded those programs that got a descriptor.
 */
static int load_with(const char *want, const char *want_ret, int *loaded)
{
	struct tokentap_bpf *s = tokentap_bpf__open();
	struct bpf_program *p;
	int err;

	*loaded = 0;
	if (!s)
		return -errno;
	bpf_object__for_each_program(p, s->obj)
	{
		const char *n = bpf_program__name(p);

		/* These programs alone: what the verifier says is about them. */
		bpf_program__set_autoload(p, prefix_is(n, want) || prefix_is(n, want_ret));
	}
	err = tokentap_bpf__load(s);
	bpf_object__for_each_program(p, s->obj)
	{
		const char *n = bpf_program__name(p);

		if (!err && (prefix_is(n, want) || prefix_is(n, want_ret)) &&
		    bpf_program__fd(p) >= 0)
			(*loaded)++;
	}
	tokentap_bpf__destroy(s);
	return err;
}

TEST(kprobe_programs_pass_the_verifier)
{
	int n, err = load_with("kprobe_plain_tcp_", "kretprobe_plain_tcp_", &n);

	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(n, 4); /* send and receive, entry and return */
}

/*
 * fentry programs are verified against the kernel's BTF at load. Kernels that refuse tracing
 * programs altogether (this test box answers EPERM, as for the socket rung's fentry programs)
 * cannot verify them; anything else must pass.
 */
TEST(fentry_programs_load_or_are_refused_whole)
{
	int n, err = load_with("fentry_plain_tcp_", "fexit_plain_tcp_", &n);

	printf("  fentry plain programs: load %d (%s)\n", err, err ? strerror(-err) : "ok");
	if (err == -EPERM || err == -EOPNOTSUPP || err == -524 /* ENOTSUPP */) {
		CHECK_EQ_INT(n, 0); /* refused whole: nothing half-loaded */
		return;
	}
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(n, 4);
}

/* The end-of-call rung this kernel has: sock:sock_send_length (6.3+) or the syscall exits. */
static const char *tracepoint_rung(void)
{
	return !access("/sys/kernel/tracing/events/sock/sock_send_length", F_OK) ||
		       !access("/sys/kernel/debug/tracing/events/sock/sock_send_length", F_OK)
		   ? "sock_length"
		   : "sys_exit";
}

TEST(ladder_picks_and_explains)
{
	struct capture_opts opts = {0};
	struct capture_stats st;
	struct capture *c = NULL;

	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (!c)
		return;
	capture__stats(c, &st);
	printf("  socket rung %s, plain rung %s (%s)\n", st.sock_rung,
	       st.plain_rung ? st.plain_rung : "-", st.plain_tried ? st.plain_tried : "");
	CHECK(st.plain_rung != NULL);
	if (!strcmp(st.sock_rung, "tracepoint")) {
		/* Neither the fentry nor the kprobe plain programs came with this socket rung. */
		CHECK_EQ_STR(st.plain_rung, tracepoint_rung());
		CHECK(st.plain_tried && strstr(st.plain_tried, "fentry: ") &&
		      strstr(st.plain_tried, "kprobe: "));
	} else {
		CHECK_EQ_STR(st.plain_rung, st.sock_rung);
	}
	capture__close(c);
}

TEST(forced_rungs)
{
	struct capture_opts opts = {.plain_rung = "kprobe"};
	struct capture_stats st;
	struct capture *c = NULL;

	/* Forced: the kprobe programs load with the socket rung picked; kprobes attach or not. */
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (c) {
		capture__stats(c, &st);
		if (has_kprobes()) {
			CHECK(st.plain_rung && !strcmp(st.plain_rung, "kprobe"));
		} else {
			CHECK(st.plain_rung == NULL); /* off, TLS capture still on */
			CHECK(st.plain_tried && strstr(st.plain_tried, "kprobe: "));
		}
		CHECK(st.sock_rung != NULL);
		capture__close(c);
		c = NULL;
	}
	opts.plain_rung = "sys_exit";
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (c) {
		capture__stats(c, &st);
		CHECK(st.plain_rung && !strcmp(st.plain_rung, "sys_exit"));
		capture__close(c);
		c = NULL;
	}
	opts.plain_rung = NULL;
	opts.h2c_ports = "80,not-a-port";
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (c) {
		capture__stats(c, &st);
		CHECK(st.plain_rung == NULL); /* a bad list turns plain capture off, loudly */
		capture__close(c);
	}
}

TEST(parse_ports)
{
	uint16_t p[4];

	CHECK_EQ_INT(capture__parse_ports("", p, 4), 0);
	CHECK_EQ_INT(capture__parse_ports("8000", p, 4), 1);
	CHECK_EQ_INT(p[0], 8000);
	CHECK_EQ_INT(capture__parse_ports("1,65535,11434", p, 4), 3);
	CHECK_EQ_INT(p[1], 65535);
	CHECK_EQ_INT(p[2], 11434);
	CHECK_EQ_INT(capture__parse_ports("0", p, 4), -EINVAL);
	CHECK_EQ_INT(capture__parse_ports("65536", p, 4), -EINVAL);
	CHECK_EQ_INT(capture__parse_ports("80,", p, 4), 1);
	CHECK_EQ_INT(capture__parse_ports("80,,81", p, 4), -EINVAL);
	CHECK_EQ_INT(capture__parse_ports("80 81", p, 4), -EINVAL);
	CHECK_EQ_INT(capture__parse_ports("1,2,3,4,5", p, 4), -EINVAL);
}

TEST(skipped)
{
	printf("test_plain_rungs: SKIP (needs root and BPF)%s\n",
	       require_bpf() ? ": TOKENTAP_REQUIRE_BPF=1 makes this a failure" : "");
	CHECK(!require_bpf());
}

int main(void)
{
	RUN(parse_ports);
	if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) ||
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) != 1) {
		RUN(skipped);
		TT_DONE();
	}
	libbpf_set_print(quiet);
	RUN(kprobe_programs_pass_the_verifier);
	RUN(fentry_programs_load_or_are_refused_whole);
	RUN(ladder_picks_and_explains);
	RUN(forced_rungs);
	TT_DONE();
}
