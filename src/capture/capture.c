// SPDX-License-Identifier: Apache-2.0
/*
 * capture/: loads the BPF side (skeleton lifecycle: open, set rodata and sizes, load, attach),
 * picks the socket rung by probing, attaches the plain HTTP capture (bpf/plain.bpf.c), polls the
 * ring buffer and hands each record to the sink. Record decoding lives in record.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tokentap_abi.h"
#include "attach/attach.h"
#include "capture/aead_bind.h"
#include "capture/trust_gate.h"
#include "capture/capture.h"
#include "tokentap.skel.h"

#define CAPTURE_RINGBUF_DEFAULT (8u << 20)
#define CAPTURE_RINGBUF_MAX (1u << 30)
#define CAPTURE_LINKS_MAX 64
#define BTF_VMLINUX "/sys/kernel/btf/vmlinux"
/*
 * The kernel wakes us only when unread records cross min(ring/8, CAPTURE_WAKEUP_MAX) bytes
 * (wakeup_bytes in bpf/tokentap.bpf.h); below that, records wait at most CAPTURE_DRAIN_MS.
 */
#define CAPTURE_WAKEUP_MAX (256u << 10)
#define CAPTURE_DRAIN_MS 50

/* One rung of the socket attach ladder: the programs whose names start with `prefix`. */
struct sock_rung {
	const char *name;
	const char *prefix;
};

static const struct sock_rung sock_rungs[] = {
    {"fentry", "fentry_tcp_"},
    {"kprobe", "kprobe_tcp_"},
    {"tracepoint", "tp_sys_enter_"},
};
#define SOCK_RUNGS (sizeof(sock_rungs) / sizeof(sock_rungs[0]))

/*
 * Plain HTTP capture (bpf/plain.bpf.c) has a ladder of its own, walked once the socket rung is
 * live; the TCP close tracepoint (tp_plain_sock_state) goes with every rung:
 *   fentry       fentry + fexit on tcp_sendmsg/tcp_recvmsg
 *   kprobe       kprobe + kretprobe on the same
 *   sock_length  syscall-entry tracepoints, sock:sock_{send,recv}_length (6.3+) for the end
 *   sys_exit     syscall-entry and syscall-exit tracepoints
 * A kernel that refuses one fentry program refuses the whole object: the fentry and kprobe
 * programs are loaded only with a socket rung at least as demanding (fentry loads both, kprobe
 * loads the kprobe ones), or when forced; the tracepoint ones are always loaded, the fallback.
 */
#define PLAIN_PREFIX "tp_plain_"
#define PLAIN_RUNG "tracepoint"

struct plain_rung {
	const char *name;
	const char *prefix[2]; /* entry and end programs */
	int sock_rung;	       /* index in sock_rungs[] of the kind it needs; -1: tracepoints */
};

static const struct plain_rung plain_rungs[] = {
    {"fentry", {"fentry_plain_tcp_", "fexit_plain_tcp_"}, 0},
    {"kprobe", {"kprobe_plain_tcp_", "kretprobe_plain_tcp_"}, 1},
    {"sock_length", {"tp_plain_enter_", "tp_plain_len_"}, -1},
    {"sys_exit", {"tp_plain_enter_", "tp_plain_exit_"}, -1},
};
#define PLAIN_RUNGS (sizeof(plain_rungs) / sizeof(plain_rungs[0]))
#define PLAIN_SHARED "tp_plain_sock_state"

struct capture {
	struct tokentap_bpf *skel;
	struct ring_buffer *rb;
	struct attach *attach;
	struct aead_bind aead_bind; /* rustls records to their sockets' connections */
	struct trust_gate gate;	    /* code-shape probes' connections pass once they are HTTP */
	struct cap_sink sink;
	struct bpf_link *links[CAPTURE_LINKS_MAX]; /* socket and process programs */
	int nlinks;
	const char *rung;
	const char *plain_rung; /* NULL: plain capture off */
	char plain_tried[256];	/* why the plain rungs above the live one were passed over */
	uint64_t events, bytes, malformed;
	uint64_t plain_records, plain_bytes;
	bool verbose;
	uint32_t max_attached_files;
	uint32_t exec_hold_ms;
	bool no_exec_hold;
	bool classic_probes;
};

