// SPDX-License-Identifier: Apache-2.0
/*
 * tokentap: flags and configuration -> a wired pipeline (capture -> conn -> proto -> llm -> span
 * -> export). Nothing else lives here.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "conn/conn.h"
#include "export/export.h"
#include "llm/llm.h"
#include "span/builder.h"

#define TOKENTAP_VERSION "0.1.0"
#define MAX_EXPORTERS 8
#define NS_PER_SEC 1000000000ull

struct config {
	const char *format; /* "text" or "json" */
	const char *otlp_endpoint;
	const char *otlp_headers;
	const char *sock_rung;
	const char *control_socket; /* "" = none */
	bool control_socket_set;    /* given on the command line: failing to open it is fatal */
	uint32_t ringbuf_bytes;
	uint64_t request_timeout_ns;
	uint64_t idle_timeout_ns;
	int stats_interval_s;
	int flush_deadline_ms;
	bool verbose;
};

struct pipeline {
	struct capture *capture;
	struct conn_table *conns;
	struct span_builder *spans;
	struct exporter *exporters[MAX_EXPORTERS];
	int n_exporters;
	struct exporter *control; /* also in exporters[]; gets health lines */
	uint64_t spans_built;
};

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	exiting = 1;
}

static uint64_t now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---- stage glue: each callback hands data one stage forward ------------------------------ */

static void on_llm_call(void *ctx, const struct llm_call *call)
{
	struct pipeline *p = ctx;
	struct span *s = span_builder__build(p->spans, call);

	if (!s)
		return;
	for (int i = 0; i < p->n_exporters; i++)
		p->exporters[i]->ops->export(p->exporters[i], s);
	p->spans_built++;
	span__free(s);
}

static void on_chunk(void *ctx, const struct cap_chunk *c)
{
	conn_table__on_chunk(((struct pipeline *)ctx)->conns, c);
}

static void on_close(void *ctx, const struct cap_close *c)
{
	conn_table__on_close(((struct pipeline *)ctx)->conns, c);
}

static void on_sock(void *ctx, const struct cap_sock *s)
{
	conn_table__on_sock(((struct pipeline *)ctx)->conns, s);
}

static void on_proc(void *ctx, const struct cap_proc *pe)
{
	struct pipeline *p = ctx;

	if (!pe->exited) {
		/* Read the process facts now: short-lived clients are gone by the time their
		 * call is reported. */
		span_builder__learn_process(p->spans, pe->pid, pe->comm);
		return;
	}
	conn_table__on_exit(p->conns, pe->pid, pe->ts_ns);
	span_builder__forget_process(p->spans, pe->pid);
}

