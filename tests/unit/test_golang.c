// SPDX-License-Identifier: Apache-2.0
/*
 * attach/golang.c: .gopclntab parsing on synthetic tables (every layout, every truncation, every
 * flipped byte), RET finding on hand-assembled code, and discovery on Go programs built here
 * with the Go toolchain (plain, -s -w, strip, PIE, no section headers), checked against
 * `go tool objdump`'s own listing of the RET instructions.
 *
 * Without a Go toolchain the binary tests are skipped, unless TOKENTAP_REQUIRE_BPF=1 (CI, where
 * deploy/deps.sh installs golang-go): then they fail.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tt_test.h"
#include "attach/golang.h"

static const char *const names3[] = {"main.main", "crypto/tls.(*Conn).Write", "runtime.absent"};

/* ---- synthetic tables ----------------------------------------------------------------------- */

struct tab {
	uint8_t b[1024];
	size_t len;
};

static void put(struct tab *t, size_t off, uint64_t v, unsigned size)
{
	memcpy(t->b + off, &v, size);
	if (off + size > t->len)
		t->len = off + size;
}

/*
 * A table of three functions: "runtime.main" at text+0x10, "main.main" at text+0x40 and
 * "crypto/tls.(*Conn).Write" at text+0x100, ending at text+0x180. go116 uses the 1.16 layout
 * (no textStart, uintptr entries), else the 1.18+ one with magic.
 */
static void tab__build(struct tab *t, uint32_t magic, uint64_t text_start)
{
	static const char *const fn[] = {"runtime.main", "main.main", "crypto/tls.(*Conn).Write"};
	static const uint32_t entry[] = {0x10, 0x40, 0x100, 0x180};
	bool go116 = magic == 0xfffffffa;
	unsigned ps = 8, words = go116 ? 7 : 8, es = go116 ? 16 : 8, i;
	size_t hdr = 8 + words * ps, names = hdr, ftab, funcs, no = 0;

	memset(t, 0, sizeof(*t));
	put(t, 0, magic, 4);
	t->b[6] = 1;
	t->b[7] = (uint8_t)ps;
	put(t, 8, 3, ps); /* nfunc */
	put(t, 8 + ps, 1, ps);
	if (!go116)
		put(t, 8 + 2 * ps, text_start, ps);
	put(t, 8 + (words - 5) * ps, names, ps);
	for (i = 0; i < 3; i++) {
		memcpy(t->b + names + no, fn[i], strlen(fn[i]) + 1);
		no += strlen(fn[i]) + 1;
	}
	ftab = (names + no + 7) & ~(size_t)7;
	put(t, 8 + (words - 1) * ps, ftab, ps);
	funcs = ftab + 4 * es;
	for (i = 0, no = 0; i < 4; i++) {
		uint64_t e = go116 ? 0x401000 + entry[i] : entry[i];

		put(t, ftab + i * es, e, es / 2);
		if (i == 3)
			break;
		put(t, ftab + i * es + es / 2, funcs + i * 16 - ftab, es / 2);
		put(t, funcs + i * 16, e, go116 ? 8 : 4);
		put(t, funcs + i * 16 + (go116 ? 8 : 4), no, 4);
		no += strlen(fn[i]) + 1;
	}
}

static void check_found(const struct golang_range *r, uint64_t text)
{
	CHECK_EQ_INT(r[0].start, text + 0x40);
	CHECK_EQ_INT(r[0].end, text + 0x100);
	CHECK_EQ_INT(r[1].start, text + 0x100);
	CHECK_EQ_INT(r[1].end, text + 0x180);
	CHECK_EQ_INT(r[2].start, 0);
}

TEST(pclntab_layouts)
{
	static const uint32_t magics[] = {0xfffffff0, 0xfffffff1};
	struct golang_range r[3];
	struct tab t;
	size_t i;

	for (i = 0; i < 2; i++) {
		tab__build(&t, magics[i], 0x401000);
		CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0x999000, names3, 3, r), 2);
		check_found(r, 0x401000);
		/* A PIE's textStart is 0 in the file: the .text address stands in. */
		tab__build(&t, magics[i], 0);
		CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0x7000, names3, 3, r), 2);
		check_found(r, 0x7000);
	}
	tab__build(&t, 0xfffffffa, 0);
	CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0, names3, 3, r), 2);
	check_found(r, 0x401000);
}

