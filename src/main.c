// SPDX-License-Identifier: Apache-2.0
/*
 * tokentap: flags and configuration -> a wired pipeline (capture -> conn -> proto -> llm -> span
 * -> export). Nothing else lives here.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture/capture.h"
#include "config.h"
#include "conn/conn.h"
#include "export/export.h"
#include "export/metrics.h"
#include "llm/llm.h"
#include "proto/decode.h"
#include "proto/http2.h"
#include "span/builder.h"
#include "llm/tenant.h"
#include "span/pricing.h"
#include "audit/judge.h"
#include "audit/privs.h"
#include "export/audit.h"
#include "export/otlp_http.h"
#include "llm/content.h"
#include "util/redact.h"

#define MAX_EXPORTERS 8
#define NS_PER_SEC 1000000000ull

/* struct config, the option table (flags and --config file) and --help: src/config.c. */

struct pipeline {
	struct capture *capture;
	struct conn_table *conns;
	struct span_builder *spans;
	struct exporter *exporters[MAX_EXPORTERS];
	int n_exporters;
	struct exporter *control; /* also in exporters[]; gets health lines */
	struct metrics *metrics;  /* registry of the "metrics" exporter (in exporters[]), or NULL */
	uint64_t spans_built;
	/* audit (issue 6): process facts, the policy and the judge; NULL when not asked for */
	struct proc_table *procs;
	struct policy *policy;
	struct audit_judge *judge;
	struct container_meta *containers; /* image / pod-label facts from the runtimes */
};

static volatile sig_atomic_t exiting;

static volatile sig_atomic_t reload_pricing; /* SIGHUP: read the pricing table again */

static void on_hup(int sig)
{
	reload_pricing = 1;
}

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
	if (p->judge)
		audit_judge__span(p->judge, s); /* shadow AI and policy verdict, before any export */
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

static void on_ignore(void *ctx, const struct cap_close *c)
{
	conn_table__on_ignore(((struct pipeline *)ctx)->conns, c);
}

static void on_sync(void *ctx, const struct cap_close *c)
{
	conn_table__on_sync(((struct pipeline *)ctx)->conns, c);
}

static void on_sock(void *ctx, const struct cap_sock *s)
{
	conn_table__on_sock(((struct pipeline *)ctx)->conns, s);
}

static void on_sni(void *ctx, const struct cap_sni *s)
{
	conn_table__on_sni(((struct pipeline *)ctx)->conns, s);
}

static void on_proc(void *ctx, const struct cap_proc *pe)
{
	struct pipeline *p = ctx;

	if (!pe->exited) {
		/* Read the process facts now: short-lived clients are gone by the time their
		 * call is reported. */
		struct exe_hint hint = {pe->filename, pe->exe_dev, pe->exe_ino};

		span_builder__learn_process(p->spans, pe->pid, pe->comm, &hint);
		if (p->procs)
			proc_table__learn(p->procs, pe->pid, pe->ppid);
		return;
	}
	conn_table__on_exit(p->conns, pe->pid, pe->ts_ns);
	span_builder__forget_process(p->spans, pe->pid);
	if (p->procs)
		proc_table__exit(p->procs, pe->pid, pe->ts_ns);
}

/* ---- cost and attribution: process-wide settings of llm/tenant.c and span/pricing.c ------- */

static int attribution__open(const struct config *cfg)
{
	struct sigaction hup = { .sa_handler = on_hup };

	if (pricing__init(cfg->pricing_path))
		return -EINVAL;
	if (tenant__configure(cfg->tenant_headers.v, cfg->tenant_headers.n))
		return -EINVAL;
	tenant__load_secret(cfg->fingerprint_key); /* warns and goes on without the file */
	sigaction(SIGHUP, &hup, NULL);
	return 0;
}

static void attribution__close(struct config *cfg)
{
	pricing__exit();
	tenant__exit();
	config__free(cfg);
}

/* ---- audit and security: process-wide settings and the judge (issue 6) -------------------- */

