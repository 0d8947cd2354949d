// SPDX-License-Identifier: Apache-2.0
/*
 * Process facts for audit records, cached per pid, with executable hashes cached per file
 * version. Everything is read through proc_root/<pid>/..., which works for processes in other
 * mount namespaces (containers) too: /proc/<pid>/exe opens the file the process runs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit/procinfo.h"
#include "span/builder.h"
#include "util/redact.h"

#define PROC_BUCKETS 1024
#define PROC_MAX_ENTRIES 65536
#define PROC_GRACE_NS (120ull * 1000000000ull)
#define HASH_CACHE_SLOTS 4096
#define HASH_MAX_FILE (2ull << 30) /* bigger executables are not hashed (recorded as unknown) */
#define USER_CACHE_SLOTS 256

struct proc_entry {
	struct proc_entry *next;
	struct proc_facts f;
};

struct hash_slot {
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	off_t size;
	char hex[65];
};

struct user_slot {
	int64_t uid;
	char name[64];
};

struct proc_table {
	const char *proc_root;
	struct proc_entry *buckets[PROC_BUCKETS];
	size_t n;
	struct hash_slot hashes[HASH_CACHE_SLOTS];
	size_t next_hash_slot;
	struct user_slot users[USER_CACHE_SLOTS];
	size_t next_user_slot;
	struct proc_table_stats st;
};

static size_t proc_bucket(uint32_t pid)
{
	return (pid * 2654435761u) % PROC_BUCKETS;
}

struct proc_table *proc_table__new(const char *proc_root)
{
	struct proc_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->proc_root = proc_root ? proc_root : "/proc";
	for (size_t i = 0; i < USER_CACHE_SLOTS; i++)
		t->users[i].uid = -1;
	return t;
}

/* ---- reading /proc ------------------------------------------------------------------------ */

static void proc__readlink(const struct proc_table *t, uint32_t pid, const char *what, char *out,
			   size_t cap)
{
	char path[96];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%u/%s", t->proc_root, pid, what);
	n = readlink(path, out, cap - 1);
	out[n > 0 ? n : 0] = '\0';
	if (n > 10 && !strcmp(out + n - 10, " (deleted)"))
		out[n - 10] = '\0';
}

static void proc__status(const struct proc_table *t, struct proc_facts *f)
{
	char path[96], line[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%u/status", t->proc_root, f->pid);
	fp = fopen(path, "re");
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		long long r, e;
		unsigned pp;

		if (sscanf(line, "Uid: %lld %lld", &r, &e) == 2) {
			f->uid = r;
			f->euid = e;
		} else if (!f->ppid && sscanf(line, "PPid: %u", &pp) == 1) {
			f->ppid = pp;
		}
	}
	fclose(fp);
}

static void proc__cmdline(const struct proc_table *t, struct proc_facts *f)
{
	char path[96], raw[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%u/cmdline", t->proc_root, f->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, raw, sizeof(raw));
	close(fd);
	if (n <= 0)
		return;
	/* A cut argument may be the first half of a secret: drop it rather than show it. */
	if (n == (ssize_t)sizeof(raw)) {
		char *last = memrchr(raw, '\0', (size_t)n);

		n = last ? last - raw : 0;
	}
	redact__cmdline(raw, (size_t)n, f->cmdline, sizeof(f->cmdline));
}

/* cgroup__pod_uid and the container id: span/resource.c's parser, shared with the spans. */
static void proc__cgroup(const struct proc_table *t, struct proc_facts *f)
{
	struct cgroup_ids ids;

	if (cgroup__read(t->proc_root, f->pid, &ids) <= 0)
		return;
	snprintf(f->container_id, sizeof(f->container_id), "%s", ids.container_id);
	snprintf(f->pod_uid, sizeof(f->pod_uid), "%s", ids.pod_uid);
}

static void proc__user(struct proc_table *t, struct proc_facts *f)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	struct user_slot *s;

	if (f->uid < 0)
		return;
	for (size_t i = 0; i < USER_CACHE_SLOTS; i++) {
		if (t->users[i].uid == f->uid) {
			snprintf(f->user, sizeof(f->user), "%s", t->users[i].name);
			return;
		}
	}
	if (!getpwuid_r((uid_t)f->uid, &pw, buf, sizeof(buf), &res) && res)
		snprintf(f->user, sizeof(f->user), "%s", res->pw_name);
	s = &t->users[t->next_user_slot++ % USER_CACHE_SLOTS];
	s->uid = f->uid;
	snprintf(s->name, sizeof(s->name), "%s", f->user);
}

/* ---- executable hashes --------------------------------------------------------------------- */

