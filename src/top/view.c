// SPDX-License-Identifier: Apache-2.0
/*
 * top/view: draws one frame of `tokentap top` with ncurses, from the aggregate only. Columns that
 * do not fit the terminal are left out by priority (and counted in the header), so the view
 * works at 80x24 and grows with the window.
 */
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "top/top.h"

#define KEY_COL_MIN 12
#define CP_ALERT 1

struct col {
	const char *rate_hdr, *total_hdr;
	int width;
	int prio; /* lower is kept first when the terminal is narrow */
};

static const struct col cols[TOP_COL_N] = {
	[TOP_COL_CALLS] = { "CALL/s", "CALLS", 6, 0 },
	[TOP_COL_TOK_IN] = { "IN/s", "IN", 6, 1 },
	[TOP_COL_TOK_OUT] = { "OUT/s", "OUT", 6, 2 },
	[TOP_COL_SPEND_RATE] = { "$/h", "$/h", 7, 7 },
	[TOP_COL_SPEND] = { "$", "$", 7, 3 },
	[TOP_COL_LAT_P50] = { "LAT50", "LAT50", 5, 4 },
	[TOP_COL_LAT_P95] = { "LAT95", "LAT95", 5, 5 },
	[TOP_COL_TTFC_P50] = { "FC50", "FC50", 5, 8 },
	[TOP_COL_TTFC_P95] = { "FC95", "FC95", 5, 9 },
	[TOP_COL_ERR] = { "ERR%", "ERR%", 5, 6 },
};

static const char *const key_names[TOP_KEY_N] = {
	[TOP_KEY_PROCESS] = "PROCESS",	 [TOP_KEY_CONTAINER] = "POD/CONTAINER",
	[TOP_KEY_PROVIDER] = "PROVIDER", [TOP_KEY_MODEL] = "MODEL",
	[TOP_KEY_TENANT] = "TENANT",	 [TOP_KEY_API_KEY] = "API KEY",
};

const char *view__key_name(enum top_key k)
{
	return k < TOP_KEY_N ? key_names[k] : "ALL";
}

/* ---- number formats: each fits its column ------------------------------------------------ */

static void fmt_count(char *b, size_t n, double v)
{
	if (isnan(v))
		snprintf(b, n, "-");
	else if (v < 100000)
		snprintf(b, n, "%.0f", v);
	else if (v < 1e8)
		snprintf(b, n, "%.1fk", v / 1e3);
	else
		snprintf(b, n, "%.1fM", v / 1e6);
}

static void fmt_rate(char *b, size_t n, double v)
{
	if (isnan(v))
		snprintf(b, n, "-");
	else if (v == 0)
		snprintf(b, n, "0");
	else if (v < 10)
		snprintf(b, n, "%.2f", v);
	else if (v < 1000)
		snprintf(b, n, "%.1f", v);
	else
		fmt_count(b, n, v);
}

static void fmt_usd(char *b, size_t n, double v)
{
	if (isnan(v))
		snprintf(b, n, "-");
	else if (v == 0)
		snprintf(b, n, "0");
	else if (v < 0.001)
		snprintf(b, n, "%.1e", v); /* mock-sized calls cost millionths */
	else if (v < 0.01)
		snprintf(b, n, "%.4f", v);
	else if (v < 10)
		snprintf(b, n, "%.3f", v);
	else if (v < 10000)
		snprintf(b, n, "%.2f", v);
	else
		snprintf(b, n, "%.0f", v);
}

static void fmt_dur(char *b, size_t n, double s)
{
	if (isnan(s))
		snprintf(b, n, "-");
	else if (s < 1)
		snprintf(b, n, "%.0fms", s * 1000);
	else if (s < 10)
		snprintf(b, n, "%.2fs", s);
	else if (s < 100)
		snprintf(b, n, "%.1fs", s);
	else
		snprintf(b, n, "%.0fs", s);
}

static void fmt_pct(char *b, size_t n, double f)
{
	if (isnan(f))
		snprintf(b, n, "-");
	else if (f * 100 < 10 && f > 0)
		snprintf(b, n, "%.1f%%", f * 100);
	else
		snprintf(b, n, "%.0f%%", f * 100);
}

