// SPDX-License-Identifier: Apache-2.0
/*
 * Audit log exporter: records, the chain, rotation, durability. See export/audit.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/chain.h"
#include "export/audit.h"
#include "export/utf8.h"

#define AUDIT_DEFAULT_MAX (100ull << 20)
#define AUDIT_DEFAULT_KEEP 5
#define AUDIT_LOG_INTERVAL_S 10

struct audit_exporter {
	struct exporter base;
	char *path;
	uint64_t max_bytes;
	int keep;
	int fsync_ms;
	struct proc_table *procs;

	pthread_mutex_t mu; /* fd, size, dirty: the sync thread shares them */
	pthread_cond_t wake;
	pthread_t sync_thread;
	bool thread_running, stop, dirty;
	int fd;
	uint64_t size;

	struct chain_state chain;
	uint64_t lost_pending; /* records that failed since the last one written */
	time_t last_log;
	struct export_stats st;
};

/* ---- the record ---------------------------------------------------------------------------- */

static const char *span_str(const struct span *s, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	return a && a->type == ATTR_STRING && a->s[0] ? a->s : NULL;
}

static const struct attr *span_int(const struct span *s, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	return a && a->type == ATTR_INT ? a : NULL;
}

static const char *res_str(const struct span *s, const char *key)
{
	const struct resource *r = s->resource;

	for (size_t i = 0; r && i < r->n_attrs; i++)
		if (!strcmp(r->attrs[i].key, key) && r->attrs[i].type == ATTR_STRING)
			return r->attrs[i].s;
	return NULL;
}

static void j_key(FILE *o, const char *k, bool *first)
{
	fprintf(o, "%s\"%s\":", *first ? "" : ",", k);
	*first = false;
}

static void j_str(FILE *o, const char *k, const char *v, bool *first)
{
	j_key(o, k, first);
	if (v && v[0])
		utf8__write_json_string(o, v);
	else
		fputs("null", o);
}

static void j_int(FILE *o, const char *k, const struct attr *a, bool *first)
{
	j_key(o, k, first);
	if (a)
		fprintf(o, "%" PRId64, a->i);
	else
		fputs("null", o);
}

static void j_num(FILE *o, const char *k, int64_t v, bool *first)
{
	j_key(o, k, first);
	if (v >= 0)
		fprintf(o, "%" PRId64, v);
	else
		fputs("null", o);
}

static void j_bool(FILE *o, const char *k, bool v, bool *first)
{
	j_key(o, k, first);
	fputs(v ? "true" : "false", o);
}

static void j_hex(FILE *o, const char *k, const uint8_t *b, size_t n, bool *first)
{
	j_key(o, k, first);
	fputc('"', o);
	for (size_t i = 0; i < n; i++)
		fprintf(o, "%02x", b[i]);
	fputc('"', o);
}

static void write_time(FILE *o, const struct span *s, bool *first)
{
	time_t sec = (time_t)(s->start_unix_ns / 1000000000ull);
	struct tm tm;
	char buf[40];

	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	j_key(o, "time", first);
	fprintf(o, "\"%s.%06uZ\"", buf, (unsigned)(s->start_unix_ns % 1000000000ull / 1000));
	j_key(o, "start_time_unix_nano", first);
	fprintf(o, "%" PRIu64, s->start_unix_ns);
	j_key(o, "end_time_unix_nano", first);
	fprintf(o, "%" PRIu64, s->end_unix_ns);
	j_key(o, "duration_ms", first);
	fprintf(o, "%.3f", (double)(s->end_unix_ns - s->start_unix_ns) / 1e6);
}

