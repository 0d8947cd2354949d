// SPDX-License-Identifier: Apache-2.0
/*
 * A TLS request/response loop on loopback, linked against the system libssl.so.3: the workload
 * of `make bench` (cost per SSL call, sustained rate, memory at many connections).
 *
 *   tls_loop server [--port P] [--stats FILE]
 *       prints "listening P"; one forked child per connection answers every request: an OpenAI
 *       chat completion for POST /v1/chat/completions, an HTML page for anything else, of the
 *       size the request asks for in "X-Resp-Bytes". Each child appends "ssl_calls N rts N
 *       cpu_us N" to FILE when its connection ends: what it did after the client's warm-up
 *       (the first "X-Warmup" round trips).
 *   tls_loop client --port P [--kind llm|web] [--resp-bytes N] [--iters N] [--warmup N]
 *                   [--rate R] [--seconds S] [--conns N]
 *       N keep-alive round trips (or S seconds of them) on each of --conns connections (one
 *       forked process each), at most R per second per connection; prints one JSON line per
 *       connection with its pid, round trips, elapsed time, µs per round trip (mean, p50, p99)
 *       and its own SSL calls.
 *   tls_loop hold --port P --conns N [--kind llm]
 *       opens N connections one after another, sends one request on each and waits for no
 *       answer; prints "holding N", then on a line on stdin reads every answer, prints
 *       "done N" and closes them all.
 *   tls_loop hold-server [--port P]
 *       the other side of `hold`: accepts and handshakes connections one by one in a single
 *       process, reads each request, answers all of them when SIGUSR1 arrives.
 *   tls_loop idle
 *       maps libssl and sleeps (a process for the start-up time measurement).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define REQ_BYTES 1024
#define BUF_BYTES (1 << 20)
#define MAX_SAMPLES (1 << 20)

struct opts {
	const char *mode, *kind, *stats;
	int port, iters, warmup, conns;
	long resp_bytes;
	double rate, seconds;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process (user + system): what a round trip costs it, whatever else runs. */
