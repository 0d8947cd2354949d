// SPDX-License-Identifier: Apache-2.0
/*
 * Container metadata from the runtimes' state files. Everything read is untrusted (a container's
 * owner chooses its labels): files are size-capped, strings are cut to fixed buffers, label
 * counts are bounded, and the container id must be 64 hex digits before it names a path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/container_meta.h"

#define META_MAX_FILE (4u << 20) /* OCI configs hold the environment: big, but not this big */
#define META_CACHE 256
#define META_MISS_RETRY_NS (5ull * 1000000000ull)
#define META_MAX_NAMESPACES 64
#define META_JSON_DEPTH 32

static const char default_containerd[] = "/run/containerd/io.containerd.runtime.v2.task";
static const char default_crio[] = "/run/containers/storage/overlay-containers";
static const char default_docker[] = "/var/lib/docker/containers";

struct meta_entry {
	char id[65];
	bool used, found;
	uint64_t checked_ns, last_used;
	struct container_info ci;
};

struct container_meta {
	char *containerd, *crio, *docker;
	struct meta_entry cache[META_CACHE];
	uint64_t clock;
	struct container_meta_stats st;
};

/* ---- parsing ------------------------------------------------------------------------------ */

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;

	if (json_object_is_type(o, json_type_object))
		json_object_object_get_ex(o, k, &v);
	return v;
}

static void jcopy(char *dst, size_t cap, struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);

	if (json_object_is_type(v, json_type_string) && !dst[0])
		snprintf(dst, cap, "%s", json_object_get_string(v));
}

void container_info__clear(struct container_info *ci)
{
	for (size_t i = 0; i < ci->n_labels; i++)
		free(ci->labels[i]);
	memset(ci, 0, sizeof(*ci));
}

static void labels__add(struct container_info *ci, const char *k, const char *v)
{
	size_t n = strlen(k) + strlen(v) + 2;
	char *kv;

	for (size_t i = 0; i < ci->n_labels; i++)
		if (!strncmp(ci->labels[i], k, strlen(k)) && ci->labels[i][strlen(k)] == '=')
			return; /* the container's own label wins over the sandbox's */
	if (ci->n_labels >= CONTAINER_MAX_LABELS || n > 1024 || !(kv = malloc(n)))
		return;
	snprintf(kv, n, "%s=%s", k, v);
	ci->labels[ci->n_labels++] = kv;
}

/* An object of string values (Docker's Config.Labels). */
static void labels__from_object(struct container_info *ci, struct json_object *obj)
{
	if (!json_object_is_type(obj, json_type_object))
		return;
	ci->labels_known = true;
	json_object_object_foreach(obj, k, v)
	{
		if (json_object_is_type(v, json_type_string))
			labels__add(ci, k, json_object_get_string(v));
	}
}

/* CRI-O keeps labels as a JSON document inside a string annotation. */
static void labels__from_string(struct container_info *ci, struct json_object *s)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (!json_object_is_type(s, json_type_string))
		return;
	tok = json_tokener_new_ex(META_JSON_DEPTH);
	if (!tok)
		return;
	obj = json_tokener_parse_ex(tok, json_object_get_string(s), json_object_get_string_len(s));
	labels__from_object(ci, obj);
	json_object_put(obj);
	json_tokener_free(tok);
}

static void parse__containerd(struct json_object *root, struct container_info *ci)
{
	struct json_object *a = jget(root, "annotations");

	ci->runtime = "containerd";
	jcopy(ci->image, sizeof(ci->image), a, "io.kubernetes.cri.image-name");
	jcopy(ci->name, sizeof(ci->name), a, "io.kubernetes.cri.container-name");
	jcopy(ci->pod_name, sizeof(ci->pod_name), a, "io.kubernetes.cri.sandbox-name");
	jcopy(ci->pod_namespace, sizeof(ci->pod_namespace), a,
	      "io.kubernetes.cri.sandbox-namespace");
	jcopy(ci->pod_uid, sizeof(ci->pod_uid), a, "io.kubernetes.cri.sandbox-uid");
	/* nerdctl (containerd without Kubernetes) names its containers this way. */
	jcopy(ci->name, sizeof(ci->name), a, "nerdctl/name");
	ci->labels_known = false;
}