static void fmt_cell(char *b, size_t n, const struct top_row *r, enum top_col c, bool totals)
{
	double v = top_row__value(r, c, totals);

	switch (c) {
	case TOP_COL_CALLS:
	case TOP_COL_TOK_IN:
	case TOP_COL_TOK_OUT:
		if (totals)
			fmt_count(b, n, v);
		else
			fmt_rate(b, n, v);
		return;
	case TOP_COL_SPEND_RATE:
	case TOP_COL_SPEND:
		fmt_usd(b, n, v);
		return;
	case TOP_COL_ERR:
		fmt_pct(b, n, v);
		return;
	default:
		fmt_dur(b, n, v);
	}
}

/* ---- layout ------------------------------------------------------------------------------ */

struct layout {
	bool shown[TOP_COL_N];
	int key_w, hidden;
};

static void layout__fit(struct layout *l, int width)
{
	int room = width - KEY_COL_MIN, extra = 0;

	memset(l, 0, sizeof(*l));
	for (int prio = 0; prio < TOP_COL_N; prio++) {
		for (int c = TOP_COL_CALLS; c < TOP_COL_N; c++) {
			if (cols[c].prio != prio)
				continue;
			if (cols[c].width + 1 <= room) {
				l->shown[c] = true;
				room -= cols[c].width + 1;
			} else {
				l->hidden++;
			}
		}
	}
	extra = room;
	l->key_w = KEY_COL_MIN + extra;
	if (l->key_w > TOP_KEY_LEN - 1)
		l->key_w = TOP_KEY_LEN - 1;
}

static const char *view__col_name(const struct view *v, enum top_col c)
{
	if (c == TOP_COL_KEY)
		return view__key_name(v->key);
	return v->totals ? cols[c].total_hdr : cols[c].rate_hdr;
}

static void put_clipped(int y, int x, const char *s, int width)
{
	if (width > 0)
		mvaddnstr(y, x, s, width);
}

static void view__header(const struct view *v, const struct layout *l, int y)
{
	int x = l->key_w;

	attron(A_REVERSE);
	mvhline(y, 0, ' ', COLS);
	mvprintw(y, 0, "%-*.*s", l->key_w, l->key_w, view__key_name(v->key));
	for (int c = TOP_COL_CALLS; c < TOP_COL_N; c++) {
		if (!l->shown[c])
			continue;
		if (c == (int)v->sort)
			attron(A_BOLD | A_UNDERLINE);
		mvprintw(y, x, " %*s", cols[c].width, view__col_name(v, c));
		attroff(A_BOLD | A_UNDERLINE);
		x += cols[c].width + 1;
	}
	if (v->sort == TOP_COL_KEY) {
		attron(A_BOLD | A_UNDERLINE);
		mvprintw(y, 0, "%s", view__key_name(v->key));
		attroff(A_BOLD | A_UNDERLINE);
	}
	attroff(A_REVERSE);
}

static void view__row(const struct view *v, const struct layout *l, const struct top_row *r,
		      int y)
{
	char cell[32];
	int x = l->key_w;
	size_t klen = strlen(r->key);

	/* A cut key ends in '~' so it is not taken for a whole one. */
	if ((int)klen > l->key_w - 1)
		mvprintw(y, 0, "%.*s~", l->key_w - 2, r->key);
	else
		mvprintw(y, 0, "%s", r->key);
	for (int c = TOP_COL_CALLS; c < TOP_COL_N; c++) {
		if (!l->shown[c])
			continue;
		fmt_cell(cell, sizeof(cell), r, c, v->totals);
		if (c == TOP_COL_ERR && top_row__value(r, c, v->totals) > 0)
			attron(COLOR_PAIR(CP_ALERT));
		mvprintw(y, x, " %*s", cols[c].width, cell);
		attroff(COLOR_PAIR(CP_ALERT));
		x += cols[c].width + 1;
	}
}

/* ---- the lines around the table ---------------------------------------------------------- */