static void write_process(FILE *o, const struct span *s, const struct proc_facts *f)
{
	bool first = true;

	fputs(",\"process\":{", o);
	j_num(o, "pid", s->resource ? (int64_t)s->resource->pid : -1, &first);
	j_num(o, "ppid", f && f->ppid ? (int64_t)f->ppid : -1, &first);
	j_num(o, "uid", f ? f->uid : -1, &first);
	j_num(o, "euid", f ? f->euid : -1, &first);
	j_str(o, "user", f ? f->user : NULL, &first);
	j_str(o, "name", res_str(s, "process.executable.name"), &first);
	j_str(o, "executable", f && f->exe[0] ? f->exe : res_str(s, "process.executable.path"),
	      &first);
	j_str(o, "executable_sha256", f ? f->exe_sha256 : NULL, &first);
	j_str(o, "parent_executable", f ? f->parent_exe : NULL, &first);
	j_str(o, "command_line", f ? f->cmdline : NULL, &first);
	/* "exec": read when it started; "late": read at its first call (it predates tokentap or its
	 * exec event was lost); "gone": it had exited unseen, only the span's resource is known. */
	j_str(o, "facts", f ? (f->from_exec ? "exec" : "late") : "gone", &first);
	fputc('}', o);
}

static void write_container(FILE *o, const struct span *s, const struct proc_facts *f)
{
	const char *cid = f && f->container_id[0] ? f->container_id : res_str(s, "container.id");
	bool first = true;

	fputs(",\"container\":{", o);
	j_str(o, "id", cid, &first);
	j_str(o, "pod_uid", f && f->pod_uid[0] ? f->pod_uid : res_str(s, "k8s.pod.uid"), &first);
	/* From the container runtime's state (audit/container_meta.c), when found. */
	j_str(o, "runtime", span_str(s, "container.runtime"), &first);
	j_str(o, "image", span_str(s, "container.image.name"), &first);
	j_str(o, "name", span_str(s, "container.name"), &first);
	j_str(o, "pod_name", span_str(s, "k8s.pod.name"), &first);
	j_str(o, "pod_namespace", span_str(s, "k8s.namespace.name"), &first);
	fputc('}', o);
}

static void write_destination(FILE *o, const struct span *s)
{
	bool first = true;

	fputs(",\"destination\":{", o);
	j_str(o, "server_address", span_str(s, "server.address"), &first);
	j_int(o, "server_port", span_int(s, "server.port"), &first);
	j_str(o, "tls_server_name", span_str(s, "tls.client.server_name"), &first);
	j_str(o, "peer_address", span_str(s, "network.peer.address"), &first);
	j_int(o, "peer_port", span_int(s, "network.peer.port"), &first);
	j_str(o, "tls_library", span_str(s, "tokentap.tls.library"), &first);
	fputc('}', o);
}

static void write_call(FILE *o, const struct span *s)
{
	const char *method = span_str(s, "http.request.method"), *path = span_str(s, "url.path");
	bool first = false;
	char api[300];

	snprintf(api, sizeof(api), "%s %s", method ?: "?", path ?: "?");
	j_str(o, "provider", span_str(s, "gen_ai.provider.name"), &first);
	j_str(o, "detected_by", span_str(s, "tokentap.provider.detected_by"), &first);
	j_str(o, "operation", span_str(s, "gen_ai.operation.name"), &first);
	j_str(o, "api", api, &first);
	fputs(",\"model\":{", o);
	first = true;
	j_str(o, "request", span_str(s, "gen_ai.request.model"), &first);
	j_str(o, "response", span_str(s, "gen_ai.response.model"), &first);
	fputs("},\"tokens\":{", o);
	first = true;
	j_int(o, "input", span_int(s, "gen_ai.usage.input_tokens"), &first);
	j_int(o, "output", span_int(s, "gen_ai.usage.output_tokens"), &first);
	j_int(o, "cache_read", span_int(s, "gen_ai.usage.cache_read.input_tokens"), &first);
	j_int(o, "cache_creation", span_int(s, "gen_ai.usage.cache_creation.input_tokens"), &first);
	fputs("},\"status\":{", o);
	first = true;
	j_int(o, "http_status", span_int(s, "http.response.status_code"), &first);
	j_str(o, "outcome", s->status == SPAN_STATUS_ERROR ? "error" : "ok", &first);
	j_str(o, "error_type", span_str(s, "error.type"), &first);
	fputs("},\"capture\":{", o);
	first = true;
	j_bool(o, "partial", span__find_attr(s, "tokentap.capture.partial") != NULL, &first);
	j_int(o, "lost_bytes", span_int(s, "tokentap.capture.lost_bytes"), &first);
	fputc('}', o);
}

