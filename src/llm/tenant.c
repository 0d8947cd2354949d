// SPDX-License-Identifier: Apache-2.0
/*
 * Attribution from the request: API-key fingerprint, OpenAI organization and project, the
 * body's end-user id, the operator's tenant header, and the W3C trace context.
 *
 * The API key is read from the parser's header view and hashed in place: it is never copied
 * into anything that outlives tenant__on_request, and never printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenant.h"

#define TENANT_SECRET_MIN 16
#define TENANT_SECRET_MAX 256

static uint8_t secret_g[TENANT_SECRET_MAX];
static size_t secret_len_g;
static char *tenant_headers_g[TENANT_MAX_HEADERS];
static int n_tenant_headers_g;

/* ---- configuration ----------------------------------------------------------------------- */

static bool tenant__is_credential(const char *name)
{
	static const char *const names[] = { "authorization", "proxy-authorization", "x-api-key",
					     "api-key", "x-goog-api-key", "cookie" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(name, names[i]))
			return true;
	return false;
}

static void tenant__clear_headers(void)
{
	for (int i = 0; i < n_tenant_headers_g; i++)
		free(tenant_headers_g[i]);
	n_tenant_headers_g = 0;
}

int tenant__configure(const char *const *headers, int n)
{
	tenant__clear_headers();
	if (n > TENANT_MAX_HEADERS)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (!headers[i][0] || tenant__is_credential(headers[i]))
			return -EINVAL;
		tenant_headers_g[i] = strdup(headers[i]);
		if (!tenant_headers_g[i])
			return -ENOMEM;
		n_tenant_headers_g = i + 1;
	}
	return 0;
}

void tenant__set_secret(const uint8_t *secret, size_t n)
{
	if (n > sizeof(secret_g))
		n = sizeof(secret_g);
	memcpy(secret_g, secret, n);
	secret_len_g = n;
}

static void tenant__random_secret(void)
{
	uint8_t s[TENANT_SECRET_BYTES];
	ssize_t r;

	/* Fingerprints stay unlinkable to keys only while the secret is unknown: never fall
	 * back to a guessable one. getrandom blocks until the pool is ready and can be
	 * interrupted; it does not otherwise fail for 32 bytes. */
	while ((r = getrandom(s, sizeof(s), 0)) != (ssize_t)sizeof(s))
		if (r >= 0 || errno != EINTR)
			abort();
	tenant__set_secret(s, sizeof(s));
	OPENSSL_cleanse(s, sizeof(s));
}

/* Reads the secret file: 16 to 256 bytes, used as they are. */
static int tenant__read_secret(const char *path)
{
	uint8_t buf[TENANT_SECRET_MAX + 1];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	if (n < TENANT_SECRET_MIN || n > TENANT_SECRET_MAX) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	tenant__set_secret(buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* Writes a new secret under a temporary name and links it into place, so that two agents
 * starting together agree on one secret and nobody reads a half-written file. */
static int tenant__create_secret(const char *path)
{
	uint8_t s[TENANT_SECRET_BYTES];
	char tmp[4096], *dir, *slash;
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	dir = strdup(path);
	if (dir && (slash = strrchr(dir, '/')) && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0700); /* one level: /var/lib exists wherever tokentap is installed */
	}
	free(dir);
	if (getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s))
		return -EIO;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(s, sizeof(s));
		return -errno;
	}
	if (write(fd, s, sizeof(s)) != (ssize_t)sizeof(s) || fsync(fd))
		err = -EIO;
	close(fd);
	OPENSSL_cleanse(s, sizeof(s));
	if (!err && link(tmp, path) && errno != EEXIST)
		err = -errno;
	unlink(tmp);
	return err ? err : tenant__read_secret(path);
}

int tenant__load_secret(const char *path)
{
	int err = tenant__read_secret(path);

	if (err == -ENOENT)
		err = tenant__create_secret(path);
	if (!err)
		return 0;
	tenant__random_secret();
	fprintf(stderr, "tokentap: fingerprint key %s: %s; API-key fingerprints use a per-process "
			"secret and will change when tokentap restarts\n", path,
		err == -EINVAL ? "must hold 16 to 256 bytes" : strerror(-err));
	return err;
}

void tenant__exit(void)
{
	OPENSSL_cleanse(secret_g, sizeof(secret_g));
	secret_len_g = 0;
	tenant__clear_headers();
}

/* ---- fingerprint ------------------------------------------------------------------------- */

void tenant__fingerprint(const char *key, size_t n, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!secret_len_g)
		tenant__random_secret();
	if (!HMAC(EVP_sha256(), secret_g, (int)secret_len_g, (const uint8_t *)key, n, md,
		  &mdlen) ||
	    mdlen < 8) {
		out[0] = '\0';
		return;
	}
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[16] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