static void view__health(const struct top_health *h, const struct feed *f, int y)
{
	bool bad = h->events_lost || h->parse_errors || h->export_dropped || h->client_dropped ||
		   f->bad_lines;

	if (f->fd < 0) {
		attron(COLOR_PAIR(CP_ALERT) | A_BOLD);
		put_clipped(y, 0, f->error[0] ? f->error : "not connected", COLS);
		attroff(COLOR_PAIR(CP_ALERT) | A_BOLD);
		return;
	}
	if (!h->seen) {
		put_clipped(y, 0, "agent: waiting for its first health line...", COLS);
		return;
	}
	if (bad)
		attron(COLOR_PAIR(CP_ALERT) | A_BOLD);
	mvprintw(y, 0, "health: lost events %llu  parse errors %llu  export backlog %llu  dropped %llu"
		 "  view lost %llu  bad lines %llu",
		 (unsigned long long)h->events_lost, (unsigned long long)h->parse_errors,
		 (unsigned long long)h->export_backlog, (unsigned long long)h->export_dropped,
		 (unsigned long long)h->client_dropped, (unsigned long long)f->bad_lines);
	attroff(COLOR_PAIR(CP_ALERT) | A_BOLD);
}

static void view__totals(struct top_agg *agg, uint64_t now_ns, int y)
{
	const struct top_row *r;
	char calls[16], rate[16], in[16], out[16], usd[16], usdh[16], p50[16], p95[16], err[16];

	if (!top_agg__rows(agg, TOP_KEY_ALL, now_ns, true, TOP_COL_CALLS, true, &r)) {
		put_clipped(y, 0, "total: no calls yet", COLS);
		return;
	}
	fmt_count(calls, sizeof(calls), (double)r->calls);
	fmt_rate(rate, sizeof(rate), r->calls_rate);
	fmt_count(in, sizeof(in), (double)r->tokens_in);
	fmt_count(out, sizeof(out), (double)r->tokens_out);
	fmt_usd(usd, sizeof(usd), r->spend);
	fmt_usd(usdh, sizeof(usdh), r->spend_rate);
	fmt_dur(p50, sizeof(p50), r->lat_p50);
	fmt_dur(p95, sizeof(p95), r->lat_p95);
	fmt_pct(err, sizeof(err), top_row__value(r, TOP_COL_ERR, true));
	mvprintw(y, 0, "total: calls %s (%s/s)  tokens in %s out %s  $ %s ($/h %s)  lat %s/%s  err %s",
		 calls, rate, in, out, usd, usdh, p50, p95, err);
}

