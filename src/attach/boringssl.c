// SPDX-License-Identifier: Apache-2.0
/*
 * Code-shape discovery of BoringSSL's SSL_write and SSL_read in stripped static binaries.
 *
 * Both entry points report errors from ssl_lib.cc (codeshape.c finds and decodes every function
 * that does) and have a shape no other function there has:
 *   SSL_write: rejects QUIC connections (`cmp qword [ssl+quic_method], 0`, reason 66), reports
 *              SSL_R_UNINITIALIZED (226) and SSL_R_SSL_HANDSHAKE_FAILURE (215), and calls
 *              ssl->method->write_app_data through a function pointer;
 *   SSL_read:  the same QUIC check (same field offset) with reason 66 and no other reason, a
 *              direct call to ssl_read_impl (a function reporting 226), then consumes what it
 *              copied (stores into ssl->s3), which SSL_peek does not.
 * The same worker thread also looks for aws-lc's AEAD entry points (awslc.c), which rustls
 * seals and opens its records with, so a file is mapped and cached once for both.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "attach/awslc.h"
#include "attach/boringssl.h"
#include "attach/codeshape.h"
#include "attach/discovery_cache.h"
#include "tokentap_abi.h"

#define BSSL_MIN_FILE_SIZE (4u << 20) /* BoringSSL alone is more than this */

/* ---- telling the functions apart ------------------------------------------------------------ */

static bool fn__is_write(const struct shape_fn *fn)
{
	return fn->quic_disp >= 0 && fn->indirect_call &&
	       shape_fn__has_reason(fn, BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED) &&
	       shape_fn__has_reason(fn, BSSL_R_UNINITIALIZED) &&
	       shape_fn__has_reason(fn, BSSL_R_SSL_HANDSHAKE_FAILURE);
}

/* Calls a function of fns that reports SSL_R_UNINITIALIZED (ssl_read_impl), other than skip. */
static bool fn__calls_read_impl(const struct shape_fn *fn, const struct shape_fn *fns, int n,
				const struct shape_fn *skip)
{
	int i;

	for (i = 0; i < n; i++) {
		if (&fns[i] != skip && fns[i].start != fn->start &&
		    shape_fn__has_reason(&fns[i], BSSL_R_UNINITIALIZED) && shape_fn__calls(fn, fns[i].start))
			return true;
	}
	return false;
}

static bool fn__is_read(const struct shape_fn *fn, const struct shape_fn *w,
			const struct shape_fn *fns, int n)
{
	return fn != w && fn->quic_disp == w->quic_disp && fn->nreasons == 1 &&
	       fn->reasons[0] == BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED &&
	       fn__calls_read_impl(fn, fns, n, w);
}

/* The one function of shape f; with several, SSL_read over SSL_peek: it calls or stores. */
static const struct shape_fn *fns__pick_read(const struct shape_fn *fns, int n,
					    const struct shape_fn *w)
{
	const struct shape_fn *best = NULL;
	int i, found = 0, storing = 0;

	for (i = 0; i < n; i++) {
		if (!fn__is_read(&fns[i], w, fns, n))
			continue;
		found++;
		if (fns[i].stores) {
			storing++;
			best = &fns[i];
		} else if (!best) {
			best = &fns[i];
		}
	}
	if (found == 1 || storing == 1)
		return best;
	return NULL;
}

static const struct shape_fn *fns__pick_write(const struct shape_fn *fns, int n)
{
	const struct shape_fn *w = NULL;
	int i;

	for (i = 0; i < n; i++) {
		if (!fn__is_write(&fns[i]))
			continue;
		if (w)
			return NULL; /* ambiguous: trust none */
		w = &fns[i];
	}
	return w;
}

static int bssl__classify(const struct shape_image *im, const struct shape_fn *fns, int n,
			  void *result)
{
	struct bssl_result *res = result;
	const struct shape_fn *w = fns__pick_write(fns, n), *r;

	if (!w) {
		res->why = "no unique SSL_write shape";
		return -ENOENT;
	}
	r = fns__pick_read(fns, n, w);
	if (!r) {
		res->why = "no unique SSL_read shape";
		return -ENOENT;
	}
	res->write_vaddr = w->start;
	res->read_vaddr = r->start;
	res->write_off = shape__file_off(im, w->start);
	res->read_off = shape__file_off(im, r->start);
	if (!res->write_off || !res->read_off) {
		res->why = "entry outside the file";
		return -ENOENT;
	}
	res->why = "ok";
	return 0;
}

