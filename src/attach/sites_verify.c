// SPDX-License-Identifier: Apache-2.0
/*
 * Verification of a file's probe sites before they are trusted. tokentap re-executes itself as a
 * child (`tokentap __verify-probe-sites PATH`) that loads PATH with dlmopen() into a namespace
 * of its own and runs one SSL_write, SSL_read, SSL_write_ex and SSL_read_ex over a TLS 1.2 PSK
 * connection on a socketpair (no certificate, no network), printing what each call got and
 * returned. The parent attaches the candidate sites to that child only, as verification links
 * (the BPF programs then record what they saw into site_checks instead of emitting), and keeps a
 * function's pair only if its sites saw exactly that: the same SSL*, buffer and out-pointer, the
 * return value in rax, one hit each, and the same function-entry stack pointer from both sites.
 * The probes only read, so a wrong guess costs the child nothing; it is simply not trusted.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tokentap_abi.h"
#include "attach/sites.h"

#define VERIFY_TIMEOUT_MS 5000
#define CHILD_OUT_MAX 4096

/* ---- the child ------------------------------------------------------------------------------- */

/* The libssl entry points the child calls, looked up in the file under test. */
struct ssl_api {
	void *(*client_method)(void);
	void *(*server_method)(void);
	void *(*ctx_new)(void *method);
	long (*ctx_ctrl)(void *ctx, int cmd, long larg, void *parg);
	int (*set_cipher_list)(void *ctx, const char *list);
	void (*set_psk_client)(void *ctx, void *cb);
	void (*set_psk_server)(void *ctx, void *cb);
	void *(*ssl_new)(void *ctx);
	int (*set_fd)(void *ssl, int fd);
	void (*set_connect)(void *ssl);
	void (*set_accept)(void *ssl);
	int (*handshake)(void *ssl);
	int (*write)(void *ssl, const void *buf, int num);
	int (*read)(void *ssl, void *buf, int num);
	int (*write_ex)(void *ssl, const void *buf, size_t num, size_t *written);
	int (*read_ex)(void *ssl, void *buf, size_t num, size_t *readbytes);
};

#define SSL_CTRL_SET_MAX_PROTO_VERSION 124
#define TLS1_2_VERSION 0x0303

static unsigned int psk__client(void *ssl, const char *hint, char *id, unsigned int id_max,
				unsigned char *psk, unsigned int psk_max)
{
	if (id_max < 2 || psk_max < 16)
		return 0;
	strcpy(id, "t");
	memset(psk, 0x5a, 16);
	return 16;
}

static unsigned int psk__server(void *ssl, const char *id, unsigned char *psk, unsigned int max)
{
	if (max < 16)
		return 0;
	memset(psk, 0x5a, 16);
	return 16;
}

static int api__load(void *h, struct ssl_api *api)
{
	/* POSIX allows the object-to-function pointer conversion dlsym needs. */
#define SYM(field, name) (*(void **)&api->field = dlsym(h, name))
	SYM(client_method, "TLS_client_method");
	SYM(server_method, "TLS_server_method");
	SYM(ctx_new, "SSL_CTX_new");
	SYM(ctx_ctrl, "SSL_CTX_ctrl");
	SYM(set_cipher_list, "SSL_CTX_set_cipher_list");
	SYM(set_psk_client, "SSL_CTX_set_psk_client_callback");
	SYM(set_psk_server, "SSL_CTX_set_psk_server_callback");
	SYM(ssl_new, "SSL_new");
	SYM(set_fd, "SSL_set_fd");
	SYM(set_connect, "SSL_set_connect_state");
	SYM(set_accept, "SSL_set_accept_state");
	SYM(handshake, "SSL_do_handshake");
	SYM(write, "SSL_write");
	SYM(read, "SSL_read");
	SYM(write_ex, "SSL_write_ex");
	SYM(read_ex, "SSL_read_ex");
#undef SYM
	return api->client_method && api->server_method && api->ctx_new && api->ctx_ctrl &&
		       api->set_cipher_list && api->set_psk_client && api->set_psk_server &&
		       api->ssl_new && api->set_fd && api->set_connect && api->set_accept &&
		       api->handshake && api->write && api->read
		   ? 0
		   : -ENOENT;
}

static void *api__ssl(const struct ssl_api *api, bool server, int fd)
{
	void *ctx = api->ctx_new(server ? api->server_method() : api->client_method()), *ssl;

	if (!ctx)
		return NULL;
	api->ctx_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, TLS1_2_VERSION, NULL);
	if (api->set_cipher_list(ctx, "PSK-AES128-GCM-SHA256:PSK-AES128-CBC-SHA") != 1)
		return NULL;
	if (server)
		api->set_psk_server(ctx, (void *)psk__server);
	else
		api->set_psk_client(ctx, (void *)psk__client);
	ssl = api->ssl_new(ctx);
	if (!ssl || api->set_fd(ssl, fd) != 1)
		return NULL;
	(server ? api->set_accept : api->set_connect)(ssl);
	return ssl;
}

