// SPDX-License-Identifier: Apache-2.0
/*
 * The kernel side for real (needs root): every socket rung's programs load, capture__open picks
 * a rung that works, and live TLS traffic from curl (libssl SSL_write/SSL_read), python urllib
 * (SSL_write_ex/SSL_read_ex), a copy of `node` made after start (OpenSSL inside the binary,
 * attached at exec) and libcurl-gnutls (gnutls_record_send/recv) arrives complete and in order.
 * Plain HTTP on loopback: only connections whose request goes to an LLM API path are copied
 * (curl, python http.client with a keep-alive GET first, node), a GET / costs no record, and the
 * server side of those connections is never copied. Without root or BPF it skips, unless
 * TOKENTAP_REQUIRE_BPF=1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "tokentap_abi.h"
#include "capture/capture.h"
#include "tokentap.skel.h"
#include "tt_test.h"

static const char *const rung_prefix[][2] = {
    {"fentry", "fentry_tcp_"},
    {"kprobe", "kprobe_tcp_"},
    {"tracepoint", "tp_sys_enter_"},
};
#define NRUNGS 3

/* ---- helpers -------------------------------------------------------------------------------- */

static int quiet(enum libbpf_print_level l, const char *fmt, va_list ap)
{
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool require_bpf(void)
{
	const char *v = getenv("TOKENTAP_REQUIRE_BPF");

	return v && strcmp(v, "1") == 0;
}

static bool bpf_usable(const char **why)
{
	if (geteuid() != 0)
		*why = "not root";
	else if (access("/sys/kernel/btf/vmlinux", R_OK))
		*why = "no kernel BTF";
	else if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) != 1)
		*why = "BPF programs cannot be loaded";
	else
		return true;
	return false;
}

static void ensure_tracefs(void)
{
	if (access("/sys/kernel/tracing/events", F_OK) && access("/sys/kernel/debug/tracing", F_OK))
		mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL);
}

/* The full path of an executable found on PATH, or NULL. */
static const char *which(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096], *save = NULL, *dir;

	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", dir, name);
		if (!access(buf, X_OK))
			return buf;
	}
	return NULL;
}

static int copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ssize_t n = 0;

	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

static int write_pattern(const char *path, size_t len)
{
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f)
		return -1;
	for (i = 0; i < len; i++)
		fputc("tokentap-body-0123456789;"[i % 25], f);
	return fclose(f);
}

/* ---- what the sink saw, for the watched pid ------------------------------------------------- */

struct ev {
	int kind;
	uint64_t conn;
	int dir;
	int source;
	uint64_t seq;
	uint32_t len;
	uint8_t *data;
	struct cap_sock sock;
	struct cap_close close;
};

struct rec {
	uint32_t watch;
	struct ev *v;
	size_t n, cap;
	uint32_t other;	     /* a second process (a server) whose data records are only counted */
	size_t other_chunks;
};

static struct ev *rec__add(struct rec *r, int kind, uint32_t pid, uint64_t conn)
{
	struct ev *e;

	if (pid != r->watch || !r->watch)
		return NULL;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
	}
	e = &r->v[r->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->conn = conn;
	return e;
}

static void rec__chunk(void *ctx, const struct cap_chunk *c)
{
	struct rec *r = ctx;
	struct ev *e;

	if (r->other && c->key.pid == r->other)
		r->other_chunks++;
	e = rec__add(ctx, TT_EV_DATA, c->key.pid, c->key.conn_id);
	if (!e)
		return;
	e->dir = c->dir;
	e->source = c->tls_source;
	e->seq = c->seq;
	e->len = c->len;
	e->data = malloc(c->len);
	memcpy(e->data, c->data, c->len);
}

static void rec__sock(void *ctx, const struct cap_sock *s)
{
	struct ev *e = rec__add(ctx, TT_EV_SOCK, s->key.pid, s->key.conn_id);

	if (e)
		e->sock = *s;
}

static void rec__close(void *ctx, const struct cap_close *c)
{
	struct ev *e = rec__add(ctx, TT_EV_CLOSE, c->key.pid, c->key.conn_id);

	if (e)
		e->close = *c;
}

static void rec__reset(struct rec *r, uint32_t pid)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->v[i].data);
	r->n = 0;
	r->watch = pid;
}

/* One direction of the connection that wrote first, reassembled; -1 on a gap or disorder. */
struct stream {
	uint64_t conn;
	uint8_t *bytes;
	size_t len;
	int chunks;
	bool contiguous;
};

static void stream__build(const struct rec *r, int dir, uint64_t conn, struct stream *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->contiguous = true;
	for (i = 0; i < r->n; i++) {
		const struct ev *e = &r->v[i];

		if (e->kind != TT_EV_DATA || e->dir != dir || e->conn != conn)
			continue;
		if (e->seq != s->len)
			s->contiguous = false;
		s->bytes = realloc(s->bytes, s->len + e->len);
		memcpy(s->bytes + s->len, e->data, e->len);
		s->len += e->len;
		s->chunks++;
	}
}

