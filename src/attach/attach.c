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
#include <unistd.h>

#include <bpf/libbpf.h>

#include "tokentap_abi.h"

#include "attach/attach.h"
#include "attach/boringssl.h"
#include "attach/exec_hold.h"
#include "attach/elf_needed.h"
#include "attach/elf_syms.h"
#include "attach/sites.h"

#define ATTACH_PENDING_MAX 1024
#define DETACH_THREADS_MAX 32
#define ATTACH_SEEN_MIN 256
#define PID_BUCKETS 1024
/* A file whose last user exited is detached after this long without a new user, and only after
 * a rescan of every process found none either (forked children are not seen exec'ing). */
#define ORPHAN_GRACE_NS (1000ULL * 1000000ULL)
#define SWEEP_MIN_GAP_NS (2000ULL * 1000000ULL)
#define NEEDED_MAX_LIBS 64

static const char *const fn_names[ATTACH_FN__COUNT] = {
    [ATTACH_FN_SSL_WRITE] = "SSL_write",
    [ATTACH_FN_SSL_READ] = "SSL_read",
    [ATTACH_FN_SSL_WRITE_EX] = "SSL_write_ex",
    [ATTACH_FN_SSL_READ_EX] = "SSL_read_ex",
    [ATTACH_FN_SSL_FREE] = "SSL_free",
    [ATTACH_FN_GNUTLS_SEND] = "gnutls_record_send",
    [ATTACH_FN_GNUTLS_RECV] = "gnutls_record_recv",
    [ATTACH_FN_GNUTLS_DEINIT] = "gnutls_deinit",
    [ATTACH_FN_SSL_CTRL] = "SSL_ctrl",
    [ATTACH_FN_GNUTLS_SERVER_NAME_SET] = "gnutls_server_name_set",
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
	FILE_DETACHED = 4, /* carries TLS; detached when its last user exited: attach on next use */
	FILE_REFUSED = 5,  /* not attached (or not examined) while max_files were attached */
};

/* Whether an executable's DT_NEEDED closure was walked at exec (attach__needed). */
enum walk_verdict {
	WALK_NEVER = 0,
	WALK_NOTHING = 1, /* no TLS library, or only pinned ones: nothing to do at its next exec */
	WALK_AGAIN = 2,	  /* a TLS library that can be detached: walk at every exec */
};

struct seen_slot {
	struct file_key key;
	uint8_t verdict; /* enum file_verdict; FILE_UNSEEN marks an empty slot */
	uint8_t walk;	 /* enum walk_verdict, for executables */
};

struct attached_file {
	char *path;
	const char *method;
	bool code_shape; /* entry points found by code shape (boringssl.c, awslc.c) */
	struct bpf_link *links[2 * ATTACH_FN__COUNT];
	struct bpf_link **more; /* Go: a probe per RET instruction, so a count known only here */
	uint32_t nmore;
	struct file_key key;
	uint32_t users;	  /* live processes known (from scans) to map it */
	bool pinned;	  /* a host file (see attach__adopt): never detached */
	uint64_t idle_ns; /* when users fell to 0 (0: in use) */
	uint64_t used_ns; /* last time a process was counted as a user */
};

/* The attached files one process maps (keys, not pointers: the files array moves). */
struct pid_users {
	uint32_t pid, n, cap;
	struct file_key *keys;
	struct pid_users *next;
};

