// SPDX-License-Identifier: Apache-2.0
/*
 * The audit hash chain: hashing, verification (`tokentap audit verify`) and recovery of the
 * chain's head when tokentap starts again on an existing file.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "audit/chain.h"

void chain__hash_hex(const void *data, size_t n, char out[AUDIT_HASH_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		/* Cannot happen with OpenSSL's built-in SHA-256; a wrong hash is still detected. */
		memset(md, 0xff, sizeof(md));
	}
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static bool is_hash_hex(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

/* The chain fields of one line: seq and prev_hash. Returns false when it is not a record. */
static bool chain__parse_line(const char *line, size_t n, uint64_t *seq, char *prev)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root, *v;
	bool ok = false;

	if (!tok)
		return false;
	root = json_tokener_parse_ex(tok, line, (int)n);
	if (!root || json_tokener_get_parse_end(tok) != n ||
	    !json_object_is_type(root, json_type_object))
		goto out;
	if (!json_object_object_get_ex(root, "seq", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		goto out;
	*seq = (uint64_t)json_object_get_int64(v);
	if (!json_object_object_get_ex(root, "prev_hash", &v) ||
	    !json_object_is_type(v, json_type_string) || !is_hash_hex(json_object_get_string(v)))
		goto out;
	memcpy(prev, json_object_get_string(v), AUDIT_HASH_HEX);
	ok = true;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ok;
}

/* One record against the chain so far; err gets what is wrong. */
static int chain__check(struct chain_state *st, uint64_t seq, const char *prev,
			const struct chain_verify_opts *o, char *err, size_t cap)
{
	if (!st->started) {
		if (!strcmp(prev, AUDIT_GENESIS) && seq == 0)
			return 0;
		if (!strcmp(prev, AUDIT_GENESIS)) {
			snprintf(err, cap,
				 "the chain starts (genesis prev_hash) at seq %llu, not 0",
				 (unsigned long long)seq);
			return -EBADMSG;
		}
		if (o->partial)
			return 0;
		snprintf(
		    err, cap,
		    "the chain does not start here: seq %llu links to an earlier record. Give "
		    "the earlier files first (oldest first), or --partial when retention removed "
		    "them",
		    (unsigned long long)seq);
		return -EBADMSG;
	}
	if (seq > st->seq + 1) {
		snprintf(
		    err, cap,
		    "seq %llu follows seq %llu: %llu record(s) missing before this line (deleted)",
		    (unsigned long long)seq, (unsigned long long)st->seq,
		    (unsigned long long)(seq - st->seq - 1));
		return -EBADMSG;
	}
	if (seq != st->seq + 1) {
		snprintf(err, cap,
			 "seq %llu does not follow seq %llu: a record was inserted or repeated",
			 (unsigned long long)seq, (unsigned long long)st->seq);
		return -EBADMSG;
	}
	if (strcmp(prev, st->head)) {
		snprintf(err, cap,
			 "prev_hash does not match the SHA-256 of the previous line: the previous "
			 "record was edited or replaced, or this one was inserted");
		return -EBADMSG;
	}
	return 0;
}

static void chain__advance(struct chain_state *st, const char *line, size_t n, uint64_t seq)
{
	if (!st->started)
		st->first_seq = seq;
	st->started = true;
	st->seq = seq;
	st->records++;
	chain__hash_hex(line, n, st->head);
}

int chain__verify_file(FILE *f, const char *name, struct chain_state *st,
		       const struct chain_verify_opts *o, char *err, size_t errcap)
{
	char *buf = malloc(AUDIT_MAX_LINE + 2), prev[AUDIT_HASH_HEX], why[256];
	uint64_t lineno = 0, seq;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (fgets(buf, AUDIT_MAX_LINE + 2, f)) {
		size_t n = strlen(buf);

		lineno++;
		if (n == 0 || buf[n - 1] != '\n') {
			snprintf(err, errcap, "%s:%llu: %s", name, (unsigned long long)lineno,
				 feof(f)
				     ? "last line is incomplete (no newline): a torn write, or the "
				       "file was cut"
				     : "line longer than any record");
			ret = -EBADMSG;
			break;
		}
		buf[--n] = '\0';
		if (memchr(buf, '\0', n) || !chain__parse_line(buf, n, &seq, prev)) {
			snprintf(err, errcap,
				 "%s:%llu: not an audit record (no valid seq/prev_hash)", name,
				 (unsigned long long)lineno);
			ret = -EBADMSG;
			break;
		}
		if (chain__check(st, seq, prev, o, why, sizeof(why))) {
			snprintf(err, errcap, "%s:%llu: %s", name, (unsigned long long)lineno, why);
			ret = -EBADMSG;
			break;
		}
		chain__advance(st, buf, n, seq);
	}
	if (!ret && ferror(f)) {
		snprintf(err, errcap, "%s: read error", name);
		ret = -EIO;
	}
	free(buf);
	return ret;
}

/* ---- recovery ---------------------------------------------------------------------------- */

int chain__read_tail(const char *path, struct chain_state *st, size_t *torn_bytes)
{
	FILE *f = fopen(path, "re");
	size_t want = AUDIT_MAX_LINE + 2, n;
	char *buf, *end, *start, prev[AUDIT_HASH_HEX];
	struct stat sb;
	uint64_t seq;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	*torn_bytes = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fileno(f), &sb) || sb.st_size == 0) {
		fclose(f);
		return 0;
	}
	if ((size_t)sb.st_size < want)
		want = (size_t)sb.st_size;
	buf = malloc(want + 1);
	if (!buf || fseeko(f, sb.st_size - (off_t)want, SEEK_SET) ||
	    (n = fread(buf, 1, want, f)) != want) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	buf[n] = '\0';
	end = memrchr(buf, '\n', n);
	if (!end) {
		free(buf);
		*torn_bytes = n;
		return (size_t)sb.st_size == n ? 0 : -EBADMSG;
	}
	*torn_bytes = n - (size_t)(end + 1 - buf);
	*end = '\0';
	start = memrchr(buf, '\n', (size_t)(end - buf));
	start = start ? start + 1 : buf;
	if (chain__parse_line(start, (size_t)(end - start), &seq, prev)) {
		chain__advance(st, start, (size_t)(end - start), seq);
	} else {
		ret = -EBADMSG;
	}
	free(buf);
	return ret;
}

