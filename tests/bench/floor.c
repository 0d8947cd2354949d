// SPDX-License-Identifier: Apache-2.0
/*
 * Attaches the empty probes of floor.bpf.o at the entry and return of the SSL functions tokentap
 * probes, in one library, prints "floor: attached N" and holds them until SIGINT/SIGTERM.
 *   floor OBJECT LIBRARY
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

static const char *const funcs[] = {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"};
#define NFUNCS (sizeof(funcs) / sizeof(funcs[0]))

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static int floor__attach(struct bpf_object *obj, const char *lib, struct bpf_link **links)
{
	struct bpf_program *enter = bpf_object__find_program_by_name(obj, "floor_enter");
	struct bpf_program *ret = bpf_object__find_program_by_name(obj, "floor_return");
	int n = 0;

	for (size_t i = 0; i < NFUNCS; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, eo, .func_name = funcs[i], .retprobe = false);
		LIBBPF_OPTS(bpf_uprobe_opts, ro, .func_name = funcs[i], .retprobe = true);

		links[n] = bpf_program__attach_uprobe_opts(enter, -1, lib, 0, &eo);
		if (!links[n++])
			return -errno;
		links[n] = bpf_program__attach_uprobe_opts(ret, -1, lib, 0, &ro);
		if (!links[n++])
			return -errno;
	}
	return n;
}

int main(int argc, char **argv)
{
	struct bpf_link *links[2 * NFUNCS] = {};
	struct bpf_object *obj;
	int n;

	if (argc != 3) {
		fprintf(stderr, "usage: floor OBJECT LIBRARY\n");
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "floor: cannot load %s\n", argv[1]);
		return 1;
	}
	n = floor__attach(obj, argv[2], links);
	if (n < 0) {
		fprintf(stderr, "floor: cannot attach to %s: %s\n", argv[2], strerror(-n));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("floor: attached %d\n", n);
	fflush(stdout);
	while (!stop)
		pause();
	for (size_t i = 0; i < 2 * NFUNCS; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(obj);
	return 0;
}