/* Both ends in one thread on a non-blocking socketpair: step each until both are done. */
static int api__handshake(const struct ssl_api *api, void *c, void *s)
{
	int i, rc = 0, rs = 0;

	for (i = 0; i < 200 && (rc != 1 || rs != 1); i++) {
		if (rc != 1)
			rc = api->handshake(c);
		if (rs != 1)
			rs = api->handshake(s);
	}
	return rc == 1 && rs == 1 ? 0 : -EPROTO;
}

/* One line per call: function index, SSL*, buffer, out-pointer, return value. */
static void child__report(int fn, void *ssl, void *buf, void *len_ptr, int ret)
{
	printf("%d %" PRIxPTR " %" PRIxPTR " %" PRIxPTR " %d\n", fn, (uintptr_t)ssl, (uintptr_t)buf,
	       (uintptr_t)len_ptr, ret);
}

/*
 * HTTP that is no LLM call, each connection writing first: every tokentap on this host (their
 * probes see this child too) judges both connections "not LLM" in the kernel and copies nothing.
 */
static const char req[] = "GET /tokentap-probe-site-check HTTP/1.1\r\nHost: localhost\r\n"
			  "User-Agent: tokentap\r\nAccept: */*\r\n\r\n";
static const char resp[] = "HTTP/1.1 204 No Content\r\nServer: tokentap-probe-site-check\r\n"
			   "Connection: close\r\n\r\n";

static void child__calls(const struct ssl_api *api, void *c, void *s)
{
	static char rbuf[4096], rbuf_ex[4096];
	size_t n1 = 0, n2 = 0;
	int ret;

	ret = api->write(c, req, sizeof(req) - 1);
	child__report(ATTACH_FN_SSL_WRITE, c, (void *)req, NULL, ret);
	if (api->write_ex && api->read_ex) {
		ret = api->write_ex(s, resp, sizeof(resp) - 1, &n1);
		child__report(ATTACH_FN_SSL_WRITE_EX, s, (void *)resp, &n1, ret);
	}
	ret = api->read(s, rbuf, sizeof(rbuf));
	child__report(ATTACH_FN_SSL_READ, s, rbuf, NULL, ret);
	if (api->write_ex && api->read_ex) {
		ret = api->read_ex(c, rbuf_ex, sizeof(rbuf_ex), &n2);
		child__report(ATTACH_FN_SSL_READ_EX, c, rbuf_ex, &n2, ret);
	}
}

static int child__run(const char *path)
{
	struct ssl_api api = {0};
	void *h, *c, *s;
	int sv[2];
	char go;

	/* Wait until the parent has attached the sites to us. */
	if (read(0, &go, 1) != 1)
		return 2;
	h = dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL);
	if (!h || api__load(h, &api))
		return 3;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		return 4;
	c = api__ssl(&api, false, sv[0]);
	s = api__ssl(&api, true, sv[1]);
	if (!c || !s || api__handshake(&api, c, s))
		return 5;
	child__calls(&api, c, s);
	return 0;
}

/*
 * Exits without running destructors: the library in the second namespace would run its own
 * cleanup at exit, which nothing needs (and which sanitizer runtimes do not expect).
 */
int sites__child_main(int argc, char **argv)
{
	int rc = argc < 3 ? 2 : child__run(argv[2]);

	fflush(stdout);
	_exit(rc);
}

/*
 * The child is /proc/self/exe re-executed, and that is not always tokentap's own main(): a unit
 * test or benchmark that opens the capture is the executable then. Dispatching from a constructor
 * (glibc passes argc/argv to them) makes every binary that links this file a correct child, so
 * none of them can re-run its own work, and spawn further children, instead of the verification.
 */
__attribute__((constructor)) static void sites__child_dispatch(int argc, char **argv)
{
	if (argc >= 2 && argv && argv[1] && !strcmp(argv[1], SITES_CHILD_ARG))
		sites__child_main(argc, argv);
}

/* ---- the parent ------------------------------------------------------------------------------ */

struct child_call {
	uint64_t ssl, buf, len_ptr;
	int ret;
	bool seen;
};

static pid_t child__spawn(const char *path, int *in_fd, int *out_fd)
{
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC))
		return -1;
	if (pipe2(from, O_CLOEXEC)) {
		close(to[0]);
		close(to[1]);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		char *const argv[] = {"tokentap", SITES_CHILD_ARG, (char *)path, NULL};

		dup2(to[0], 0);
		dup2(from[1], 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	*in_fd = to[1];
	*out_fd = from[0];
	if (pid < 0) {
		close(to[1]);
		close(from[0]);
	}
	return pid;
}

/* Reads the child's report until EOF or the deadline. */
static size_t child__read(int fd, char *buf, size_t cap)
{
	struct timespec t0, t;
	size_t len = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = VERIFY_TIMEOUT_MS -
		       ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap - 1)
			break;
	}
	buf[len] = '\0';
	return len;
}

