// SPDX-License-Identifier: Apache-2.0
/*
 * Process facts -> OpenTelemetry resources, one per traced process, cached by pid; container.id
 * and k8s.pod.uid from the process's cgroup, cached per cgroup id.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder.h"
#include "resource_cache.h"

#define RES_BUCKETS 1024

struct res_entry {
	uint32_t pid;
	struct resource *res;
	struct res_entry *next;
};

static bool is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- cgroup paths -> container.id, k8s.pod.uid ----------------------------------------------
 * The one cgroup parser of the tree (the audit's process facts use it too). Layouts seen:
 *   v2, systemd driver: /kubepods.slice/kubepods-burstable.slice/
 *                       kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
 *                       (crio-<id>.scope for CRI-O, docker-<id>.scope for dockershim/Docker)
 *   v1 or v2, cgroupfs driver: /kubepods/burstable/pod<uid>/<id>
 *   containerd with systemd cgroups in a v1 hierarchy: ...pod<uid>.slice:cri-containerd:<id>
 *   Docker alone: /system.slice/docker-<id>.scope (systemd), /docker/<id> (cgroupfs)
 *   Podman: /machine.slice/libpod-<id>.scope
 */

/* Finds a 64-hex-digit container id after one of the runtime's markers: "docker-",
 * "cri-containerd-", "crio-", "libpod-", "/docker/", ... or any path component that is
 * exactly 64 lowercase hex digits (cgroup v1 layouts). */
bool cgroup__container_id(const char *line, char *out, size_t out_len)
{
	size_t n = strlen(line);

	if (out_len < 65)
		return false;
	for (size_t i = 0; i + 64 <= n; i++) {
		bool starts = i == 0 || line[i - 1] == '/' || line[i - 1] == '-' || line[i - 1] == ':';
		char end = line[i + 64];

		if (!starts || !is_hex64(line + i))
			continue;
		if (end != '\0' && end != '\n' && end != '.' && end != '/')
			continue;
		memcpy(out, line + i, 64);
		out[64] = '\0';
		return true;
	}
	return false;
}

/* A pod uid is a UUID, 8-4-4-4-12 hex digits; the systemd driver writes its dashes as '_'. */
static bool pod_uid__at(const char *p)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? p[i] != '-' && p[i] != '_' : !isxdigit((unsigned char)p[i]))
			return false;
	}
	return p[36] == '\0' || p[36] == '\n' || p[36] == '/' || p[36] == '.';
}

/* "kubepods-burstable-pod1b2c..._..slice" or ".../kubepods/besteffort/pod<uid>/..." -> the pod
 * uid with dashes. Only below a kubepods component: "pod" alone is too common a word. */
bool cgroup__pod_uid(const char *line, char *out, size_t cap)
{
	const char *p = strstr(line, "kubepods");

	if (cap < 37 || !p)
		return false;
	while ((p = strstr(p, "pod"))) {
		bool starts = p[-1] == '/' || p[-1] == '-';

		p += 3;
		if (!starts || !pod_uid__at(p))
			continue;
		for (int i = 0; i < 36; i++)
			out[i] = p[i] == '_' ? '-' : (char)tolower((unsigned char)p[i]);
		out[36] = '\0';
		return true;
	}
	return false;
}

/* Both ids from one "hierarchy:controllers:path" line; true when it names either. */
static bool cgroup__parse_line(const char *line, struct cgroup_ids *ids)
{
	const char *path = strchr(line, ':');

	path = path ? strchr(path + 1, ':') : NULL;
	path = path ? path + 1 : line;
	memset(ids, 0, sizeof(*ids));
	cgroup__container_id(path, ids->container_id, sizeof(ids->container_id));
	cgroup__pod_uid(path, ids->pod_uid, sizeof(ids->pod_uid));
	return ids->container_id[0] || ids->pod_uid[0];
}

/* The line whose ids win in a hybrid file (v1 controllers plus the v2 "0::" line): the v2 line
 * when it names a container, else the first v1 line that does; an id the winner lacks is taken
 * from a later line. Returns the index of the winning line, -1 when no line names a container. */