/* A string-array attribute as a JSON array ([] when absent). */
static void j_strs(FILE *o, const char *k, const struct attr *a, bool *first)
{
	j_key(o, k, first);
	fputc('[', o);
	for (size_t i = 0; a && a->type == ATTR_STRING_ARRAY && i < a->arr.n; i++) {
		if (i)
			fputc(',', o);
		utf8__write_json_string(o, a->arr.v[i]);
	}
	fputc(']', o);
}

static void write_verdict(FILE *o, const struct span *s)
{
	const struct attr *v = span__find_attr(s, "tokentap.policy.violations");
	const struct attr *shadow = span__find_attr(s, "tokentap.shadow_ai");
	bool first = false;

	j_str(o, "api_key_fingerprint", span_str(s, "tokentap.api_key.fingerprint"), &first);
	j_str(o, "tenant", span_str(s, "tokentap.tenant"), &first);
	/* No policy loaded: nothing forbids the call. */
	j_str(o, "verdict", span_str(s, "tokentap.policy.verdict") ?: "allowed", &first);
	j_key(o, "violations", &first);
	fputc('[', o);
	for (size_t i = 0; v && v->type == ATTR_STRING_ARRAY && i < v->arr.n; i++) {
		if (i)
			fputc(',', o);
		utf8__write_json_string(o, v->arr.v[i]);
	}
	fputc(']', o);
	j_str(o, "policy_rule", span_str(s, "tokentap.policy.rule"), &first);
	j_strs(o, "policy_unevaluated", span__find_attr(s, "tokentap.policy.unevaluated"), &first);
	j_bool(o, "shadow_ai", shadow && shadow->type == ATTR_BOOL && shadow->b, &first);
	j_str(o, "shadow_ai_reason", span_str(s, "tokentap.shadow_ai.reason"), &first);
	j_str(o, "shadow_ai_detail", span_str(s, "tokentap.shadow_ai.detail"), &first);
}

void audit__write_record(FILE *o, const struct span *s, const struct proc_facts *f, uint64_t seq,
			 const char *prev_hash, uint64_t lost_before)
{
	bool first = true;

	fputc('{', o);
	j_key(o, "seq", &first);
	fprintf(o, "%" PRIu64, seq);
	j_str(o, "prev_hash", prev_hash, &first);
	if (lost_before)
		j_num(o, "lost_before", (int64_t)lost_before, &first);
	write_time(o, s, &first);
	j_str(o, "host", res_str(s, "host.name"), &first);
	write_process(o, s, f);
	write_container(o, s, f);
	write_destination(o, s);
	write_call(o, s);
	write_verdict(o, s);
	j_hex(o, "trace_id", s->trace_id, sizeof(s->trace_id), &first);
	j_hex(o, "span_id", s->span_id, sizeof(s->span_id), &first);
	fputc('}', o);
}

/* ---- the file ------------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void audit__log(struct audit_exporter *ae, const char *what, int err)
{
	time_t now = time(NULL);

	if (now - ae->last_log < AUDIT_LOG_INTERVAL_S)
		return;
	ae->last_log = now;
	fprintf(stderr, "tokentap: audit: %s %s: %s (%llu records lost so far)\n", what, ae->path,
		strerror(err), (unsigned long long)ae->st.dropped);
}

static int audit__open_fd(const char *path)
{
	/* 0600: records hold command lines and user names. */
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void audit__sync_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* FILE -> FILE.1 -> ... -> FILE.keep (the oldest falls off). Called with mu held. */
static int audit__rotate(struct audit_exporter *ae)
{
	size_t n = strlen(ae->path) + 16;
	char from[n], to[n];
	int fd;

	fdatasync(ae->fd);
	for (int k = ae->keep - 1; k >= 1; k--) {
		snprintf(from, n, "%s.%d", ae->path, k);
		snprintf(to, n, "%s.%d", ae->path, k + 1);
		if (rename(from, to) && errno != ENOENT)
			return -errno;
	}
	snprintf(to, n, "%s.1", ae->path);
	if (rename(ae->path, to))
		return -errno;
	fd = audit__open_fd(ae->path);
	if (fd < 0)
		return -errno;
	close(ae->fd);
	ae->fd = fd;
	ae->size = 0;
	audit__sync_dir(ae->path);
	return 0;
}