static int hash__fd(int fd, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32], buf[65536];
	unsigned int mdlen = 0;
	ssize_t n;
	int ret = -EIO;

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto out;
	if (n < 0 || !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 32)
		goto out;
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* The file the process runs, opened through /proc so that a replaced or deleted file still
 * hashes to what is running. */
static void proc__exe_hash(struct proc_table *t, struct proc_facts *f)
{
	char path[96];
	struct hash_slot *s;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%u/exe", t->proc_root, f->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size > HASH_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		t->st.hash_failures++;
		return;
	}
	for (size_t i = 0; i < HASH_CACHE_SLOTS; i++) {
		s = &t->hashes[i];
		if (s->hex[0] && s->dev == st.st_dev && s->ino == st.st_ino &&
		    s->size == st.st_size &&
		    s->mtime_ns == (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec) {
			memcpy(f->exe_sha256, s->hex, sizeof(s->hex));
			t->st.hash_cache_hits++;
			close(fd);
			return;
		}
	}
	s = &t->hashes[t->next_hash_slot++ % HASH_CACHE_SLOTS];
	if (hash__fd(fd, s->hex)) {
		s->hex[0] = '\0';
		t->st.hash_failures++;
	} else {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->size = st.st_size;
		s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		memcpy(f->exe_sha256, s->hex, sizeof(s->hex));
		t->st.hashed++;
	}
	close(fd);
}

/* ---- the table ----------------------------------------------------------------------------- */

static struct proc_entry **proc__slot(struct proc_table *t, uint32_t pid)
{
	struct proc_entry **pp = &t->buckets[proc_bucket(pid)];

	while (*pp && (*pp)->f.pid != pid)
		pp = &(*pp)->next;
	return pp;
}

static struct proc_entry *proc__read(struct proc_table *t, uint32_t pid, uint32_t ppid)
{
	struct proc_entry *e = calloc(1, sizeof(*e));
	struct proc_facts *f;

	if (!e)
		return NULL;
	f = &e->f;
	f->pid = pid;
	f->ppid = ppid;
	f->uid = f->euid = -1;
	proc__readlink(t, pid, "exe", f->exe, sizeof(f->exe));
	if (!f->exe[0]) {
		free(e); /* gone already, or a kernel thread */
		return NULL;
	}
	proc__status(t, f);
	proc__cmdline(t, f);
	proc__cgroup(t, f);
	proc__user(t, f);
	if (f->ppid)
		proc__readlink(t, f->ppid, "exe", f->parent_exe, sizeof(f->parent_exe));
	proc__exe_hash(t, f);
	t->st.learned++;
	return e;
}

static struct proc_entry *proc__insert(struct proc_table *t, uint32_t pid, uint32_t ppid)
{
	struct proc_entry **pp = proc__slot(t, pid), *e;

	if (!*pp && t->n >= PROC_MAX_ENTRIES)
		return NULL; /* bounded; a later lookup reads the process on demand */
	e = proc__read(t, pid, ppid);
	if (!e)
		return NULL;
	if (*pp) {
		e->next = (*pp)->next;
		free(*pp);
	} else {
		t->n++;
	}
	*pp = e;
	return e;
}

void proc_table__learn(struct proc_table *t, uint32_t pid, uint32_t ppid)
{
	struct proc_entry *e = proc__insert(t, pid, ppid);

	if (e)
		e->f.from_exec = true;
}

void proc_table__exit(struct proc_table *t, uint32_t pid, uint64_t now_ns)
{
	struct proc_entry *e = *proc__slot(t, pid);

	if (!e)
		return;
	e->f.exited = true;
	e->f.exited_ns = now_ns;
}

const struct proc_facts *proc_table__get(struct proc_table *t, uint32_t pid)
{
	struct proc_entry *e = *proc__slot(t, pid);

	if (!e)
		e = proc__insert(t, pid, 0);
	if (!e) {
		t->st.lookups_missed++;
		return NULL;
	}
	return &e->f;
}

void proc_table__tick(struct proc_table *t, uint64_t now_ns)
{
	for (size_t b = 0; b < PROC_BUCKETS; b++) {
		struct proc_entry **pp = &t->buckets[b];

		while (*pp) {
			struct proc_entry *e = *pp;

			if (e->f.exited && now_ns - e->f.exited_ns > PROC_GRACE_NS) {
				*pp = e->next;
				free(e);
				t->n--;
				t->st.evicted++;
			} else {
				pp = &e->next;
			}
		}
	}
}

void proc_table__stats(const struct proc_table *t, struct proc_table_stats *st)
{
	*st = t->st;
}

void proc_table__free(struct proc_table *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < PROC_BUCKETS; b++) {
		while (t->buckets[b]) {
			struct proc_entry *e = t->buckets[b];

			t->buckets[b] = e->next;
			free(e);
		}
	}
	free(t);
}