static int security__content(const struct config *cfg)
{
	struct content_opts co = { .enabled = cfg->capture_content,
				   .max_bytes = cfg->content_max_bytes };

	for (int i = 0; i < cfg->redact.n; i++)
		if (redact__add_pattern(cfg->redact.v[i]))
			return -EINVAL;
	content__configure(&co);
	return 0;
}

static int security__otlp_tls(const struct config *cfg)
{
	const char *files[] = { cfg->otlp_ca, cfg->otlp_client_cert, cfg->otlp_client_key };

	for (int i = 0; i < 3; i++) {
		if (files[i] && access(files[i], R_OK)) {
			fprintf(stderr, "tokentap: cannot read OTLP TLS file %s: %s\n", files[i],
				strerror(errno));
			return -EINVAL;
		}
	}
	if (!cfg->otlp_client_cert != !cfg->otlp_client_key) {
		fprintf(stderr, "tokentap: --otlp-client-cert and --otlp-client-key go together\n");
		return -EINVAL;
	}
	otlp_http__set_tls(cfg->otlp_ca, cfg->otlp_client_cert, cfg->otlp_client_key);
	return 0;
}

static int security__open(struct pipeline *p, const struct config *cfg)
{
	if (security__content(cfg) || security__otlp_tls(cfg))
		return -EINVAL;
	if (cfg->policy_path && !(p->policy = policy__load(cfg->policy_path)))
		return -EINVAL;
	if (!cfg->audit_path && !p->policy)
		return 0;
	p->procs = proc_table__new(NULL);
	p->judge = audit_judge__new(p->procs, p->policy);
	p->containers = container_meta__new(&(struct container_meta_opts){
	    .containerd_state = cfg->containerd_state,
	    .crio_state = cfg->crio_state,
	    .docker_state = cfg->docker_state,
	});
	if (p->judge)
		audit_judge__set_containers(p->judge, p->containers);
	return p->procs && p->judge && p->containers ? 0 : -ENOMEM;
}

/* ---- pipeline ---------------------------------------------------------------------------- */

/* The default control socket is a convenience: when it cannot be opened (not root, another
 * agent holds it) the agent runs on without it. A path given on the command line must open. */
static int pipeline__add_control(struct pipeline *p, const struct config *cfg)
{
	int err;

	if (!cfg->control_socket[0])
		return 0;
	p->control = socket_exporter__new(cfg->control_socket, 0, &err);
	if (!p->control) {
		fprintf(stderr, "tokentap: %s control socket %s: %s%s\n",
			cfg->control_socket_set ? "cannot open" : "not serving", cfg->control_socket,
			strerror(-err), err == -EADDRINUSE ? " (another tokentap serves it)" : "");
		return cfg->control_socket_set ? err : 0;
	}
	p->exporters[p->n_exporters++] = p->control;
	return 0;
}

/* What `tokentap top` shows as the agent's own health, sent over the control socket. */
static void pipeline__send_health(struct pipeline *p)
{
	struct capture_stats cs = {};
	struct conn_stats ns;
	struct agent_health h = { .spans = p->spans_built };

	capture__stats(p->capture, &cs);
	conn_table__stats(p->conns, &ns);
	h.events_lost = cs.lost_records;
	h.lost_bytes = cs.lost_bytes;
	h.parse_errors = ns.parse_errors + llm__stats()->json_errors;
	for (int i = 0; i < p->n_exporters; i++) {
		struct export_stats es = {};

		if (p->exporters[i] == p->control)
			continue; /* its own drops reach each reader as client_dropped */
		p->exporters[i]->ops->stats(p->exporters[i], &es);
		h.export_backlog += es.queued;
		h.export_dropped += es.dropped;
	}
	socket_exporter__send_health(p->control, &h);
}

/* The batch span processor's standard variables (OTEL_BSP_*): a positive integer, else 0 (the
 * exporter's default). */
static int env_int(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n = v ? strtol(v, &end, 10) : 0;

	return v && *v && !*end && n > 0 && n <= 1 << 24 ? (int)n : 0;
}

