// SPDX-License-Identifier: Apache-2.0
/*
 * On-disk discovery cache. Entries are tiny text files written to a temporary name and renamed,
 * so a reader never sees half an entry and two tokentap instances can share the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attach/codeshape.h"
#include "attach/discovery_cache.h"

#define DCACHE_MAGIC "tokentap-discovery 1"
#define SAMPLE_BLOCK 4096
#define SAMPLE_STRIDE (1024 * 1024)

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Reading all of a 300 MB file to key it would cost as much as analysing it: sample it. */
static uint64_t image__sampled_hash(const uint8_t *img, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t off;

	for (off = 0; off < len; off += SAMPLE_STRIDE)
		h = fnv1a(h, img + off, len - off < SAMPLE_BLOCK ? len - off : SAMPLE_BLOCK);
	if (len > SAMPLE_BLOCK)
		h = fnv1a(h, img + len - SAMPLE_BLOCK, SAMPLE_BLOCK);
	return h;
}

void dcache__key(const uint8_t *img, size_t len, char *key, size_t key_len)
{
	char id[130];

	if (shape__build_id(img, len, id, sizeof(id)) == 0)
		snprintf(key, key_len, "%s-%zu", id, len);
	else
		snprintf(key, key_len, "h%016" PRIx64 "-%zu", image__sampled_hash(img, len), len);
}

static int dcache__path(char *out, size_t n, const char *dir, const char *kind, const char *key)
{
	if (snprintf(out, n, "%s/%s-%s", dir, kind, key) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

int dcache__get(const char *dir, const char *kind, const char *key, uint64_t *vals, int nvals)
{
	char path[4096], magic[32];
	int i, ok = 1;
	FILE *f;

	if (!dir || dcache__path(path, sizeof(path), dir, kind, key))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(magic, sizeof(magic), f) || strncmp(magic, DCACHE_MAGIC, strlen(DCACHE_MAGIC)))
		ok = 0;
	for (i = 0; i < nvals && ok; i++) {
		if (fscanf(f, "%" SCNx64, &vals[i]) != 1)
			ok = 0;
	}
	fclose(f);
	return ok;
}

static int mkdir_p(const char *dir)
{
	char tmp[4096];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Removes the oldest entries past DCACHE_MAX. */
static void dcache__trim(const char *dir)
{
	char path[4096], oldest[4096] = "";
	time_t oldest_t = 0;
	struct dirent *de;
	struct stat st;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
		    stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		n++;
		if (!oldest[0] || st.st_mtime < oldest_t) {
			oldest_t = st.st_mtime;
			snprintf(oldest, sizeof(oldest), "%s", path);
		}
	}
	closedir(d);
	/* One entry is written at a time, so removing one keeps the bound. */
	if (n > DCACHE_MAX && oldest[0])
		unlink(oldest);
}

int dcache__put(const char *dir, const char *kind, const char *key, const uint64_t *vals,
		int nvals)
{
	char path[4096], tmp[4200];
	int i, err;
	FILE *f;

	if (!dir)
		return 0;
	err = mkdir_p(dir);
	if (err)
		return err;
	err = dcache__path(path, sizeof(path), dir, kind, key);
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", DCACHE_MAGIC);
	for (i = 0; i < nvals; i++)
		fprintf(f, "%" PRIx64 "\n", vals[i]);
	if (fclose(f) || rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	dcache__trim(dir);
	return 0;
}