TEST(pclntab_rejects_bad_headers)
{
	struct golang_range r[3];
	struct tab t;

	tab__build(&t, 0xfffffff0, 0x401000);
	t.b[0] = 0xf5; /* unknown version */
	CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0, names3, 3, r), -EINVAL);
	tab__build(&t, 0xfffffff0, 0x401000);
	t.b[7] = 5; /* pointer size */
	CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0, names3, 3, r), -EINVAL);
	tab__build(&t, 0xfffffff0, 0x401000);
	put(&t, 8, 1000000, 8); /* more functions than the table holds */
	CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0, names3, 3, r), -EINVAL);
	CHECK_EQ_INT(golang__pclntab_find(t.b, 0, 0, names3, 3, r), -EINVAL);
}

/* Every prefix of a table: an error or (when the cut spares everything used) the full answer. */
TEST(pclntab_every_truncation)
{
	struct golang_range r[3];
	struct tab t;
	size_t cut;
	int bad = 0;

	tab__build(&t, 0xfffffff1, 0x401000);
	for (cut = 0; cut <= t.len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
		int n;

		memcpy(copy, t.b, cut);
		n = golang__pclntab_find(copy, cut, 0, names3, 3, r);
		if (n != -EINVAL && !(n == 2 && r[1].end == 0x401180))
			bad++;
		free(copy);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(golang__pclntab_find(t.b, t.len, 0, names3, 3, r), 2);
}

/* Every byte of the table set to a few hostile values: no crash, no read outside (ASan). */
TEST(pclntab_every_byte_corrupted)
{
	static const uint8_t vals[] = {0x00, 0x7f, 0x80, 0xff};
	struct golang_range r[3];
	struct tab t, bad;
	size_t i, v, sane = 0, total = 0;

	tab__build(&t, 0xfffffff0, 0x401000);
	for (i = 0; i < t.len; i++) {
		for (v = 0; v < sizeof(vals); v++) {
			uint8_t *copy = malloc(t.len);
			int n;

			bad = t;
			bad.b[i] = vals[v];
			memcpy(copy, bad.b, t.len);
			n = golang__pclntab_find(copy, t.len, 0, names3, 3, r);
			total++;
			/* Whatever it found lies in order: a start before its end. */
			if (n < 0 || ((!r[0].start || r[0].start < r[0].end) &&
				      (!r[1].start || r[1].start < r[1].end)))
				sane++;
			free(copy);
		}
	}
	CHECK_EQ_INT(sane, total);
}

/* ---- RET instructions ----------------------------------------------------------------------- */

TEST(ret_offsets)
{
	/* mov rbx, rax; ret; nop; cmp rsp, [r14+0x10]; ret 8 is no plain ret; ret */
	static const uint8_t code[] = {0x48, 0x89, 0xc3, 0xc3, 0x90, 0x49, 0x3b,
				       0x66, 0x10, 0xc2, 0x08, 0x00, 0xc3};
	/* A ret byte hidden inside an immediate: mov eax, 0xc3c3c3c3. */
	static const uint8_t imm[] = {0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3};
	uint64_t *rets;
	int n;

	n = golang__ret_offsets(code, sizeof(code), 0x1000, &rets);
	CHECK(n >= 2);
	if (n >= 2) {
		CHECK_EQ_INT(rets[0], 0x1003);
		CHECK_EQ_INT(rets[n - 1], 0x100c);
	}
	free(rets);
	n = golang__ret_offsets(imm, sizeof(imm), 0, &rets);
	CHECK_EQ_INT(n, 1);
	if (n == 1)
		CHECK_EQ_INT(rets[0], 5);
	free(rets);
	/* Cut inside the mov: the bounds are not a function's, no offsets. */
	CHECK_EQ_INT(golang__ret_offsets(imm, 3, 0, &rets), -EINVAL);
	CHECK(rets == NULL);
}

/* 256 returns are all probed; one more and the function is refused, not half probed. */
TEST(ret_offsets_cap)
{
	uint8_t code[257];
	uint64_t *rets;
	int n;

	memset(code, 0xc3, sizeof(code));
	n = golang__ret_offsets(code, 256, 0, &rets);
	CHECK_EQ_INT(n, 256);
	if (n == 256)
		CHECK_EQ_INT(rets[255], 255);
	free(rets);
	CHECK_EQ_INT(golang__ret_offsets(code, 257, 0, &rets), -E2BIG);
	CHECK(rets == NULL);
}

/* ---- real Go binaries ----------------------------------------------------------------------- */

static const char go_prog[] =
    "package main\n"
    "import (\"crypto/tls\"; \"fmt\"; \"os\")\n"
    "func main() {\n"
    "\tc, err := tls.Dial(\"tcp\", os.Args[1], &tls.Config{})\n"
    "\tif err != nil { fmt.Println(err); return }\n"
    "\tc.Write([]byte(\"x\")); b := make([]byte, 8); c.Read(b); c.Close()\n"
    "}\n";

static char workdir[] = "/tmp/tokentap-test-golang.XXXXXX";

static bool have_go(void)
{
	return system("go version >/dev/null 2>&1") == 0;
}

static int go_build(const char *out, const char *flags)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && HOME=${HOME:-%s} GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 "
		 "go build %s -o %s main.go >build.log 2>&1",
		 workdir, workdir, flags, out);
	return system(cmd);
}

