// SPDX-License-Identifier: Apache-2.0
/*
 * Discovery and attachment of the TLS probes (OpenSSL, GnuTLS). Every file is examined once per
 * identity (device, inode, size, mtime: a deleted file's inode number can come back as a new file)
 * and the verdict is remembered, so the exec storm of a busy host costs a stat() per mapped file.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "attach/attach.h"
#include "attach/elf_syms.h"

#define ATTACH_PENDING_MAX 1024
#define DETACH_THREADS_MAX 32
#define ATTACH_SEEN_MIN 256

static const char *const fn_names[ATTACH_FN__COUNT] = {
    [ATTACH_FN_SSL_WRITE] = "SSL_write",
    [ATTACH_FN_SSL_READ] = "SSL_read",
    [ATTACH_FN_SSL_WRITE_EX] = "SSL_write_ex",
    [ATTACH_FN_SSL_READ_EX] = "SSL_read_ex",
    [ATTACH_FN_SSL_FREE] = "SSL_free",
    [ATTACH_FN_GNUTLS_SEND] = "gnutls_record_send",
    [ATTACH_FN_GNUTLS_RECV] = "gnutls_record_recv",
    [ATTACH_FN_GNUTLS_DEINIT] = "gnutls_deinit",
};

/* Where distributions put the system OpenSSL and GnuTLS: processes started later map these. */
static const char *const std_tls_libs[] = {
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.1.1",
    "/usr/lib64/libssl.so.3",
    "/usr/lib64/libssl.so.1.1",
    "/usr/lib/libssl.so.3",
    "/usr/lib/libssl.so.1.1",
    "/lib/libssl.so.3",
    "/lib/libssl.so.1.1",
    "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
    "/lib/x86_64-linux-gnu/libgnutls.so.30",
    "/usr/lib/aarch64-linux-gnu/libgnutls.so.30",
    "/usr/lib64/libgnutls.so.30",
    "/usr/lib/libgnutls.so.30",
};

/* Delays after an exec at which the process's mappings are examined again. */
static const uint32_t rescan_ms[] = {5, 30, 200, 1000};
#define RESCAN_STEPS (sizeof(rescan_ms) / sizeof(rescan_ms[0]))

struct file_key {
	uint64_t dev, ino, size;
	int64_t mtime_ns;
};

enum file_verdict {
	FILE_UNSEEN = 0,
	FILE_NO_TLS = 1,
	FILE_ATTACHED = 2,
	FILE_FAILED = 3,
};

struct seen_slot {
	struct file_key key;
	uint8_t verdict; /* enum file_verdict; FILE_UNSEEN marks an empty slot */
};

struct attached_file {
	char *path;
	const char *method;
	struct bpf_link *links[2 * ATTACH_FN__COUNT];
};

struct pending_scan {
	uint32_t pid;
	uint32_t step;
	uint64_t exec_ns;
};

struct attach {
	struct attach_progs progs;
	bool verbose;
	struct seen_slot *seen; /* open addressing, power-of-two capacity, at most half full */
	size_t seen_cap, seen_len;
	struct attached_file *files;
	uint32_t nfiles, files_cap;
	uint32_t failures;
	struct pending_scan pending[ATTACH_PENDING_MAX];
	uint32_t npending, pending_dropped;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the set of files already examined ------------------------------------------------------ */

static size_t seen__hash(const struct file_key *k)
{
	uint64_t h = k->dev * 0x9e3779b97f4a7c15ULL ^ k->ino;

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= (uint64_t)k->mtime_ns ^ k->size;
	h ^= h >> 29;
	return (size_t)h;
}

static struct seen_slot *seen__slot(struct seen_slot *tab, size_t cap, const struct file_key *k)
{
	size_t i = seen__hash(k) & (cap - 1);