/* ---- libbpf logging and preflight checks ---------------------------------------------------- */

static int libbpf_print_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int libbpf_print_verbose(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Root, or CAP_BPF with CAP_PERFMON (uprobes, ring buffer), or the catch-all CAP_SYS_ADMIN. */
static bool capture__privileged(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {};
	uint64_t eff, need = (1ULL << 39) | (1ULL << 38); /* CAP_BPF, CAP_PERFMON */

	if (syscall(SYS_capget, &hdr, data))
		return true; /* cannot tell: let the kernel decide */
	eff = data[0].effective | (uint64_t)data[1].effective << 32;
	return (eff & (1ULL << CAP_SYS_ADMIN)) || (eff & need) == need;
}

static int capture__preflight(void)
{
	if (access(BTF_VMLINUX, R_OK)) {
		fprintf(stderr,
			"tokentap: kernel BTF missing (%s): needs a kernel built with "
			"CONFIG_DEBUG_INFO_BTF=y\n",
			BTF_VMLINUX);
		return -EOPNOTSUPP;
	}
	if (!capture__privileged()) {
		fprintf(stderr,
			"tokentap: needs root or CAP_BPF+CAP_PERFMON: running as uid %u "
			"without them\n",
			(unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

/* libbpf attaches tracepoints through tracefs; some hosts boot without it mounted. */
static void capture__ensure_tracefs(bool verbose)
{
	if (!access("/sys/kernel/tracing/events", F_OK) ||
	    !access("/sys/kernel/debug/tracing", F_OK))
		return;
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) && verbose)
		fprintf(stderr, "tokentap: cannot mount tracefs: %s\n", strerror(errno));
}

static uint32_t capture__ringbuf_size(uint32_t want)
{
	uint32_t sz = (uint32_t)getpagesize();

	if (!want)
		return CAPTURE_RINGBUF_DEFAULT;
	while (sz < want && sz < CAPTURE_RINGBUF_MAX)
		sz <<= 1;
	return sz;
}

/* ---- skeleton and the socket rung ----------------------------------------------------------- */

static const struct sock_rung *sock_rung__of(const struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	size_t i;

	for (i = 0; i < SOCK_RUNGS; i++) {
		if (strncmp(name, sock_rungs[i].prefix, strlen(sock_rungs[i].prefix)) == 0)
			return &sock_rungs[i];
	}
	return NULL;
}

static bool prefix__is(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The plain rung whose entry or end programs prog is; NULL for the shared close program. */
static const struct plain_rung *plain_rung__of(const struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	size_t i;

	for (i = 0; i < PLAIN_RUNGS; i++) {
		if (prefix__is(name, plain_rungs[i].prefix[0]) ||
		    prefix__is(name, plain_rungs[i].prefix[1]))
			return &plain_rungs[i];
	}
	return NULL;
}

static bool prog__is_plain(const struct bpf_program *prog)
{
	return prefix__is(bpf_program__name(prog), PLAIN_PREFIX) || plain_rung__of(prog);
}

/* Whether a plain program is loaded with socket rung `rung` (see plain_rungs[]). */
static bool plain__loads(const struct bpf_program *prog, const struct capture_opts *opts,
			 const struct sock_rung *rung)
{
	const struct plain_rung *pr = plain_rung__of(prog);

	if (!pr || pr->sock_rung < 0)
		return true;
	if (opts->plain_rung)
		return !strcmp(opts->plain_rung, pr->name);
	return rung - sock_rungs <= pr->sock_rung;
}

static int capture__link(struct capture *c, struct bpf_program *prog)
{
	struct bpf_link *link;

	if (c->nlinks >= CAPTURE_LINKS_MAX)
		return -E2BIG;
	link = bpf_program__attach(prog);
	if (!link)
		return errno ? -errno : -EINVAL;
	c->links[c->nlinks++] = link;
	return 0;
}

static void capture__unload(struct capture *c)
{
	attach__destroy_links(c->links, (size_t)c->nlinks);
	c->nlinks = 0;
	tokentap_bpf__destroy(c->skel);
	c->skel = NULL;
}

static int capture__load(struct capture *c, const struct capture_opts *opts,
			 const struct sock_rung *rung, bool plain)
{
	struct bpf_program *prog;
	int err;

	c->skel = tokentap_bpf__open();
	if (!c->skel)
		return errno ? -errno : -EINVAL;
	c->skel->rodata->self_tgid = opts->self_pid ? opts->self_pid : (uint32_t)getpid();
	c->skel->rodata->wakeup_bytes = capture__ringbuf_size(opts->ringbuf_bytes) / 8;
	if (c->skel->rodata->wakeup_bytes > CAPTURE_WAKEUP_MAX)
		c->skel->rodata->wakeup_bytes = CAPTURE_WAKEUP_MAX;
	err = bpf_map__set_max_entries(c->skel->maps.events,
				       capture__ringbuf_size(opts->ringbuf_bytes));
	bpf_object__for_each_program(prog, c->skel->obj)
	{
		const struct sock_rung *r = sock_rung__of(prog);

		if (r && !err)
			err = bpf_program__set_autoload(prog, r == rung);
		if (!err && prog__is_plain(prog))
			err = bpf_program__set_autoload(prog,
							plain && plain__loads(prog, opts, rung));
	}
	return err ? err : tokentap_bpf__load(c->skel);
}

static int capture__attach_sock(struct capture *c, const struct sock_rung *rung)
{
	struct bpf_program *prog;
	int err = 0;

	bpf_object__for_each_program(prog, c->skel->obj)
	{
		if (!err && sock_rung__of(prog) == rung)
			err = capture__link(c, prog);
	}
	return err;
}

/* Loads the skeleton with one rung's socket programs and attaches them; unloads on failure. */
static int capture__try_rung(struct capture *c, const struct capture_opts *opts,
			     const struct sock_rung *rung, bool plain, char *why, size_t why_len)
{
	int err = capture__load(c, opts, rung, plain);
	const char *step = "load";

	if (!err) {
		step = "attach";
		err = capture__attach_sock(c, rung);
	}
	if (err) {
		snprintf(why, why_len, "%s %s failed: %s", rung->name, step, strerror(-err));
		capture__unload(c);
	}
	return err;
}

/* Walks the ladder once, with or without the plain capture programs. */
static int capture__ladder(struct capture *c, const struct capture_opts *opts, bool plain,
			   char *tried, size_t tried_len)
{
	char why[128];
	int err = -ENOENT;
	size_t i;

	for (i = 0; i < SOCK_RUNGS; i++) {
		if (opts->sock_rung && strcmp(opts->sock_rung, sock_rungs[i].name) != 0)
			continue;
		err = capture__try_rung(c, opts, &sock_rungs[i], plain, why, sizeof(why));
		if (!err) {
			c->rung = sock_rungs[i].name;
			break;
		}
		if (*tried)
			strncat(tried, "; ", tried_len - strlen(tried) - 1);
		strncat(tried, why, tried_len - strlen(tried) - 1);
	}
	return err;
}

static int capture__pick_rung(struct capture *c, const struct capture_opts *opts)
{
	char tried[6 * 128 + 16] = "";
	int err;

	err = capture__ladder(c, opts, !opts->no_plain, tried, sizeof(tried));
	/* The plain programs are the newest and largest: a kernel whose verifier refuses them
	 * still gets TLS capture. */
	if (err && err != -ENOENT && !opts->no_plain && !(err == -EPERM && geteuid() != 0)) {
		err = capture__ladder(c, opts, false, tried, sizeof(tried));
		if (!err)
			fprintf(stderr,
				"tokentap: plain HTTP capture off: its programs do not load "
				"on this kernel\n");
	} else if (!err && !opts->no_plain) {
		c->plain_rung = PLAIN_RUNG;
	}
	if (err == -ENOENT && opts->sock_rung && !*tried) {
		fprintf(stderr, "tokentap: unknown socket rung '%s' (fentry, kprobe, tracepoint)\n",
			opts->sock_rung);
		return -EINVAL;
	}
	if (err == -EPERM && geteuid() != 0)
		fprintf(stderr, "tokentap: needs root or CAP_BPF+CAP_PERFMON: %s\n", tried);
	else if (err)
		fprintf(stderr, "tokentap: cannot load the BPF programs: %s\n", tried);
	else if (c->verbose)
		fprintf(stderr, "tokentap: socket rung %s%s%s%s\n", c->rung, *tried ? " (" : "",
			tried, *tried ? ")" : " (first choice)");
	return err;
}

/* ---- records -------------------------------------------------------------------------------- */

/* A record on to the parsers, once records of code-shape guesses are trusted. */
static int capture__deliver(void *ctx, const void *data, size_t size)
{
	struct capture *c = ctx;
	struct tt_event_hdr h;
	struct tt_data_event d;

	memcpy(&h, data, sizeof(h));
	if ((h.source == TT_SRC_BORINGSSL || h.source == TT_SRC_RUSTLS) &&
	    !trust_gate__pass(&c->gate, data, size))
		return 0;
	if (capture__dispatch_record(data, size, &c->sink)) {
		c->malformed++;
		return 0;
	}
	if (h.kind == TT_EV_DATA) {
		memcpy(&d, data, TT_DATA_HDR_SIZE);
		c->bytes += d.data_len;
		if (h.source == TT_SRC_PLAINTEXT) {
			c->plain_records++;
			c->plain_bytes += d.data_len;
		}
	}
	return 0;
}

static int capture__on_record(void *ctx, void *data, size_t size)
{
	struct capture *c = ctx;
	struct tt_event_hdr h;

	c->events++;
	if (size < sizeof(h)) {
		c->malformed++;
		return 0;
	}
	memcpy(&h, data, sizeof(h));
	/* Attach before the sink sees the exec, so the new image is covered as early as we can. */
	if (h.kind == TT_EV_EXEC) {
		attach__on_exec_at(c->attach, h.pid, h.ts_ns);
	} else if (h.kind == TT_EV_EXIT) {
		attach__on_exit(c->attach, h.pid);
		aead_bind__on_exit(&c->aead_bind, h.pid);
	}
	if (h.source == TT_SRC_RUSTLS) {
		if (aead_bind__record(&c->aead_bind, data, size, capture__deliver, c) == -EINVAL)
			c->malformed++;
		return 0;
	}
	return capture__deliver(c, data, size);
}

static int capture__attach_tls(struct capture *c)
{
	struct tokentap_bpf *s = c->skel;
	struct attach_progs progs = {
	    .entry = {s->progs.uprobe_ssl_write, s->progs.uprobe_ssl_read,
		      s->progs.uprobe_ssl_write_ex, s->progs.uprobe_ssl_read_ex,
		      s->progs.uprobe_ssl_free, s->progs.uprobe_gnutls_record_send,
		      s->progs.uprobe_gnutls_record_recv, s->progs.uprobe_gnutls_deinit,
		      [ATTACH_FN_SSL_CTRL] = s->progs.uprobe_ssl_ctrl,
		      [ATTACH_FN_GNUTLS_SERVER_NAME_SET] = s->progs.uprobe_gnutls_server_name_set},
	    .ret = {s->progs.uretprobe_ssl_write, s->progs.uretprobe_ssl_read,
		    s->progs.uretprobe_ssl_write_ex, s->progs.uretprobe_ssl_read_ex, NULL,
		    s->progs.uretprobe_gnutls_record_send, s->progs.uretprobe_gnutls_record_recv,
		    NULL},
	    .go = {s->progs.uprobe_go_tls_write, s->progs.uprobe_go_tls_write_ret,
		   s->progs.uprobe_go_tls_read, s->progs.uprobe_go_tls_read_ret,
		   s->progs.uprobe_go_tls_close},
	    .aead = {{s->progs.uprobe_aead_seal, s->progs.uprobe_aead_seal_scatter,
		      s->progs.uprobe_aead_open, s->progs.uprobe_aead_open_gather},
		     s->progs.uretprobe_aead_open},
	};

	if (!c->classic_probes) {
		progs.sites.entry = s->progs.uprobe_ssl_site_enter;
		progs.sites.ret = s->progs.uprobe_ssl_site_return;
		progs.sites.checks_fd = bpf_map__fd(s->maps.site_checks);
	}
	c->attach = attach__new(&progs, c->verbose);
	if (!c->attach)
		return -ENOMEM;
	attach__set_max_files(c->attach, c->max_attached_files);
	attach__set_exec_hold(c->attach, !c->no_exec_hold, c->exec_hold_ms);
	if (attach__scan_all(c->attach) > 0)
		return 0;
	fprintf(stderr,
		"tokentap: no OpenSSL or GnuTLS found (no libssl.so.3/1.1 or libgnutls.so.30 "
		"in the standard places and no running process maps a file with "
		"SSL_write/SSL_read or gnutls_record_send/recv)%s\n",
		c->plain_rung ? ": capturing plain HTTP only" : "");
	return c->plain_rung ? 0 : -ENOENT;
}

/* The plain programs of one rung, or (rung NULL) the close program every rung shares. */
static bool prog__in_plain_rung(const struct bpf_program *prog, const struct plain_rung *rung)
{
	if (!prog__is_plain(prog) || !bpf_program__autoload(prog))
		return false;
	if (!rung)
		return !strcmp(bpf_program__name(prog), PLAIN_SHARED);
	return prefix__is(bpf_program__name(prog), rung->prefix[0]) ||
	       prefix__is(bpf_program__name(prog), rung->prefix[1]);
}

#define PLAIN_NOT_LOADED 1

/* Attaches a set of plain programs; on failure detaches what it attached. Returns 0, -errno,
 * or PLAIN_NOT_LOADED when the rung's programs were not loaded with this socket rung. */
static int capture__link_plain(struct capture *c, const struct plain_rung *rung)
{
	struct bpf_program *prog;
	int first = c->nlinks, err = PLAIN_NOT_LOADED, i;

	bpf_object__for_each_program(prog, c->skel->obj)
	{
		if ((err == 0 || err == PLAIN_NOT_LOADED) && prog__in_plain_rung(prog, rung))
			err = capture__link(c, prog);
	}
	if (!err)
		return 0;
	for (i = first; i < c->nlinks; i++)
		bpf_link__destroy(c->links[i]);
	c->nlinks = first;
	return err;
}

static void capture__plain_passed(struct capture *c, const char *rung, int err)
{
	size_t used = strlen(c->plain_tried);

	snprintf(c->plain_tried + used, sizeof(c->plain_tried) - used, "%s%s: %s",
		 used ? "; " : "", rung,
		 err == PLAIN_NOT_LOADED ? "not loaded with this socket rung" : strerror(-err));
}

/* Parses "p1,p2,.." (1..65535 each) into ports[]; returns how many, or -EINVAL. */
int capture__parse_ports(const char *list, uint16_t *ports, int max)
{
	const char *p = list;
	int n = 0;

	while (p && *p) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);

		if (end == p || v == 0 || v > 65535 || (*end && *end != ',') || n >= max)
			return -EINVAL;
		ports[n++] = (uint16_t)v;
		p = *end ? end + 1 : end;
	}
	return n;
}

/* Fills the kernel's h2c port list (bpf/plain.bpf.c plain_h2c_ports). */
static int capture__set_h2c_ports(struct capture *c, const struct capture_opts *opts)
{
	const char *list = opts->h2c_ports ? opts->h2c_ports : CAPTURE_H2C_PORTS_DEFAULT;
	uint16_t ports[CAPTURE_H2C_PORTS_MAX];
	uint8_t one = 1;
	int n = capture__parse_ports(list, ports, CAPTURE_H2C_PORTS_MAX), i, err;

	if (n < 0) {
		fprintf(stderr, "tokentap: h2c ports '%s': want PORT[,PORT..] (at most %d)\n", list,
			CAPTURE_H2C_PORTS_MAX);
		return n;
	}
	for (i = 0; i < n; i++) {
		err = bpf_map__update_elem(c->skel->maps.plain_h2c_ports, &ports[i],
					   sizeof(ports[i]), &one, sizeof(one), BPF_ANY);
		if (err)
			return err;
	}
	return 0;
}

/* Plain capture is an extra: when none of its rungs attaches, TLS capture goes on. */
static void capture__attach_plain(struct capture *c, const struct capture_opts *opts)
{
	int err = -ENOENT;
	size_t i;

	if (!c->plain_rung)
		return;
	if (capture__set_h2c_ports(c, opts)) {
		fprintf(stderr, "tokentap: plain HTTP capture off: cannot set the h2c ports\n");
		c->plain_rung = NULL;
		return;
	}
	for (i = 0; i < PLAIN_RUNGS && err; i++) {
		if (opts->plain_rung && strcmp(opts->plain_rung, plain_rungs[i].name) != 0)
			continue;
		err = capture__link_plain(c, &plain_rungs[i]);
		if (!err)
			c->plain_rung = plain_rungs[i].name;
		else
			capture__plain_passed(c, plain_rungs[i].name, err);
	}
	if (!err)
		err = capture__link_plain(c, NULL);
	if (!err) {
		if (c->verbose)
			fprintf(stderr, "tokentap: plain HTTP rung %s%s%s%s\n", c->plain_rung,
				*c->plain_tried ? " (" : " (first choice)", c->plain_tried,
				*c->plain_tried ? ")" : "");
		return;
	}
	fprintf(stderr, "tokentap: plain HTTP capture off: cannot attach its programs: %s\n",
		*c->plain_tried ? c->plain_tried : strerror(err > 0 ? ENOENT : -err));
	c->plain_rung = NULL;
}

static int capture__start(struct capture *c, const struct capture_opts *opts)
{
	int err;

	err = capture__preflight();
	if (err)
		return err;
	capture__ensure_tracefs(c->verbose);
	err = capture__pick_rung(c, opts);
	if (err)
		return err;
	err = capture__link(c, c->skel->progs.tp_rustls_close);
	if (!err)
		err = capture__link(c, c->skel->progs.tp_sched_process_exec);
	if (!err)
		err = capture__link(c, c->skel->progs.tp_sched_process_exit);
	if (err) {
		fprintf(stderr, "tokentap: cannot attach the exec/exit tracepoints: %s\n",
			strerror(-err));
		return err;
	}
	capture__attach_plain(c, opts);
	c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.events), capture__on_record, c, NULL);
	if (!c->rb) {
		err = errno ? -errno : -ENOMEM;
		fprintf(stderr, "tokentap: cannot open the ring buffer: %s\n", strerror(-err));
		return err;
	}
	return capture__attach_tls(c);
}

