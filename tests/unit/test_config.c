// SPDX-License-Identifier: Apache-2.0
/*
 * src/config.c: the config file (`name = value`), flags overriding it, repeatable options,
 * validation errors with the line, and the refusal of a file others can write.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tt_test.h"

static char path[64];

static void write_config(const char *text, mode_t mode)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/tokentap-config-%d.conf", (int)getpid());
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static int parse(struct config *cfg, int argc, const char **argv)
{
	memset(cfg, 0, sizeof(*cfg));
	return config__parse(cfg, argc, (char **)argv);
}

TEST(defaults)
{
	struct config cfg;
	const char *argv[] = { "tokentap", NULL };

	unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	CHECK_EQ_INT(parse(&cfg, 1, argv), 0);
	CHECK_EQ_STR(cfg.format, "text");
	CHECK(cfg.otlp_endpoint == NULL);
	CHECK(cfg.pricing_path == NULL);
	CHECK_EQ_STR(cfg.fingerprint_key, CONFIG_DEFAULT_FINGERPRINT_KEY);
	CHECK_EQ_INT(cfg.tenant_headers.n, 0);
	CHECK_EQ_INT(cfg.flush_deadline_ms, 5000);
	config__free(&cfg);
}

TEST(file_sets_every_kind)
{
	struct config cfg;
	const char *argv[] = { "tokentap", "--config", path, NULL };

	write_config("# tokentap test\n"
		     "\n"
		     "format = json\n"
		     "otlp_endpoint = \"http://collector:4318\"\n"
		     "  otlp-headers=api-key=abc,x=y  \n"
		     "ringbuf-size = 16777216\n"
		     "request-timeout = 30\n"
		     "stats-interval = 5\n"
		     "verbose = true\n"
		     "pricing = /etc/tokentap/pricing.json\n"
		     "tenant-header = x-tenant-id\n"
		     "tenant_header = x-team\n"
		     "fingerprint-key = /tmp/fp.key\n"
		     "control-socket = \"\"\n",
		     0600);
	CHECK_EQ_INT(parse(&cfg, 3, argv), 0);
	CHECK_EQ_STR(cfg.config_path, path);
	CHECK_EQ_STR(cfg.format, "json");
	CHECK_EQ_STR(cfg.otlp_endpoint, "http://collector:4318");
	CHECK_EQ_STR(cfg.otlp_headers, "api-key=abc,x=y");
	CHECK_EQ_INT(cfg.ringbuf_bytes, 16777216);
	CHECK_EQ_INT(cfg.request_timeout_ns, 30000000000ull);
	CHECK_EQ_INT(cfg.stats_interval_s, 5);
	CHECK(cfg.verbose);
	CHECK_EQ_STR(cfg.pricing_path, "/etc/tokentap/pricing.json");
	CHECK_EQ_INT(cfg.tenant_headers.n, 2);
	CHECK_EQ_STR(cfg.tenant_headers.v[0], "x-tenant-id");
	CHECK_EQ_STR(cfg.tenant_headers.v[1], "x-team");
	CHECK_EQ_STR(cfg.fingerprint_key, "/tmp/fp.key");
	CHECK_EQ_STR(cfg.control_socket, "");
	CHECK(cfg.control_socket_set);
	config__free(&cfg);
	unlink(path);
}

TEST(flags_override_the_file)
{
	struct config cfg;
	const char *argv[] = { "tokentap", "--format", "text", "--tenant-header", "x-org",
			       "--config", path, "--stats-interval=9", NULL };

	write_config("format = json\nstats-interval = 5\ntenant-header = x-a\ntenant-header = x-b\n"
		     "idle-timeout = 60\nverbose = false\n",
		     0644);
	CHECK_EQ_INT(parse(&cfg, 8, argv), 0);
	CHECK_EQ_STR(cfg.format, "text");
	CHECK_EQ_INT(cfg.stats_interval_s, 9);
	CHECK_EQ_INT(cfg.idle_timeout_ns, 60000000000ull); /* from the file */
	CHECK(!cfg.verbose);
	/* A repeatable flag replaces the file's values rather than adding to them. */
	CHECK_EQ_INT(cfg.tenant_headers.n, 1);
	CHECK_EQ_STR(cfg.tenant_headers.v[0], "x-org");
	config__free(&cfg);
	unlink(path);
}

TEST(file_writable_by_others_is_refused)
{
	struct config cfg;
	const char *argv[] = { "tokentap", "--config", path, NULL };

	write_config("format = json\n", 0664);
	CHECK(parse(&cfg, 3, argv) < 0);
	config__free(&cfg);
	write_config("format = json\n", 0602);
	CHECK(parse(&cfg, 3, argv) < 0);
	config__free(&cfg);
	memset(&cfg, 0, sizeof(cfg));
	CHECK_EQ_INT(config__load_file(&cfg, path), -EPERM);
	config__free(&cfg);
	unlink(path);
	CHECK(parse(&cfg, 3, argv) < 0); /* missing */
	config__free(&cfg);
}

static int load(const char *text)
{
	struct config cfg = {};
	int rc;

	config__defaults(&cfg);
	write_config(text, 0600);
	rc = config__load_file(&cfg, path);
	config__free(&cfg);
	unlink(path);
	return rc;
}

TEST(bad_values_in_the_file)
{
	CHECK_EQ_INT(load("format = json\n"), 0);
	CHECK(load("format = xml\n") < 0);
	CHECK(load("no equals sign\n") < 0);
	CHECK(load("colour = blue\n") < 0);
	CHECK(load("config = /etc/other.conf\n") < 0);
	CHECK(load("help = true\n") < 0);
	CHECK(load("ringbuf-size = 5000\n") < 0);
	CHECK(load("ringbuf-size = -4096\n") < 0);
	CHECK(load("request-timeout = 86401\n") < 0);
	CHECK(load("stats-interval = 5s\n") < 0);
	CHECK(load("verbose = maybe\n") < 0);
	CHECK(load("sock-rung = carrier-pigeon\n") < 0);
	CHECK(load("tenant-header = Authorization\n") < 0);
	CHECK(load("tenant-header = x api key\n") < 0);
	CHECK(load("format = json\0format = text\n") == 0); /* fputs stops at the NUL */
}

TEST(bad_flags)
{
	struct config cfg;
	const char *a1[] = { "tokentap", "--format", "xml", NULL };
	const char *a2[] = { "tokentap", "--tenant-header", "x-api-key", NULL };
	const char *a3[] = { "tokentap", "stray", NULL };
	const char *a4[] = { "tokentap", "--ringbuf-size", "4097", NULL };

	CHECK(parse(&cfg, 3, a1) < 0);
	CHECK(parse(&cfg, 3, a2) < 0);
	CHECK(parse(&cfg, 2, a3) < 0);
	CHECK(parse(&cfg, 3, a4) < 0);
}

TEST(help_lists_every_option)
{
	static const char *const names[] = { "--format", "--otlp-endpoint", "--otlp-headers",
					     "--stats-interval", "--pricing", "--tenant-header",
					     "--fingerprint-key", "--ringbuf-size",
					     "--request-timeout", "--idle-timeout", "--sock-rung",
					     "--config", "--verbose", "--control-socket" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	config__usage(f);
	fclose(f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(strstr(buf, names[i]) != NULL);
	free(buf);
}

int main(void)
{
	RUN(defaults);
	RUN(file_sets_every_kind);
	RUN(flags_override_the_file);
	RUN(file_writable_by_others_is_refused);
	RUN(bad_values_in_the_file);
	RUN(bad_flags);
	RUN(help_lists_every_option);
	TT_DONE();
}