static void parse__crio(struct json_object *root, struct container_info *ci)
{
	struct json_object *a = jget(root, "annotations");

	ci->runtime = "cri-o";
	jcopy(ci->image, sizeof(ci->image), a, "io.kubernetes.cri-o.ImageName");
	jcopy(ci->name, sizeof(ci->name), a, "io.kubernetes.cri-o.ContainerName");
	jcopy(ci->pod_name, sizeof(ci->pod_name), a, "io.kubernetes.pod.name");
	jcopy(ci->pod_namespace, sizeof(ci->pod_namespace), a, "io.kubernetes.pod.namespace");
	jcopy(ci->pod_uid, sizeof(ci->pod_uid), a, "io.kubernetes.pod.uid");
	labels__from_string(ci, jget(a, "io.kubernetes.cri-o.Labels"));
}

static void parse__docker(struct json_object *root, struct container_info *ci)
{
	struct json_object *cfg = jget(root, "Config"), *name = jget(root, "Name");
	const char *n = json_object_get_string(name);

	ci->runtime = "docker";
	jcopy(ci->image, sizeof(ci->image), cfg, "Image");
	if (json_object_is_type(name, json_type_string) && !ci->name[0])
		snprintf(ci->name, sizeof(ci->name), "%s", n[0] == '/' ? n + 1 : n);
	labels__from_object(ci, jget(cfg, "Labels"));
	ci->labels_known = true; /* no Labels object: a container without labels */
	/* Kubernetes through dockershim / cri-dockerd labels its containers with the pod. */
	jcopy(ci->pod_name, sizeof(ci->pod_name), jget(cfg, "Labels"), "io.kubernetes.pod.name");
	jcopy(ci->pod_namespace, sizeof(ci->pod_namespace), jget(cfg, "Labels"),
	      "io.kubernetes.pod.namespace");
	jcopy(ci->pod_uid, sizeof(ci->pod_uid), jget(cfg, "Labels"), "io.kubernetes.pod.uid");
}

/* One document, nothing after it but white space. */
static bool only_space(const char *s, size_t from, size_t len)
{
	for (; from < len; from++)
		if (s[from] != ' ' && s[from] != '\t' && s[from] != '\r' && s[from] != '\n')
			return false;
	return true;
}

int container_info__parse(const char *runtime, const char *json, size_t len,
			  struct container_info *ci)
{
	struct json_tokener *tok = json_tokener_new_ex(META_JSON_DEPTH);
	struct json_object *root = NULL;
	int ret = -EINVAL;

	if (!tok)
		return -ENOMEM;
	if (len <= META_MAX_FILE)
		root = json_tokener_parse_ex(tok, json, (int)len);
	if (json_object_is_type(root, json_type_object) &&
	    only_space(json, json_tokener_get_parse_end(tok), len)) {
		ret = 0;
		if (!strcmp(runtime, "containerd"))
			parse__containerd(root, ci);
		else if (!strcmp(runtime, "cri-o"))
			parse__crio(root, ci);
		else if (!strcmp(runtime, "docker"))
			parse__docker(root, ci);
		else
			ret = -EINVAL;
	}
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

bool container_info__has_label(const struct container_info *ci, const char *selector)
{
	const char *eq = strchr(selector, '=');
	size_t klen = eq ? (size_t)(eq - selector) : strlen(selector);

	for (size_t i = 0; i < ci->n_labels; i++) {
		const char *l = ci->labels[i];

		if (strncmp(l, selector, klen) || l[klen] != '=')
			continue;
		if (!eq || !fnmatch(eq + 1, l + klen + 1, 0))
			return true;
	}
	return false;
}

/* ---- the runtimes' files ------------------------------------------------------------------ */

/* Reads a whole regular file of at most META_MAX_FILE bytes. */
static char *file__slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf = NULL;
	ssize_t got = 0, r;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > META_MAX_FILE)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < st.st_size && (r = read(fd, buf + got, (size_t)(st.st_size - got))) > 0)
		got += r;
	if (buf) {
		buf[got] = '\0';
		*len = (size_t)got;
	}
out:
	close(fd);
	return buf;
}

static int meta__read(const char *path, const char *runtime, struct container_info *ci,
		      struct container_meta *m)
{
	size_t len = 0;
	char *text = file__slurp(path, &len);
	int ret;

	if (!text)
		return -ENOENT;
	ret = container_info__parse(runtime, text, len, ci);
	free(text);
	if (ret)
		m->st.parse_errors++;
	return ret;
}

static int meta__containerd(struct container_meta *m, const char *id, struct container_info *ci)
{
	DIR *d = opendir(m->containerd);
	struct dirent *e;
	char path[4096];
	int ret = -ENOENT, n = 0;

	if (!d)
		return -ENOENT;
	while (ret == -ENOENT && n++ < META_MAX_NAMESPACES && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s/config.json", m->containerd, e->d_name, id);
		ret = meta__read(path, "containerd", ci, m);
	}
	closedir(d);
	return ret;
}