/* Flag or file, then the OTLP environment; gzip unless told otherwise. */
static const char *otlp_compression(const struct config *cfg)
{
	const char *env = getenv("OTEL_EXPORTER_OTLP_COMPRESSION");

	if (cfg->otlp_compression)
		return cfg->otlp_compression;
	return env && *env ? env : "gzip";
}

/* Metrics are kept when something reads them: Prometheus scrapes or OTLP metrics pushes. */
static int pipeline__add_metrics(struct pipeline *p, const struct config *cfg)
{
	struct metrics_opts mo = {
		.max_series = cfg->metrics_max_series,
		.otlp_endpoint = cfg->otlp_endpoint,
		.otlp_headers = cfg->otlp_headers,
		.otlp_compression = otlp_compression(cfg),
		.interval_s = cfg->metrics_interval_s,
		.prometheus = cfg->prometheus,
	};

	if (!cfg->prometheus && !cfg->otlp_endpoint)
		return 0;
	p->exporters[p->n_exporters] = metrics_exporter__new(&mo, &p->metrics);
	if (!p->exporters[p->n_exporters])
		return -EINVAL;
	p->n_exporters++;
	return 0;
}

/* tokentap's own counters, for the metrics outlets; the first call also marks it ready. */
static void pipeline__publish_metrics(struct pipeline *p, const struct capture_stats *cs)
{
	struct metrics_health h = { .spans = p->spans_built, .llm_calls = llm__stats()->calls,
				    .json_errors = llm__stats()->json_errors };
	struct conn_stats ns;

	conn_table__stats(p->conns, &ns);
	h.events = cs->events;
	h.bytes = cs->bytes;
	h.lost_records = cs->lost_records;
	h.lost_bytes = cs->lost_bytes;
	h.malformed_records = cs->malformed_records;
	h.attached_files = cs->attach.files;
	h.attach_failures = cs->attach.failures;
	h.attach_users = cs->attach.users;
	h.attach_max_files = cs->attach.max_files;
	h.attach_refusals = cs->attach.refusals;
	h.attach_detaches = cs->attach.detaches;
	h.exec_attaches = cs->attach.exec_attaches;
	h.exec_window_last_us = cs->attach.exec_window_last_ns / 1000;
	h.exec_window_max_us = cs->attach.exec_window_max_ns / 1000;
	h.code_shape_files = cs->attach.code_shape_files;
	h.code_shape_verified = cs->code_shape_verified;
	h.code_shape_held_bytes = cs->code_shape_held_bytes;
	h.rustls_unbound_records = cs->rustls_unbound_records;
	h.exec_holds = cs->attach.exec_holds;
	h.exec_hold_failures = cs->attach.exec_hold_failures + cs->attach.exec_hold_timeouts;
	h.exec_hold_max_us = cs->attach.exec_hold_max_ns / 1000;
	h.conns_open = ns.open;
	h.gaps = ns.gaps;
	h.gap_bytes = ns.gap_bytes;
	h.parse_errors = ns.parse_errors;
	h.not_http = ns.not_http;
	h.traced_processes = ns.procs;
	for (int i = 0; i < p->n_exporters && h.n_exporters < METRICS_MAX_EXPORTERS; i++) {
		struct metrics_exporter_health *x = &h.exporters[h.n_exporters++];
		struct export_stats es = {};

		p->exporters[i]->ops->stats(p->exporters[i], &es);
		snprintf(x->name, sizeof(x->name), "%s", p->exporters[i]->ops->name);
		x->exported = es.exported;
		x->dropped = es.dropped;
		x->errors = es.errors;
	}
	metrics__set_health(p->metrics, &h);
}

static void pipeline__tick_metrics(struct pipeline *p)
{
	struct capture_stats cs = {};

	capture__stats(p->capture, &cs);
	pipeline__publish_metrics(p, &cs);
}

