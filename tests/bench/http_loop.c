// SPDX-License-Identifier: Apache-2.0
/*
 * What plain-HTTP capture costs traffic that is not LLM traffic: small loopback HTTP requests
 * (GET /api/items, answered by a server thread) on a new connection each or on one keep-alive
 * connection, and plain file syscalls (write to /dev/null, read from /dev/zero), which pay the
 * syscall tracepoints too. Prints one line per mode: "mode N ops ns_per_op".
 *
 * Usage: http_loop [requests] [syscalls]   (defaults 10000 and 1000000)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char request[] = "GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads until the end of one message (a head, or the fixed response); 0 when the peer closed. */
static int read_message(int fd, const char *end)
{
	char buf[512];
	size_t got = 0;

	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (n <= 0)
			return 0;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, end))
			return 1;
	}
	return 0;
}

static void *serve_conn(void *arg)
{
	int fd = (int)(long)arg;

	while (read_message(fd, "\r\n\r\n"))
		if (write(fd, response, sizeof(response) - 1) < 0)
			break;
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			return NULL;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		pthread_create(&t, NULL, serve_conn, (void *)(long)fd);
		pthread_detach(t);
	}
}

static int dial(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	if (connect(fd, (const void *)a, sizeof(*a))) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static void exchange(int fd)
{
	if (write(fd, request, sizeof(request) - 1) < 0 || !read_message(fd, "ok")) {
		fprintf(stderr, "http_loop: exchange failed\n");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long reqs = argc > 1 ? atol(argv[1]) : 10000, calls = argc > 2 ? atol(argv[2]) : 1000000;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, null, zero;
	char buf[64] = {0};
	pthread_t srv;
	uint64_t t0;
	long i;

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (bind(lfd, (void *)&a, sizeof(a)) || listen(lfd, 512) ||
	    getsockname(lfd, (void *)&a, &len)) {
		perror("listen");
		return 1;
	}
	pthread_create(&srv, NULL, serve, &lfd);

	t0 = now_ns();
	for (i = 0; i < reqs; i++) {
		fd = dial(&a);
		exchange(fd);
		close(fd);
	}
	printf("conn %ld requests %.0f ns_per_request\n", reqs, (double)(now_ns() - t0) / reqs);

	fd = dial(&a);
	t0 = now_ns();
	for (i = 0; i < reqs; i++)
		exchange(fd);
	printf("keepalive %ld requests %.0f ns_per_request\n", reqs,
	       (double)(now_ns() - t0) / reqs);
	close(fd);

	null = open("/dev/null", O_WRONLY);
	zero = open("/dev/zero", O_RDONLY);
	t0 = now_ns();
	for (i = 0; i < calls; i++) {
		if (write(null, buf, sizeof(buf)) < 0 || read(zero, buf, sizeof(buf)) < 0)
			return 1;
	}
	printf("file_syscalls %ld calls %.0f ns_per_call\n", 2 * calls,
	       (double)(now_ns() - t0) / (2 * calls));
	return 0;
}