static uint64_t first_write_conn(const struct rec *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (r->v[i].kind == TT_EV_DATA && r->v[i].dir == CAP_DIR_WRITE)
			return r->v[i].conn;
	}
	return 0;
}

static const struct ev *find_ev(const struct rec *r, int kind, uint64_t conn)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (r->v[i].kind == kind && r->v[i].conn == conn)
			return &r->v[i];
	}
	return NULL;
}

/* ---- processes ------------------------------------------------------------------------------ */

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Runs a client to completion while polling capture; returns its exit status or -1. */
static int run_client(struct capture *c, struct rec *r, char *const argv[], const char *log)
{
	uint64_t deadline = now_ms() + 20000, drain;
	int status = -1;
	pid_t pid = spawn(argv, log);

	rec__reset(r, (uint32_t)pid);
	while (pid > 0) {
		capture__poll(c, 10);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "  %s timed out\n", argv[0]);
			status = -1;
			break;
		}
	}
	printf("  %s: exit %d after %llu ms\n", argv[0], status,
	       (unsigned long long)(now_ms() + 20000 - deadline));
	for (drain = now_ms() + 300; now_ms() < drain;)
		capture__poll(c, 20);
	return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- fixture: a TLS server on loopback ------------------------------------------------------ */

struct fixture {
	char dir[64];
	char cert[128], key[128], body[128], log[128];
	int port;
	pid_t server;
	size_t body_len;
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (void *)&a, sizeof(a)) && !getsockname(fd, (void *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool wait_listening(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint64_t deadline = now_ms() + 5000;

	while (now_ms() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), ok = !connect(fd, (void *)&a, sizeof(a));

		close(fd);
		if (ok)
			return true;
		usleep(50000);
	}
	return false;
}

#define PLAIN_RESP_PAD 100000 /* response body size: many partial reads on the client */

/*
 * An HTTP/1.1 keep-alive server on loopback, over TLS when given a certificate: GET answers small
 * JSON, POST a big one (LLM calls are POSTs; the kernel copies TLS and plain connections whose
 * first request is one to an LLM API path).
 */
static pid_t http_server__start(const char *python, int port, const char *cert, const char *key,
				const char *log)
{
	static const char script[] =
	    "import http.server as S,sys\n"
	    "class H(S.BaseHTTPRequestHandler):\n"
	    " protocol_version='HTTP/1.1'\n"
	    " def log_message(s,*a):pass\n"
	    " def reply(s,b):\n"
	    "  s.send_response(200);s.send_header('Content-Type','application/json')\n"
	    "  s.send_header('Content-Length',str(len(b)));s.end_headers();s.wfile.write(b)\n"
	    " def do_GET(s):s.reply(b'{\"data\":[]}')\n"
	    " def do_POST(s):\n"
	    "  s.rfile.read(int(s.headers.get('Content-Length','0')))\n"
	    "  s.reply(b'{\"id\":\"x\",\"pad\":\"'+b'p'*int(sys.argv[2])+b'\"}')\n"
	    "s=S.ThreadingHTTPServer(('127.0.0.1',int(sys.argv[1])),H)\n"
	    "if len(sys.argv)>3:\n"
	    " import ssl;c=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER);c.load_cert_chain(*sys.argv[3:5])\n"
	    " s.socket=c.wrap_socket(s.socket,server_side=True)\n"
	    "s.serve_forever()\n";
	char p[16], pad[16];
	char *argv[] = {(char *)python, "-c", (char *)script, p, pad, (char *)cert, (char *)key, NULL};

	snprintf(p, sizeof(p), "%d", port);
	snprintf(pad, sizeof(pad), "%d", PLAIN_RESP_PAD);
	return spawn(argv, log);
}

static bool fixture__start(struct fixture *f, const char *openssl, const char *python)
{
	char cmd[1024];

	snprintf(f->dir, sizeof(f->dir), "/tmp/tokentap-test-bpf.XXXXXX");
	if (!mkdtemp(f->dir))
		return false;
	snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
	snprintf(f->body, sizeof(f->body), "%s/body.txt", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/client.log", f->dir);
	snprintf(cmd, sizeof(cmd),
		 "%s req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
		 "-subj /CN=localhost -keyout %s -out %s >/dev/null 2>&1",
		 openssl, f->key, f->cert);
	/* 40000 bytes: one SSL_write of it becomes three records in the kernel (16K chunks). */
	f->body_len = 40000;
	if (system(cmd) != 0 || write_pattern(f->body, f->body_len))
		return false;
	f->port = free_port();
	f->server = http_server__start(python, f->port, f->cert, f->key, NULL);
	return f->server > 0 && wait_listening(f->port);
}

static void fixture__stop(struct fixture *f)
{
	const char *files[] = {"cert.pem", "key.pem", "body.txt", "client.log", "node"};
	char path[256];
	size_t i;

	if (f->server > 0) {
		kill(f->server, SIGTERM);
		waitpid(f->server, NULL, 0);
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		unlink(path);
	}
	rmdir(f->dir);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static bool fentry_works; /* learned by rung_programs_load, expected by open_picks_rung */

/* Loads the skeleton with one rung's socket programs; optionally attaches them. */
static int rung__load(int rung, int *attach_err)
{
	struct tokentap_bpf *s = tokentap_bpf__open();
	struct bpf_program *p;
	int err, r;

	*attach_err = -ENOENT;
	if (!s)
		return -errno;
	bpf_object__for_each_program(p, s->obj)
	{
		for (r = 0; r < NRUNGS; r++) {
			const char *pre = rung_prefix[r][1];

			if (!strncmp(bpf_program__name(p), pre, strlen(pre)))
				bpf_program__set_autoload(p, r == rung);
		}
	}
	err = tokentap_bpf__load(s);
	if (!err) {
		CHECK(bpf_program__fd(s->progs.uretprobe_ssl_read_ex) >= 0);
		CHECK(bpf_program__fd(s->progs.tp_sched_process_exec) >= 0);
		CHECK(bpf_program__fd(s->progs.uretprobe_gnutls_record_recv) >= 0);
		CHECK(bpf_program__fd(s->progs.uprobe_gnutls_deinit) >= 0);
		/* Plain capture loads with every rung: it is attached whichever one is picked. */
		CHECK(bpf_program__fd(s->progs.tp_plain_enter_sendmsg) >= 0);
		CHECK(bpf_program__fd(s->progs.tp_plain_exit_recvmsg) >= 0);
		CHECK(bpf_program__fd(s->progs.tp_plain_sock_state) >= 0);
		*attach_err = 0;
		bpf_object__for_each_program(p, s->obj)
		{
			struct bpf_link *l;

			if (strncmp(bpf_program__name(p), rung_prefix[rung][1],
				    strlen(rung_prefix[rung][1])) ||
			    *attach_err)
				continue;
			l = bpf_program__attach(p);
			*attach_err = l ? 0 : -errno;
			bpf_link__destroy(l);
		}
	}
	tokentap_bpf__destroy(s);
	return err;
}

TEST(rung_programs_load)
{
	int load[NRUNGS], att[NRUNGS], r;
	bool have_kprobes = !access("/sys/bus/event_source/devices/kprobe/type", F_OK);

	libbpf_set_print(quiet);
	ensure_tracefs();
	for (r = 0; r < NRUNGS; r++) {
		load[r] = rung__load(r, &att[r]);
		printf("  rung %-10s load %d attach %d\n", rung_prefix[r][0], load[r], att[r]);
	}
	/* fentry: whatever the kernel says, but a refusal is an errno, not a crash. */
	CHECK(load[0] <= 0);
	fentry_works = load[0] == 0 && att[0] == 0;
	/* The kprobe programs pass the verifier even where kprobes cannot attach. */
	CHECK_EQ_INT(load[1], 0);
	if (have_kprobes)
		CHECK_EQ_INT(att[1], 0);
	else
		CHECK(att[1] < 0);
	CHECK_EQ_INT(load[2], 0);
	CHECK_EQ_INT(att[2], 0);
}

/* Where the kernel has sock:sock_send_length (6.3+), calls end there; else at sys_exit. */
static const char *plain_rung_expected(void)
{
	return !access("/sys/kernel/tracing/events/sock/sock_send_length", F_OK) ||
		       !access("/sys/kernel/debug/tracing/events/sock/sock_send_length", F_OK)
		   ? "sock_length"
		   : "sys_exit";
}

TEST(open_picks_rung)
{
	bool have_kprobes = !access("/sys/bus/event_source/devices/kprobe/type", F_OK);
	const char *want = fentry_works ? "fentry" : have_kprobes ? "kprobe" : "tracepoint";
	struct capture_opts opts = {0};
	struct capture_stats st;
	struct capture *c = NULL;

	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (!c)
		return;
	capture__stats(c, &st);
	CHECK_EQ_STR(st.sock_rung, want);
	CHECK_EQ_STR(st.plain_rung, plain_rung_expected());
	CHECK(st.attach.files >= 1);
	CHECK_EQ_INT(st.malformed_records, 0);
	capture__close(c);

	opts.sock_rung = "tracepoint";
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (c) {
		capture__stats(c, &st);
		CHECK_EQ_STR(st.sock_rung, "tracepoint");
		capture__close(c);
	}
	opts.sock_rung = NULL;
	opts.no_plain = true;
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), 0);
	if (c) {
		capture__stats(c, &st);
		CHECK(st.plain_rung == NULL);
		capture__close(c);
	}
	opts.no_plain = false;
	opts.sock_rung = "no-such-rung";
	CHECK_EQ_INT(capture__open(&c, &opts, NULL), -EINVAL);
	CHECK(c == NULL);
}

/* The request a client wrote: complete, contiguous from 0, starting with `line`, ending with
 * the body file's bytes. Returns the connection id. */
static uint64_t check_request(const struct rec *r, const struct fixture *f, const char *line,
			      size_t body_len, struct stream *w)
{
	uint64_t conn = first_write_conn(r);
	char *body = malloc(body_len);
	FILE *bf = fopen(f->body, "r");

	CHECK(conn != 0);
	stream__build(r, CAP_DIR_WRITE, conn, w);
	CHECK(w->contiguous);
	CHECK(w->len > body_len);
	CHECK(w->len >= strlen(line) && memcmp(w->bytes, line, strlen(line)) == 0);
	CHECK(bf && fread(body, 1, body_len, bf) == body_len);
	if (w->len > body_len)
		CHECK(memcmp(w->bytes + w->len - body_len, body, body_len) == 0);
	if (bf)
		fclose(bf);
	free(body);
	return conn;
}

static void check_sock(const struct rec *r, uint64_t conn, int port)
{
	const struct ev *s = find_ev(r, TT_EV_SOCK, conn);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_EQ_INT(s->sock.family, AF_INET);
	CHECK_EQ_INT(s->sock.dport, port);
	CHECK(s->sock.sport != 0 && s->sock.sport != port);
	CHECK(memcmp(s->sock.daddr, "\x7f\x00\x00\x01", 4) == 0);
}

static void check_response(const struct rec *r, uint64_t conn)
{
	struct stream rd;

	stream__build(r, CAP_DIR_READ, conn, &rd);
	CHECK(rd.contiguous);
	CHECK(rd.len > 17 && memcmp(rd.bytes, "HTTP/1.1 200 OK\r\n", 17) == 0);
	free(rd.bytes);
}

static void live_curl(struct capture *c, struct rec *r, const struct fixture *f, const char *curl)
{
	char url[128], data[160];
	char *argv[] = {(char *)curl, "-sk",	     "--http1.1",     "--max-time",
			"10",	      "-o",	     "/dev/null",     "-H",
			"Expect:",    "--data-binary", data,	      url,
			NULL};
	struct stream w;
	const struct ev *cl;
	uint64_t conn;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/chat/completions", f->port);
	snprintf(data, sizeof(data), "@%s", f->body);
	run_client(c, r, argv, f->log);
	conn = check_request(r, f, "POST /v1/chat/completions HTTP/1.1\r\n", f->body_len, &w);
	CHECK(w.chunks >= 3); /* 40000 bytes in one SSL_write: split into TT_CHUNK_MAX records */
	check_sock(r, conn, f->port);
	check_response(r, conn);
	cl = find_ev(r, TT_EV_CLOSE, conn);
	CHECK(cl != NULL);
	if (cl)
		CHECK_EQ_INT(cl->close.write_seq, w.len);
	free(w.bytes);
}

static void live_python(struct capture *c, struct rec *r, const struct fixture *f,
			const char *python)
{
	static const char script[] =
	    "import ssl,sys,urllib.request as u\n"
	    "b=open(sys.argv[1],'rb').read()\n"
	    "q=u.Request(sys.argv[2],data=b,method='POST')\n"
	    "u.urlopen(q,context=ssl._create_unverified_context(),timeout=10).read()\n";
	char url[128];
	char *argv[] = {(char *)python, "-c", (char *)script, (char *)f->body, url, NULL};
	struct stream w;
	uint64_t conn;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/messages", f->port);
	CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
	conn = check_request(r, f, "POST /v1/messages HTTP/1.1\r\n", f->body_len, &w);
	check_sock(r, conn, f->port);
	check_response(r, conn);
	free(w.bytes);
}

static void live_node(struct capture *c, struct rec *r, struct fixture *f, const char *node)
{
	static const char script[] =
	    "const https=require('https'),fs=require('fs');"
	    "const b=fs.readFileSync(process.argv[1]);"
	    "const q=https.request({host:'127.0.0.1',port:+process.argv[2],method:'POST',"
	    "path:'/api/chat',rejectUnauthorized:false,headers:{'content-length':b.length}},"
	    "res=>{res.resume();res.on('end',()=>process.exit(0));});"
	    "q.on('error',e=>{console.error(e);process.exit(1);});q.end(b);";
	char copy[128], port[16];
	char *argv[] = {copy, "-e", (char *)script, f->body, port, NULL};
	struct capture_stats before, after;
	struct stream w;
	uint64_t conn;

	/* A file no process mapped when capture started: only the exec path can attach it. */
	snprintf(copy, sizeof(copy), "%s/node", f->dir);
	snprintf(port, sizeof(port), "%d", f->port);
	CHECK_EQ_INT(copy_file(node, copy), 0);
	capture__stats(c, &before);
	CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
	capture__stats(c, &after);
	CHECK(after.attach.files > before.attach.files);
	if (!first_write_conn(r))
		fprintf(stderr, "  node: %zu events seen, attached files %u -> %u, %llu lost\n",
			r->n, before.attach.files, after.attach.files,
			(unsigned long long)after.lost_bytes);
	conn = check_request(r, f, "POST /api/chat HTTP/1.1\r\n", f->body_len, &w);
	check_response(r, conn);
	free(w.bytes);
}

/*
 * libcurl-gnutls, unmodified, driven from Python's ctypes (Debian ships no curl binary on it):
 * gnutls_record_send/recv. The script prints curl_version(), which must name GnuTLS.
 */
static void live_gnutls(struct capture *c, struct rec *r, const struct fixture *f,
			const char *python)
{
	static const char script[] =
	    "import ctypes as C,sys\n"
	    "L=C.CDLL('libcurl-gnutls.so.4')\n"
	    "L.curl_version.restype=C.c_char_p\n"
	    "L.curl_easy_init.restype=C.c_void_p\n"
	    "L.curl_slist_append.restype=C.c_void_p\n"
	    "print(L.curl_version().decode(),flush=True)\n"
	    "b=open(sys.argv[1],'rb').read()\n"
	    "h=C.c_void_p(L.curl_easy_init())\n"
	    "o=lambda k,v:L.curl_easy_setopt(h,C.c_int(k),v)\n"
	    "o(10002,sys.argv[2].encode())\n"	 /* URL */
	    "o(64,C.c_long(0));o(81,C.c_long(0))\n" /* no peer / host verification */
	    "o(84,C.c_long(2))\n"			 /* HTTP/1.1 */
	    "o(10015,C.c_char_p(b));o(60,C.c_long(len(b)))\n"
	    "o(10023,C.c_void_p(L.curl_slist_append(None,b'Expect:')))\n"
	    "rc=L.curl_easy_perform(h)\n"
	    "L.curl_easy_cleanup(h)\n"
	    "sys.exit(rc)\n";
	char url[128], ver[256] = "";
	char *argv[] = {(char *)python, "-c", (char *)script, (char *)f->body, url, NULL};
	const struct ev *cl;
	struct stream w;
	uint64_t conn;
	FILE *log;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/responses", f->port);
	CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
	log = fopen(f->log, "r");
	if (log) {
		if (!fgets(ver, sizeof(ver), log))
			ver[0] = '\0';
		fclose(log);
	}
	CHECK(strstr(ver, "GnuTLS") != NULL);
	conn = check_request(r, f, "POST /v1/responses HTTP/1.1\r\n", f->body_len, &w);
	CHECK(find_ev(r, TT_EV_DATA, conn) && find_ev(r, TT_EV_DATA, conn)->source == TT_SRC_GNUTLS);
	check_sock(r, conn, f->port);
	check_response(r, conn);
	/* gnutls_deinit at curl_easy_cleanup closes the connection with its true length. */
	cl = find_ev(r, TT_EV_CLOSE, conn);
	CHECK(cl != NULL);
	if (cl)
		CHECK_EQ_INT(cl->close.write_seq, w.len);
	free(w.bytes);
}

TEST(live_tls_capture)
{
	char curl[512], python[512], node[512], openssl[512];
	const char *have_curl = which("curl", curl, sizeof(curl));
	const char *have_py = !access("/usr/bin/python3", X_OK)
				  ? "/usr/bin/python3"
				  : which("python3", python, sizeof(python));
	const char *have_node = which("node", node, sizeof(node));
	struct cap_sink sink = {0};
	struct fixture f = {0};
	struct rec r = {0};
	struct capture *c = NULL;
	struct capture_stats st;

	if (!which("openssl", openssl, sizeof(openssl)) || !have_curl || !have_py || !have_node) {
		printf("  live_tls_capture: needs openssl, curl, python3 and node on PATH\n");
		CHECK(!require_bpf());
		return;
	}
	CHECK(fixture__start(&f, openssl, have_py));
	sink.ctx = &r;
	sink.on_chunk = rec__chunk;
	sink.on_sock = rec__sock;
	sink.on_close = rec__close;
	CHECK_EQ_INT(
	    capture__open(&c, &(struct capture_opts){.verbose = !!getenv("TT_DEBUG")}, &sink), 0);
	if (c && f.server > 0) {
		live_curl(c, &r, &f, have_curl);
		live_python(c, &r, &f, have_py);
		live_node(c, &r, &f, have_node);
		if (!access("/usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4", R_OK) ||
		    !access("/usr/lib/aarch64-linux-gnu/libcurl-gnutls.so.4", R_OK))
			live_gnutls(c, &r, &f, have_py);
		else {
			printf("  live_gnutls: needs libcurl-gnutls.so.4 (libcurl3-gnutls)\n");
			CHECK(!require_bpf());
		}
		capture__stats(c, &st);
		CHECK_EQ_INT(st.malformed_records, 0);
		CHECK(st.bytes > 3 * f.body_len);
	}
	capture__close(c);
	rec__reset(&r, 0);
	free(r.v);
	fixture__stop(&f);
}

/*
 * A ring buffer too small for a full 16 KiB record: curl's 40000-byte write loses its first two
 * chunks. The loss must be counted and visible as a gap; the close still tells the true length.
 */
TEST(live_loss_accounting)
{
	char curl[512], openssl[512], python[512], url[128], data[160];
	char *argv[] = {curl, "-sk",	 "--http1.1",	  "--max-time", "10", "-o", "/dev/null",
			"-H", "Expect:", "--data-binary", data,		url,  NULL};
	struct capture_opts opts = {.ringbuf_bytes = 8192};
	struct cap_sink sink = {0};
	struct fixture f = {0};
	struct rec r = {0};
	struct capture *c = NULL;
	struct capture_stats st;
	uint64_t conn, delivered = 0, next = 0;
	const struct ev *cl;
	size_t i;
	const char *py = !access("/usr/bin/python3", X_OK) ? "/usr/bin/python3"
							   : which("python3", python, sizeof(python));

	if (!which("openssl", openssl, sizeof(openssl)) || !which("curl", curl, sizeof(curl)) ||
	    !py) {
		printf("  live_loss_accounting: needs openssl, curl and python3 on PATH\n");
		CHECK(!require_bpf());
		return;
	}
	CHECK(fixture__start(&f, openssl, py));
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/completions", f.port);
	snprintf(data, sizeof(data), "@%s", f.body);
	sink.ctx = &r;
	sink.on_chunk = rec__chunk;
	sink.on_close = rec__close;
	CHECK_EQ_INT(capture__open(&c, &opts, &sink), 0);
	if (c && f.server > 0) {
		run_client(c, &r, argv, f.log);
		capture__stats(c, &st);
		CHECK(st.drops[TT_DROP_RINGBUF_RECORDS] >= 2);
		CHECK(st.drops[TT_DROP_RINGBUF_BYTES] >= 2 * TT_CHUNK_MAX);
		CHECK(st.lost_bytes >= 2 * TT_CHUNK_MAX);
		conn = first_write_conn(&r);
		for (i = 0; i < r.n; i++) {
			const struct ev *e = &r.v[i];

			if (e->kind != TT_EV_DATA || e->dir != CAP_DIR_WRITE || e->conn != conn)
				continue;
			CHECK(e->seq >= next); /* in order, never overlapping, gaps allowed */
			CHECK(e->seq >= 2 * TT_CHUNK_MAX);
			next = e->seq + e->len;
			delivered += e->len;
		}
		for (i = 0, cl = NULL; i < r.n && !cl; i++) {
			if (r.v[i].kind == TT_EV_CLOSE && (!conn || r.v[i].conn == conn))
				cl = &r.v[i];
		}
		if (cl) {
			/* The true stream length: what was delivered plus the counted gap. */
			CHECK(cl->close.write_seq > f.body_len);
			CHECK(cl->close.write_seq > delivered);
			CHECK(cl->close.write_seq - delivered >= 2 * TT_CHUNK_MAX);
		} else
			CHECK(st.drops[TT_DROP_CONTROL_RECORDS] > 0);
	}
	capture__close(c);
	rec__reset(&r, 0);
	free(r.v);
	fixture__stop(&f);
}

/* ---- plain HTTP ----------------------------------------------------------------------------- */

static size_t count_kind(const struct rec *r, int kind)
{
	size_t i, n = 0;

	for (i = 0; i < r->n; i++)
		n += r->v[i].kind == kind;
	return n;
}

/* The response stream: one complete HTTP/1.1 200 whose body has Content-Length bytes. */
static void check_plain_response(const struct rec *r, uint64_t conn, struct stream *rd)
{
	const char *cl, *end;

	stream__build(r, CAP_DIR_READ, conn, rd);
	CHECK(rd->contiguous);
	CHECK(rd->chunks >= 2);
	rd->bytes = realloc(rd->bytes, rd->len + 1);
	rd->bytes[rd->len] = '\0';
	CHECK(rd->len > 17 && memcmp(rd->bytes, "HTTP/1.1 200 OK\r\n", 17) == 0);
	cl = strstr((char *)rd->bytes, "Content-Length: ");
	end = strstr((char *)rd->bytes, "\r\n\r\n");
	CHECK(cl && end);
	if (cl && end)
		CHECK_EQ_INT(rd->len, (size_t)(end + 4 - (char *)rd->bytes) + atol(cl + 16));
	CHECK(rd->len > PLAIN_RESP_PAD);
}

/* A plain LLM request: source plaintext, the socket announced, request whole, response whole,
 * and a close carrying both true lengths. */
static void check_plain_call(const struct rec *r, const struct fixture *f, int port,
			     const char *line, size_t body_len)
{
	struct stream w = {0}, rd = {0};
	const struct ev *cl;
	uint64_t conn;

	conn = check_request(r, f, line, body_len, &w);
	CHECK(conn > 0xffff000000000000ULL); /* a kernel struct sock *, not a user pointer */
	CHECK(find_ev(r, TT_EV_DATA, conn) &&
	      find_ev(r, TT_EV_DATA, conn)->source == TT_SRC_PLAINTEXT);
	check_sock(r, conn, port);
	check_plain_response(r, conn, &rd);
	cl = find_ev(r, TT_EV_CLOSE, conn);
	CHECK(cl != NULL);
	if (cl) {
		CHECK_EQ_INT(cl->close.write_seq, w.len);
		CHECK_EQ_INT(cl->close.read_seq, rd.len);
	}
	free(w.bytes);
	free(rd.bytes);
}

static void plain_curl(struct capture *c, struct rec *r, const struct fixture *f, int port,
		       const char *curl)
{
	char url[128], data[160];
	char *get[] = {(char *)curl, "-s", "--max-time", "10", "-o", "/dev/null", url, NULL};
	char *other[] = {(char *)curl, "-s", "--max-time", "10", "-o", "/dev/null", "-d", "{}", url,
			 NULL};
	char *post[] = {(char *)curl, "-s",	"--max-time",	 "10", "-o", "/dev/null", "-H",
			"Expect:",    "-H",	"content-type: application/json", "--data-binary",
			data,	      url,	NULL};
	struct capture_stats before, after;

	/* A GET is never an LLM call: left after a peek at its first bytes, not even judged. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	capture__stats(c, &before);
	CHECK_EQ_INT(run_client(c, r, get, f->log), 0);
	capture__stats(c, &after);
	CHECK_EQ_INT(r->n, 0);
	/* A POST elsewhere: judged once, never copied, not even announced. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/models/list", port);
	CHECK_EQ_INT(run_client(c, r, other, f->log), 0);
	capture__stats(c, &after);
	CHECK_EQ_INT(r->n, 0);
	CHECK(after.plain_socks_other > before.plain_socks_other);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	snprintf(data, sizeof(data), "@%s", f->body);
	CHECK_EQ_INT(run_client(c, r, post, f->log), 0);
	check_plain_call(r, f, port, "POST /v1/chat/completions HTTP/1.1\r\n", f->body_len);
	capture__stats(c, &after);
	CHECK(after.plain_socks_llm > before.plain_socks_llm);
	CHECK(after.plain_bytes > f->body_len + PLAIN_RESP_PAD);
}

/* The kernel's judge of request paths, one curl POST (a new socket) per path. */
static void plain_paths(struct capture *c, struct rec *r, const struct fixture *f, int port,
			const char *curl)
{
	static const struct {
		const char *path;
		bool llm;
	} paths[] = {
	    {"/v1/chat/completions", true},
	    {"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", true},
	    {"/v1/completions", true},
	    {"/v1/embeddings", true},
	    {"/v1/responses", true},
	    {"/anthropic/v1/messages", true},
	    {"/api/generate", true},
	    {"/api/embed", true},
	    {"/v1beta/models/gemini-2.0-flash:generateContent", true},
	    {"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", true},
	    {"/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", true},
	    {"/model/meta.llama3-8b-instruct-v1%3A0/converse-stream", true},
	    {"/v1/models", false},
	    {"/v1/chat/completions/abc", false},
	    {"/v1/messages/batches", false},
	    {"/converse", false}, /* Bedrock's endings count only under /model/ */
	    {"/api/chatroom", false},
	    {"/health?next=/v1/chat/completions", false},
	};
	char url[256];
	char *argv[] = {(char *)curl, "-s", "--max-time", "10", "-o", "/dev/null", "-d", "{}",
			url, NULL};
	struct capture_stats before, after;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, paths[i].path);
		capture__stats(c, &before);
		CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
		capture__stats(c, &after);
		/* The client's own records say the verdict; the host-wide counters (other
		 * processes may POST meanwhile) can only have grown. */
		if ((count_kind(r, TT_EV_SOCK) == 1) != paths[i].llm)
			fprintf(stderr, "  path %s: judged %s\n", paths[i].path,
				paths[i].llm ? "not LLM" : "LLM");
		CHECK_EQ_INT(count_kind(r, TT_EV_SOCK), paths[i].llm);
		CHECK_EQ_INT(count_kind(r, TT_EV_DATA) > 0, paths[i].llm);
		CHECK_EQ_INT(count_kind(r, TT_EV_CLOSE), paths[i].llm);
		CHECK(after.plain_socks_llm >= before.plain_socks_llm + paths[i].llm);
		CHECK(after.plain_socks_other >= before.plain_socks_other + !paths[i].llm);
	}
}