static int pipeline__add_exporters(struct pipeline *p, const struct config *cfg)
{
	if (!strcmp(cfg->format, "json"))
		p->exporters[p->n_exporters++] = jsonl_exporter__new(stdout);
	else
		p->exporters[p->n_exporters++] = text_exporter__new(stdout);
	if (cfg->otlp_endpoint) {
		struct otlp_opts o = { .endpoint = cfg->otlp_endpoint, .headers = cfg->otlp_headers,
				       .compression = otlp_compression(cfg),
				       .queue_max = env_int("OTEL_BSP_MAX_QUEUE_SIZE"),
				       .batch_max = env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
				       .batch_delay_ms = env_int("OTEL_BSP_SCHEDULE_DELAY") };

		p->exporters[p->n_exporters] = otlp_exporter__new(&o);
		if (!p->exporters[p->n_exporters])
			return -EINVAL;
		p->n_exporters++;
	}
	if (cfg->audit_path) {
		struct audit_opts ao = { .path = cfg->audit_path, .max_bytes = cfg->audit_max_bytes,
					 .keep = cfg->audit_keep,
					 .fsync_interval_ms = cfg->audit_fsync_ms,
					 .procs = p->procs };

		p->exporters[p->n_exporters] = audit_exporter__new(&ao);
		if (!p->exporters[p->n_exporters])
			return -EINVAL;
		p->n_exporters++;
	}
	if (pipeline__add_metrics(p, cfg))
		return -EINVAL;
	if (pipeline__add_control(p, cfg))
		return -EINVAL;
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
		.max_attached_files = cfg->max_attached_files,
		.exec_hold_ms = cfg->exec_hold_ms,
		.no_exec_hold = cfg->no_exec_hold,
		.h2c_ports = cfg->h2c_ports,
		.classic_probes = cfg->probe_sites && !strcmp(cfg->probe_sites, "classic"),
	};
	struct cap_sink sink = {
		.ctx = p,
		.on_chunk = on_chunk,
		.on_close = on_close,
		.on_sock = on_sock,
		.on_proc = on_proc,
		.on_ignore = on_ignore,
		.on_sync = on_sync,
		.on_sni = on_sni,
	};
	int err;

	decode__set_max_out(cfg->max_decoded_bytes); /* 0: the default */
	p->spans = span_builder__new(&so);
	p->conns = conn_table__new(&co, on_llm_call, p);
	if (!p->spans || !p->conns)
		return -ENOMEM;
	err = security__open(p, cfg);
	if (err)
		return err;
	err = pipeline__add_exporters(p, cfg);
	if (err)
		return err;
	return capture__open(&p->capture, &capo, &sink);
}

