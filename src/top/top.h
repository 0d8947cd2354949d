/* SPDX-License-Identifier: Apache-2.0 */
/*
 * top/: `tokentap top`, a live terminal view of the LLM calls on this node. feed.c reads the
 * agent's control socket (or starts a private agent for --standalone), agg.c computes, view.c
 * draws with ncurses, top.c holds the loop and the keys.
 */
#ifndef TOKENTAP_TOP_H
#define TOKENTAP_TOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "top/agg.h"

#define TOP_DEFAULT_SOCKET "/run/tokentap.sock"

struct feed {
	char path[108];
	int fd;	       /* -1 while disconnected */
	char *buf;     /* a partial line */
	size_t len;
	bool skipping; /* inside a line too long to keep: dropped up to its end */
	uint64_t lines, bad_lines;
	char error[160]; /* why we are not connected, for the screen */
	uint64_t next_try_ns;
	/* --standalone: the private agent */
	pid_t child;
	char dir[64];
	bool child_exited;
	int child_status;
};

int feed__init(struct feed *f);
/* Connects to path; 0 or -errno with feed->error set. */
int feed__connect(struct feed *f, const char *path);
/* Starts `tokentap --format json --control-socket <private>` and connects to it (waiting up to
 * timeout_s). extra are more agent flags. 0 or -errno, with the agent's complaint printed. */
int feed__start_agent(struct feed *f, char *const *extra, int n_extra, int timeout_s);
/* Reads what is there and hands every complete line to the aggregate; reconnects when due. */
void feed__pump(struct feed *f, struct top_agg *agg, struct top_health *h, uint64_t now_mono_ns);
void feed__close(struct feed *f);

struct view {
	enum top_key key;
	enum top_col sort;
	bool descending, totals, help;
	bool utf8;
	unsigned window_s;
	const char *source; /* shown in the title */
};

void view__start(struct view *v);
void view__end(void);
void view__draw(const struct view *v, struct top_agg *agg, const struct top_health *h,
		const struct feed *f, uint64_t now_ns);
const char *view__key_name(enum top_key k);

#endif