/* Calls per second over the last seconds, one cell per second, newest on the right. */
static void view__bar(const struct view *v, struct top_agg *agg, uint64_t now_ns, int y)
{
	static const char *const blocks[] = { " ", "\u2581", "\u2582", "\u2583", "\u2584",
					      "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char ascii[] = " .:-=+*#%@";
	uint32_t calls[512], errs[512], max = 0;
	const char *label = "calls/s ";
	int n = COLS - (int)strlen(label) - 10, lvl;

	if (n <= 0)
		return;
	if (n > 512)
		n = 512;
	top_agg__history(agg, now_ns, (size_t)n, calls, errs);
	for (int i = 0; i < n; i++)
		max = calls[i] > max ? calls[i] : max;
	mvprintw(y, 0, "%s", label);
	for (int i = 0; i < n; i++) {
		lvl = max ? (int)((calls[i] * 8 + max - 1) / max) : 0;
		if (errs[i])
			attron(COLOR_PAIR(CP_ALERT));
		if (v->utf8)
			addstr(blocks[lvl]);
		else
			addch((chtype)ascii[lvl]);
		attroff(COLOR_PAIR(CP_ALERT));
	}
	printw(" max %u", max);
}

/* The newest calls, newest first, as many as fit on one line. */
static void view__recent(struct top_agg *agg, int y)
{
	const struct top_call *c;
	char item[128], lat[16];
	int x = 0;

	mvprintw(y, 0, "last:");
	x = 5;
	for (size_t i = 0; (c = top_agg__recent(agg, i)); i++) {
		fmt_dur(lat, sizeof(lat), c->latency_s);
		snprintf(item, sizeof(item), " %s %s %lld/%lld%s |", c->keys[TOP_KEY_MODEL], lat,
			 (long long)c->tokens_in, (long long)c->tokens_out, c->error ? " ERR" : "");
		if (x + (int)strlen(item) > COLS)
			break;
		if (c->error)
			attron(COLOR_PAIR(CP_ALERT));
		mvaddstr(y, x, item);
		attroff(COLOR_PAIR(CP_ALERT));
		x += (int)strlen(item);
	}
}

static const char help_line[] =
	"q quit  g/1-6 group  </> sort  r reverse  t rates/totals  ? keys";

static const char *const help_text[] = {
	"tokentap top: LLM calls on this node, from the agent's own spans",
	"",
	"q        quit",
	"g / G    next / previous grouping; 1-6 pick one:",
	"         1 process  2 pod/container  3 provider  4 model  5 tenant  6 API key",
	"< / >    sort by the column to the left / right;  r  reverse the order",
	"sort by: n key  c calls  i tokens in  o tokens out  h $/hour  s $ since start",
	"         l / L latency p50 / p95   f / F first chunk p50 / p95   e error rate",
	"t        rates over the window <-> totals since this view started",
	"",
	"Rates, percentiles and $/h cover the last window; $ is since start.",
	"LAT: request written to last byte read. FC: time to first streamed chunk.",
	"- : no value (no call in the window, no stream, or no cost on the spans)",
	"",
	"any key closes this help",
};

static void view__help(void)
{
	int n = (int)(sizeof(help_text) / sizeof(help_text[0]));

	for (int i = 0; i < n && i + 1 < LINES; i++) {
		move(i + 1, 0);
		clrtoeol();
		put_clipped(i + 1, 1, help_text[i], COLS - 2);
	}
}

static void view__title_line(const struct view *v, const struct feed *f, uint64_t now_ns,
			     int hidden)
{
	time_t t = (time_t)(now_ns / 1000000000ull);
	char buf[512], extra[64] = "";
	struct tm tm;

	localtime_r(&t, &tm);
	if (hidden)
		snprintf(extra, sizeof(extra), "  (+%d cols: widen)", hidden);
	if (f->child_exited)
		snprintf(extra, sizeof(extra), "  AGENT EXITED (%d)",
			 WIFEXITED(f->child_status) ? WEXITSTATUS(f->child_status) : -1);
	snprintf(buf, sizeof(buf), "tokentap top %02d:%02d:%02d  by %s  sort %s %s  %s  window %llus"
		 "%s  %s", tm.tm_hour, tm.tm_min, tm.tm_sec, view__key_name(v->key),
		 view__col_name(v, v->sort), v->descending ? "v" : "^", v->totals ? "totals" : "rates",
		 (unsigned long long)(v->window_s), extra, v->source);
	attron(A_BOLD);
	put_clipped(0, 0, buf, COLS);
	attroff(A_BOLD);
}

/* Full screen, keys without Enter, no echo; KEY_RESIZE arrives through getch. */
void view__start(struct view *v)
{
	const char *cs = setlocale(LC_ALL, "") ? nl_langinfo(CODESET) : "";

	v->utf8 = cs && !strcmp(cs, "UTF-8");
	initscr();
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);
	if (has_colors()) {
		start_color();
		use_default_colors();
		init_pair(CP_ALERT, COLOR_RED, -1);
	}
}

void view__end(void)
{
	endwin();
}

void view__draw(const struct view *v, struct top_agg *agg, const struct top_health *h,
		const struct feed *f, uint64_t now_ns)
{
	const struct top_row *rows;
	struct layout l;
	size_t n;
	int y, last;

	erase();
	if (COLS < 40 || LINES < 10) {
		put_clipped(0, 0, "tokentap top: terminal too small (40x10 at least)", COLS);
		refresh();
		return;
	}
	layout__fit(&l, COLS);
	view__title_line(v, f, now_ns, l.hidden);
	view__health(h, f, 1);
	view__totals(agg, now_ns, 2);
	view__header(v, &l, 3);
	n = top_agg__rows(agg, v->key, now_ns, v->totals, v->sort, v->descending, &rows);
	last = LINES - 4; /* bar, recent calls and help line below */
	for (y = 4; y <= last && (size_t)(y - 4) < n; y++) {
		if (y == last && (size_t)(y - 4) + 1 < n) {
			mvprintw(y, 0, "... %zu more", n - (size_t)(y - 4));
			break;
		}
		view__row(v, &l, &rows[y - 4], y);
	}
	view__bar(v, agg, now_ns, LINES - 3);
	view__recent(agg, LINES - 2);
	attron(A_REVERSE);
	mvhline(LINES - 1, 0, ' ', COLS);
	put_clipped(LINES - 1, 0, help_line, COLS);
	attroff(A_REVERSE);
	if (v->help)
		view__help();
	refresh();
}