/* HTTP/2 and content decoding: what loss and odd input cost (README, "HTTP/2"). */
static void pipeline__print_proto_stats(const struct conn_stats *ns)
{
	const struct http2_stats *h2 = http2__totals();
	const struct decode_stats *ds = decode__stats();

	fprintf(stderr,
		" h2_conns=%llu h2_midstream=%llu h2_streams=%llu h2_gaps=%llu h2_hpack_resets=%llu"
		" h2_hpack_failures=%llu h2_lost_requests=%llu h2_refused=%llu h2_parse_errors=%llu"
		" decoded=%llu decode_corrupt=%llu decode_truncated=%llu decode_capped=%llu"
		" decode_unsupported=%llu",
		(unsigned long long)ns->http2, (unsigned long long)ns->http2_midstream,
		(unsigned long long)h2->requests, (unsigned long long)h2->gaps,
		(unsigned long long)h2->hpack_resets, (unsigned long long)h2->hpack_failures,
		(unsigned long long)h2->lost_requests, (unsigned long long)h2->refused,
		(unsigned long long)h2->parse_errors, (unsigned long long)ds->decoders,
		(unsigned long long)ds->corrupt, (unsigned long long)ds->truncated,
		(unsigned long long)ds->capped, (unsigned long long)ds->unsupported);
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
		(unsigned long long)cs.malformed_records, cs.attach.files, cs.attach.failures,
		cs.sock_rung ? cs.sock_rung : "-", (unsigned long long)ns.open,
		(unsigned long long)ns.created, (unsigned long long)ns.gaps,
		(unsigned long long)ns.gap_bytes, (unsigned long long)ns.overlap_bytes,
		(unsigned long long)ns.skipped_bytes, (unsigned long long)ns.parse_errors,
		(unsigned long long)ns.not_http, (unsigned long long)ns.server_side,
		(unsigned long long)ls->calls, (unsigned long long)ls->json_errors,
		(unsigned long long)p->spans_built);
	pipeline__print_proto_stats(&ns);
	fprintf(stderr,
		" ignored=%llu ignored_bytes=%llu resumed=%llu syncs=%llu parser_renewals=%llu"
		" closed=%llu evicted_idle=%llu evicted_cap=%llu body_overflow=%llu",
		(unsigned long long)ns.ignored, (unsigned long long)ns.ignored_bytes,
		(unsigned long long)ns.resumed, (unsigned long long)ns.syncs,
		(unsigned long long)ns.parser_renewals, (unsigned long long)ns.closed,
		(unsigned long long)ns.evicted_idle, (unsigned long long)ns.evicted_cap,
		(unsigned long long)ls->body_overflow);
	fprintf(stderr,
		" plain_rung=%s plain_records=%llu plain_bytes=%llu plain_socks_llm=%llu "
		"plain_socks_other=%llu plain_h2c_other=%llu",
		cs.plain_rung ? cs.plain_rung : "-", (unsigned long long)cs.plain_records,
		(unsigned long long)cs.plain_bytes, (unsigned long long)cs.plain_socks_llm,
		(unsigned long long)cs.plain_socks_other, (unsigned long long)cs.plain_h2c_other);
	fprintf(stderr,
		" attach_users=%u attach_processes=%u attach_max_files=%u attach_refusals=%llu"
		" attach_detaches=%llu exec_attaches=%llu needed_attaches=%llu"
		" exec_window_last_us=%llu exec_window_max_us=%llu exec_window_avg_us=%llu",
		cs.attach.users, cs.attach.processes, cs.attach.max_files,
		(unsigned long long)cs.attach.refusals, (unsigned long long)cs.attach.detaches,
		(unsigned long long)cs.attach.exec_attaches, (unsigned long long)cs.attach.needed_attaches,
		(unsigned long long)cs.attach.exec_window_last_ns / 1000,
		(unsigned long long)cs.attach.exec_window_max_ns / 1000,
		(unsigned long long)cs.attach.exec_window_avg_ns / 1000);
	fprintf(stderr,
		" code_shape_files=%u code_shape_verified=%llu code_shape_held_bytes=%llu"
		" rustls_unbound_records=%llu exec_holds=%llu exec_hold_timeouts=%llu"
		" exec_hold_failures=%llu exec_hold_max_us=%llu",
		cs.attach.code_shape_files, (unsigned long long)cs.code_shape_verified,
		(unsigned long long)cs.code_shape_held_bytes,
		(unsigned long long)cs.rustls_unbound_records, (unsigned long long)cs.attach.exec_holds,
		(unsigned long long)cs.attach.exec_hold_timeouts, (unsigned long long)cs.attach.exec_hold_failures,
		(unsigned long long)cs.attach.exec_hold_max_ns / 1000);
	for (int i = 0; i < p->n_exporters; i++) {
		struct export_stats es = {};

		p->exporters[i]->ops->stats(p->exporters[i], &es);
		fprintf(stderr, " %s_exported=%llu %s_dropped=%llu", p->exporters[i]->ops->name,
			(unsigned long long)es.exported, p->exporters[i]->ops->name,
			(unsigned long long)es.dropped);
		/* At exit: what the flush deadline left unsent (dropped when the exporter stops). */
		if (es.queued)
			fprintf(stderr, " %s_unsent=%llu", p->exporters[i]->ops->name,
				(unsigned long long)es.queued);
	}
	fputc('\n', stderr);
}