/* ---- API ------------------------------------------------------------------------------------ */

int capture__open(struct capture **out, const struct capture_opts *opts,
		  const struct cap_sink *sink)
{
	static const struct capture_opts defaults;
	struct capture *c;
	int err;

	*out = NULL;
	opts = opts ? opts : &defaults;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->verbose = opts->verbose;
	c->gate.verbose = opts->verbose;
	c->max_attached_files = opts->max_attached_files;
	c->exec_hold_ms = opts->exec_hold_ms;
	c->no_exec_hold = opts->no_exec_hold;
	c->classic_probes = opts->classic_probes;
	if (sink)
		c->sink = *sink;
	libbpf_set_print(c->verbose ? libbpf_print_verbose : libbpf_print_quiet);
	err = capture__start(c, opts);
	if (err) {
		capture__close(c);
		return err;
	}
	*out = c;
	return 0;
}

int capture__poll(struct capture *c, int timeout_ms)
{
	int n, m;

	if (timeout_ms < 0 || timeout_ms > CAPTURE_DRAIN_MS)
		timeout_ms = CAPTURE_DRAIN_MS;
	n = ring_buffer__poll(c->rb, attach__next_due_ms(c->attach, timeout_ms));
	/* Records made without a wakeup are there even when the wait timed out. */
	m = n >= 0 ? ring_buffer__consume(c->rb) : 0;
	attach__run_pending(c->attach);
	return n < 0 ? n : n + (m > 0 ? m : 0);
}