/* ---- tokentap audit verify ----------------------------------------------------------------- */

static void audit__usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tokentap audit verify [--partial] [--expect-head HASH] FILE...\n"
	    "Checks the hash chain of audit files written by --audit. Give rotated files oldest\n"
	    "first (FILE.3 FILE.2 FILE.1 FILE); the chain must run unbroken through all of them.\n"
	    "  --partial           the first record may link to records deleted by rotation\n"
	    "  --expect-head HASH  the SHA-256 of the last record, recorded elsewhere: detects a\n"
	    "                      cut or edited tail\n"
	    "Exit 0 when the chain holds, 1 at the first broken line, 2 on usage errors.\n");
}

static int audit__verify(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"partial", no_argument, NULL, 'p'},
	    {"expect-head", required_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	struct chain_verify_opts o = {};
	struct chain_state st = {};
	const char *expect = NULL;
	char err[512];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			o.partial = true;
			break;
		case 'e':
			expect = optarg;
			break;
		case 'h':
			audit__usage(stdout);
			return 0;
		default:
			audit__usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		audit__usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		FILE *f = fopen(argv[i], "re");
		int ret;

		if (!f) {
			fprintf(stderr, "audit verify: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		ret = chain__verify_file(f, argv[i], &st, &o, err, sizeof(err));
		fclose(f);
		if (ret) {
			fprintf(stderr, "audit verify: FAILED: %s\n", err);
			return 1;
		}
	}
	if (!st.started) {
		fprintf(stderr, "audit verify: FAILED: no records\n");
		return 1;
	}
	if (expect && strcmp(expect, st.head)) {
		fprintf(stderr,
			"audit verify: FAILED: the last record (seq %llu) hashes to %s, not the "
			"expected head %s: the tail was cut or edited\n",
			(unsigned long long)st.seq, st.head, expect);
		return 1;
	}
	printf("audit verify: OK: %llu records, seq %llu..%llu, head %s\n",
	       (unsigned long long)st.records, (unsigned long long)st.first_seq,
	       (unsigned long long)st.seq, st.head);
	return 0;
}

int audit__main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return audit__verify(argc - 1, argv + 1);
	audit__usage(argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout
											 : stderr);
	return 2;
}