/* The pod's labels are on its sandbox (the infra container), in its own config.json. */
static void meta__crio_sandbox(struct container_meta *m, const char *id, struct container_info *ci)
{
	char path[4096], sandbox[65] = "";
	struct container_info sb = {0};
	size_t len = 0;
	char *text;
	struct json_object *root, *a;

	snprintf(path, sizeof(path), "%s/%s/userdata/config.json", m->crio, id);
	text = file__slurp(path, &len);
	root = text ? json_tokener_parse(text) : NULL;
	a = jget(root, "annotations");
	jcopy(sandbox, sizeof(sandbox), a, "io.kubernetes.cri-o.SandboxID");
	json_object_put(root);
	free(text);
	if (strlen(sandbox) != 64 || strspn(sandbox, "0123456789abcdef") != 64 ||
	    !strcmp(sandbox, id))
		return;
	snprintf(path, sizeof(path), "%s/%s/userdata/config.json", m->crio, sandbox);
	if (meta__read(path, "cri-o", &sb, m))
		return;
	for (size_t i = 0; i < sb.n_labels; i++) {
		char *eq = strchr(sb.labels[i], '=');

		*eq = '\0';
		labels__add(ci, sb.labels[i], eq + 1);
	}
	ci->labels_known = ci->labels_known || sb.labels_known;
	container_info__clear(&sb);
}

static int meta__find(struct container_meta *m, const char *id, struct container_info *ci)
{
	char path[4096];

	if (!meta__containerd(m, id, ci))
		return 0;
	container_info__clear(ci);
	snprintf(path, sizeof(path), "%s/%s/userdata/config.json", m->crio, id);
	if (!meta__read(path, "cri-o", ci, m)) {
		meta__crio_sandbox(m, id, ci);
		return 0;
	}
	container_info__clear(ci);
	snprintf(path, sizeof(path), "%s/%s/config.v2.json", m->docker, id);
	if (!meta__read(path, "docker", ci, m))
		return 0;
	container_info__clear(ci);
	return -ENOENT;
}

/* ---- the cache ---------------------------------------------------------------------------- */

struct container_meta *container_meta__new(const struct container_meta_opts *o)
{
	struct container_meta *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->containerd = strdup(o && o->containerd_state ? o->containerd_state : default_containerd);
	m->crio = strdup(o && o->crio_state ? o->crio_state : default_crio);
	m->docker = strdup(o && o->docker_state ? o->docker_state : default_docker);
	if (!m->containerd || !m->crio || !m->docker) {
		container_meta__free(m);
		return NULL;
	}
	return m;
}

void container_meta__free(struct container_meta *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < META_CACHE; i++)
		container_info__clear(&m->cache[i].ci);
	free(m->containerd);
	free(m->crio);
	free(m->docker);
	free(m);
}

static struct meta_entry *cache__slot(struct container_meta *m, const char *id)
{
	struct meta_entry *oldest = &m->cache[0];

	for (size_t i = 0; i < META_CACHE; i++) {
		struct meta_entry *e = &m->cache[i];

		if (e->used && !strcmp(e->id, id))
			return e;
		if (!e->used || (oldest->used && e->last_used < oldest->last_used))
			oldest = e;
	}
	if (oldest->used)
		m->st.evicted++;
	container_info__clear(&oldest->ci);
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->id, sizeof(oldest->id), "%s", id);
	return oldest;
}

const struct container_info *container_meta__lookup(struct container_meta *m, const char *id,
						    uint64_t now_ns)
{
	struct meta_entry *e;

	if (!m || !id || strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
		return NULL;
	m->st.lookups++;
	e = cache__slot(m, id);
	e->last_used = ++m->clock;
	if (e->used && (e->found || now_ns - e->checked_ns < META_MISS_RETRY_NS)) {
		m->st.hits++;
		return e->found ? &e->ci : NULL;
	}
	e->used = true;
	e->checked_ns = now_ns;
	container_info__clear(&e->ci);
	e->found = !meta__find(m, id, &e->ci);
	if (e->found)
		snprintf(e->ci.id, sizeof(e->ci.id), "%s", id);
	e->found ? m->st.found++ : m->st.not_found++;
	return e->found ? &e->ci : NULL;
}

void container_meta__stats(const struct container_meta *m, struct container_meta_stats *st)
{
	*st = m->st;
}