/*
 * File offsets of the RETs `go tool objdump` lists for fn (it needs .symtab), its addresses
 * mapped to the file through the executable segment as readelf reads it: two readers that
 * share no code with golang.c.
 */
static int objdump_rets(const char *bin, const char *fn, uint64_t *out, int max)
{
	char cmd[1024], line[512];
	unsigned long long vaddr, seg_va = 0, seg_off = 0;
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "readelf -lW %s | awk '$1==\"LOAD\" && / R E / {print $2, $3}'",
		 bin);
	p = popen(cmd, "r");
	if (!p || fscanf(p, "%llx %llx", &seg_off, &seg_va) != 2)
		seg_va = seg_off = 0;
	if (p)
		pclose(p);
	snprintf(cmd, sizeof(cmd), "cd %s && go tool objdump -s '^%s$' %s 2>/dev/null", workdir, fn,
		 bin);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p)) {
		char *addr = strstr(line, "0x");

		if (strstr(line, "\tRET") && addr && n < max && sscanf(addr, "%llx", &vaddr) == 1)
			out[n++] = vaddr - seg_va + seg_off;
	}
	pclose(p);
	return n;
}

static void check_against_objdump(const char *bin, const struct golang_plan *plan)
{
	static const char *const fns[] = {"crypto/tls.\\(\\*Conn\\).Write",
					  "crypto/tls.\\(\\*Conn\\).Read"};
	uint64_t want[64];
	int k, i, n;

	for (k = 0; k < 2; k++) {
		n = objdump_rets(bin, fns[k], want, 64);
		CHECK(n > 0);
		CHECK_EQ_INT(plan->fn[k].nrets, n);
		for (i = 0; i < n && i < (int)plan->fn[k].nrets; i++)
			CHECK_EQ_INT(plan->fn[k].rets[i], want[i]);
		CHECK(plan->fn[k].entry > 0);
	}
	CHECK(plan->fn[GOLANG_FN_CLOSE].entry > 0);
}