	while (tab[i].verdict != FILE_UNSEEN && memcmp(&tab[i].key, k, sizeof(*k)) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static int seen__grow(struct attach *a)
{
	size_t cap = a->seen_cap ? a->seen_cap * 2 : ATTACH_SEEN_MIN, i;
	struct seen_slot *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (i = 0; i < a->seen_cap; i++) {
		if (a->seen[i].verdict != FILE_UNSEEN)
			*seen__slot(tab, cap, &a->seen[i].key) = a->seen[i];
	}
	free(a->seen);
	a->seen = tab;
	a->seen_cap = cap;
	return 0;
}

static enum file_verdict seen__get(const struct attach *a, const struct file_key *k)
{
	if (!a->seen_cap)
		return FILE_UNSEEN;
	return seen__slot(a->seen, a->seen_cap, k)->verdict;
}

static int seen__put(struct attach *a, const struct file_key *k, enum file_verdict v)
{
	struct seen_slot *s;

	if ((a->seen_len + 1) * 2 > a->seen_cap && seen__grow(a))
		return -ENOMEM;
	s = seen__slot(a->seen, a->seen_cap, k);
	if (s->verdict == FILE_UNSEEN)
		a->seen_len++;
	s->key = *k;
	s->verdict = v;
	return 0;
}

/* ---- attaching one file --------------------------------------------------------------------- */

static void attached__destroy(struct attached_file *f)
{
	size_t i;

	for (i = 0; i < sizeof(f->links) / sizeof(f->links[0]); i++)
		bpf_link__destroy(f->links[i]);
	free(f->path);
	memset(f, 0, sizeof(*f));
}

static int attach__one_probe(struct bpf_program *prog, const char *path, uint64_t off, bool ret,
			     struct bpf_link **out)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret);

	if (!prog)
		return 0;
	*out = bpf_program__attach_uprobe_opts(prog, -1, path, (size_t)off, &opts);
	return *out ? 0 : (errno ? -errno : -EINVAL);
}

static int attach__probes(struct attach *a, struct attached_file *f, const uint64_t *offs)
{
	int i, err;

	for (i = 0; i < ATTACH_FN__COUNT; i++) {
		if (!offs[i])
			continue;
		err =
		    attach__one_probe(a->progs.entry[i], f->path, offs[i], false, &f->links[2 * i]);
		if (!err)
			err = attach__one_probe(a->progs.ret[i], f->path, offs[i], true,
						&f->links[2 * i + 1]);
		if (err)
			return err;
	}
	return 0;
}

static struct attached_file *attach__new_file(struct attach *a, const char *path)
{
	struct attached_file *f;

