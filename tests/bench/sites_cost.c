// SPDX-License-Identifier: Apache-2.0
/*
 * The kernel-side cost per SSL call of each way of probing, measured on a private copy of
 * libssl that no other tracer on the host can see: the copy is unlinked once open and loaded
 * through /proc/self/fd/N, so its mapping reads "(deleted)", which tokentap (and this bench's
 * other runs) skip; the probes are attached to this process only. Modes, one after the other:
 *   bare      nothing attached
 *   floor     floor.bpf.o's empty uprobe + uretprobe at each function's entry
 *   classic   tokentap's own programs, uprobe + uretprobe at entry (--probe-sites classic)
 *   sites     tokentap's programs on the sites attach/sites.c picks and verifies (the default)
 * Each mode times SSL_write and SSL_read calls that return at once (negative length): the
 * prologue and the one return path run, both probes fire, no byte moves. Prints one JSON line.
 *   sites_cost FLOOR_BPF_OBJECT LIBSSL
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "attach/attach.h"
#include "attach/elf_syms.h"
#include "attach/sites.h"
#include "tokentap.skel.h"

#define BATCHES 40
#define CALLS 2000
#define NFN 2 /* SSL_write, SSL_read: the two with emulated sites in Debian's build */

static int (*ssl_write)(void *, const void *, int);
static int (*ssl_read)(void *, void *, int);

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double best_batch(void *ssl, int read)
{
	char buf[16];
	double best = 1e18;

	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_ns(), per;

		for (int i = 0; i < CALLS; i++) {
			if (read)
				ssl_read(ssl, buf, -1);
			else
				ssl_write(ssl, buf, -1);
		}
		per = (now_ns() - t0) / CALLS;
		best = per < best ? per : best;
	}
	return best;
}

/* A copy of lib open at an fd, its name already unlinked. */
static int private_copy(const char *lib)
{
	char tmp[] = "/tmp/tokentap-sites-cost-XXXXXX";
	int in = open(lib, O_RDONLY), out = mkstemp(tmp);
	struct stat st;

	if (in < 0 || out < 0 || fstat(in, &st) ||
	    sendfile(out, in, NULL, (size_t)st.st_size) != st.st_size)
		return -1;
	close(in);
	unlink(tmp);
	return out;
}

static void *ssl__new(void *h)
{
	void *(*method)(void) = (void *(*)(void))dlsym(h, "TLS_client_method");
	void *(*ctx_new)(void *) = (void *(*)(void *))dlsym(h, "SSL_CTX_new");
	void *(*ssl_new)(void *) = (void *(*)(void *))dlsym(h, "SSL_new");

	*(void **)&ssl_write = dlsym(h, "SSL_write");
	*(void **)&ssl_read = dlsym(h, "SSL_read");
	if (!method || !ctx_new || !ssl_new || !ssl_write || !ssl_read)
		return NULL;
	return ssl_new(ctx_new(method()));
}

static int attach(struct bpf_program *p, const char *path, uint64_t off, bool ret, uint64_t cookie,
		  struct bpf_link **l)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret, .bpf_cookie = cookie);

	*l = bpf_program__attach_uprobe_opts(p, getpid(), path, off, &o);
	return *l ? 0 : -errno;
}

static void detach(struct bpf_link **l, int n)
{
	for (int i = 0; i < n; i++) {
		bpf_link__destroy(l[i]);
		l[i] = NULL;
	}
}

/* Only the SSL programs: the socket ladder's fentry rung, for one, may not load here. */
static int tokentap__load_tls(struct tokentap_bpf *s)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, s->obj)
	{
		bpf_program__set_autoload(
		    p, p == s->progs.uprobe_ssl_write || p == s->progs.uretprobe_ssl_write ||
			   p == s->progs.uprobe_ssl_read || p == s->progs.uretprobe_ssl_read ||
			   p == s->progs.uprobe_ssl_site_enter ||
			   p == s->progs.uprobe_ssl_site_return);
	}
	return tokentap_bpf__load(s);
}

static void measure(const char *mode, void *ssl, bool last)
{
	printf("\"%s\": {\"ssl_write_ns\": %.1f, \"ssl_read_ns\": %.1f}%s", mode,
	       best_batch(ssl, 0), best_batch(ssl, 1), last ? "" : ", ");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const char *const names[NFN] = {"SSL_write", "SSL_read"};
	struct bpf_program *ce[NFN], *cr[NFN], *fe, *fr;
	struct bpf_link *l[2 * NFN] = {0};
	uint64_t offs[ATTACH_FN__COUNT] = {0};
	struct site_pair pairs[ATTACH_FN__COUNT];
	struct tokentap_bpf *s;
	struct bpf_object *floor;
	char path[64];
	void *h, *ssl;
	int fd, i, err = 0, kept;

	if (argc >= 2 && !strcmp(argv[1], SITES_CHILD_ARG))
		return sites__child_main(argc, argv); /* sites__verify() re-executes us */
	if (argc != 3 || (fd = private_copy(argv[2])) < 0)
		return fprintf(stderr, "usage: sites_cost FLOOR_BPF_OBJECT LIBSSL\n"), 2;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ssl = h ? ssl__new(h) : NULL;
	floor = bpf_object__open_file(argv[1], NULL);
	s = tokentap_bpf__open();
	if (!ssl || !floor || bpf_object__load(floor) || !s || tokentap__load_tls(s) ||
	    elf_syms__lookup(path, names, NFN, offs) != NFN)
		return fprintf(stderr, "sites_cost: setup failed\n"), 1;
	fe = bpf_object__find_program_by_name(floor, "floor_enter");
	fr = bpf_object__find_program_by_name(floor, "floor_return");
	ce[0] = s->progs.uprobe_ssl_write, cr[0] = s->progs.uretprobe_ssl_write;
	ce[1] = s->progs.uprobe_ssl_read, cr[1] = s->progs.uretprobe_ssl_read;
	struct sites_bpf sb = {s->progs.uprobe_ssl_site_enter, s->progs.uprobe_ssl_site_return,
			       bpf_map__fd(s->maps.site_checks)};
	kept = sites__plan(&sb, path, offs, pairs, false);

	printf("{\"sites_verified\": %d, ", kept);
	measure("bare", ssl, false);
	for (i = 0; i < NFN && !err; i++)
		err = attach(fe, path, offs[i], false, 0, &l[2 * i])
			  ?: attach(fr, path, offs[i], true, 0, &l[2 * i + 1]);
	measure("floor", ssl, false);
	detach(l, 2 * NFN);
	for (i = 0; i < NFN && !err; i++)
		err = attach(ce[i], path, offs[i], false, 0, &l[2 * i])
			  ?: attach(cr[i], path, offs[i], true, 0, &l[2 * i + 1]);
	measure("classic", ssl, false);
	detach(l, 2 * NFN);
	for (i = 0; i < NFN && !err && pairs[i].entry_off; i++)
		err = attach(sb.entry, path, pairs[i].entry_off, false,
			     sites__cookie(i, false, pairs[i].entry_sp_add, false), &l[2 * i])
			  ?: attach(sb.ret, path, pairs[i].ret_off, false,
				    sites__cookie(i, true, pairs[i].ret_sp_add, false),
				    &l[2 * i + 1]);
	measure("sites", ssl, true);
	detach(l, 2 * NFN);
	printf(", \"attach_error\": %d}\n", err);
	tokentap_bpf__destroy(s);
	bpf_object__close(floor);
	return err ? 1 : 0;
}