static void capture__sum_drops(struct capture *c, struct capture_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	__u32 k;
	int i;

	if (ncpu <= 0 || !(vals = calloc((size_t)ncpu, sizeof(*vals))))
		return;
	for (k = 0; k < TT_DROP__COUNT; k++) {
		if (bpf_map__lookup_elem(c->skel->maps.drops, &k, sizeof(k), vals,
					 (size_t)ncpu * sizeof(*vals), 0))
			continue;
		for (i = 0; i < ncpu; i++)
			st->drops[k] += vals[i];
	}
	free(vals);
}

static void capture__sum_plain(struct capture *c, struct capture_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals, sum[TT_PLAIN__COUNT] = {};
	__u32 k;
	int i;

	if (!c->plain_rung || ncpu <= 0 || !(vals = calloc((size_t)ncpu, sizeof(*vals))))
		return;
	for (k = 0; k < TT_PLAIN__COUNT; k++) {
		if (bpf_map__lookup_elem(c->skel->maps.plain_counters, &k, sizeof(k), vals,
					 (size_t)ncpu * sizeof(*vals), 0))
			continue;
		for (i = 0; i < ncpu; i++)
			sum[k] += vals[i];
	}
	free(vals);
	st->plain_socks_llm = sum[TT_PLAIN_SOCKS_LLM];
	st->plain_socks_other = sum[TT_PLAIN_SOCKS_OTHER];
	st->plain_h2c_other = sum[TT_PLAIN_SOCKS_H2C_OTHER];
}

