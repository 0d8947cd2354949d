// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP/HTTP transport (see otlp_http.h): libcurl, one easy handle per exporter, reused across
 * requests so connections stay alive. Retries only where OTLP says a retry may succeed.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "export/otlp_encode.h"
#include "export/otlp_http.h"

#define OTLP_MAX_ATTEMPTS 5
#define OTLP_BACKOFF_FIRST_MS 500
#define OTLP_BACKOFF_MAX_MS 8000
#define OTLP_LOG_INTERVAL_MS 10000
#define OTLP_RESPONSE_MAX 65536

enum post_result { POST_OK, POST_RETRY, POST_FAIL };

struct otlp_http {
	struct otlp_http_opts o;
	char *url;
	char *where; /* scheme://host[:port] for messages: no userinfo, path or query */
	bool gzip;
	struct curl_slist *headers;
	CURL *curl;
	long retry_after_ms;
	char *resp;
	size_t resp_len;
	unsigned int seed;
	uint64_t last_log_ms;
	uint64_t unlogged_drops;
};

uint64_t otlp_http__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void stat__add(uint64_t *counter, uint64_t v)
{
	__atomic_add_fetch(counter, v, __ATOMIC_RELAXED);
}

/* ---- gzip ------------------------------------------------------------------------------- */

uint8_t *otlp_http__gzip(const uint8_t *buf, size_t len, size_t *out_len)
{
	z_stream z = { 0 };
	uint8_t *out;
	size_t cap;

	/* windowBits 15 + 16: a gzip wrapper rather than zlib's. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return NULL;
	cap = deflateBound(&z, (uLong)len);
	out = malloc(cap);
	if (!out) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)buf;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

/* ---- one request ------------------------------------------------------------------------ */

static size_t http__on_header(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct otlp_http *h = arg;
	size_t len = size * nmemb;
	char val[32];
	size_t n;
	char *end;
	long secs;

	if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
		n = len - 12 < sizeof(val) - 1 ? len - 12 : sizeof(val) - 1;
		memcpy(val, buf + 12, n);
		val[n] = '\0';
		/* Only delta-seconds; an HTTP-date falls back to our own backoff. */
		secs = strtol(val, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (end != val && *end == '\0' && secs >= 0 && secs < 86400)
			h->retry_after_ms = secs * 1000;
	}
	return len;
}

static size_t http__on_body(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct otlp_http *h = arg;
	size_t len = size * nmemb, room = OTLP_RESPONSE_MAX - h->resp_len;

	if (room > len)
		room = len;
	memcpy(h->resp + h->resp_len, buf, room);
	h->resp_len += room;
	return len;
}

static int http__on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct otlp_http *h = arg;

	return h->o.stopping && h->o.stopping(h->o.owner) ? 1 : 0;
}

static enum post_result http__post(struct otlp_http *h, const uint8_t *buf, size_t len,
				   long timeout_ms, long *status)
{
	CURLcode rc;

	h->retry_after_ms = -1;
	h->resp_len = 0;
	*status = 0;
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, buf);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
		    rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_OUT_OF_MEMORY)
			return POST_FAIL;
		return POST_RETRY;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status < 300)
		return POST_OK;
	if (*status == 429 || *status == 502 || *status == 503 || *status == 504)
		return POST_RETRY;
	return POST_FAIL;
}

/* ---- a batch, with retries -------------------------------------------------------------- */

static void http__log_drop(struct otlp_http *h, size_t n, long status)
{
	uint64_t now = otlp_http__now_ms();

	h->unlogged_drops += n;
	if (h->last_log_ms && now - h->last_log_ms < OTLP_LOG_INTERVAL_MS)
		return;
	if (status)
		fprintf(stderr, "tokentap: otlp: export to %s failed (HTTP %ld), dropped %llu %s\n",
			h->o.path, status, (unsigned long long)h->unlogged_drops, h->o.what);
	else
		fprintf(stderr,
			"tokentap: otlp: export failed (cannot reach %s), dropped %llu %s\n",
			h->where, (unsigned long long)h->unlogged_drops, h->o.what);
	h->unlogged_drops = 0;
	h->last_log_ms = now;
}