static void child__parse(char *out, struct child_call *calls)
{
	char *save = NULL, *line;

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct child_call c = {0};
		int fn;

		if (sscanf(line, "%d %" SCNx64 " %" SCNx64 " %" SCNx64 " %d", &fn, &c.ssl, &c.buf,
			   &c.len_ptr, &c.ret) != 5 ||
		    fn < 0 || fn > ATTACH_FN_SSL_READ_EX)
			continue;
		c.seen = true;
		calls[fn] = c;
	}
}

static int verify__attach(const struct sites_bpf *bpf, const char *path, pid_t pid,
			  const struct site_pair *pairs, struct bpf_link **links)
{
	int i;

	for (i = 0; i <= ATTACH_FN_SSL_READ_EX; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, eo);
		LIBBPF_OPTS(bpf_uprobe_opts, ro);
		uint32_t k0 = 2 * i, k1 = 2 * i + 1;

		if (!pairs[i].entry_off)
			continue;
		bpf_map_delete_elem(bpf->checks_fd, &k0);
		bpf_map_delete_elem(bpf->checks_fd, &k1);
		eo.bpf_cookie = sites__cookie(i, false, pairs[i].entry_sp_add, true);
		ro.bpf_cookie = sites__cookie(i, true, pairs[i].ret_sp_add, true);
		links[2 * i] =
		    bpf_program__attach_uprobe_opts(bpf->entry, pid, path, pairs[i].entry_off, &eo);
		links[2 * i + 1] =
		    bpf_program__attach_uprobe_opts(bpf->ret, pid, path, pairs[i].ret_off, &ro);
		if (!links[2 * i] || !links[2 * i + 1])
			return -errno ? -errno : -EINVAL;
	}
	return 0;
}

/* Whether function i's two sites saw exactly what the child's call got and returned. */
static bool verify__fn(const struct sites_bpf *bpf, int i, const struct child_call *c)
{
	struct tt_site_seen e, r;
	uint32_t k0 = 2 * i, k1 = 2 * i + 1;
	bool ex = i >= ATTACH_FN_SSL_WRITE_EX;

	if (!c->seen || bpf_map_lookup_elem(bpf->checks_fd, &k0, &e) ||
	    bpf_map_lookup_elem(bpf->checks_fd, &k1, &r))
		return false;
	return e.hits == 1 && r.hits == 1 && e.ssl == c->ssl && e.buf == c->buf &&
	       (!ex || e.len_ptr == c->len_ptr) && (int)r.rc == c->ret &&
	       e.entry_sp == r.entry_sp && e.entry_sp != 0 && c->ret > 0;
}

/* Runs the child with the candidate sites attached to it; fills calls[]. */
static int verify__run(const struct sites_bpf *bpf, const char *path, struct site_pair *pairs,
		       struct child_call *calls, struct bpf_link **links)
{
	char *out = malloc(CHILD_OUT_MAX);
	int in_fd, out_fd, status = 0, err;
	pid_t pid;

	if (!out)
		return -ENOMEM;
	pid = child__spawn(path, &in_fd, &out_fd);
	if (pid < 0) {
		free(out);
		return -errno;
	}
	err = verify__attach(bpf, path, pid, pairs, links);
	if (!err && write(in_fd, "g", 1) != 1)
		err = -EPIPE;
	close(in_fd);
	if (!err) {
		child__read(out_fd, out, CHILD_OUT_MAX);
		child__parse(out, calls);
	}
	close(out_fd);
	kill(pid, SIGKILL); /* already gone unless it hung */
	waitpid(pid, &status, 0);
	free(out);
	return err;
}

int sites__verify(const struct sites_bpf *bpf, const char *path, const uint64_t *offs,
		  struct site_pair *pairs, bool verbose)
{
	static const char *const names[] = {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"};
	struct bpf_link *links[2 * (ATTACH_FN_SSL_READ_EX + 1)] = {0};
	struct child_call calls[ATTACH_FN_SSL_READ_EX + 1] = {0};
	struct timespec t0, t1;
	int i, err, kept = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = verify__run(bpf, path, pairs, calls, links);
	for (i = 0; i <= ATTACH_FN_SSL_READ_EX; i++) {
		if (!pairs[i].entry_off)
			continue;
		if (!err && verify__fn(bpf, i, &calls[i])) {
			kept++;
			if (verbose)
				fprintf(stderr,
					"tokentap: probe sites: %s of %s at +%#" PRIx64
					" / +%#" PRIx64 " (emulated, verified)\n",
					names[i], path, pairs[i].entry_off - offs[i],
					pairs[i].ret_off - offs[i]);
			continue;
		}
		if (verbose)
			fprintf(stderr,
				"tokentap: probe sites: %s of %s failed verification (%s): classic "
				"pair\n",
				names[i], path, err ? strerror(-err) : "sites saw other values");
		memset(&pairs[i], 0, sizeof(pairs[i]));
	}
	attach__destroy_links(links, sizeof(links) / sizeof(links[0]));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (verbose)
		fprintf(
		    stderr, "tokentap: probe sites: %s verified in %ld ms\n", path,
		    (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	return kept;
}
