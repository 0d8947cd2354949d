/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log (--audit FILE): one JSON line per AI call, hash-chained (src/audit/chain.h),
 * with the calling process's identity (src/audit/procinfo.h) and the policy verdict the judge
 * put on the span. Written synchronously on the pipeline thread with one write(2) per record;
 * a sync thread fdatasyncs on an interval, so the pipeline never waits for the disk. Size-based
 * rotation keeps the chain running across files. A record that cannot be written is counted,
 * logged, and announced by the next record's "lost_before" field.
 */
#ifndef TOKENTAP_EXPORT_AUDIT_H
#define TOKENTAP_EXPORT_AUDIT_H

#include <stdint.h>

#include "audit/procinfo.h"
#include "export/export.h"

struct audit_opts {
	const char *path;
	uint64_t max_bytes; /* rotate before a record would take the file past this; 0 = 100 MiB */
	int keep;	    /* rotated files kept (FILE.1 newest .. FILE.keep); 0 = 5 */
	int fsync_interval_ms;	  /* 0: fdatasync after every record (by the sync thread) */
	struct proc_table *procs; /* may be NULL: then only what the span says */
};

/* Opens (or continues the chain of) the audit file. NULL after one clear line on stderr. */
struct exporter *audit_exporter__new(const struct audit_opts *o);

/* Writes one record for span s into out (no newline), given the chain position: shared with
 * the unit tests. */
void audit__write_record(FILE *out, const struct span *s, const struct proc_facts *f, uint64_t seq,
			 const char *prev_hash, uint64_t lost_before);

#endif