/* ---- flags ------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tokentap [options]\n"
		"Traces LLM API calls made over OpenSSL by any process on this host, with eBPF.\n\n"
		"Output:\n"
		"  -f, --format text|json     one readable line per call (default), or JSON Lines\n"
		"      --otlp-endpoint URL    also send OTLP/HTTP protobuf spans to URL/v1/traces\n"
		"                             (default: $OTEL_EXPORTER_OTLP_ENDPOINT)\n"
		"      --otlp-headers K=V,..  extra export headers ($OTEL_EXPORTER_OTLP_HEADERS)\n"
		"      --stats-interval SEC   print pipeline counters to stderr every SEC seconds\n"
		"      --control-socket PATH  stream spans and health to local views such as\n"
		"                             `tokentap top` (default /run/tokentap.sock; '' = off)\n"
		"Tuning:\n"
		"      --ringbuf-size BYTES   kernel ring buffer size, a power of two (default 8 MiB)\n"
		"      --request-timeout SEC  report a call with no response after SEC (default 600)\n"
		"      --idle-timeout SEC     forget a quiet connection after SEC (default 900)\n"
		"      --sock-rung NAME       force the socket probe rung: fentry, kprobe, tracepoint\n"
		"Other:\n"
		"  -v, --verbose              log attach decisions and libbpf messages\n"
		"  -V, --version              print the version\n"
		"  -h, --help                 this help\n"
		"Environment: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_*.\n");
}

static int parse_uint(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max) {
		fprintf(stderr, "tokentap: %s: invalid number '%s'\n", flag, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

enum {
	OPT_OTLP = 256,
	OPT_OTLP_HEADERS,
	OPT_RINGBUF,
	OPT_REQ_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_SOCK_RUNG,
	OPT_STATS,
	OPT_CONTROL_SOCKET,
};

static int parse_number_flag(int opt, const char *arg, struct config *cfg)
{
	uint64_t v;

	switch (opt) {
	case OPT_RINGBUF:
		if (parse_uint("--ringbuf-size", arg, 1u << 30, &v))
			return -EINVAL;
		if (v < 4096 || (v & (v - 1))) {
			fprintf(stderr, "tokentap: --ringbuf-size must be a power of two >= 4096\n");
			return -EINVAL;
		}
		cfg->ringbuf_bytes = (uint32_t)v;
		return 0;
	case OPT_REQ_TIMEOUT:
		if (parse_uint("--request-timeout", arg, 86400, &v))
			return -EINVAL;
		cfg->request_timeout_ns = v * NS_PER_SEC;
		return 0;
	case OPT_IDLE_TIMEOUT:
		if (parse_uint("--idle-timeout", arg, 86400, &v))
			return -EINVAL;
		cfg->idle_timeout_ns = v * NS_PER_SEC;
		return 0;
	case OPT_STATS:
		if (parse_uint("--stats-interval", arg, 86400, &v))
			return -EINVAL;
		cfg->stats_interval_s = (int)v;
		return 0;
	}
	return -EINVAL;
}

static int parse_flags(int argc, char **argv, struct config *cfg)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "otlp-endpoint", required_argument, NULL, OPT_OTLP },
		{ "otlp-headers", required_argument, NULL, OPT_OTLP_HEADERS },
		{ "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
		{ "request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "sock-rung", required_argument, NULL, OPT_SOCK_RUNG },
		{ "stats-interval", required_argument, NULL, OPT_STATS },
		{ "control-socket", required_argument, NULL, OPT_CONTROL_SOCKET },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "f:vVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			cfg->format = optarg;
			break;
		case OPT_OTLP:
			cfg->otlp_endpoint = optarg;
			break;
		case OPT_OTLP_HEADERS:
			cfg->otlp_headers = optarg;
			break;
		case OPT_SOCK_RUNG:
			cfg->sock_rung = optarg;
			break;
		case OPT_CONTROL_SOCKET:
			cfg->control_socket = optarg;
			cfg->control_socket_set = true;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'V':
			printf("tokentap %s\n", TOKENTAP_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case '?':
			usage(stderr);
			return -EINVAL;
		default:
			if (parse_number_flag(opt, optarg, cfg))
				return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tokentap: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	if (strcmp(cfg->format, "text") && strcmp(cfg->format, "json")) {
		fprintf(stderr, "tokentap: --format must be 'text' or 'json', not '%s'\n", cfg->format);
		return -EINVAL;
	}
	if (cfg->sock_rung && strcmp(cfg->sock_rung, "fentry") && strcmp(cfg->sock_rung, "kprobe") &&
	    strcmp(cfg->sock_rung, "tracepoint")) {
		fprintf(stderr, "tokentap: --sock-rung must be fentry, kprobe or tracepoint\n");
		return -EINVAL;
	}
	return 0;
}

static void config__defaults_from_env(struct config *cfg)
{
	const char *v;

	cfg->format = "text";
	cfg->control_socket = "/run/tokentap.sock";
	cfg->flush_deadline_ms = 5000;
	v = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	if (v && *v)
		cfg->otlp_endpoint = v;
	v = getenv("OTEL_EXPORTER_OTLP_HEADERS");
	if (v && *v)
		cfg->otlp_headers = v;
}

/* ---- pipeline ---------------------------------------------------------------------------- */

static int pipeline__add_exporters(struct pipeline *p, const struct config *cfg)
{
	if (!strcmp(cfg->format, "json"))
		p->exporters[p->n_exporters++] = jsonl_exporter__new(stdout);
	else
		p->exporters[p->n_exporters++] = text_exporter__new(stdout);
	if (cfg->otlp_endpoint) {
		struct otlp_opts o = { .endpoint = cfg->otlp_endpoint, .headers = cfg->otlp_headers };

		p->exporters[p->n_exporters] = otlp_exporter__new(&o);
		if (!p->exporters[p->n_exporters])
			return -EINVAL;
		p->n_exporters++;
	}
	for (int i = 0; i < p->n_exporters; i++)
		if (!p->exporters[i])
			return -ENOMEM;
	return 0;
}

static int pipeline__open(struct pipeline *p, const struct config *cfg)
{
	struct span_builder_opts so = {
		.service_name = getenv("OTEL_SERVICE_NAME"),
		.resource_attributes = getenv("OTEL_RESOURCE_ATTRIBUTES"),
	};
	struct conn_opts co = {
		.request_timeout_ns = cfg->request_timeout_ns,
		.idle_timeout_ns = cfg->idle_timeout_ns,
	};
	struct capture_opts capo = {
		.self_pid = (uint32_t)getpid(),
		.ringbuf_bytes = cfg->ringbuf_bytes,
		.verbose = cfg->verbose,
		.sock_rung = cfg->sock_rung,
	};
	struct cap_sink sink = {
		.ctx = p,
		.on_chunk = on_chunk,
		.on_close = on_close,
		.on_sock = on_sock,
		.on_proc = on_proc,
	};
	int err;

	p->spans = span_builder__new(&so);
	p->conns = conn_table__new(&co, on_llm_call, p);
	if (!p->spans || !p->conns)
		return -ENOMEM;
	err = pipeline__add_exporters(p, cfg);
	if (err)
		return err;
	return capture__open(&p->capture, &capo, &sink);
}

