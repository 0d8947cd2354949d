/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's hash chain. Every record is one line; its "prev_hash" is the SHA-256 (hex) of
 * the exact bytes of the previous record's line (without its newline) and its "seq" is one more
 * than the previous record's. The first record of a chain has seq 0 and prev_hash
 * AUDIT_GENESIS. Rotation does not restart the chain: the first record of a new file links to
 * the last record of the file rotated away.
 */
#ifndef TOKENTAP_AUDIT_CHAIN_H
#define TOKENTAP_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_HASH_HEX 65	  /* 64 hex digits and a NUL */
#define AUDIT_MAX_LINE (1u << 20) /* a record longer than this is not one of ours */

/* SHA-256 of data as 64 lowercase hex digits. */
void chain__hash_hex(const void *data, size_t n, char out[AUDIT_HASH_HEX]);

/* Where a chain stands: the hash of its last record and that record's seq. */
struct chain_state {
	bool started;		   /* a record has been seen */
	uint64_t seq;		   /* seq of the last record */
	char head[AUDIT_HASH_HEX]; /* hash of the last record's line */
	uint64_t records;	   /* records checked */
	uint64_t first_seq;
};

struct chain_verify_opts {
	bool partial; /* the first record may link to records no longer at hand (retention) */
};

/* Checks one file's lines against the chain so far. Returns 0, or -EBADMSG with a message
 * naming the file, the line and what is wrong in err. */
int chain__verify_file(FILE *f, const char *name, struct chain_state *st,
		       const struct chain_verify_opts *o, char *err, size_t errcap);

/* Reads the chain's state from the last complete line of an audit file (recovery at start).
 * Returns 0 (st->started false when the file holds no record), -EBADMSG when the last line is
 * not a record, or -errno. *torn_bytes: bytes after the last newline (an interrupted write). */
int chain__read_tail(const char *path, struct chain_state *st, size_t *torn_bytes);

/* `tokentap audit verify [--partial] [--expect-head HASH] FILE...` */
int audit__main(int argc, char **argv);

#endif