static void tenant__trim(const char **v, size_t *n)
{
	while (*n && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*n)--;
	}
	while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
		(*n)--;
}

/* The credential a provider SDK sends: its own key header first, then a bearer token. */
static bool tenant__find_key(const struct http_head *h, const char **key, size_t *n)
{
	static const char *const key_headers[] = { "x-api-key", "api-key", "x-goog-api-key" };
	const struct http_header *hd;

	for (size_t i = 0; i < sizeof(key_headers) / sizeof(key_headers[0]); i++) {
		hd = http_head__find(h, key_headers[i]);
		if (!hd)
			continue;
		*key = hd->value;
		*n = hd->value_len;
		tenant__trim(key, n);
		if (*n)
			return true;
	}
	hd = http_head__find(h, "authorization");
	if (!hd)
		return false;
	*key = hd->value;
	*n = hd->value_len;
	tenant__trim(key, n);
	if (*n <= 7 || strncasecmp(*key, "bearer ", 7))
		return false;
	*key += 7;
	*n -= 7;
	tenant__trim(key, n);
	return *n > 0;
}

/* ---- trace context ----------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* W3C trace context: lowercase only */
}

/* Decodes 2*n lowercase hex digits; false on a bad digit or when every byte is zero. */
static bool hex_id(const char *s, uint8_t *out, size_t n)
{
	bool nonzero = false;

	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
		nonzero |= out[i] != 0;
	}
	return nonzero;
}

bool traceparent__parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t parent_id[8])
{
	uint8_t version, flags, tid[16], pid[8];

	tenant__trim(&v, &n);
	/* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55 characters. */
	if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
		return false;
	if (hexval(v[0]) < 0 || hexval(v[1]) < 0 || hexval(v[53]) < 0 || hexval(v[54]) < 0)
		return false;
	version = (uint8_t)(hexval(v[0]) << 4 | hexval(v[1]));
	flags = (uint8_t)(hexval(v[53]) << 4 | hexval(v[54]));
	(void)flags;
	if (version == 0xff)
		return false;
	/* Version 00 is exactly 55 characters; a later version may append "-" and more. */
	if (version == 0 ? n != 55 : (n > 55 && v[55] != '-'))
		return false;
	if (!hex_id(v + 3, tid, 16) || !hex_id(v + 36, pid, 8))
		return false;
	memcpy(trace_id, tid, 16);
	memcpy(parent_id, pid, 8);
	return true;
}

/* ---- the hooks --------------------------------------------------------------------------- */

/* Header values are exported: trimmed, cut to the field (never inside a UTF-8 character),
 * control characters replaced. */
static void tenant__copy_value(char *dst, size_t cap, const char *v, size_t n)
{
	tenant__trim(&v, &n);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
	dst[n] = '\0';
}

static void tenant__header(struct llm_call *c, const struct http_head *h, const char *name,
			   char *dst, size_t cap)
{
	const struct http_header *hd = http_head__find(h, name);

	if (hd)
		tenant__copy_value(dst, cap, hd->value, hd->value_len);
}

void tenant__on_request(struct llm_call *c, const struct http_head *h)
{
	const struct http_header *hd;
	const char *key;
	size_t n;

	if (tenant__find_key(h, &key, &n))
		tenant__fingerprint(key, n, c->api_key_fingerprint);
	tenant__header(c, h, "openai-organization", c->openai_organization,
		       sizeof(c->openai_organization));
	tenant__header(c, h, "openai-project", c->openai_project, sizeof(c->openai_project));
	for (int i = 0; i < n_tenant_headers_g && !c->tenant[0]; i++)
		tenant__header(c, h, tenant_headers_g[i], c->tenant, sizeof(c->tenant));
	hd = http_head__find(h, "traceparent");
	if (hd)
		c->has_trace_parent = traceparent__parse(hd->value, hd->value_len, c->trace_id,
							 c->parent_span_id);
}

static const char *json_str(struct json_object *o, const char *key, struct json_object **v)
{
	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, v))
		return NULL;
	return json_object_is_type(*v, json_type_string) ? json_object_get_string(*v) : NULL;
}

void tenant__on_request_body(struct llm_call *c, struct json_object *root)
{
	struct json_object *meta = NULL, *v;
	const char *user = json_str(root, "user", &v);

	if (!user) /* OpenAI's newer name for the same end-user id */
		user = json_str(root, "safety_identifier", &v);
	if (!user && json_object_object_get_ex(root, "metadata", &meta)) /* Anthropic */
		user = json_str(meta, "user_id", &v);
	if (user)
		tenant__copy_value(c->user, sizeof(c->user), user, strlen(user));
}