static void pipeline__run(struct pipeline *p, const struct config *cfg)
{
	uint64_t last_tick = now_mono_ns(), last_stats = last_tick;

	if (p->metrics)
		pipeline__tick_metrics(p); /* ready: Prometheus /healthz answers 200 from now on */
	while (!exiting) {
		int n = capture__poll(p->capture, 100);
		uint64_t now = now_mono_ns();

		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "tokentap: polling the ring buffer failed: %s\n", strerror(-n));
			break;
		}
		if (reload_pricing) {
			reload_pricing = 0;
			pricing__reload(); /* keeps the current table when the file is bad */
		}
		if (now - last_tick >= NS_PER_SEC) {
			conn_table__tick(p->conns, now);
			if (p->procs)
				proc_table__tick(p->procs, now);
			if (p->control)
				pipeline__send_health(p);
			if (p->metrics)
				pipeline__tick_metrics(p);
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
	/* One deadline for the whole flush, however many exporters share it. */
	uint64_t until = now_mono_ns() + (uint64_t)cfg->flush_deadline_ms * 1000000ull;

	if (p->capture) {
		capture__stats(p->capture, &cs);
		capture__close(p->capture);
	}
	for (int i = 0; i < p->n_exporters; i++) {
		uint64_t now = now_mono_ns();

		if (!p->exporters[i])
			continue;
		/* The last OTLP metrics push carries the totals after the flushes before it. */
		if (p->metrics && was_running)
			pipeline__publish_metrics(p, &cs);
		p->exporters[i]->ops->flush(p->exporters[i],
					    now < until ? (int)((until - now) / 1000000ull) : 0);
	}
	if (was_running)
		pipeline__print_stats(p, &cs);
	for (int i = 0; i < p->n_exporters; i++)
		if (p->exporters[i])
			p->exporters[i]->ops->destroy(p->exporters[i]);
	/* Calls still open at shutdown were not finished: they are not reported as failures. */
	conn_table__free(p->conns);
	span_builder__free(p->spans);
	audit_judge__free(p->judge);
	container_meta__free(p->containers);
	policy__free(p->policy);
	proc_table__free(p->procs);
	redact__clear_patterns();
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

/* --check-config: what a deployment can get wrong before it runs (the file, every option, the
 * pricing table, the tenant headers), checked without root or BPF and without creating any
 * file (the fingerprint secret is not touched). */
static int check_config(struct config *cfg)
{
	int err = pricing__init(cfg->pricing_path);

	if (!err && tenant__configure(cfg->tenant_headers.v, cfg->tenant_headers.n))
		err = -EINVAL;
	pricing__exit();
	tenant__exit();
	config__free(cfg);
	if (err)
		return 2;
	printf("tokentap: configuration OK\n");
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
	if (config__parse(&cfg, argc, argv)) {
		config__free(&cfg); /* the values a bad config file was read into so far */
		return 2;
	}
	if (cfg.check_config)
		return check_config(&cfg);
	/* attach/ reads the discovery cache's place from the environment (attach/boringssl.h). */
	if (cfg.state_dir)
		setenv("TOKENTAP_STATE_DIR", cfg.state_dir, 1);
	/* stdout may be a pipe read line by line (--format json): keep it line buffered. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (attribution__open(&cfg))
		return 1;

	if (privs__check_start())
		return 1;
	err = pipeline__open(&p, &cfg);
	if (err) {
		pipeline__close(&p, &cfg);
		return 1;
	}
	/* Attached: from here on only what attaching to new executables needs. */
	if (!cfg.keep_caps)
		privs__drop_after_attach(cfg.verbose);
	/* Scanning every process's executables and libraries left freed heap behind: give it back,
	 * so an idle agent's resident memory is what it holds. */
	malloc_trim(0);
	fprintf(stderr, "tokentap: ready\n");
	pipeline__run(&p, &cfg);
	pipeline__close(&p, &cfg);
	attribution__close(&cfg);
	return 0;
}