int cgroup__parse(const char *text, struct cgroup_ids *out)
{
	struct cgroup_ids line_ids;
	int best = -1, best_v2 = 0, i = 0;
	char line[1024];

	memset(out, 0, sizeof(*out));
	for (const char *p = text; *p; i++) {
		size_t len = strcspn(p, "\n");
		int v2 = !strncmp(p, "0::", 3);

		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : 0), p);
		p += len + (p[len] == '\n');
		if (!cgroup__parse_line(line, &line_ids))
			continue;
		if (best < 0 || (v2 && !best_v2)) {
			/* Keep what an earlier line found where the new winner has nothing. */
			if (!line_ids.container_id[0])
				memcpy(line_ids.container_id, out->container_id, 65);
			if (!line_ids.pod_uid[0])
				memcpy(line_ids.pod_uid, out->pod_uid, 37);
			*out = line_ids;
			best = i;
			best_v2 = v2;
			continue;
		}
		if (!out->container_id[0])
			memcpy(out->container_id, line_ids.container_id, 65);
		if (!out->pod_uid[0])
			memcpy(out->pod_uid, line_ids.pod_uid, 37);
	}
	return best;
}

/* /proc/<pid>/cgroup into text (NUL-terminated); its size, or -errno. */
static ssize_t cgroup__read_file(const char *proc_root, uint32_t pid, char *text, size_t cap)
{
	char path[PATH_MAX];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%u/cgroup", proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(text, 1, cap - 1, f);
	text[n] = '\0';
	fclose(f);
	return (ssize_t)n;
}

int cgroup__read(const char *proc_root, uint32_t pid, struct cgroup_ids *out)
{
	char text[8192];
	ssize_t n = cgroup__read_file(proc_root, pid, text, sizeof(text));

	memset(out, 0, sizeof(*out));
	if (n < 0)
		return (int)n;
	return cgroup__parse(text, out) >= 0;
}

/* ---- the per-cgroup cache -------------------------------------------------------------------
 * Keyed by the cgroup id, which is the inode of the cgroup's directory: every process of a pod's
 * container shares one entry, and a new cgroup with a recycled name gets a new inode. */

#define CGROUP_CACHE_SLOTS 256

struct cgroup_slot {
	uint64_t dev, ino; /* ino 0: empty */
	struct cgroup_ids ids;
};

struct cgroup_cache {
	const char *fs_root; /* "/sys/fs/cgroup" unless testing */
	struct cgroup_slot slots[CGROUP_CACHE_SLOTS];
	uint64_t hits, misses;
};

struct cgroup_cache *cgroup_cache__new(const char *fs_root)
{
	struct cgroup_cache *c = calloc(1, sizeof(*c));

	if (c)
		c->fs_root = fs_root ? fs_root : "/sys/fs/cgroup";
	return c;
}

void cgroup_cache__free(struct cgroup_cache *c)
{
	free(c);
}

void cgroup_cache__counts(const struct cgroup_cache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? c->hits : 0;
	*misses = c ? c->misses : 0;
}

/* The directory of one /proc/<pid>/cgroup line under the cgroup mounts: v2 ("0::/p") at
 * <root>/unified/p on a hybrid host, else <root>/p; v1 ("4:memory:/p") at <root>/memory/p
 * ("name=systemd" at <root>/systemd). */
static int cgroup__stat_line(const struct cgroup_cache *c, const char *line, struct stat *st)
{
	const char *ctl = strchr(line, ':'), *path;
	char dir[PATH_MAX];
	size_t ctl_len;

	if (!ctl || !(path = strchr(ctl + 1, ':')))
		return -EINVAL;
	ctl++;
	ctl_len = (size_t)(path - ctl);
	path++;
	if (!strncmp(ctl, "name=", 5)) {
		ctl += 5;
		ctl_len -= 5;
	}
	if (!ctl_len) {
		snprintf(dir, sizeof(dir), "%s/unified%s", c->fs_root, path);
		if (!stat(dir, st))
			return 0;
		snprintf(dir, sizeof(dir), "%s%s", c->fs_root, path);
	} else {
		snprintf(dir, sizeof(dir), "%s/%.*s%s", c->fs_root, (int)ctl_len, ctl, path);
	}
	return stat(dir, st) ? -errno : 0;
}