/* One keep-alive connection: GET /v1/models first (not copied), then POST /api/chat. The
 * stream starts at the POST; python sends headers and body in separate calls. */
static void plain_python(struct capture *c, struct rec *r, const struct fixture *f, int port,
			 const char *python)
{
	static const char script[] =
	    "import http.client as H,sys\n"
	    "c=H.HTTPConnection('127.0.0.1',int(sys.argv[2]),timeout=10)\n"
	    "c.request('GET','/v1/models');c.getresponse().read()\n"
	    "b=open(sys.argv[1],'rb').read()\n"
	    "c.request('POST','/api/chat',body=b,headers={'Content-Type':'application/json'})\n"
	    "c.getresponse().read();c.close()\n";
	char p[16];
	char *argv[] = {(char *)python, "-c", (char *)script, (char *)f->body, p, NULL};

	snprintf(p, sizeof(p), "%d", port);
	CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
	check_plain_call(r, f, port, "POST /api/chat HTTP/1.1\r\n", f->body_len);
	CHECK_EQ_INT(count_kind(r, TT_EV_SOCK), 1);
}

/* Node's http client corks headers and body into one writev. */
static void plain_node(struct capture *c, struct rec *r, const struct fixture *f, int port,
		       const char *node)
{
	static const char script[] =
	    "const http=require('http'),fs=require('fs');"
	    "const b=fs.readFileSync(process.argv[1]);"
	    "const q=http.request({host:'127.0.0.1',port:+process.argv[2],method:'POST',"
	    "path:'/v1/messages',agent:false,headers:{'content-length':b.length}},"
	    "res=>{res.resume();res.on('end',()=>process.exit(0));});"
	    "q.on('error',e=>{console.error(e);process.exit(1);});q.end(b);";
	char p[16];
	char *argv[] = {(char *)node, "-e", (char *)script, (char *)f->body, p, NULL};

	snprintf(p, sizeof(p), "%d", port);
	CHECK_EQ_INT(run_client(c, r, argv, f->log), 0);
	check_plain_call(r, f, port, "POST /v1/messages HTTP/1.1\r\n", f->body_len);
}