static uint64_t cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "tls_loop: %s: %s\n", what, errno ? strerror(errno) : "failed");
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void raise_nofile(void)
{
	struct rlimit rl = {.rlim_cur = 65536, .rlim_max = 65536};

	setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- TLS contexts: a self-signed P-256 certificate made in memory ----------------------------- */

static SSL_CTX *ctx_server(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();

	if (!ctx || !key || !crt)
		die("server context");
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), 0);
	X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
	X509_set_pubkey(crt, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(crt), "CN", MBSTRING_ASC,
				   (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(crt, X509_get_subject_name(crt));
	if (!X509_sign(crt, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		die("self-signed certificate");
	X509_free(crt);
	EVP_PKEY_free(key);
	return ctx;
}

static SSL_CTX *ctx_client(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		die("client context");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* ---- messages ------------------------------------------------------------------------------- */

static void fill(char *p, size_t n)
{
	static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";

	for (size_t i = 0; i < n; i++)
		p[i] = words[i % (sizeof(words) - 1)];
}

/* A 1 KiB request: an OpenAI chat completion, or a browser-like GET / of the same size. */
static int request__build(char *out, const char *kind, long resp_bytes, int warmup)
{
	char head[512];
	int hl, n;

	if (!strcmp(kind, "llm")) {
		const char *pre = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":256,\"messages\":[{\"role\":"
				  "\"user\",\"content\":\"";
		const char *post = "\"}]}";
		char body[REQ_BYTES];
		int bl;

		/* The head's length depends on the body's; the body is sized so the sum is 1 KiB. */
		hl = snprintf(head, sizeof(head),
			      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
			      "Authorization: Bearer sk-bench-not-a-secret\r\n"
			      "Content-Type: application/json\r\nX-Resp-Bytes: %ld\r\nX-Warmup: %d\r\n"
			      "Content-Length: 000\r\n\r\n",
			      resp_bytes, warmup);
		bl = REQ_BYTES - hl;
		n = snprintf(body, sizeof(body), "%s", pre);
		fill(body + n, (size_t)(bl - n - (int)strlen(post)));
		memcpy(body + bl - strlen(post), post, strlen(post));
		hl = snprintf(out, REQ_BYTES + 1,
			      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
			      "Authorization: Bearer sk-bench-not-a-secret\r\n"
			      "Content-Type: application/json\r\nX-Resp-Bytes: %ld\r\nX-Warmup: %d\r\n"
			      "Content-Length: %03d\r\n\r\n",
			      resp_bytes, warmup, bl);
		memcpy(out + hl, body, (size_t)bl);
		return hl + bl;
	}
	hl = snprintf(out, REQ_BYTES, "GET / HTTP/1.1\r\nHost: www.example.com\r\nAccept: text/html\r\n"
				      "X-Resp-Bytes: %ld\r\nX-Warmup: %d\r\nX-Pad: ",
		      resp_bytes, warmup);
	fill(out + hl, (size_t)(REQ_BYTES - hl - 4));
	memcpy(out + REQ_BYTES - 4, "\r\n\r\n", 4);
	return REQ_BYTES;
}

/* A response of exactly `total` bytes (when total allows its head). */
static int response__build(char *out, bool llm, long total, unsigned long n)
{
	char head[256], pre[256];
	const char *post = "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":180,"
			   "\"completion_tokens\":420,\"total_tokens\":600}}";
	long body, fl;
	int hl, pl = 0;

	if (total > BUF_BYTES)
		total = BUF_BYTES;
	if (llm)
		pl = snprintf(pre, sizeof(pre),
			      "{\"id\":\"chatcmpl-bench%lu\",\"object\":\"chat.completion\",\"model\":"
			      "\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{"
			      "\"role\":\"assistant\",\"content\":\"",
			      n);
	hl = snprintf(head, sizeof(head),
		      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %08ld\r\n\r\n",
		      llm ? "application/json" : "text/html", 0L);
	body = total - hl;
	if (body < pl + (long)strlen(post) + 1)
		body = pl + (long)strlen(post) + 1;
	hl = snprintf(out, sizeof(head),
		      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %08ld\r\n\r\n",
		      llm ? "application/json" : "text/html", body);
	if (!llm) {
		fill(out + hl, (size_t)body);
		return hl + (int)body;
	}
	memcpy(out + hl, pre, (size_t)pl);
	fl = body - pl - (long)strlen(post);
	fill(out + hl + pl, (size_t)fl);
	memcpy(out + hl + pl + fl, post, strlen(post));
	return hl + (int)body;
}

/* ---- reading one HTTP/1.1 message by its Content-Length --------------------------------------- */

static long header_num(const char *buf, const char *name)
{
	const char *p = strcasestr(buf, name);

	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

/* Reads one message into buf; returns its length, 0 on a clean close, -1 on error. */
static long message__read(SSL *ssl, char *buf, long cap, unsigned long *calls)
{
	long got = 0, need = -1;

	while (need < 0 || got < need) {
		int chunk = (int)(cap - got - 1 > (1 << 30) ? (1 << 30) : cap - got - 1);
		int r = SSL_read(ssl, buf + got, chunk);

		(*calls)++;
		if (r <= 0)
			return got == 0 && SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
		got += r;
		buf[got] = '\0';
		if (need < 0) {
			char *end = strstr(buf, "\r\n\r\n");
			long cl;

			if (!end)
				continue;
			cl = header_num(buf, "Content-Length:");
			need = (end + 4 - buf) + (cl > 0 ? cl : 0);
		}
		if (got >= cap - 1)
			return -1;
	}
	return got;
}

static int write_all(SSL *ssl, const char *p, int n, unsigned long *calls)
{
	(*calls)++;
	return SSL_write(ssl, p, n) == n ? 0 : -1;
}

/* ---- server --------------------------------------------------------------------------------- */

static int listen_on(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t al = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096))
		die("listen");
	getsockname(fd, (struct sockaddr *)&a, &al);
	printf("listening %d\n", ntohs(a.sin_port));
	fflush(stdout);
	return fd;
}

static void server__conn(SSL_CTX *ctx, int fd, const char *stats)
{
	char *req = malloc(BUF_BYTES), *resp = malloc(BUF_BYTES);
	unsigned long calls = 0, rts = 0, calls0 = 0, warmup = 0;
	uint64_t cpu0 = 0;
	SSL *ssl = SSL_new(ctx);
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		exit(0);
	for (;;) {
		long n = message__read(ssl, req, BUF_BYTES, &calls), want;
		bool llm;
		int rl;

		if (n <= 0)
			break;
		if (rts == 0)
			warmup = (unsigned long)header_num(req, "X-Warmup:");
		want = header_num(req, "X-Resp-Bytes:");
		llm = !strncmp(req, "POST /v1/chat/completions ", 26);
		rl = response__build(resp, llm, want > 0 ? want : 2048, rts);
		if (write_all(ssl, resp, rl, &calls))
			break;
		/* What the measured round trips cost starts after the client's warm-up. */
		if (++rts == warmup) {
			cpu0 = cpu_us();
			calls0 = calls;
		}
	}
	if (stats) {
		FILE *f = fopen(stats, "a");

		if (f) {
			fprintf(f, "ssl_calls %lu rts %lu cpu_us %llu\n", calls - calls0,
				rts > warmup ? rts - warmup : 0,
				(unsigned long long)(cpu_us() - cpu0));
			fclose(f);
		}
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	exit(0);
}

static int server__main(const struct opts *o)
{
	SSL_CTX *ctx = ctx_server();
	int lfd = listen_on(o->port);

	signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		if (fork() == 0) {
			close(lfd);
			server__conn(ctx, fd, o->stats);
		}
		close(fd);
	}
}

/* ---- client --------------------------------------------------------------------------------- */

static SSL *client__connect(SSL_CTX *ctx, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	SSL *ssl;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "api.openai.com");
	if (SSL_connect(ssl) != 1)
		die("handshake");
	return ssl;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void client__report(uint64_t *lat, unsigned long n, uint64_t elapsed, unsigned long calls,
			   uint64_t cpu)
{
	uint64_t sum = 0;

	for (unsigned long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("{\"pid\":%d,\"rts\":%lu,\"elapsed_s\":%.6f,\"us_mean\":%.3f,\"us_p50\":%.3f,"
	       "\"us_p99\":%.3f,\"ssl_calls\":%lu,\"cpu_us\":%llu}\n",
	       getpid(), n, elapsed / 1e9, n ? sum / 1e3 / n : 0.0, n ? lat[n / 2] / 1e3 : 0.0,
	       n ? lat[n * 99 / 100] / 1e3 : 0.0, calls, (unsigned long long)cpu);
	fflush(stdout);
}

static int client__one(const struct opts *o)
{
	char req[REQ_BYTES + 1], *resp = malloc(BUF_BYTES);
	uint64_t *lat = calloc(MAX_SAMPLES, sizeof(*lat));
	unsigned long calls = 0, n = 0, warm = 0;
	int rl = request__build(req, o->kind, o->resp_bytes, o->warmup);
	SSL *ssl = client__connect(ctx_client(), o->port);
	uint64_t t0, start, cpu, period = o->rate > 0 ? (uint64_t)(1e9 / o->rate) : 0, next;

	/* Warm-up: the first calls pay page faults and probe installation, not steady state. */
	for (; warm < (unsigned long)o->warmup; warm++)
		if (write_all(ssl, req, rl, &calls) || message__read(ssl, resp, BUF_BYTES, &calls) <= 0)
			die("warm-up round trip");
	calls = 0;
	cpu = cpu_us();
	start = next = now_ns();
	for (;;) {
		if (o->seconds > 0 ? now_ns() - start >= (uint64_t)(o->seconds * 1e9)
				   : n >= (unsigned long)o->iters)
			break;
		if (period) {
			struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull),
					      .tv_nsec = (long)(next % 1000000000ull)};

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			next += period;
		}
		t0 = now_ns();
		if (write_all(ssl, req, rl, &calls) || message__read(ssl, resp, BUF_BYTES, &calls) <= 0)
			die("round trip");
		if (n < MAX_SAMPLES)
			lat[n] = now_ns() - t0;
		n++;
	}
	client__report(lat, n < MAX_SAMPLES ? n : MAX_SAMPLES, now_ns() - start, calls,
		       cpu_us() - cpu);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	return 0;
}

static int client__main(const struct opts *o)
{
	int status, rc = 0;

	if (o->conns <= 1)
		return client__one(o);
	for (int i = 0; i < o->conns; i++)
		if (fork() == 0)
			exit(client__one(o));
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			rc = 1;
	return rc;
}

/* ---- many open connections ------------------------------------------------------------------ */

static volatile sig_atomic_t answer_now;

static void on_usr1(int sig __attribute__((unused)))
{
	answer_now = 1;
}

static int hold_server__main(const struct opts *o)
{
	SSL_CTX *ctx = ctx_server();
	int lfd = listen_on(o->port), cap = 1 << 16, n = 0;
	SSL **conns = calloc((size_t)cap, sizeof(*conns));
	char *req = malloc(BUF_BYTES), *resp = malloc(BUF_BYTES);
	unsigned long calls = 0;
	struct sigaction sa = {.sa_handler = on_usr1};

	raise_nofile();
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: accept() returns EINTR */
	while (!answer_now && n < cap) {
		int fd = accept(lfd, NULL, NULL);
		SSL *ssl;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1 || message__read(ssl, req, BUF_BYTES, &calls) <= 0) {
			SSL_free(ssl);
			close(fd);
			continue;
		}
		conns[n++] = ssl;
	}
	for (int i = 0; i < n; i++) {
		int rl = response__build(resp, true, 2048, (unsigned long)i);

		write_all(conns[i], resp, rl, &calls);
	}
	printf("answered %d\n", n);
	fflush(stdout);
	pause();
	return 0;
}

static int hold__main(const struct opts *o)
{
	SSL_CTX *ctx = ctx_client();
	char req[REQ_BYTES + 1], *resp = malloc(BUF_BYTES), line[64];
	int rl = request__build(req, o->kind, 2048, 0), ok = 0;
	SSL **conns = calloc((size_t)o->conns, sizeof(*conns));
	unsigned long calls = 0;

	raise_nofile();
	for (int i = 0; i < o->conns; i++) {
		conns[i] = client__connect(ctx, o->port);
		write_all(conns[i], req, rl, &calls);
	}
	printf("holding %d\n", o->conns);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (int i = 0; i < o->conns; i++)
		ok += message__read(conns[i], resp, BUF_BYTES, &calls) > 0;
	for (int i = 0; i < o->conns; i++) {
		SSL_shutdown(conns[i]);
		close(SSL_get_fd(conns[i]));
		SSL_free(conns[i]);
	}
	printf("done %d\n", ok);
	fflush(stdout);
	return ok == o->conns ? 0 : 1;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void opts__parse(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.mode = argc > 1 ? argv[1] : "", .kind = "llm", .iters = 1000,
			   .warmup = 100, .conns = 1, .resp_bytes = 2048};
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--port"))
			o->port = atoi(v);
		else if (!strcmp(k, "--kind"))
			o->kind = v;
		else if (!strcmp(k, "--resp-bytes"))
			o->resp_bytes = atol(v);
		else if (!strcmp(k, "--iters"))
			o->iters = atoi(v);
		else if (!strcmp(k, "--warmup"))
			o->warmup = atoi(v);
		else if (!strcmp(k, "--rate"))
			o->rate = atof(v);
		else if (!strcmp(k, "--seconds"))
			o->seconds = atof(v);
		else if (!strcmp(k, "--conns"))
			o->conns = atoi(v);
		else if (!strcmp(k, "--stats"))
			o->stats = v;
		else {
			fprintf(stderr, "tls_loop: unknown option %s\n", k);
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	struct opts o;

	opts__parse(&o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(o.mode, "server"))
		return server__main(&o);
	if (!strcmp(o.mode, "client"))
		return client__main(&o);
	if (!strcmp(o.mode, "hold"))
		return hold__main(&o);
	if (!strcmp(o.mode, "hold-server"))
		return hold_server__main(&o);
	if (!strcmp(o.mode, "idle")) {
		SSL_CTX_free(ctx_client()); /* libssl mapped and used, as in a real process */
		pause();
		return 0;
	}
	fprintf(stderr, "usage: tls_loop server|client|hold|hold-server|idle [options]\n");
	return 2;
}