/* One write(2) per record; a partial write is cut back off so the file never holds half a
 * record. Called with mu held. */
static int audit__append(struct audit_exporter *ae, const char *line, size_t len)
{
	ssize_t n = write(ae->fd, line, len);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0) {
		if (ftruncate(ae->fd, (off_t)ae->size))
			return -EIO;
		return -ENOSPC;
	}
	return -errno;
}

static void audit__export(struct exporter *e, const struct span *s)
{
	struct audit_exporter *ae = (struct audit_exporter *)e;
	const struct proc_facts *f = NULL;
	char *buf = NULL, next_head[AUDIT_HASH_HEX];
	size_t len = 0;
	uint64_t seq = ae->chain.started ? ae->chain.seq + 1 : 0;
	FILE *mem = open_memstream(&buf, &len);
	int err;

	if (ae->procs && s->resource)
		f = proc_table__get(ae->procs, s->resource->pid);
	if (!mem) {
		ae->st.dropped++;
		ae->lost_pending++;
		return;
	}
	audit__write_record(mem, s, f, seq, ae->chain.started ? ae->chain.head : AUDIT_GENESIS,
			    ae->lost_pending);
	fclose(mem);
	chain__hash_hex(buf, len, next_head);
	buf[len] = '\n'; /* open_memstream keeps a NUL past the end: room for the newline */
	pthread_mutex_lock(&ae->mu);
	err = 0;
	if (ae->size && ae->size + len + 1 > ae->max_bytes)
		err = audit__rotate(ae);
	if (err)
		audit__log(ae, "rotating", -err); /* keep writing to the current file */
	err = audit__append(ae, buf, len + 1);
	if (!err) {
		ae->size += len + 1;
		ae->dirty = true;
		if (ae->fsync_ms == 0)
			pthread_cond_signal(&ae->wake); /* the sync thread syncs it now */
	}
	pthread_mutex_unlock(&ae->mu);
	free(buf);
	if (err) {
		ae->st.dropped++;
		ae->st.errors++;
		ae->lost_pending++;
		audit__log(ae, "writing", -err);
		return;
	}
	ae->st.exported++;
	ae->lost_pending = 0;
	ae->chain.started = true;
	ae->chain.seq = seq;
	memcpy(ae->chain.head, next_head, sizeof(next_head));
}

/* Syncs outside the lock, on a duplicate of the descriptor (a rotation may close the
 * original meanwhile): the pipeline thread never waits for the disk. Called with mu held;
 * returns with it held. */
static void audit__sync_dirty(struct audit_exporter *ae)
{
	int fd;

	if (!ae->dirty)
		return;
	ae->dirty = false;
	fd = dup(ae->fd);
	pthread_mutex_unlock(&ae->mu);
	if (fd >= 0) {
		fdatasync(fd);
		close(fd);
	}
	pthread_mutex_lock(&ae->mu);
}

static void *audit__sync_main(void *arg)
{
	struct audit_exporter *ae = arg;

	pthread_mutex_lock(&ae->mu);
	while (!ae->stop) {
		int wait_ms = ae->fsync_ms ? ae->fsync_ms : 1000;
		uint64_t until = now_ms() + (uint64_t)wait_ms;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		/* fsync_ms 0: woken by every record */
		while (!ae->stop && !(ae->fsync_ms == 0 && ae->dirty) && now_ms() < until)
			pthread_cond_timedwait(&ae->wake, &ae->mu, &ts);
		audit__sync_dirty(ae);
	}
	pthread_mutex_unlock(&ae->mu);
	return NULL;
}

static void audit__flush(struct exporter *e, int deadline_ms)
{
	struct audit_exporter *ae = (struct audit_exporter *)e;

	pthread_mutex_lock(&ae->mu);
	if (ae->dirty)
		fdatasync(ae->fd);
	ae->dirty = false;
	pthread_mutex_unlock(&ae->mu);
}