struct pending_scan {
	uint32_t pid;
	uint32_t step;
	uint64_t exec_ns;  /* when user space learned of the exec: the rescans' base */
	uint64_t kexec_ns; /* the kernel's exec timestamp: the window's start */
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
	/* users and detaching */
	struct pid_users *pids[PID_BUCKETS];
	uint32_t npids, users;
	uint32_t max_files;
	bool pinning; /* attaching the standard libraries at startup */
	bool pin_host; /* files of our own mount namespace are never detached */
	uint64_t refusals, detaches, sweeps, last_sweep_ns;
	pthread_t reaper;
	bool reaper_live;
	/* exec -> attached */
	uint64_t cur_exec_ns; /* exec timestamp of the process being scanned after its exec */
	uint32_t cur_exec_pid; /* that process */
	struct exec_hold hold; /* processes held while their executable is analysed */
	uint64_t exec_attaches, needed_attaches;
	uint64_t window_last_ns, window_max_ns, window_sum_ns;
	struct bssl_worker *bssl; /* stripped BoringSSL found by code shape, on its own thread */
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
	attach__destroy_links(f->more, f->nmore);
	free(f->more);
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

/* An emulated entry site and return site (attach/sites.c) instead of the classic pair. */
static int attach__site_pair(struct attach *a, struct attached_file *f, int i,
			     const struct site_pair *p)
{
	LIBBPF_OPTS(bpf_uprobe_opts, eo);
	LIBBPF_OPTS(bpf_uprobe_opts, ro);

	eo.bpf_cookie = sites__cookie(i, false, p->entry_sp_add, false);
	ro.bpf_cookie = sites__cookie(i, true, p->ret_sp_add, false);
	f->links[2 * i] =
	    bpf_program__attach_uprobe_opts(a->progs.sites.entry, -1, f->path, p->entry_off, &eo);
	if (f->links[2 * i])
		f->links[2 * i + 1] = bpf_program__attach_uprobe_opts(a->progs.sites.ret, -1,
								      f->path, p->ret_off, &ro);
	return f->links[2 * i] && f->links[2 * i + 1] ? 0 : (errno ? -errno : -EINVAL);
}

static int attach__probes(struct attach *a, struct attached_file *f, const uint64_t *offs)
{
	struct site_pair pairs[ATTACH_FN__COUNT] = {0};
	int i, err;

	/*
	 * Sites only for the standard libraries, attached before "ready": verifying a file takes a
	 * child process (0.1-1 s), longer than a process that just exec'd takes to its first
	 * SSL_write, so a file found later gets the classic pair at once.
	 */
	if (a->pinning && sites__plan(&a->progs.sites, f->path, offs, pairs, a->verbose) > 0)
		f->method = "symbols, emulated probe sites";
	for (i = 0; i < ATTACH_FN__COUNT; i++) {
		if (!offs[i])
			continue;
		if (pairs[i].entry_off) {
			err = attach__site_pair(a, f, i, &pairs[i]);
			if (!err)
				continue;
			/* The kernel refused a site: the classic pair still works. */
			bpf_link__destroy(f->links[2 * i]);
			f->links[2 * i] = NULL;
		}
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

/* The GnuTLS entry points; the rest are OpenSSL's (SSL_ctrl came after the GnuTLS ones). */
static bool fn__is_gnutls(int i)
{
	return (i >= ATTACH_FN_GNUTLS_SEND && i <= ATTACH_FN_GNUTLS_DEINIT) ||
	       i == ATTACH_FN_GNUTLS_SERVER_NAME_SET;
}

/* Which library the file carries: a library's probes go on only when its write and read entry
 * points are both there; stray names of the other one are dropped. */
static const char *offs__library(uint64_t *offs)
{
	bool ossl = offs_have_openssl(offs), gnutls = offs_have_gnutls(offs);
	int i;

	for (i = 0; i < ATTACH_FN__COUNT; i++) {
		bool is_gnutls = fn__is_gnutls(i);

		if ((is_gnutls && !gnutls) || (!is_gnutls && !ossl))
			offs[i] = 0;
	}
	return ossl && gnutls ? "OpenSSL+GnuTLS" : ossl ? "OpenSSL" : gnutls ? "GnuTLS" : NULL;
}

/*
 * Ends the attaching of f (NULL: it could not be allocated) with err: a failure is counted and
 * said, a success kept. The verdict is remembered under key when there is one. 1 or err.
 */
static int attach__settle(struct attach *a, struct attached_file *f, int err, const char *library,
			  const char *path, const struct file_key *key)
{
	if (err) {
		fprintf(stderr, "tokentap: cannot attach %s probes to %s: %s\n", library, path,
			strerror(-err));
		if (f)
			attached__destroy(f);
		a->failures++;
		if (key)
			seen__put(a, key, FILE_FAILED);
		return err;
	}
	a->nfiles++;
	if (key)
		seen__put(a, key, FILE_ATTACHED);
	return 1;
}

static int attach__elf(struct attach *a, const char *path, const uint64_t *offs,
		       const char *library)
{
	struct attached_file *f = attach__new_file(a, path);
	int err;

	if (!f)
		return -ENOMEM;
	f->method = "symbols";
	err = attach__settle(a, f, attach__probes(a, f, offs), library, path, NULL);
	if (err < 0)
		return err;
	if (a->verbose)
		fprintf(stderr, "tokentap: %s probes attached to %s (%s)\n", library, path,
			f->method);
	return 1;
}

/*
 * A Go executable carrying crypto/tls (attach/golang.c): 1 attached, 0 not one, <0 failed.
 * Verdicts are remembered as for any file.
 */
static int attach__go(struct attach *a, const char *path, const struct file_key *key)
{
	struct golang_plan plan;
	struct attached_file *f;
	uint64_t t0 = now_ns();
	int err = golang__discover(path, &plan);

	if (err <= 0)
		return err;
	f = attach__new_file(a, path);
	err = f ? golang__attach(&plan, &a->progs.go, path, &f->more, &f->nmore) : -ENOMEM;
	if (f)
		f->method = plan.method;
	golang__plan_free(&plan);
	err = attach__settle(a, f, err, "Go crypto/tls", path, key);
	if (err < 0)
		return err;
	if (a->verbose)
		fprintf(stderr,
			"tokentap: Go crypto/tls probes attached to %s (%s, %u probes, %.1f ms)\n",
			path, f->method, f->nmore, (double)(now_ns() - t0) / 1e6);
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

/* ---- the bound, users ----------------------------------------------------------------------- */

static bool attach__full(const struct attach *a)
{
	return a->max_files && a->nfiles >= a->max_files;
}

/* Whether a file is to be examined now: never seen, detached since, or refused while full. */
static bool attach__wants(const struct attach *a, const struct file_key *k)
{
	enum file_verdict v = seen__get(a, k);

	return v == FILE_UNSEEN || v == FILE_DETACHED || (v == FILE_REFUSED && !attach__full(a));
}

/* max_files reached: remembered so that the file is looked at again once one is detached. */
static int attach__refuse(struct attach *a, const char *path, const struct file_key *k, bool tls)
{
	if (tls) {
		a->refusals++;
		fprintf(stderr, "tokentap: not attaching %s: %u files attached (max-attached-files)\n",
			path, a->nfiles);
	}
	seen__put(a, k, FILE_REFUSED);
	return 0;
}

/* The file just attached (the last one) gets its identity, and is pinned during the startup
 * scan of the standard libraries. */
static int attach__adopt(struct attach *a, const struct file_key *k, int err)
{
	struct attached_file *f;

	if (err <= 0 || !a->nfiles)
		return err;
	f = &a->files[a->nfiles - 1];
	f->key = *k;
	/* Pinned: the standard libraries of the startup scan and, unless told otherwise, every
	 * file of tokentap's own mount namespace (the host's): few, long-lived, and mapped again
	 * by the host's next processes, each of which would meet a window if they were detached.
	 * Files reached only through another process's root (containers' copies) come and go
	 * with their images (a probe keeps the inode, and so the image layer, alive): counted. */
	f->pinned = a->pinning || (a->pin_host && strncmp(f->path, "/proc/", 6) != 0);
	f->idle_ns = now_ns(); /* no user yet: a file nobody maps is an orphan from the start */
	f->used_ns = f->idle_ns;
	if (a->cur_exec_ns) {
		uint64_t w = f->idle_ns > a->cur_exec_ns ? f->idle_ns - a->cur_exec_ns : 0;

		a->exec_attaches++;
		a->window_last_ns = w;
		a->window_sum_ns += w;
		if (w > a->window_max_ns)
			a->window_max_ns = w;
		if (a->verbose)
			fprintf(stderr, "tokentap: attached %s %.3f ms after the exec\n", f->path,
				(double)w / 1e6);
	}
	return err;
}

static struct attached_file *attach__find(struct attach *a, const struct file_key *k)
{
	for (uint32_t i = 0; i < a->nfiles; i++) {
		if (!memcmp(&a->files[i].key, k, sizeof(*k)))
			return &a->files[i];
	}
	return NULL;
}

static struct pid_users **pids__slot(struct attach *a, uint32_t pid)
{
	struct pid_users **pp = &a->pids[(pid * 2654435761u) % PID_BUCKETS];

	while (*pp && (*pp)->pid != pid)
		pp = &(*pp)->next;
	return pp;
}

/* Takes pid's entry out of the table (NULL when it had none); free with pid_users__free. */
static struct pid_users *pids__take(struct attach *a, uint32_t pid)
{
	struct pid_users **pp = pids__slot(a, pid), *u = *pp;

	if (u) {
		*pp = u->next;
		a->npids--;
	}
	return u;
}

static void pid_users__free(struct pid_users *u)
{
	if (u)
		free(u->keys);
	free(u);
}

/* pid maps attached file f (or will: its loader maps what DT_NEEDED names). */
static void attach__use(struct attach *a, uint32_t pid, struct attached_file *f)
{
	struct pid_users **pp = pids__slot(a, pid), *u = *pp;

	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return;
		u->pid = pid;
		*pp = u;
		a->npids++;
	}
	for (uint32_t i = 0; i < u->n; i++) {
		if (!memcmp(&u->keys[i], &f->key, sizeof(f->key)))
			return;
	}
	if (u->n == u->cap) {
		uint32_t cap = u->cap ? u->cap * 2 : 4;
		void *p = realloc(u->keys, cap * sizeof(*u->keys));

		if (!p)
			return;
		u->keys = p;
		u->cap = cap;
	}
	u->keys[u->n++] = f->key;
	f->users++;
	a->users++;
	f->idle_ns = 0;
	f->used_ns = now_ns();
}

/* A process stopped mapping these files (it exited, or exec'd another image). */
static void attach__release(struct attach *a, struct pid_users *u)
{
	uint64_t now = now_ns();

	for (uint32_t i = 0; u && i < u->n; i++) {
		struct attached_file *f = attach__find(a, &u->keys[i]);

		if (!f || !f->users)
			continue;
		a->users--;
		if (--f->users == 0)
			f->idle_ns = now;
	}
	pid_users__free(u);
}

/* ---- stripped BoringSSL (attach/boringssl.c) -------------------------------------------- */

/* The probes carry their library as the cookie: tls.bpf.c tags the records TT_SRC_BORINGSSL. */
static int attach__bssl_probes(struct attach *a, struct attached_file *f, const uint64_t *offs)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = TT_SRC_BORINGSSL);
	static const int fns[] = {ATTACH_FN_SSL_WRITE, ATTACH_FN_SSL_READ};
	int i, err = 0;

	for (i = 0; i < 2 && !err; i++) {
		int fn = fns[i];

		f->links[2 * fn] = bpf_program__attach_uprobe_opts(a->progs.entry[fn], -1, f->path,
								   (size_t)offs[i], &opts);
		err = f->links[2 * fn] ? 0 : (errno ? -errno : -EINVAL);
		if (!err)
			err = attach__one_probe(a->progs.ret[fn], f->path, offs[i], true,
						&f->links[2 * fn + 1]);
	}
	return err;
}

static int attach__bssl_found(struct attach *a, const struct bssl_found *found,
			      const struct file_key *key)
{
	const uint64_t offs[2] = {found->res.write_off, found->res.read_off};
	struct attached_file *f = attach__new_file(a, found->path);
	int err = f ? 0 : -ENOMEM;

	if (f) {
		f->method = found->from_cache ? "boringssl-code (cached)" : "boringssl-code";
		f->code_shape = true;
		err = attach__bssl_probes(a, f, offs);
	}
	err = attach__settle(a, f, err, "BoringSSL", found->path, key);
	if (err < 0)
		return err;
	if (a->verbose)
		fprintf(stderr,
			"tokentap: BoringSSL probes attached to %s (%s, SSL_write %#llx, SSL_read "
			"%#llx, discovery %.1f ms)\n",
			found->path, f->method, (unsigned long long)found->res.write_vaddr,
			(unsigned long long)found->res.read_vaddr, (double)found->took_us / 1e3);
	return 1;
}

/* ---- rustls on aws-lc (attach/awslc.c) ------------------------------------------------------ */

/* Four entry probes and two return probes (the opens), kept with the file's other extra links. */
static int attach__aead_probes(struct attach *a, struct attached_file *f, const uint64_t *offs)
{
	const struct aead_progs *p = &a->progs.aead;
	int i, err = 0;

	if (!p->entry[AWSLC_SEAL] || !p->open_ret)
		return -EOPNOTSUPP;
	f->more = calloc(AWSLC_FNS + 2, sizeof(*f->more));
	if (!f->more)
		return -ENOMEM;
	f->nmore = AWSLC_FNS + 2;
	for (i = 0; i < AWSLC_FNS && !err; i++)
		err = attach__one_probe(p->entry[i], f->path, offs[i], false, &f->more[i]);
	if (!err)
		err = attach__one_probe(p->open_ret, f->path, offs[AWSLC_OPEN], true,
					&f->more[AWSLC_FNS]);
	if (!err)
		err = attach__one_probe(p->open_ret, f->path, offs[AWSLC_OPEN_GATHER], true,
					&f->more[AWSLC_FNS + 1]);
	return err;
}

static int attach__aead_found(struct attach *a, const struct bssl_found *found,
			      const struct file_key *key)
{
	const struct awslc_result *r = &found->aead;
	struct attached_file *f = attach__new_file(a, found->path);
	int err = f ? 0 : -ENOMEM;

	if (f) {
		f->method = found->from_cache ? "aws-lc-code (cached)" : "aws-lc-code";
		f->code_shape = true;
		err = attach__aead_probes(a, f, r->off);
	}
	err = attach__settle(a, f, err, "rustls (aws-lc)", found->path, key);
	if (err < 0)
		return err;
	if (a->verbose)
		fprintf(stderr,
			"tokentap: rustls probes attached to %s (%s, seal %#llx, seal_scatter %#llx, "
			"open %#llx, open_gather %#llx, discovery %.1f ms)\n",
			found->path, f->method, (unsigned long long)r->vaddr[AWSLC_SEAL],
			(unsigned long long)r->vaddr[AWSLC_SEAL_SCATTER],
			(unsigned long long)r->vaddr[AWSLC_OPEN],
			(unsigned long long)r->vaddr[AWSLC_OPEN_GATHER],
			(double)found->took_us / 1e3);
	return 1;
}

/* What the code-shape analysis found: BoringSSL's entry points, else aws-lc's; 0 neither. */
static int attach__code_found(struct attach *a, const struct bssl_found *found,
			      const struct file_key *key)
{
	if (!found->err)
		return attach__bssl_found(a, found, key);
	if (!found->aead_err)
		return attach__aead_found(a, found, key);
	return 0;
}

/* 1 attached from the cache, 0 not BoringSSL or analysis queued on the worker, <0 failed. */
static int attach__bssl(struct attach *a, const char *path, const struct stat *st,
			const struct file_key *key)
{
	struct bssl_found found;

	if (!bssl__worth_analysing(path, st))
		return 0;
	if (!a->bssl)
		a->bssl = bssl_worker__new(getenv("TOKENTAP_STATE_DIR") ?: "/var/lib/tokentap",
					   a->verbose);
	if (!a->bssl)
		return 0;
	if (bssl_worker__lookup(a->bssl, path, &found))
		return attach__code_found(a, &found, key);
	/* Just exec'd: held until the analysis is done, so its first call is seen. */
	if (!bssl_worker__submit(a->bssl, path) && a->cur_exec_pid)
		exec_hold__hold(&a->hold, a->cur_exec_pid, path, now_ns());
	return 0;
}

/* Analyses finished on the worker: attach what they found. */
static void attach__bssl_poll(struct attach *a)
{
	struct bssl_found *found = malloc(sizeof(*found));
	struct file_key key;
	struct stat st;

	while (found && a->bssl && bssl_worker__poll(a->bssl, found) == 1) {
		bool none = found->err && found->aead_err;

		if (a->verbose && none)
			fprintf(stderr,
				"tokentap: %s: no BoringSSL or aws-lc entry points (%s; %s; %.1f ms)\n",
				found->path, found->res.why, found->aead.why,
				(double)found->took_us / 1e3);
		if (!none && !stat(found->path, &st)) {
			file_key__from_stat(&key, &st);
			/* Not attached meanwhile under another name: attach now. */
			if (!attach__find(a, &key))
				attach__adopt(a, &key, attach__code_found(a, found, &key));
		}
		exec_hold__release_path(&a->hold, found->path, now_ns());
	}
	free(found);
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
	if (!attach__wants(a, &key))
		return 0;
	n = elf_syms__lookup(path, fn_names, ATTACH_FN__COUNT, offs);
	if (n < 0)
		return n; /* unreadable now; not remembered, a later scan may succeed */
	library = offs__library(offs);
	if (attach__full(a))
		return attach__refuse(a, path, &key, library != NULL);
	if (!library && a->progs.go.write) {
		err = attach__go(a, path, &key);
		if (err)
			return attach__adopt(a, &key, err); /* Go: attached (1) or failed (<0) */
	}
	if (!library && a->progs.entry[ATTACH_FN_SSL_WRITE]) {
		err = attach__bssl(a, path, &st, &key);
		if (err)
			return attach__adopt(a, &key, err); /* BoringSSL: cached verdict attached */
	}
	if (!library)
		return seen__put(a, &key, FILE_NO_TLS);
	err = attach__elf(a, path, offs, library);
	/* ENOENT: a /proc/<pid>/root path whose process exited meanwhile; the file itself may be
	 * fine, so it is examined again when another process maps it. */
	if (err != -ENOENT)
		seen__put(a, &key, err < 0 ? FILE_FAILED : FILE_ATTACHED);
	return attach__adopt(a, &key, err);
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
	struct attached_file *f;
	struct file_key key;

	if (snprintf(full, sizeof(full), "/proc/%u/root%s", pid, path) >= (int)sizeof(full))
		return -ENAMETOOLONG;
	int ret;

	if (stat(full, &in_ns))
		return -errno;
	/* Same file under its own name: keep the readable path for logs and stats. */
	if (!stat(path, &here) && here.st_dev == in_ns.st_dev && here.st_ino == in_ns.st_ino)
		ret = attach__file(a, path);
	else
		ret = attach__file(a, full);
	file_key__from_stat(&key, &in_ns);
	f = attach__find(a, &key);
	if (f)
		attach__use(a, pid, f);
	return ret;
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

	/* Pinned: every host process started later maps these, so they stay attached with or
	 * without users (detaching would open a window at each such process's start). */
	a->pinning = true;
	for (i = 0; i < sizeof(std_tls_libs) / sizeof(std_tls_libs[0]); i++)
		attach__file(a, std_tls_libs[i]);
	a->pinning = false;
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

/* ---- detaching ----------------------------------------------------------------------------- */

struct reap {
	struct bpf_link **links;
	size_t n;
};

static void *reap__run(void *arg)
{
	struct reap *r = arg;

	attach__destroy_links(r->links, r->n);
	free(r->links);
	free(r);
	return NULL;
}

static void attach__join_reaper(struct attach *a)
{
	if (a->reaper_live)
		pthread_join(a->reaper, NULL);
	a->reaper_live = false;
}

/* Closing links waits for RCU grace periods (~140 ms here): done off the event loop, so the
 * next exec is not kept waiting. */
static void attach__reap(struct attach *a, struct reap *r)
{
	attach__join_reaper(a);
	if (!pthread_create(&a->reaper, NULL, reap__run, r)) {
		a->reaper_live = true;
		return;
	}
	reap__run(r);
}

static int reap__add(struct reap *r, struct attached_file *f)
{
	size_t per = 2 * ATTACH_FN__COUNT;
	void *p = realloc(r->links, (r->n + per + f->nmore) * sizeof(*r->links));

	if (!p)
		return -ENOMEM;
	r->links = p;
	memcpy(r->links + r->n, f->links, per * sizeof(*r->links));
	if (f->nmore)
		memcpy(r->links + r->n + per, f->more, f->nmore * sizeof(*r->links));
	r->n += per + f->nmore;
	memset(f->links, 0, sizeof(f->links));
	free(f->more);
	f->more = NULL;
	f->nmore = 0;
	return 0;
}

static bool attach__detachable(const struct attached_file *f, uint64_t now)
{
	return !f->pinned && !f->users && f->idle_ns && now - f->idle_ns >= ORPHAN_GRACE_NS &&
	       now - f->used_ns >= ORPHAN_GRACE_NS;
}

static void attach__detach_idle(struct attach *a, uint64_t now)
{
	struct reap *r = calloc(1, sizeof(*r));
	uint32_t i = 0;

	if (!r)
		return;
	while (i < a->nfiles) {
		struct attached_file *f = &a->files[i];

		if (!attach__detachable(f, now) || reap__add(r, f)) {
			i++;
			continue;
		}
		if (a->verbose)
			fprintf(stderr, "tokentap: detached %s: its last user exited\n", f->path);
		seen__put(a, &f->key, FILE_DETACHED);
		a->detaches++;
		attached__destroy(f); /* its links are the reaper's now */
		*f = a->files[--a->nfiles];
	}
	if (r->n)
		attach__reap(a, r);
	else
		reap__run(r);
}

static void attach__rescan_users(struct attach *a)
{
	struct dirent *de;
	DIR *d = opendir("/proc");

	for (uint32_t b = 0; b < PID_BUCKETS; b++) {
		while (a->pids[b]) {
			struct pid_users *u = a->pids[b];

			a->pids[b] = u->next;
			pid_users__free(u);
		}
	}
	a->npids = 0;
	a->users = 0;
	for (uint32_t i = 0; i < a->nfiles; i++) {
		if (a->files[i].users)
			a->files[i].idle_ns = now_ns();
		a->files[i].users = 0;
	}
	while (d && (de = readdir(d)) != NULL) {
		if (is_pid_dir(de->d_name))
			attach__scan_pid(a, (uint32_t)strtoul(de->d_name, NULL, 10));
	}
	if (d)
		closedir(d);
}

/*
 * Files with no user left are detached once no process maps them: the counts come from exec and
 * exit events, which miss forked children and lost records, so every process is scanned again
 * (users counted afresh) before anything is detached. At most once per SWEEP_MIN_GAP_NS.
 */
static void attach__sweep(struct attach *a)
{
	uint64_t now = now_ns();
	bool due = false;

	if (now - a->last_sweep_ns < SWEEP_MIN_GAP_NS)
		return;
	for (uint32_t i = 0; i < a->nfiles && !due; i++)
		due = attach__detachable(&a->files[i], now);
	if (!due)
		return;
	a->last_sweep_ns = now;
	a->sweeps++;
	attach__rescan_users(a);
	attach__detach_idle(a, now_ns());
}

/* ---- exec follow-up ------------------------------------------------------------------------- */

static uint64_t pending__due(const struct pending_scan *p)
{
	return p->exec_ns + (uint64_t)rescan_ms[p->step] * 1000000ULL;
}

/* ---- at exec: the libraries the loader is about to map -------------------------------------- */

/* /proc/<pid>/exe of a chroot'ed process reads with its root in front: the path inside. */
static void exe__path_in_root(uint32_t pid, char *path)
{
	char link[64], root[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%u/root", pid);
	n = readlink(link, root, sizeof(root) - 1);
	if (n <= 1)
		return;
	root[n] = '\0';
	if (!strncmp(path, root, (size_t)n) && path[n] == '/')
		memmove(path, path + n, strlen(path + n) + 1);
}

/* Library directories the loader searches by default (no ld.so.cache is read). */
static const char *const lib_dirs[] = {
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
};

struct needed_walk {
	uint32_t pid;
	char names[NEEDED_MAX_LIBS][ELF_NEEDED_NAME_MAX];
	uint32_t n;
	bool tls;	/* a detachable TLS file is in the closure */
};

/* name as the loader finds it for pid: in the object's RUNPATH ($ORIGIN: the object's own
 * directory), then the default directories, all inside pid's root. The path inside the root is
 * written to out. */
static bool needed__resolve(uint32_t pid, const char *name, const char *origin,
			    const char *runpath, char *out, size_t cap)
{
	char full[4096], dirs[ELF_NEEDED_PATH_MAX], *dir, *save = NULL;
	struct stat st;

	snprintf(dirs, sizeof(dirs), "%s", runpath);
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if (!strncmp(dir, "$ORIGIN", 7) || !strncmp(dir, "${ORIGIN}", 9))
			snprintf(out, cap, "%s%s/%s", origin, dir + (dir[1] == '{' ? 9 : 7), name);
		else
			snprintf(out, cap, "%s/%s", dir, name);
		snprintf(full, sizeof(full), "/proc/%u/root%s", pid, out);
		if (out[0] == '/' && !stat(full, &st) && S_ISREG(st.st_mode))
			return true;
	}
	for (size_t i = 0; i < sizeof(lib_dirs) / sizeof(lib_dirs[0]); i++) {
		snprintf(out, cap, "%s/%s", lib_dirs[i], name);
		snprintf(full, sizeof(full), "/proc/%u/root%s", pid, out);
		if (!stat(full, &st) && S_ISREG(st.st_mode))
			return true;
	}
	return false;
}

static bool needed__is_tls(const char *name)
{
	return !strncmp(name, "libssl.so", 9) || !strncmp(name, "libgnutls.so", 12);
}

static bool needed__seen_name(const struct needed_walk *w, const char *name)
{
	for (uint32_t i = 0; i < w->n; i++) {
		if (!strcmp(w->names[i], name))
			return true;
	}
	return false;
}

/* One object of the closure (path inside pid's root): probe it, queue what it needs. */
static void needed__visit(struct attach *a, struct needed_walk *w, const char *path,
			  const char *read_path)
{
	char full[4096], origin[ELF_NEEDED_PATH_MAX], lib[ELF_NEEDED_PATH_MAX];
	struct elf_needed *need;
	struct attached_file *f;
	struct file_key key;
	struct stat st;

	snprintf(full, sizeof(full), "/proc/%u/root%s", w->pid, path);
	if (read_path)
		snprintf(full, sizeof(full), "%s", read_path);
	if (stat(full, &st))
		return;
	/* The executable was examined by the maps scan already (the kernel mapped it). */
	if (!read_path && attach__pid_file(a, w->pid, path) > 0)
		a->needed_attaches++;
	file_key__from_stat(&key, &st);
	f = attach__find(a, &key);
	if (f && !f->pinned)
		w->tls = true;
	need = malloc(sizeof(*need));
	if (!need || elf_needed__read(full, need) < 0) {
		free(need);
		return;
	}
	snprintf(origin, sizeof(origin), "%s", path);
	*(strrchr(origin, '/') ? strrchr(origin, '/') : origin) = '\0';
	/* Two passes: TLS libraries first, so they are attached before the rest is read. */
	for (uint32_t k = 0; k < 2 * need->n && w->n < NEEDED_MAX_LIBS; k++) {
		uint32_t i = k % need->n;

		if ((k < need->n) != needed__is_tls(need->names[i]) ||
		    needed__seen_name(w, need->names[i]))
			continue;
		snprintf(w->names[w->n++], ELF_NEEDED_NAME_MAX, "%s", need->names[i]);
		if (needed__resolve(w->pid, need->names[i], origin, need->runpath, lib, sizeof(lib)))
			needed__visit(a, w, lib, NULL);
	}
	free(need);
}

/*
 * Uprobes are registered on an inode and apply to mappings made later: attaching the libssl
 * the new image needs (DT_NEEDED, transitively) before its loader maps it leaves no window at
 * all, however soon the process calls SSL_write. Walked once per executable when its closure
 * has nothing to attach; again at every exec when it holds a library that can be detached.
 */
static void attach__needed(struct attach *a, uint32_t pid)
{
	struct needed_walk *w;
	char exe[64], path[4096];
	struct seen_slot *slot;
	struct file_key key;
	struct stat st;
	ssize_t n;

	snprintf(exe, sizeof(exe), "/proc/%u/exe", pid);
	if (stat(exe, &st))
		return;
	file_key__from_stat(&key, &st);
	slot = a->seen_cap ? seen__slot(a->seen, a->seen_cap, &key) : NULL;
	if (slot && slot->verdict != FILE_UNSEEN && slot->walk == WALK_NOTHING)
		return;
	n = readlink(exe, path, sizeof(path) - 1);
	w = calloc(1, sizeof(*w));
	if (n <= 0 || !w) {
		free(w);
		return;
	}
	path[n] = '\0';
	w->pid = pid;
	exe__path_in_root(pid, path);
	needed__visit(a, w, path, exe);
	/* The table may have grown while walking: find the executable's slot again. */
	slot = a->seen_cap ? seen__slot(a->seen, a->seen_cap, &key) : NULL;
	if (slot && slot->verdict != FILE_UNSEEN)
		slot->walk = w->tls ? WALK_AGAIN : WALK_NOTHING;
	free(w);
}

void attach__on_exec(struct attach *a, uint32_t pid)
{
	attach__on_exec_at(a, pid, now_ns());
}

void attach__on_exec_at(struct attach *a, uint32_t pid, uint64_t exec_ns)
{
	/* The old image's files are released after the new one's are counted, so a library
	 * both map never looks unused. */
	struct pid_users *old = pids__take(a, pid);
	uint64_t seen = now_ns(), scanned, before = a->exec_attaches;
	struct pending_scan *p = NULL;
	uint32_t i;

	a->cur_exec_ns = exec_ns;
	a->cur_exec_pid = pid;
	attach__scan_pid(a, pid);
	scanned = now_ns();
	attach__needed(a, pid);
	a->cur_exec_ns = 0;
	a->cur_exec_pid = 0;
	attach__release(a, old);
	/* Where the window goes: event delivery, the maps scan, the DT_NEEDED walk. */
	if (a->verbose && a->exec_attaches != before)
		fprintf(stderr,
			"tokentap: exec of pid %u: event after %.3f ms, maps scan %.3f ms, "
			"DT_NEEDED walk %.3f ms\n",
			pid, seen > exec_ns ? (double)(seen - exec_ns) / 1e6 : 0.0,
			(double)(scanned - seen) / 1e6, (double)(now_ns() - scanned) / 1e6);
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
	p->kexec_ns = exec_ns;
}

int attach__next_due_ms(const struct attach *a, int max_ms)
{
	uint64_t now = now_ns(), best = UINT64_MAX, held;
	uint32_t i;

	for (i = 0; i < a->npending; i++) {
		uint64_t due = pending__due(&a->pending[i]);

		if (due < best)
			best = due;
	}
	/* An analysis on the BoringSSL worker: look for its result soon (a process may wait). */
	if (a->bssl && bssl_worker__busy(a->bssl) && now + 5000000ULL < best)
		best = now + 5000000ULL;
	held = exec_hold__next_deadline(&a->hold);
	if (held < best)
		best = held;
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
		a->cur_exec_ns = p->kexec_ns;
		err = attach__scan_pid(a, p->pid);
		a->cur_exec_ns = 0;
		if (err == -ENOENT || ++p->step >= RESCAN_STEPS)
			*p = a->pending[--a->npending];
		else
			i++;
	}
	attach__bssl_poll(a);
	exec_hold__expire(&a->hold, now_ns());
	attach__sweep(a);
}

/* ---- exit and detach ------------------------------------------------------------------------ */

void attach__on_exit(struct attach *a, uint32_t pid)
{
	uint32_t i;

	exec_hold__forget(&a->hold, pid);
	attach__release(a, pids__take(a, pid));
	for (i = 0; i < a->npending; i++) {
		if (a->pending[i].pid == pid) {
			a->pending[i] = a->pending[--a->npending];
			break;
		}
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
	a->max_files = ATTACH_MAX_FILES_DEFAULT;
	a->pin_host = true;
	a->hold.max_ms = EXEC_HOLD_DEFAULT_MS;
	a->hold.verbose = verbose;
	return a;
}

void attach__set_exec_hold(struct attach *a, bool on, uint32_t max_ms)
{
	a->hold.max_ms = on ? (max_ms ? max_ms : EXEC_HOLD_DEFAULT_MS) : 0;
}

void attach__set_pin_host(struct attach *a, bool pin)
{
	a->pin_host = pin;
}

void attach__set_max_files(struct attach *a, uint32_t max_files)
{
	a->max_files = max_files ? max_files : ATTACH_MAX_FILES_DEFAULT;
}

void attach__stats(const struct attach *a, struct attach_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->files = a->nfiles;
	st->failures = a->failures;
	st->checked_files = (uint32_t)a->seen_len;
	st->pending = a->npending;
	st->pending_dropped = a->pending_dropped;
	st->users = a->users;
	st->processes = a->npids;
	for (uint32_t i = 0; i < a->nfiles; i++) {
		st->pinned += a->files[i].pinned;
		st->code_shape_files += a->files[i].code_shape;
	}
	st->max_files = a->max_files;
	st->refusals = a->refusals;
	st->detaches = a->detaches;
	st->sweeps = a->sweeps;
	st->exec_attaches = a->exec_attaches;
	st->needed_attaches = a->needed_attaches;
	st->exec_window_last_ns = a->window_last_ns;
	st->exec_window_max_ns = a->window_max_ns;
	st->exec_window_avg_ns = a->exec_attaches ? a->window_sum_ns / a->exec_attaches : 0;
	st->exec_holds = a->hold.held;
	st->exec_hold_timeouts = a->hold.timeouts;
	st->exec_hold_failures = a->hold.failures;
	st->exec_hold_max_ns = a->hold.max_ns;
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
	attach__join_reaper(a);
	exec_hold__release_all(&a->hold, now_ns());
	bssl_worker__free(a->bssl);
	for (i = 0; i < PID_BUCKETS; i++) {
		while (a->pids[i]) {
			struct pid_users *u = a->pids[i];

			a->pids[i] = u->next;
			pid_users__free(u);
		}
	}
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