static long http__backoff_ms(struct otlp_http *h, int attempt)
{
	long base = OTLP_BACKOFF_FIRST_MS << (attempt - 1);

	if (base > OTLP_BACKOFF_MAX_MS || base <= 0)
		base = OTLP_BACKOFF_MAX_MS;
	/* Full range [base/2, base*3/2): senders that failed together do not retry together. */
	return base / 2 + (long)(rand_r(&h->seed) % (unsigned)base);
}

static void http__settle_ok(struct otlp_http *h, size_t n)
{
	uint64_t rejected = h->o.rejected ? h->o.rejected((uint8_t *)h->resp, h->resp_len) : 0;

	if (rejected > n)
		rejected = n;
	stat__add(&h->o.st->exported, n - rejected);
	stat__add(&h->o.st->dropped, rejected);
}

static void http__send_body(struct otlp_http *h, const uint8_t *buf, size_t len, size_t n)
{
	uint64_t started = otlp_http__now_ms(), limit, now;
	enum post_result r;
	long status = 0, wait, timeout;
	int attempt;

	for (attempt = 1;; attempt++) {
		now = otlp_http__now_ms();
		limit = h->o.give_up_at(h->o.owner, started);
		if (now >= limit) /* a flush at shutdown ran out of time */
			break;
		timeout = h->o.timeout_ms;
		if ((long)(limit - now) < timeout)
			timeout = (long)(limit - now);
		r = http__post(h, buf, len, timeout, &status);
		if (r == POST_OK) {
			http__settle_ok(h, n);
			return;
		}
		stat__add(&h->o.st->errors, 1);
		if (r == POST_FAIL || (attempt >= OTLP_MAX_ATTEMPTS && !h->o.retry_until_give_up))
			break;
		wait = h->retry_after_ms >= 0 ? h->retry_after_ms : http__backoff_ms(h, attempt);
		now = otlp_http__now_ms();
		if (now + (uint64_t)wait >= h->o.give_up_at(h->o.owner, started))
			break;
		if (!h->o.sleep_until(h->o.owner, now + (uint64_t)wait))
			break;
	}
	stat__add(&h->o.st->dropped, n);
	http__log_drop(h, n, status);
}

void otlp_http__send(struct otlp_http *h, const uint8_t *buf, size_t len, size_t n)
{
	uint8_t *z = NULL;
	size_t zlen = 0;

	if (h->gzip) {
		z = otlp_http__gzip(buf, len, &zlen);
		if (!z) {
			stat__add(&h->o.st->errors, 1);
			stat__add(&h->o.st->dropped, n);
			return;
		}
		buf = z;
		len = zlen;
	}
	http__send_body(h, buf, len, n);
	free(z);
}

/* ---- options ---------------------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [s, s+n) into out (room for n + 1); -EINVAL on bytes a header cannot hold. */
static int url_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
		if (out[o - 1] == '\0' || out[o - 1] == '\r' || out[o - 1] == '\n')
			return -EINVAL;
	}
	out[o] = '\0';
	return 0;
}