int bssl__analyse(const uint8_t *img, size_t len, struct bssl_result *res)
{
	memset(res, 0, sizeof(*res));
	return shape__analyse(img, len, "/ssl/ssl_lib.cc", BSSL_LIB_SSL, "no BoringSSL ssl_lib.cc",
			      bssl__classify, res, &res->why, &res->functions);
}

int bssl__analyse_file(const char *path, struct bssl_result *res)
{
	const uint8_t *img;
	size_t len;
	int err = shape__map_file(path, &img, &len);

	if (err) {
		memset(res, 0, sizeof(*res));
		res->why = "cannot map the file";
		return err;
	}
	err = bssl__analyse(img, len, res);
	munmap((void *)img, len);
	return err;
}

bool bssl__worth_analysing(const char *path, const struct stat *st)
{
	Elf64_Ehdr eh;
	ssize_t n;
	int fd;

	if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size < BSSL_MIN_FILE_SIZE)
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = pread(fd, &eh, sizeof(eh), 0);
	close(fd);
	return n == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	       eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64 &&
	       (eh.e_type == ET_EXEC || eh.e_type == ET_DYN);
}

/* ---- the worker thread ---------------------------------------------------------------------- */

#define BSSL_QUEUE 64

struct bssl_worker {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stop, verbose;
	char *cache_dir;
	char *jobs[BSSL_QUEUE]; /* FIFO of paths */
	uint32_t njobs, running;
	struct bssl_found *done[BSSL_QUEUE];
	uint32_t ndone;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* Cache values: write offset, read offset, write vaddr, read vaddr; all 0 = no BoringSSL. */
static void found__from_cache(struct bssl_found *f, const uint64_t *v)
{
	f->from_cache = true;
	f->err = v[0] && v[1] ? 0 : -ENOENT;
	f->res.write_off = v[0];
	f->res.read_off = v[1];
	f->res.write_vaddr = v[2];
	f->res.read_vaddr = v[3];
	f->res.why = f->err ? "cached: no BoringSSL" : "ok";
}

/* aws-lc's cache values: the four file offsets, then the four vaddrs; all 0 = no aws-lc. */
static void found__aead_from_cache(struct bssl_found *f, const uint64_t *v)
{
	int i;

	f->aead_err = 0;
	for (i = 0; i < AWSLC_FNS; i++) {
		f->aead.off[i] = v[i];
		f->aead.vaddr[i] = v[AWSLC_FNS + i];
		if (!v[i])
			f->aead_err = -ENOENT;
	}
	f->aead.why = f->aead_err ? "cached: no aws-lc" : "ok";
}

/* Both verdicts on an image from the cache: true when both were there. */
static bool found__cached(struct bssl_worker *w, struct bssl_found *f, const char *key)
{
	uint64_t v[DCACHE_VALS], av[DCACHE_VALS];

	if (dcache__get(w->cache_dir, "bssl", key, v, 4) != 1 ||
	    dcache__get(w->cache_dir, "awslc", key, av, 2 * AWSLC_FNS) != 1)
		return false;
	found__from_cache(f, v);
	found__aead_from_cache(f, av);
	return true;
}

/* Only verdicts are cached; an error (ENOMEM, EINVAL) may not repeat. */
static void found__store(struct bssl_worker *w, const struct bssl_found *f, const char *key)
{
	uint64_t v[DCACHE_VALS] = {f->res.write_off, f->res.read_off, f->res.write_vaddr,
				   f->res.read_vaddr};
	int i;

	if (f->err != 0 && f->err != -ENOENT)
		return;
	if (f->aead_err != 0 && f->aead_err != -ENOENT)
		return;
	dcache__put(w->cache_dir, "bssl", key, v, 4);
	for (i = 0; i < AWSLC_FNS; i++) {
		v[i] = f->aead.off[i];
		v[AWSLC_FNS + i] = f->aead.vaddr[i];
	}
	dcache__put(w->cache_dir, "awslc", key, v, 2 * AWSLC_FNS);
}

static void worker__analyse(struct bssl_worker *w, struct bssl_found *f)
{
	uint64_t t0 = mono_us();
	char key[DCACHE_KEY_LEN];
	const uint8_t *img;
	size_t len;

	f->err = f->aead_err = shape__map_file(f->path, &img, &len);
	if (f->err) {
		f->res.why = f->aead.why = "cannot map the file";
		return;
	}
	dcache__key(img, len, key, sizeof(key));
	if (!found__cached(w, f, key)) {
		f->err = bssl__analyse(img, len, &f->res);
		/* A file with BoringSSL's TLS seals its records with EVP_AEAD too: probe it once. */
		if (f->err == 0) {
			f->aead_err = -ENOENT;
			f->aead.why = "BoringSSL's own TLS";
		} else {
			f->aead_err = awslc__analyse(img, len, &f->aead);
		}
		found__store(w, f, key);
	}
	munmap((void *)img, len);
	f->took_us = mono_us() - t0;
}

static void *worker__main(void *arg)
{
	struct bssl_worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct bssl_found *f;
		char *path;

		while (!w->stop && (!w->njobs || w->ndone == BSSL_QUEUE))
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break;
		path = w->jobs[0];
		memmove(w->jobs, w->jobs + 1, --w->njobs * sizeof(w->jobs[0]));
		w->running = 1;
		pthread_mutex_unlock(&w->lock);
		f = calloc(1, sizeof(*f));
		if (f) {
			snprintf(f->path, sizeof(f->path), "%s", path);
			worker__analyse(w, f);
		}
		free(path);
		pthread_mutex_lock(&w->lock);
		w->running = 0;
		if (f)
			w->done[w->ndone++] = f;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct bssl_worker *bssl_worker__new(const char *cache_dir, bool verbose)
{
	struct bssl_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->verbose = verbose;
	if (cache_dir && *cache_dir)
		w->cache_dir = strdup(cache_dir);
	return w;
}

int bssl_worker__lookup(struct bssl_worker *w, const char *path, struct bssl_found *out)
{
	uint64_t t0 = mono_us();
	char key[DCACHE_KEY_LEN];
	const uint8_t *img;
	size_t len;

	if (!w->cache_dir || shape__map_file(path, &img, &len))
		return 0;
	dcache__key(img, len, key, sizeof(key));
	munmap((void *)img, len);
	memset(out, 0, sizeof(*out));
	if (!found__cached(w, out, key))
		return 0;
	snprintf(out->path, sizeof(out->path), "%s", path);
	out->took_us = mono_us() - t0;
	return 1;
}

int bssl_worker__submit(struct bssl_worker *w, const char *path)
{
	char *copy = strdup(path);
	int err = 0;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	if (!w->started) {
		if (pthread_create(&w->thread, NULL, worker__main, w))
			err = -EAGAIN;
		else
			w->started = true;
	}
	if (!err && w->njobs == BSSL_QUEUE)
		err = -EBUSY;
	if (!err) {
		w->jobs[w->njobs++] = copy;
		copy = NULL;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	free(copy);
	return err;
}

int bssl_worker__poll(struct bssl_worker *w, struct bssl_found *out)
{
	struct bssl_found *f = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->ndone) {
		f = w->done[0];
		memmove(w->done, w->done + 1, --w->ndone * sizeof(w->done[0]));
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
	if (!f)
		return 0;
	*out = *f;
	free(f);
	return 1;
}

uint32_t bssl_worker__busy(struct bssl_worker *w)
{
	uint32_t n;

	pthread_mutex_lock(&w->lock);
	n = w->njobs + w->running + w->ndone;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void bssl_worker__free(struct bssl_worker *w)
{
	uint32_t i;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	/* An analysis in progress finishes first: it is bounded (one mapped file, no I/O waits). */
	if (w->started)
		pthread_join(w->thread, NULL);
	for (i = 0; i < w->njobs; i++)
		free(w->jobs[i]);
	for (i = 0; i < w->ndone; i++)
		free(w->done[i]);
	free(w->cache_dir);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}
