// SPDX-License-Identifier: Apache-2.0
/* Permission checks for files a privileged agent trusts. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/file.h"

static int file__check_stat(const struct stat *st, const char *path, const char *what, bool is_dir)
{
	/* A directory with the sticky bit (/tmp) only lets owners replace their own files. */
	bool sticky = is_dir && (st->st_mode & S_ISVTX);

	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !sticky) {
		fprintf(stderr,
			"tokentap: refusing %s %s: %s is writable by group or others (mode %04o); "
			"run: chmod go-w %s\n",
			what, path, is_dir ? "its directory" : "it",
			(unsigned)(st->st_mode & 07777), path);
		return -EPERM;
	}
	if (!is_dir && st->st_uid != 0 && st->st_uid != geteuid()) {
		fprintf(stderr,
			"tokentap: refusing %s %s: owned by uid %u, neither root nor the user "
			"tokentap runs as\n",
			what, path, (unsigned)st->st_uid);
		return -EPERM;
	}
	return 0;
}

/* The directory of the file's real path (Kubernetes mounts ConfigMaps through symlinks). A
 * read-only mount cannot be written by anyone, whatever its modes say. */
static int file__check_dir(const char *path, const char *what)
{
	char real[PATH_MAX];
	struct statvfs vfs;
	struct stat st;

	if (!realpath(path, real)) {
		fprintf(stderr, "tokentap: %s %s: %s\n", what, path, strerror(errno));
		return -errno;
	}
	if (!statvfs(real, &vfs) && (vfs.f_flag & ST_RDONLY))
		return 0;
	if (stat(dirname(real), &st)) {
		fprintf(stderr, "tokentap: %s %s: %s\n", what, path, strerror(errno));
		return -errno;
	}
	return file__check_stat(&st, path, what, true);
}

int file__check_not_world_writable(const char *path, const char *what)
{
	struct stat st;

	if (stat(path, &st)) {
		int err = errno;

		fprintf(stderr, "tokentap: cannot read %s %s: %s\n", what, path, strerror(err));
		return -err;
	}
	if (file__check_stat(&st, path, what, false))
		return -EPERM;
	return file__check_dir(path, what);
}

char *file__read_checked(const char *path, const char *what, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "tokentap: cannot open %s %s: %s\n", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "tokentap: %s %s is not a regular file\n", what, path);
		goto out;
	}
	if (file__check_stat(&st, path, what, false) || file__check_dir(path, what))
		goto out;
	if ((size_t)st.st_size > max) {
		fprintf(stderr, "tokentap: %s %s is larger than %zu bytes\n", what, path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0 || n != st.st_size) {
		fprintf(stderr, "tokentap: reading %s %s failed\n", what, path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	*len = (size_t)n;
out:
	close(fd);
	return buf;
}