TEST(live_plain_capture)
{
	char curl[512], python[512], node[512], openssl[512], slog[160];
	const char *have_curl = which("curl", curl, sizeof(curl));
	const char *have_py = !access("/usr/bin/python3", X_OK)
				  ? "/usr/bin/python3"
				  : which("python3", python, sizeof(python));
	const char *have_node = which("node", node, sizeof(node));
	struct cap_sink sink = {0};
	struct fixture f = {0};
	struct rec r = {0};
	struct capture *c = NULL;
	struct capture_stats st;
	pid_t server;
	int port, i;

	if (!which("openssl", openssl, sizeof(openssl)) || !have_curl || !have_py || !have_node) {
		printf("  live_plain_capture: needs openssl, curl, python3 and node on PATH\n");
		CHECK(!require_bpf());
		return;
	}
	CHECK(fixture__start(&f, openssl, have_py)); /* for its body file */
	port = free_port();
	snprintf(slog, sizeof(slog), "%s/server.log", f.dir);
	server = http_server__start(have_py, port, NULL, NULL, slog);
	CHECK(server > 0 && wait_listening(port));
	sink.ctx = &r;
	sink.on_chunk = rec__chunk;
	sink.on_sock = rec__sock;
	sink.on_close = rec__close;
	r.other = (uint32_t)server;
	/* Each rung of the end of a call, the one this kernel picks first and the fallback. */
	for (i = 0; i < 2 && server > 0; i++) {
		const char *rung = i == 0 ? plain_rung_expected() : "sys_exit";

		if (i == 1 && !strcmp(rung, plain_rung_expected()))
			break;
		printf("  plain exit rung %s\n", rung);
		CHECK_EQ_INT(capture__open(&c, &(struct capture_opts){.plain_rung = rung}, &sink),
			     0);
		if (!c)
			break;
		plain_curl(c, &r, &f, port, have_curl);
		if (i == 0)
			plain_paths(c, &r, &f, port, have_curl);
		plain_python(c, &r, &f, port, have_py);
		plain_node(c, &r, &f, port, have_node);
		capture__stats(c, &st);
		/* The server reads requests and writes responses: never copied. */
		CHECK_EQ_INT(r.other_chunks, 0);
		CHECK_EQ_INT(st.malformed_records, 0);
		CHECK_EQ_STR(st.plain_rung, rung);
		capture__close(c);
		c = NULL;
	}
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	unlink(slog);
	rec__reset(&r, 0);
	free(r.v);
	fixture__stop(&f);
}

TEST(skipped)
{
	const char *why = "";

	bpf_usable(&why);
	printf("test_bpf: SKIP (%s)%s\n", why,
	       require_bpf() ? ": TOKENTAP_REQUIRE_BPF=1 makes this a failure" : "");
	CHECK(!require_bpf());
}

int main(void)
{
	const char *why;

	signal(SIGPIPE, SIG_IGN);
	if (!bpf_usable(&why)) {
		RUN(skipped);
		TT_DONE();
	}
	RUN(rung_programs_load);
	RUN(open_picks_rung);
	RUN(live_tls_capture);
	RUN(live_plain_capture);
	RUN(live_loss_accounting);
	TT_DONE();
}