static void pipeline__print_stats(struct pipeline *p, const struct capture_stats *cap)
{
	struct capture_stats cs = *cap;
	struct conn_stats ns;
	const struct llm_stats *ls = llm__stats();

	conn_table__stats(p->conns, &ns);
	fprintf(stderr,
		"tokentap: stats: events=%llu bytes=%llu lost_records=%llu lost_bytes=%llu "
		"malformed=%llu attached_files=%u attach_failures=%u sock_rung=%s "
		"conns_open=%llu conns=%llu gaps=%llu gap_bytes=%llu overlap_bytes=%llu "
		"skipped_bytes=%llu parse_errors=%llu not_http=%llu server_side=%llu "
		"llm_calls=%llu json_errors=%llu spans=%llu",
		(unsigned long long)cs.events, (unsigned long long)cs.bytes,
		(unsigned long long)cs.lost_records, (unsigned long long)cs.lost_bytes,
		(unsigned long long)cs.malformed_records, cs.attached_files, cs.attach_failures,
		cs.sock_rung ? cs.sock_rung : "-", (unsigned long long)ns.open,
		(unsigned long long)ns.created, (unsigned long long)ns.gaps,
		(unsigned long long)ns.gap_bytes, (unsigned long long)ns.overlap_bytes,
		(unsigned long long)ns.skipped_bytes, (unsigned long long)ns.parse_errors,
		(unsigned long long)ns.not_http, (unsigned long long)ns.server_side,
		(unsigned long long)ls->calls, (unsigned long long)ls->json_errors,
		(unsigned long long)p->spans_built);
	for (int i = 0; i < p->n_exporters; i++) {
		struct export_stats es = {};

		p->exporters[i]->ops->stats(p->exporters[i], &es);
		fprintf(stderr, " %s_exported=%llu %s_dropped=%llu", p->exporters[i]->ops->name,
			(unsigned long long)es.exported, p->exporters[i]->ops->name,
			(unsigned long long)es.dropped);
	}
	fputc('\n', stderr);
}

static void pipeline__run(struct pipeline *p, const struct config *cfg)
{
	uint64_t last_tick = now_mono_ns(), last_stats = last_tick;

	while (!exiting) {
		int n = capture__poll(p->capture, 100);
		uint64_t now = now_mono_ns();

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "tokentap: polling the ring buffer failed: %s\n", strerror(-n));
			break;
		}
		if (now - last_tick >= NS_PER_SEC) {
			conn_table__tick(p->conns, now);
			last_tick = now;
		}
		if (cfg->stats_interval_s &&
		    now - last_stats >= (uint64_t)cfg->stats_interval_s * NS_PER_SEC) {
			struct capture_stats cs = {};

			capture__stats(p->capture, &cs);
			pipeline__print_stats(p, &cs);
			last_stats = now;
		}
	}
	/* Deliver what the kernel already handed over before detaching. */
	while (capture__poll(p->capture, 0) > 0)
		;
}

static void pipeline__close(struct pipeline *p, const struct config *cfg)
{
	struct capture_stats cs = {};
	bool was_running = p->capture != NULL;

	if (p->capture) {
		capture__stats(p->capture, &cs);
		capture__close(p->capture);
	}
	for (int i = 0; i < p->n_exporters; i++) {
		if (!p->exporters[i])
			continue;
		p->exporters[i]->ops->flush(p->exporters[i], cfg->flush_deadline_ms);
	}
	if (was_running)
		pipeline__print_stats(p, &cs);
	for (int i = 0; i < p->n_exporters; i++)
		if (p->exporters[i])
			p->exporters[i]->ops->destroy(p->exporters[i]);
	/* Calls still open at shutdown were not finished: they are not reported as failures. */
	conn_table__free(p->conns);
	span_builder__free(p->spans);
}

/*
 * Subcommands live in their own stages and files; each is linked in when its file exists
 * (weak symbols), so `tokentap` alone stays the agent.
 */
int audit__main(int argc, char **argv) __attribute__((weak));
int top__main(int argc, char **argv) __attribute__((weak));
int report__main(int argc, char **argv) __attribute__((weak));

static int run_subcommand(int argc, char **argv, bool *handled)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = { { "audit", audit__main }, { "top", top__main }, { "report", report__main } };

	*handled = false;
	if (argc < 2 || argv[1][0] == '-')
		return 0;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		*handled = true;
		if (!cmds[i].fn) {
			fprintf(stderr, "tokentap: '%s' is not built into this binary\n", argv[1]);
			return 2;
		}
		/* The subcommand sees itself as argv[0]. */
		return cmds[i].fn(argc - 1, argv + 1);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {};
	struct pipeline p = {};
	struct sigaction sa = { .sa_handler = on_signal };
	bool handled;
	int err;

	err = run_subcommand(argc, argv, &handled);
	if (handled)
		return err;
	config__defaults_from_env(&cfg);
	if (parse_flags(argc, argv, &cfg))
		return 2;
	/* stdout may be a pipe read line by line (--format json): keep it line buffered. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	err = pipeline__open(&p, &cfg);
	if (err) {
		pipeline__close(&p, &cfg);
		return 1;
	}
	fprintf(stderr, "tokentap: ready\n");
	pipeline__run(&p, &cfg);
	pipeline__close(&p, &cfg);
	return 0;
}