/* Copies src with its section header table cut off, as sstrip leaves a file. */
static int copy_without_sections(const char *src, const char *dst)
{
	struct stat st;
	Elf64_Ehdr eh;
	uint8_t *buf;
	int fd, ok;

	fd = open(src, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return -1;
	buf = malloc((size_t)st.st_size);
	ok = buf && read(fd, buf, (size_t)st.st_size) == st.st_size;
	close(fd);
	if (ok) {
		memcpy(&eh, buf, sizeof(eh));
		eh.e_shoff = 0;
		eh.e_shnum = eh.e_shentsize = eh.e_shstrndx = 0;
		memcpy(buf, &eh, sizeof(eh));
		fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
		ok = fd >= 0 && write(fd, buf, (size_t)st.st_size) == st.st_size;
		if (fd >= 0)
			close(fd);
	}
	free(buf);
	return ok ? 0 : -1;
}

/*
 * Discovers name and checks it against objdump (when it has symbols) or against ref, the same
 * code found through the symbols of its unstripped twin.
 */
static void discover(const char *name, const char *method, struct golang_plan *out,
		     const struct golang_plan *ref)
{
	struct golang_plan plan;
	char path[512];
	uint32_t i;
	int k;

	snprintf(path, sizeof(path), "%s/%s", workdir, name);
	CHECK_EQ_INT(golang__discover(path, &plan), 1);
	CHECK_EQ_STR(plan.method, method);
	if (!ref)
		check_against_objdump(path, &plan);
	for (k = 0; ref && k < GOLANG_FN__COUNT; k++) {
		CHECK_EQ_INT(plan.fn[k].entry, ref->fn[k].entry);
		CHECK_EQ_INT(plan.fn[k].nrets, ref->fn[k].nrets);
		for (i = 0; i < plan.fn[k].nrets && i < ref->fn[k].nrets; i++)
			CHECK_EQ_INT(plan.fn[k].rets[i], ref->fn[k].rets[i]);
	}
	if (out)
		*out = plan;
	else
		golang__plan_free(&plan);
}

TEST(go_binaries)
{
	struct golang_plan ref, pie;
	char path[512], cmd[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/main.go", workdir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(go_prog, f);
	fclose(f);
	CHECK_EQ_INT(go_build("plain", ""), 0);
	CHECK_EQ_INT(go_build("stripped", "-ldflags='-s -w'"), 0);
	CHECK_EQ_INT(go_build("pie", "-buildmode=pie"), 0);
	CHECK_EQ_INT(go_build("pie-stripped", "-buildmode=pie -ldflags='-s -w'"), 0);
	snprintf(cmd, sizeof(cmd), "cp %s/plain %s/strip && strip %s/strip", workdir, workdir,
		 workdir);
	CHECK_EQ_INT(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/plain", workdir);
	snprintf(cmd, sizeof(cmd), "%s/noshdr", workdir);
	CHECK_EQ_INT(copy_without_sections(path, cmd), 0);

	discover("plain", "symbols", &ref, NULL);
	discover("stripped", "gopclntab", NULL, &ref);
	discover("strip", "gopclntab", NULL, &ref);
	discover("noshdr", "gopclntab", NULL, &ref);
	discover("pie", "symbols", &pie, NULL);
	discover("pie-stripped", "gopclntab", NULL, &pie);
	golang__plan_free(&ref);
	golang__plan_free(&pie);
}

TEST(not_go)
{
	struct golang_plan plan;
	char path[512];
	FILE *f;

	CHECK_EQ_INT(golang__discover("/proc/self/exe", &plan), 0); /* C, no Go */
	CHECK(plan.method == NULL);
	CHECK_EQ_INT(golang__discover("/nonexistent/tokentap", &plan), -ENOENT);
	snprintf(path, sizeof(path), "%s/text", workdir);
	f = fopen(path, "w");
	if (f) {
		fputs("\x7f"
		      "ELF but not really, a text file that is long enough to look at\n",
		      f);
		fclose(f);
	}
	CHECK_EQ_INT(golang__discover(path, &plan), 0);
}

int main(void)
{
	char cmd[600];
	bool require =
	    getenv("TOKENTAP_REQUIRE_BPF") && !strcmp(getenv("TOKENTAP_REQUIRE_BPF"), "1");

	if (!mkdtemp(workdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(pclntab_layouts);
	RUN(pclntab_rejects_bad_headers);
	RUN(pclntab_every_truncation);
	RUN(pclntab_every_byte_corrupted);
	RUN(ret_offsets);
	RUN(ret_offsets_cap);
	RUN(not_go);
	if (have_go() || require)
		RUN(go_binaries);
	else
		fprintf(stderr, "test_golang: no Go toolchain: Go binary tests skipped\n");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
	if (system(cmd))
		fprintf(stderr, "test_golang: cannot remove %s\n", workdir);
	TT_DONE();
}