void capture__stats(struct capture *c, struct capture_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->events = c->events;
	st->bytes = c->bytes;
	st->malformed_records = c->malformed;
	st->sock_rung = c->rung;
	st->plain_rung = c->plain_rung;
	st->plain_tried = c->plain_tried;
	st->plain_records = c->plain_records;
	st->plain_bytes = c->plain_bytes;
	if (c->skel) {
		capture__sum_drops(c, st);
		capture__sum_plain(c, st);
	}
	st->lost_records = st->drops[TT_DROP_RINGBUF_RECORDS] + st->drops[TT_DROP_CONTROL_RECORDS];
	/* Read errors are counted in bytes too (1 when even the length could not be read). */
	st->lost_bytes = st->drops[TT_DROP_RINGBUF_BYTES] + st->drops[TT_DROP_TRUNCATED_BYTES] +
			 st->drops[TT_DROP_READ_ERRORS];
	if (c->attach) {
		attach__stats(c->attach, &st->attach);
	}
	st->rustls_unbound_records = c->aead_bind.dropped_records;
	st->code_shape_verified = c->gate.verified;
	st->code_shape_held_bytes = c->gate.held_bytes;
}

void capture__close(struct capture *c)
{
	if (!c)
		return;
	/* Probes first, so nothing writes into the buffer we are about to free. */
	attach__free(c->attach);
	aead_bind__free(&c->aead_bind);
	trust_gate__free(&c->gate);
	c->attach = NULL;
	ring_buffer__free(c->rb);
	c->rb = NULL;
	capture__unload(c);
	free(c);
}