static struct cgroup_slot *cgroup_cache__slot(struct cgroup_cache *c, const struct stat *st)
{
	uint64_t h = ((uint64_t)st->st_ino * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)st->st_dev;

	return &c->slots[(h >> 24) % CGROUP_CACHE_SLOTS];
}

/* The ids of the cgroup the winning line names, from the cache when that cgroup was seen. */
int cgroup_cache__read(struct cgroup_cache *c, const char *proc_root, uint32_t pid,
		       struct cgroup_ids *out)
{
	char text[8192], line[1024];
	struct cgroup_slot *s;
	const char *p = text;
	struct stat st;
	ssize_t n;
	int best;

	if (!c)
		return cgroup__read(proc_root, pid, out);
	n = cgroup__read_file(proc_root, pid, text, sizeof(text));
	memset(out, 0, sizeof(*out));
	if (n < 0)
		return (int)n;
	/* Which line names the container takes a parse; the cache then keeps one answer per
	 * cgroup id, so every process of a container gets the same ids. Reading the file is the
	 * cost, paid once per process: resources are cached per pid. */
	best = cgroup__parse(text, out);
	if (best < 0)
		return 0;
	for (int i = 0; i < best && *p; i++)
		p += strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n');
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
	if (cgroup__stat_line(c, line, &st))
		return 1; /* not visible from here (a private cgroup namespace): parsed, uncached */
	s = cgroup_cache__slot(c, &st);
	if (s->ino == (uint64_t)st.st_ino && s->dev == (uint64_t)st.st_dev) {
		c->hits++;
		*out = s->ids;
		return 1;
	}
	c->misses++;
	s->dev = (uint64_t)st.st_dev;
	s->ino = (uint64_t)st.st_ino;
	s->ids = *out;
	return 1;
}

/* OTEL_RESOURCE_ATTRIBUTES: "k1=v1,k2=v2", values percent-decoded as the spec says. */
static void percent_decode(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = { s[1], s[2], 0 };

			*w++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

void resource_ctx__parse_env(struct resource_ctx *ctx, const char *spec)
{
	char *copy, *tok, *save = NULL;

	if (!spec || !*spec)
		return;
	copy = strdup(spec);
	for (tok = strtok_r(copy, ",", &save); tok && ctx->n_env < RES_MAX_ENV_ATTRS;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq || eq == tok)
			continue;
		*eq = '\0';
		ctx->env_keys[ctx->n_env] = strdup(tok);
		ctx->env_values[ctx->n_env] = strdup(eq + 1);
		percent_decode(ctx->env_values[ctx->n_env]);
		ctx->n_env++;
	}
	free(copy);
}

void resource_ctx__free(struct resource_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_env; i++) {
		free(ctx->env_keys[i]);
		free(ctx->env_values[i]);
	}
	ctx->n_env = 0;
	cgroup_cache__free(ctx->cgroups);
	ctx->cgroups = NULL;
}

/* The executable as the process names it: a chroot'ed process's /proc/<pid>/exe reads as the
 * path from our root ("/tmp/rootfs/usr/bin/curl"); its own root is cut off ("/usr/bin/curl").
 * A pivot_root'ed container's paths already read as seen inside (its root reads "/"). */
static void exe__inside_root(const char *proc_root, uint32_t pid, char *exe)
{
	char path[64], root[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%u/root", proc_root, pid);
	n = readlink(path, root, sizeof(root) - 1);
	if (n <= 1 || root[0] != '/')
		return;
	root[n] = '\0';
	if (strncmp(exe, root, (size_t)n) || exe[n] != '/')
		return;
	memmove(exe, exe + n, strlen(exe + n) + 1);
}

static void resource__add_cgroup(struct resource *r, const struct resource_ctx *ctx, uint32_t pid)
{
	struct cgroup_ids ids;

	cgroup_cache__read(ctx->cgroups, ctx->proc_root, pid, &ids);
	if (ids.container_id[0])
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "container.id",
			       ids.container_id);
	if (ids.pod_uid[0])
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "k8s.pod.uid",
			       ids.pod_uid);
}