	if (a->nfiles == a->files_cap) {
		uint32_t cap = a->files_cap ? a->files_cap * 2 : 16;
		void *p = realloc(a->files, cap * sizeof(*a->files));

		if (!p)
			return NULL;
		a->files = p;
		a->files_cap = cap;
	}
	f = &a->files[a->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	return f->path ? f : NULL;
}

static bool offs_have_openssl(const uint64_t *offs)
{
	return (offs[ATTACH_FN_SSL_WRITE] || offs[ATTACH_FN_SSL_WRITE_EX]) &&
	       (offs[ATTACH_FN_SSL_READ] || offs[ATTACH_FN_SSL_READ_EX]);
}

static bool offs_have_gnutls(const uint64_t *offs)
{
	return offs[ATTACH_FN_GNUTLS_SEND] && offs[ATTACH_FN_GNUTLS_RECV];
}

/* Which library the file carries: a library's probes go on only when its write and read entry
 * points are both there; stray names of the other one are dropped. */
static const char *offs__library(uint64_t *offs)
{
	bool ossl = offs_have_openssl(offs), gnutls = offs_have_gnutls(offs);
	int i;

	for (i = 0; i < ATTACH_FN__COUNT; i++) {
		bool is_gnutls = i >= ATTACH_FN_GNUTLS_SEND;

		if ((is_gnutls && !gnutls) || (!is_gnutls && !ossl))
			offs[i] = 0;
	}
	return ossl && gnutls ? "OpenSSL+GnuTLS" : ossl ? "OpenSSL" : gnutls ? "GnuTLS" : NULL;
}

static int attach__elf(struct attach *a, const char *path, const uint64_t *offs,
		       const char *library)
{
	struct attached_file *f = attach__new_file(a, path);
	int err;

	if (!f)
		return -ENOMEM;
	f->method = "symbols";
	err = attach__probes(a, f, offs);
	if (err) {
		fprintf(stderr, "tokentap: cannot attach TLS probes to %s: %s\n", path,
			strerror(-err));
		attached__destroy(f);
		a->failures++;
		return err;
	}
	a->nfiles++;
	if (a->verbose)
		fprintf(stderr, "tokentap: %s probes attached to %s (%s)\n", library, path,
			f->method);
	return 1;
}

static void file_key__from_stat(struct file_key *k, const struct stat *st)
{
	memset(k, 0, sizeof(*k));
	k->dev = st->st_dev;
	k->ino = st->st_ino;
	k->size = (uint64_t)st->st_size;
	k->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

int attach__file(struct attach *a, const char *path)
{
	uint64_t offs[ATTACH_FN__COUNT];
	const char *library;
	struct file_key key;
	struct stat st;
	int n, err;

	if (stat(path, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	file_key__from_stat(&key, &st);
	if (seen__get(a, &key) != FILE_UNSEEN)
		return 0;
	n = elf_syms__lookup(path, fn_names, ATTACH_FN__COUNT, offs);
	if (n < 0)
		return n; /* unreadable now; not remembered, a later scan may succeed */
	library = offs__library(offs);
	if (!library)
		return seen__put(a, &key, FILE_NO_TLS);
	err = attach__elf(a, path, offs, library);
	seen__put(a, &key, err < 0 ? FILE_FAILED : FILE_ATTACHED);
	return err;
}

/* ---- processes ------------------------------------------------------------------------------ */

/* The path of an executable mapping in a /proc/<pid>/maps line, or NULL. */
static char *maps_line__path(char *line)
{
	char perms[8];
	size_t len;
	int pos = 0;

	if (sscanf(line, "%*x-%*x %7s %*x %*x:%*x %*u %n", perms, &pos) != 1 || !pos)
		return NULL;
	if (strlen(perms) < 3 || perms[2] != 'x' || line[pos] != '/')
		return NULL;
	len = strcspn(line + pos, "\n");
	line[pos + len] = '\0';
	if (len > 10 && strcmp(line + pos + len - 10, " (deleted)") == 0)
		return NULL;
	return line + pos;
}

/* The file seen by pid: through its root when it lives in another mount namespace. */
static int attach__pid_file(struct attach *a, uint32_t pid, const char *path)
{
	char full[4096];
	struct stat in_ns, here;

	if (snprintf(full, sizeof(full), "/proc/%u/root%s", pid, path) >= (int)sizeof(full))
		return -ENAMETOOLONG;
	if (stat(full, &in_ns))
		return -errno;
	/* Same file under its own name: keep the readable path for logs and stats. */
	if (!stat(path, &here) && here.st_dev == in_ns.st_dev && here.st_ino == in_ns.st_ino)
		return attach__file(a, path);
	return attach__file(a, full);
}

int attach__scan_pid(struct attach *a, uint32_t pid)
{
	char maps[64], *line = NULL, prev[4096] = "";
	size_t cap = 0;
	int attached = 0;
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%u/maps", pid);
	f = fopen(maps, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *path = maps_line__path(line);

		/* Mappings of one file are adjacent; examine each file once per scan. */
		if (!path || strcmp(path, prev) == 0)
			continue;
		snprintf(prev, sizeof(prev), "%s", path);
		if (attach__pid_file(a, pid, path) > 0)
			attached++;
	}
	free(line);
	fclose(f);
	return attached;
}

static bool is_pid_dir(const char *name)
{
	if (!*name)
		return false;
	for (; *name; name++) {
		if (!isdigit((unsigned char)*name))
			return false;
	}
	return true;
}

int attach__scan_all(struct attach *a)
{
	struct dirent *de;
	size_t i;
	DIR *d;

	for (i = 0; i < sizeof(std_tls_libs) / sizeof(std_tls_libs[0]); i++)
		attach__file(a, std_tls_libs[i]);
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (is_pid_dir(de->d_name))
			attach__scan_pid(a, (uint32_t)strtoul(de->d_name, NULL, 10));
	}
	closedir(d);
	return (int)a->nfiles;
}

/* ---- exec follow-up ------------------------------------------------------------------------- */

static uint64_t pending__due(const struct pending_scan *p)
{
	return p->exec_ns + (uint64_t)rescan_ms[p->step] * 1000000ULL;
}

void attach__on_exec(struct attach *a, uint32_t pid)
{
	struct pending_scan *p = NULL;
	uint32_t i;

	attach__scan_pid(a, pid);
	for (i = 0; i < a->npending && !p; i++) {
		if (a->pending[i].pid == pid)
			p = &a->pending[i];
	}
	if (!p && a->npending < ATTACH_PENDING_MAX)
		p = &a->pending[a->npending++];
	if (!p) {
		a->pending_dropped++;
		return;
	}
	p->pid = pid;
	p->step = 0;
	p->exec_ns = now_ns();
}

int attach__next_due_ms(const struct attach *a, int max_ms)
{
	uint64_t now = now_ns(), best = UINT64_MAX;
	uint32_t i;

	for (i = 0; i < a->npending; i++) {
		uint64_t due = pending__due(&a->pending[i]);

		if (due < best)
			best = due;
	}
	if (best == UINT64_MAX)
		return max_ms;
	if (best <= now)
		return 0;
	/* Round up so we do not wake a hair early and spin. */
	best = (best - now + 999999) / 1000000;
	return max_ms >= 0 && (uint64_t)max_ms < best ? max_ms : (int)best;
}

void attach__run_pending(struct attach *a)
{
	uint64_t now = now_ns();
	uint32_t i = 0;

	while (i < a->npending) {
		struct pending_scan *p = &a->pending[i];
		int err;

		if (pending__due(p) > now) {
			i++;
			continue;
		}
		err = attach__scan_pid(a, p->pid);
		if (err == -ENOENT || ++p->step >= RESCAN_STEPS)
			*p = a->pending[--a->npending];
		else
			i++;
	}
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct attach *attach__new(const struct attach_progs *progs, bool verbose)
{
	struct attach *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->progs = *progs;
	a->verbose = verbose;
	return a;
}

void attach__stats(const struct attach *a, struct attach_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->files = a->nfiles;
	st->failures = a->failures;
	st->checked_files = (uint32_t)a->seen_len;
	st->pending = a->npending;
	st->pending_dropped = a->pending_dropped;
}

const char *attach__file_path(const struct attach *a, uint32_t i, const char **method)
{
	if (i >= a->nfiles)
		return NULL;
	if (method)
		*method = a->files[i].method;
	return a->files[i].path;
}

/*
 * Closing one uprobe or tracepoint link waits for an RCU grace period (~140 ms on this kernel);
 * 20 of them in a row make Ctrl-C feel hung. Closing them from several threads lets the waits
 * share grace periods.
 */
struct detach_work {
	struct bpf_link **links;
	size_t n, next;
	pthread_mutex_t lock;
};

static void *detach__worker(void *arg)
{
	struct detach_work *w = arg;

	for (;;) {
		struct bpf_link *l = NULL;

		pthread_mutex_lock(&w->lock);
		while (w->next < w->n && !l)
			l = w->links[w->next++];
		pthread_mutex_unlock(&w->lock);
		if (!l)
			return NULL;
		bpf_link__destroy(l);
	}
}

void attach__destroy_links(struct bpf_link **links, size_t n)
{
	struct detach_work w = {.links = links, .n = n, .lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t tids[DETACH_THREADS_MAX];
	size_t i, nthreads = n < DETACH_THREADS_MAX ? n : DETACH_THREADS_MAX, started = 0;

	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[started], NULL, detach__worker, &w) == 0)
			started++;
	}
	detach__worker(&w); /* also the fallback when no thread could start */
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < n; i++)
		links[i] = NULL;
}

void attach__free(struct attach *a)
{
	struct bpf_link **links;
	size_t per = 2 * ATTACH_FN__COUNT, n = 0;
	uint32_t i;

	if (!a)
		return;
	links = calloc((size_t)a->nfiles * per + 1, sizeof(*links));
	for (i = 0; i < a->nfiles && links; i++) {
		memcpy(links + n, a->files[i].links, per * sizeof(*links));
		memset(a->files[i].links, 0, sizeof(a->files[i].links));
		n += per;
	}
	if (links)
		attach__destroy_links(links, n);
	free(links);
	for (i = 0; i < a->nfiles; i++)
		attached__destroy(&a->files[i]);
	free(a->files);
	free(a->seen);
	free(a);
}
