// SPDX-License-Identifier: Apache-2.0
/*
 * Prometheus scrape endpoint (libmicrohttpd, its own thread): GET /metrics renders the registry
 * in the text exposition format 0.0.4 under the OpenTelemetry-to-Prometheus names (dots become
 * underscores, unit "s" adds _seconds, counters end in _total, {annotations} are dropped);
 * GET /healthz answers 200 once the pipeline published its first health snapshot, else 503.
 * Binds to loopback unless an address is given.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "export/metrics.h"

struct prom_server {
	struct MHD_Daemon *d;
	struct metrics *m;
	int port;
};

/* ---- rendering --------------------------------------------------------------------------- */

/* Shortest text that reads back as the same double; Prometheus spells infinities +Inf/-Inf. */
static void prom__double(FILE *out, double v)
{
	char buf[40];

	if (isnan(v)) {
		fputs("NaN", out);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", out);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, out);
}

static void prom__label_value(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

/* {k="v",...[,le="x"]} of a series; nothing when it has no labels at all. */
static void prom__labels(FILE *out, const struct metric_series *s, const char *le)
{
	bool first = true;

	for (int k = 0; k < MK__N; k++) {
		if (!s->vals[k])
			continue;
		fprintf(out, "%s%s=", first ? "{" : ",", mkey_prom[k]);
		prom__label_value(out, s->vals[k]);
		first = false;
	}
	if (s->overflow) {
		fprintf(out, "%sotel_metric_overflow=\"true\"", first ? "{" : ",");
		first = false;
	}
	if (le) {
		fprintf(out, "%sle=\"%s\"", first ? "{" : ",", le);
		first = false;
	}
	if (!first)
		fputc('}', out);
}

static void prom__family(FILE *out, const char *name, const char *help, const char *type)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom__histogram_series(FILE *out, const struct metric_def *d,
				   const struct metric_series *s)
{
	uint64_t cum = 0;
	char le[40];
	FILE *f;

	for (size_t i = 0; i <= d->n_bounds; i++) {
		cum += s->buckets[i];
		if (i == d->n_bounds) {
			strcpy(le, "+Inf");
		} else {
			f = fmemopen(le, sizeof(le), "w");
			if (!f)
				return;
			prom__double(f, d->bounds[i]);
			fclose(f);
		}
		fprintf(out, "%s_bucket", d->prom);
		prom__labels(out, s, le);
		fprintf(out, " %llu\n", (unsigned long long)cum);
	}
	fprintf(out, "%s_sum", d->prom);
	prom__labels(out, s, NULL);
	fputc(' ', out);
	prom__double(out, s->sum);
	fprintf(out, "\n%s_count", d->prom);
	prom__labels(out, s, NULL);
	fprintf(out, " %llu\n", (unsigned long long)s->count);
}

static void prom__metric(FILE *out, const struct metric *mt)
{
	const struct metric_def *d = mt->def;

	if (!mt->n_series)
		return;
	prom__family(out, d->prom, d->help, d->kind == MKIND_HISTOGRAM ? "histogram" : "counter");
	for (size_t i = 0; i < mt->n_series; i++) {
		const struct metric_series *s = mt->series[i];

		if (d->kind == MKIND_HISTOGRAM) {
			prom__histogram_series(out, d, s);
			continue;
		}
		fputs(d->prom, out);
		prom__labels(out, s, NULL);
		fputc(' ', out);
		if (d->kind == MKIND_SUM_INT)
			fprintf(out, "%llu", (unsigned long long)s->count);
		else
			prom__double(out, s->sum);
		fputc('\n', out);
	}
}

static void prom__overflow(FILE *out, struct metrics *m)
{
	prom__family(out, "tokentap_metrics_overflow_total",
		     "Measurements folded into a metric's overflow series (cardinality cap)",
		     "counter");
	for (int i = 0; i < M__N; i++) {
		const struct metric *mt = metrics__get(m, i);

		fprintf(out, "tokentap_metrics_overflow_total{metric=\"%s\"} %llu\n", mt->def->name,
			(unsigned long long)mt->overflowed);
	}
}

static void prom__exporters(FILE *out, const struct metrics_health *h)
{
	for (int f = 0; f < HX__N; f++) {
		for (int kind = 0; kind < 2; kind++) {
			const struct health_export_def *d = &health_export_defs[f][kind];
			bool any = false;

			/* One export-errors family holds every exporter. */
			if (f == HX_ERRORS && kind == 1)
				continue;
			for (int i = 0; i < h->n_exporters; i++) {
				const struct metrics_exporter_health *x = &h->exporters[i];

				if (f != HX_ERRORS && health__is_metrics_exporter(x) != kind)
					continue;
				if (!any)
					prom__family(out, d->prom, d->help, "counter");
				any = true;
				fprintf(out, "%s{exporter=", d->prom);
				prom__label_value(out, x->name);
				fprintf(out, "} %llu\n",
					(unsigned long long)health__export_value(x, f));
			}
		}
	}
}

static void prom__health(FILE *out, const struct metrics_health *h)
{
	for (size_t i = 0; i < n_health_defs; i++) {
		const struct health_def *d = &health_defs[i];

		prom__family(out, d->prom, d->help, d->gauge ? "gauge" : "counter");
		if (d->div)
			fprintf(out, "%s %.6f\n", d->prom, (double)health__value(h, d) / d->div);
		else
			fprintf(out, "%s %llu\n", d->prom, (unsigned long long)health__value(h, d));
	}
	prom__exporters(out, h);
}

char *prometheus__render(struct metrics *m, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);
	const struct metrics_health *h;

	if (!out)
		return NULL;
	metrics__lock(m);
	for (int i = 0; i < M__N; i++)
		prom__metric(out, metrics__get(m, i));
	prom__overflow(out, m);
	h = metrics__health(m);
	if (h)
		prom__health(out, h);
	metrics__unlock(m);
	if (fclose(out) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static enum MHD_Result prom__reply(struct MHD_Connection *c, unsigned int status, char *body,
				   size_t len, const char *type)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result prom__text(struct MHD_Connection *c, unsigned int status, const char *t)
{
	char *body = strdup(t);

	if (!body)
		return MHD_NO;
	return prom__reply(c, status, body, strlen(body), "text/plain; charset=utf-8");
}

static enum MHD_Result prom__handle(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	struct prom_server *ps = cls;
	size_t len;
	char *body;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return prom__text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (!strcmp(url, "/healthz")) {
		if (metrics__ready(ps->m))
			return prom__text(c, MHD_HTTP_OK, "ok\n");
		return prom__text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
	}
	if (strcmp(url, "/metrics"))
		return prom__text(c, MHD_HTTP_NOT_FOUND, "try /metrics or /healthz\n");
	body = prometheus__render(ps->m, &len);
	if (!body)
		return prom__text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return prom__reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" -> host (loopback when none) and port. */
static int prom__split(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
	const char *colon = strrchr(spec, ':'), *h = spec, *p;
	size_t hl;

	if (!colon) {
		h = "";
		hl = 0;
		p = spec;
	} else {
		hl = (size_t)(colon - spec);
		p = colon + 1;
		if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
	}
	if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) >= psize || hl >= hsize)
		return -EINVAL;
	if (!hl) {
		h = "127.0.0.1";
		hl = strlen(h);
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, p);
	return atoi(p) <= 65535 ? 0 : -EINVAL;
}

static int prom__resolve(const char *spec, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	char host[256], port[8];

	if (prom__split(spec, host, sizeof(host), port, sizeof(port)) ||
	    getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr,
			"tokentap: --prometheus: bad address '%s' (want ADDR:PORT, e.g. "
			"127.0.0.1:9464)\n",
			spec);
		return -EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int prom_server__start(struct prom_server **out, const char *addr, struct metrics *m)
{
	struct prom_server *ps;
	struct sockaddr_storage ss;
	socklen_t sl;
	const union MHD_DaemonInfo *info;
	int err = prom__resolve(addr, &ss, &sl);

	*out = NULL;
	if (err)
		return err;
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->m = m;
	ps->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
					 (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				 0, NULL, NULL, prom__handle, ps, MHD_OPTION_SOCK_ADDR, &ss,
				 MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT,
				 10u, MHD_OPTION_END);
	if (!ps->d) {
		fprintf(stderr,
			"tokentap: --prometheus: cannot listen on %s (address in use or not "
			"local?)\n",
			addr);
		free(ps);
		return -EADDRINUSE;
	}
	info = MHD_get_daemon_info(ps->d, MHD_DAEMON_INFO_BIND_PORT);
	ps->port = info ? info->port : 0;
	*out = ps;
	return 0;
}

int prom_server__port(const struct prom_server *ps)
{
	return ps->port;
}

void prom_server__stop(struct prom_server *ps)
{
	if (!ps)
		return;
	MHD_stop_daemon(ps->d);
	free(ps);
}