/*
 * The executable from the kernel's exec facts, for a process /proc no longer has: the path given
 * to execve resolved in our mount namespace when that is the very file the kernel mapped (same
 * device and inode: "/usr/bin/python3" reads "/usr/bin/python3.11" as /proc/<pid>/exe would),
 * else the absolute path as given (a container's path, seen from inside it).
 */
static void exe__from_hint(const struct exe_hint *hint, char *exe)
{
	char real[PATH_MAX];
	struct stat st;

	if (!hint || !hint->filename || hint->filename[0] != '/')
		return;
	if (realpath(hint->filename, real) && !stat(real, &st) && st.st_ino == hint->ino &&
	    st.st_dev == hint->dev) {
		snprintf(exe, PATH_MAX, "%s", real);
		return;
	}
	snprintf(exe, PATH_MAX, "%s", hint->filename);
}

struct resource *resource__from_process(const struct resource_ctx *ctx, uint32_t pid,
					const char *comm, const struct exe_hint *hint)
{
	struct resource *r = calloc(1, sizeof(*r));
	char path[64], exe[PATH_MAX];
	const char *name;
	ssize_t n;

	if (!r)
		return NULL;
	r->refs = 1;
	r->pid = pid;
	snprintf(path, sizeof(path), "%s/%u/exe", ctx->proc_root, pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	/* A deleted executable (replaced on disk) reads "path (deleted)": keep the path. */
	if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
		exe[n - 10] = '\0';
	if (exe[0])
		exe__inside_root(ctx->proc_root, pid, exe);
	else
		exe__from_hint(hint, exe);
	name = exe[0] ? (strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe) : (comm ? comm : "unknown");
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "service.name",
		       ctx->service_name ? ctx->service_name : name);
	attrs__add_int(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.pid", pid);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.name", name);
	if (exe[0])
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.path",
			       exe);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "host.name", ctx->host_name);
	resource__add_cgroup(r, ctx, pid);
	for (size_t i = 0; i < ctx->n_env; i++)
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, ctx->env_keys[i],
			       ctx->env_values[i]);
	return r;
}

static size_t res_bucket(uint32_t pid)
{
	return (pid * 2654435761u) % RES_BUCKETS;
}

struct res_entry **resource_cache__new(void)
{
	return calloc(RES_BUCKETS, sizeof(struct res_entry *));
}

struct resource *resource_cache__get(struct res_entry **cache, uint32_t pid)
{
	struct res_entry *e = cache[res_bucket(pid)];

	while (e && e->pid != pid)
		e = e->next;
	return e ? e->res : NULL;
}

void resource_cache__put(struct res_entry **cache, uint32_t pid, struct resource *r)
{
	struct res_entry *e;

	resource_cache__drop(cache, pid);
	e = calloc(1, sizeof(*e));
	if (!e) {
		resource__put(r);
		return;
	}
	e->pid = pid;
	e->res = r;
	e->next = cache[res_bucket(pid)];
	cache[res_bucket(pid)] = e;
}

void resource_cache__drop(struct res_entry **cache, uint32_t pid)
{
	struct res_entry **pp = &cache[res_bucket(pid)], *e;

	while (*pp && (*pp)->pid != pid)
		pp = &(*pp)->next;
	e = *pp;
	if (!e)
		return;
	*pp = e->next;
	resource__put(e->res);
	free(e);
}

void resource_cache__free(struct res_entry **cache)
{
	for (size_t i = 0; cache && i < RES_BUCKETS; i++) {
		while (cache[i]) {
			struct res_entry *e = cache[i];

			cache[i] = e->next;
			resource__put(e->res);
			free(e);
		}
	}
	free(cache);
}