static void audit__stats(struct exporter *e, struct export_stats *st)
{
	*st = ((struct audit_exporter *)e)->st;
}

static void audit__destroy(struct exporter *e)
{
	struct audit_exporter *ae = (struct audit_exporter *)e;

	if (ae->thread_running) {
		pthread_mutex_lock(&ae->mu);
		ae->stop = true;
		pthread_cond_signal(&ae->wake);
		pthread_mutex_unlock(&ae->mu);
		pthread_join(ae->sync_thread, NULL);
	}
	if (ae->fd >= 0) {
		fdatasync(ae->fd);
		close(ae->fd);
	}
	/* The head, printed where logs are shipped, anchors the chain's tail (verify
	 * --expect-head). */
	if (ae->chain.started)
		fprintf(stderr, "tokentap: audit: %s: chain head seq %llu sha256 %s\n", ae->path,
			(unsigned long long)ae->chain.seq, ae->chain.head);
	pthread_mutex_destroy(&ae->mu);
	pthread_cond_destroy(&ae->wake);
	free(ae->path);
	free(ae);
}

static const struct exporter_ops audit_ops = {
    .name = "audit",
    .export = audit__export,
    .flush = audit__flush,
    .stats = audit__stats,
    .destroy = audit__destroy,
};

/* Continues the chain of what is on disk: FILE's last record, else FILE.1's. An incomplete
 * last line (a write cut by a crash) is removed, loudly. */
static int audit__recover(struct audit_exporter *ae)
{
	size_t n = strlen(ae->path) + 8, torn = 0;
	char older[n];
	int err = chain__read_tail(ae->path, &ae->chain, &torn);

	if (err == -EBADMSG) {
		fprintf(stderr,
			"tokentap: audit: the last line of %s is not an audit record: refusing to "
			"append to it (move the file away)\n",
			ae->path);
		return err;
	}
	if (err)
		return err;
	if (torn) {
		fprintf(stderr,
			"tokentap: audit: %s ended with %zu bytes of an incomplete record (a write "
			"interrupted by a crash); removing them\n",
			ae->path, torn);
		if (ftruncate(ae->fd, (off_t)(ae->size - torn)))
			return -errno;
		ae->size -= torn;
	}
	if (ae->chain.started)
		return 0;
	snprintf(older, n, "%s.1", ae->path);
	err = chain__read_tail(older, &ae->chain, &torn);
	return err == -EBADMSG ? 0 : err; /* a bad old file does not stop a new chain segment */
}

static struct audit_exporter *audit__alloc(const struct audit_opts *o)
{
	struct audit_exporter *ae = calloc(1, sizeof(*ae));

	if (!ae)
		return NULL;
	ae->base.ops = &audit_ops;
	ae->path = strdup(o->path);
	ae->max_bytes = o->max_bytes ? o->max_bytes : AUDIT_DEFAULT_MAX;
	ae->keep = o->keep > 0 ? o->keep : AUDIT_DEFAULT_KEEP;
	ae->fsync_ms = o->fsync_interval_ms;
	ae->procs = o->procs;
	ae->fd = -1;
	pthread_mutex_init(&ae->mu, NULL);
	pthread_cond_init(&ae->wake, NULL);
	return ae;
}

struct exporter *audit_exporter__new(const struct audit_opts *o)
{
	struct audit_exporter *ae = audit__alloc(o);
	off_t end;

	if (!ae || !ae->path)
		goto fail;
	ae->fd = audit__open_fd(o->path);
	if (ae->fd < 0) {
		fprintf(stderr, "tokentap: cannot open audit file %s: %s\n", o->path,
			strerror(errno));
		goto fail;
	}
	end = lseek(ae->fd, 0, SEEK_END);
	ae->size = end > 0 ? (uint64_t)end : 0;
	if (audit__recover(ae))
		goto fail;
	if (pthread_create(&ae->sync_thread, NULL, audit__sync_main, ae))
		goto fail;
	ae->thread_running = true;
	return &ae->base;
fail:
	if (ae)
		audit__destroy(&ae->base);
	return NULL;
}