static bool is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* One "key=value" entry -> "key: value" appended to *list. */
static int http__add_header(struct curl_slist **list, const char *s, const char *e)
{
	const char *eq = memchr(s, '=', (size_t)(e - s)), *k = s, *ke = eq, *v, *ve = e, *p;
	struct curl_slist *l;
	char *line;

	if (!eq)
		return -EINVAL;
	v = eq + 1;
	trim(&k, &ke);
	trim(&v, &ve);
	if (k == ke)
		return -EINVAL;
	for (p = k; p < ke; p++) {
		if (!is_tchar((unsigned char)*p))
			return -EINVAL;
	}
	line = malloc((size_t)(ke - k) + (size_t)(ve - v) + 3);
	if (!line)
		return -ENOMEM;
	memcpy(line, k, (size_t)(ke - k));
	if (v == ve) {
		strcpy(line + (ke - k), ";"); /* how libcurl sends a header with an empty value */
	} else {
		memcpy(line + (ke - k), ": ", 2);
		if (url_decode(v, (size_t)(ve - v), line + (ke - k) + 2) < 0) {
			free(line);
			return -EINVAL;
		}
	}
	l = curl_slist_append(*list, line);
	free(line);
	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

/* Parses OTEL_EXPORTER_OTLP_HEADERS syntax; on error *bad is the 1-based entry at fault. */
static int http__parse_headers(const char *spec, struct curl_slist **list, int *bad)
{
	const char *s = spec, *e;
	int err;

	*bad = 0;
	while (spec && *s) {
		e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		(*bad)++;
		if (strspn(s, " \t") < (size_t)(e - s)) {
			err = http__add_header(list, s, e);
			if (err < 0)
				return err;
		}
		s = *e ? e + 1 : e;
	}
	return 0;
}

static char *http__url(const char *endpoint, const char *path)
{
	size_t n = strlen(endpoint);
	char *url;

	while (n && endpoint[n - 1] == '/')
		n--;
	if (asprintf(&url, "%.*s%s", (int)n, endpoint, path) < 0)
		return NULL;
	return url;
}

/* The endpoint's scheme and host only: credentials may sit in userinfo or the query. */
static char *http__where(const char *endpoint)
{
	size_t scheme = (size_t)(strstr(endpoint, "://") + 3 - endpoint);
	const char *host = endpoint + scheme, *end = host + strcspn(host, "/?#");
	const char *at = memchr(host, '@', (size_t)(end - host));
	char *w;

	if (at)
		host = at + 1;
	if (asprintf(&w, "%.*s%.*s", (int)scheme, endpoint, (int)(end - host), host) < 0)
		return NULL;
	return w;
}

bool otlp_http__endpoint_ok(const char *ep)
{
	size_t skip;

	if (!ep)
		return false;
	if (strncasecmp(ep, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(ep, "https://", 8) == 0)
		skip = 8;
	else
		return false;
	return ep[skip] && ep[skip] != '/' && !strpbrk(ep, " \t\r\n");
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl__init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int http__append(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

static const char *tls_ca, *tls_cert, *tls_key;

void otlp_http__set_tls(const char *ca_file, const char *client_cert, const char *client_key)
{
	tls_ca = ca_file;
	tls_cert = client_cert;
	tls_key = client_key;
}

static void http__setup_tls(CURL *c)
{
	if (tls_ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, tls_ca);
	if (tls_cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, tls_cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (tls_key) {
		curl_easy_setopt(c, CURLOPT_SSLKEY, tls_key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

static int http__setup_curl(struct otlp_http *h)
{
	pthread_once(&curl_once, curl__init_once);
	if (curl_init_rc != CURLE_OK)
		return -EIO;
	if (http__append(&h->headers, "Content-Type: application/x-protobuf") ||
	    (h->gzip && http__append(&h->headers, "Content-Encoding: gzip")) ||
	    /* An empty Expect keeps libcurl from waiting for 100-continue on big batches. */
	    http__append(&h->headers, "Expect:"))
		return -ENOMEM;
	h->curl = curl_easy_init();
	h->resp = malloc(OTLP_RESPONSE_MAX);
	if (!h->curl || !h->resp)
		return -ENOMEM;
	curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "tokentap/" TOKENTAP_VERSION);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, http__on_header);
	curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, http__on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, http__on_progress);
	curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, h);
	http__setup_tls(h->curl);
	return 0;
}

static int http__compression(const char *c, bool *gzip)
{
	*gzip = false;
	if (!c || !*c || !strcasecmp(c, "none"))
		return 0;
	if (!strcasecmp(c, "gzip")) {
		*gzip = true;
		return 0;
	}
	fprintf(stderr, "tokentap: otlp: compression must be 'gzip' or 'none', not '%s'\n", c);
	return -EINVAL;
}

int otlp_http__new(struct otlp_http **out, const struct otlp_http_opts *opts)
{
	struct otlp_http *h = calloc(1, sizeof(*h));
	int bad, err;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->o = *opts;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 10000;
	h->seed = (unsigned int)(otlp_http__now_ms() ^ (uint64_t)getpid());
	err = http__compression(opts->compression, &h->gzip);
	if (!err) {
		err = http__parse_headers(opts->headers, &h->headers, &bad);
		if (err == -EINVAL)
			fprintf(stderr,
				"tokentap: otlp: bad headers: entry %d is not key=value "
				"(OTEL_EXPORTER_OTLP_HEADERS format: k1=v1,k2=v2)\n",
				bad);
	}
	h->url = http__url(opts->endpoint, opts->path);
	h->where = http__where(opts->endpoint);
	if (!err && (!h->url || !h->where))
		err = -ENOMEM;
	if (!err)
		err = http__setup_curl(h);
	if (err) {
		otlp_http__free(h);
		return err;
	}
	*out = h;
	return 0;
}

void otlp_http__free(struct otlp_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->headers);
	free(h->resp);
	free(h->url);
	free(h->where);
	free(h);
}
