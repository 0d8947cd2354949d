// SPDX-License-Identifier: Apache-2.0
/*
 * `tokentap top`: flags, the loop (lines in, keys in, a frame a second) and what each key does.
 */
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "top/top.h"

#define NS_PER_SEC 1000000000ull
#define FRAME_NS (NS_PER_SEC / 2)

struct top_opts {
	const char *socket;
	bool standalone;
	unsigned window_s;
	char *const *agent_args;
	int n_agent_args;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void top__usage(FILE *out)
{
	fprintf(out,
		"Usage: tokentap top [options] [-- agent options]\n"
		"A live view of the LLM calls on this node, computed from the spans tokentap exports.\n\n"
		"  -s, --socket PATH   the agent's control socket (default " TOP_DEFAULT_SOCKET ")\n"
		"      --standalone    start a private capture agent instead (root); options after\n"
		"                      -- go to that agent\n"
		"  -w, --window SEC    window for rates and percentiles (default 60)\n"
		"  -g, --group KEY     process, pod, provider, model, tenant or apikey (default model)\n"
		"  -h, --help          this help\n"
		"Keys: q quit, g/1-6 grouping, </> sort column, r reverse, t rates/totals, ? all keys.\n");
}

static int top__parse_group(const char *s, enum top_key *k)
{
	static const char *const names[TOP_KEY_N] = { "process", "pod",    "provider",
						       "model",	  "tenant", "apikey" };

	for (int i = 0; i < TOP_KEY_N; i++) {
		if (!strcmp(s, names[i])) {
			*k = (enum top_key)i;
			return 0;
		}
	}
	fprintf(stderr, "tokentap top: --group must be one of process, pod, provider, model, "
			"tenant, apikey\n");
	return -EINVAL;
}

static int top__parse_flags(int argc, char **argv, struct top_opts *o, struct view *v)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "standalone", no_argument, NULL, 'S' },
		{ "window", required_argument, NULL, 'w' },
		{ "group", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "s:w:g:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->socket = optarg;
			break;
		case 'S':
			o->standalone = true;
			break;
		case 'w':
			o->window_s = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !o->window_s || o->window_s > 3600) {
				fprintf(stderr, "tokentap top: --window takes 1..3600 seconds\n");
				return -EINVAL;
			}
			break;
		case 'g':
			if (top__parse_group(optarg, &v->key))
				return -EINVAL;
			break;
		case 'h':
			top__usage(stdout);
			exit(0);
		default:
			top__usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc && !o->standalone) {
		fprintf(stderr, "tokentap top: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	o->agent_args = argv + optind;
	o->n_agent_args = argc - optind;
	return 0;
}

/* ---- keys -------------------------------------------------------------------------------- */

static const char sort_keys[TOP_COL_N] = {
	[TOP_COL_KEY] = 'n',	   [TOP_COL_CALLS] = 'c',    [TOP_COL_TOK_IN] = 'i',
	[TOP_COL_TOK_OUT] = 'o',   [TOP_COL_SPEND_RATE] = 'h', [TOP_COL_SPEND] = 's',
	[TOP_COL_LAT_P50] = 'l',   [TOP_COL_LAT_P95] = 'L',  [TOP_COL_TTFC_P50] = 'f',
	[TOP_COL_TTFC_P95] = 'F',  [TOP_COL_ERR] = 'e',
};

/* Names sort up, numbers sort down (biggest first); the same column again reverses. */
static void view__sort_by(struct view *v, enum top_col c)
{
	if (v->sort == c) {
		v->descending = !v->descending;
		return;
	}
	v->sort = c;
	v->descending = c != TOP_COL_KEY;
}

/* Returns false when the key asks to quit. */
static bool top__key(struct view *v, int ch)
{
	if (v->help && ch != KEY_RESIZE) {
		v->help = false;
		return ch != 'q';
	}
	switch (ch) {
	case 'q':
	case 'Q':
		return false;
	case 'g':
		v->key = (v->key + 1) % TOP_KEY_N;
		return true;
	case 'G':
		v->key = (v->key + TOP_KEY_N - 1) % TOP_KEY_N;
		return true;
	case '<':
	case KEY_LEFT:
		view__sort_by(v, (v->sort + TOP_COL_N - 1) % TOP_COL_N);
		return true;
	case '>':
	case KEY_RIGHT:
		view__sort_by(v, (v->sort + 1) % TOP_COL_N);
		return true;
	case 'r':
		v->descending = !v->descending;
		return true;
	case 't':
		v->totals = !v->totals;
		return true;
	case '?':
		v->help = true;
		return true;
	}
	if (ch >= '1' && ch < '1' + TOP_KEY_N)
		v->key = (enum top_key)(ch - '1');
	for (int c = 0; c < TOP_COL_N; c++)
		if (ch == sort_keys[c])
			view__sort_by(v, (enum top_col)c);
	return true;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void top__loop(struct view *v, struct feed *f, struct top_agg *agg, struct top_health *h)
{
	uint64_t next_frame = 0;
	bool dirty = true;

	while (!stop) {
		struct pollfd pf[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
					{ .fd = f->fd, .events = POLLIN } };
		uint64_t mono = clock_ns(CLOCK_MONOTONIC);
		int ch, wait_ms;

		if (dirty || mono >= next_frame) {
			view__draw(v, agg, h, f, clock_ns(CLOCK_REALTIME));
			next_frame = mono + FRAME_NS;
			dirty = false;
		}
		wait_ms = (int)((next_frame - mono) / 1000000) + 1;
		/* A resize interrupts poll (SIGWINCH); getch then returns KEY_RESIZE. */
		poll(pf, f->fd >= 0 ? 2 : 1, wait_ms);
		feed__pump(f, agg, h, clock_ns(CLOCK_MONOTONIC));
		while ((ch = getch()) != ERR) {
			if (!top__key(v, ch))
				return;
			dirty = true;
		}
	}
}

static int top__open_feed(struct feed *f, const struct top_opts *o)
{
	int err = feed__init(f);

	if (err)
		return err;
	if (o->standalone)
		return feed__start_agent(f, o->agent_args, o->n_agent_args, 30);
	err = feed__connect(f, o->socket);
	if (err)
		fprintf(stderr, "tokentap top: %s\n  (is `tokentap` running? its socket is set with "
				"--control-socket; or run `tokentap top --standalone`)\n",
			f->error);
	return err;
}

int top__main(int argc, char **argv)
{
	struct top_opts o = { .socket = TOP_DEFAULT_SOCKET, .window_s = 60 };
	struct view v = { .key = TOP_KEY_MODEL, .sort = TOP_COL_CALLS, .descending = true };
	struct sigaction sa = { .sa_handler = on_signal };
	struct top_health h = {};
	struct top_agg *agg;
	struct feed f;
	int err;

	if (top__parse_flags(argc, argv, &o, &v))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = top__open_feed(&f, &o);
	if (err) {
		feed__close(&f);
		return 1;
	}
	agg = top_agg__new((uint64_t)o.window_s * NS_PER_SEC, clock_ns(CLOCK_REALTIME));
	if (!agg) {
		feed__close(&f);
		return 1;
	}
	v.window_s = o.window_s;
	v.source = o.standalone ? "standalone" : o.socket;
	view__start(&v);
	top__loop(&v, &f, agg, &h);
	view__end();
	if (o.standalone)
		fprintf(stderr, "tokentap top: stopping the capture agent...\n");
	feed__close(&f);
	top_agg__free(agg);
	return 0;
}
