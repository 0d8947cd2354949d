// SPDX-License-Identifier: Apache-2.0
/*
 * Options: one descriptor per option, shared by the command line and the configuration file.
 *
 * The file format is one `name = value` per line, where name is the long flag without its
 * dashes (`otlp-endpoint = http://collector:4318`; `otlp_endpoint` is accepted too). Blank
 * lines and lines starting with '#' are ignored; a value may be wrapped in double quotes; a
 * repeatable option (tenant-header) is written once per value; a flag without a value
 * (verbose) takes true or false. Flags given on the command line override the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "capture/capture.h"

#define TOKENTAP_VERSION "0.1.0"
#define NS_PER_SEC 1000000000ull
#define CONFIG_MAX_FILE (1u << 20)

enum config_kind {
	CFG_STR,     /* const char *; an empty value unsets it (NULL) */
	CFG_STR_SET, /* const char *, "" kept; also sets the bool at set_offset ("given") */
	CFG_LIST,    /* struct config_list, repeatable */
	CFG_U32,     /* uint32_t, 0..max */
	CFG_INT,     /* int, 0..max */
	CFG_SECONDS, /* seconds 0..max, stored as uint64_t nanoseconds */
	CFG_FLAG,    /* bool set by the bare flag; true/false in the file */
	CFG_CONFIG,  /* --config itself: command line only */
	CFG_HELP,    /* -h, -V: command line only */
	CFG_VERSION,
};

struct config_option {
	const char *name; /* long flag and file key */
	int short_name;   /* 0 when none */
	enum config_kind kind;
	size_t offset;    /* into struct config */
	uint64_t max;     /* numbers: the largest value accepted */
	const char *metavar;
	const char *help; /* may hold '\n' for continuation lines */
	/* Extra validation of a value; prints "<where>: <why>" and returns -EINVAL. */
	int (*check)(const char *where, const char *v);
	const char *group; /* --help heading of the first option of a group */
	size_t set_offset; /* CFG_STR_SET: the bool saying the option was given */
};

static int check_format(const char *where, const char *v);
static int check_sock_rung(const char *where, const char *v);
static int check_probe_sites(const char *where, const char *v);
static int check_ports(const char *where, const char *v);
static int check_pow2(const char *where, const char *v);
static int check_header_name(const char *where, const char *v);
static int check_compression(const char *where, const char *v);

#define OFF(field) offsetof(struct config, field)

/* The --help order. New options (e.g. prometheus, metrics-*): add a line here and a field in
 * struct config. */
static const struct config_option config_options[] = {
	{ "format", 'f', CFG_STR, OFF(format), 0, "text|json",
	  "one readable line per call (default), or JSON Lines", check_format, "Output" },
	{ "otlp-endpoint", 0, CFG_STR, OFF(otlp_endpoint), 0, "URL",
	  "also send OTLP/HTTP protobuf spans to URL/v1/traces\n"
	  "(default: $OTEL_EXPORTER_OTLP_ENDPOINT)" },
	{ "otlp-headers", 0, CFG_STR, OFF(otlp_headers), 0, "K=V,..",
	  "extra export headers ($OTEL_EXPORTER_OTLP_HEADERS)" },
	{ "otlp-compression", 0, CFG_STR, OFF(otlp_compression), 0, "ALG",
	  "gzip (default) or none for OTLP request bodies\n"
	  "($OTEL_EXPORTER_OTLP_COMPRESSION)", check_compression },
	{ "stats-interval", 0, CFG_INT, OFF(stats_interval_s), 86400, "SEC",
	  "print pipeline counters to stderr every SEC seconds" },
	{ "control-socket", 0, CFG_STR_SET, OFF(control_socket), 0, "PATH",
	  "stream spans and health to local views such as\n"
	  "`tokentap top` (default " CONFIG_DEFAULT_CONTROL_SOCKET "; '' = off)", NULL, NULL,
	  OFF(control_socket_set) },
	{ "pricing", 0, CFG_STR, OFF(pricing_path), 0, "FILE",
	  "prices per model (JSON, see deploy/pricing.json) instead of\n"
	  "the built-in table; read again on SIGHUP", NULL, "Cost and attribution" },
	{ "tenant-header", 0, CFG_LIST, OFF(tenant_headers), 0, "NAME",
	  "request header whose value becomes tokentap.tenant\n"
	  "(repeatable; the first one present wins)", check_header_name },
	{ "fingerprint-key", 0, CFG_STR, OFF(fingerprint_key), 0, "FILE",
	  "secret of the API-key fingerprints, created if missing\n"
	  "(default " CONFIG_DEFAULT_FINGERPRINT_KEY ")" },
	{ "prometheus", 0, CFG_STR, OFF(prometheus), 0, "ADDR:PORT",
	  "serve GET /metrics (Prometheus text format) and /healthz;\n"
	  "a bare PORT binds 127.0.0.1 (e.g. 127.0.0.1:9464)", NULL, "Metrics" },
	{ "metrics-interval", 0, CFG_INT, OFF(metrics_interval_s), 86400, "SEC",
	  "push OTLP metrics to <otlp-endpoint>/v1/metrics every SEC\n"
	  "(default 10; also at exit)" },
	{ "metrics-max-series", 0, CFG_INT, OFF(metrics_max_series), 1000000, "N",
	  "attribute sets kept per metric; the excess is folded into\n"
	  "one series labelled \"other\" and counted (default 2000)" },
	{ "audit", 0, CFG_STR, OFF(audit_path), 0, "FILE",
	  "append one hash-chained JSON record per AI call to FILE", NULL, "Audit and security" },
	{ "audit-max-bytes", 0, CFG_U32, OFF(audit_max_bytes), 0xffffffffu, "BYTES",
	  "rotate the audit file past BYTES (default 100 MiB)" },
	{ "audit-keep", 0, CFG_INT, OFF(audit_keep), 1000, "N",
	  "rotated audit files kept: FILE.1 (newest) .. FILE.N (default 5)" },
	{ "audit-fsync-interval", 0, CFG_INT, OFF(audit_fsync_ms), 3600000, "MS",
	  "fdatasync the audit file every MS ms (default 1000; 0 = every record)" },
	{ "policy", 0, CFG_STR, OFF(policy_path), 0, "FILE",
	  "destination policy (JSON): allowed providers, hosts, models and\n"
	  "API keys per workload; calls outside it are flagged and logged" },
	{ "containerd-state", 0, CFG_STR, OFF(containerd_state), 0, "DIR",
	  "containerd's task state, for image rules (default\n"
	  "/run/containerd/io.containerd.runtime.v2.task)" },
	{ "crio-state", 0, CFG_STR, OFF(crio_state), 0, "DIR",
	  "CRI-O's container state, for image and pod_labels rules\n"
	  "(default /run/containers/storage/overlay-containers)" },
	{ "docker-state", 0, CFG_STR, OFF(docker_state), 0, "DIR",
	  "Docker's container state (default /var/lib/docker/containers)" },
	{ "capture-content", 0, CFG_FLAG, OFF(capture_content), 0, NULL,
	  "export prompts and completions as gen_ai.input/output.messages,\n"
	  "secrets redacted (off by default)" },
	{ "content-max-bytes", 0, CFG_U32, OFF(content_max_bytes), 16u << 20, "BYTES",
	  "cap per content attribute (default 16384)" },
	{ "redact", 0, CFG_LIST, OFF(redact), 0, "REGEX",
	  "also redact matches of this POSIX extended regex (repeatable)" },
	{ "otlp-ca", 0, CFG_STR, OFF(otlp_ca), 0, "FILE",
	  "CA bundle (PEM) to verify the OTLP endpoint\n($OTEL_EXPORTER_OTLP_CERTIFICATE)" },
	{ "otlp-client-cert", 0, CFG_STR, OFF(otlp_client_cert), 0, "FILE",
	  "client certificate (PEM) for mutual TLS\n($OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)" },
	{ "otlp-client-key", 0, CFG_STR, OFF(otlp_client_key), 0, "FILE",
	  "its private key (PEM) ($OTEL_EXPORTER_OTLP_CLIENT_KEY)" },
	{ "keep-caps", 0, CFG_FLAG, OFF(keep_caps), 0, NULL,
	  "keep every capability after attaching (default: drop\n"
	  "all but those needed to keep attaching)" },
	{ "ringbuf-size", 0, CFG_U32, OFF(ringbuf_bytes), 1u << 30, "BYTES",
	  "kernel ring buffer size, a power of two (default 8 MiB)", check_pow2, "Tuning" },
	{ "max-decoded", 0, CFG_U32, OFF(max_decoded_bytes), 0xffffffffu, "BYTES",
	  "decode at most BYTES of a gzip/br/zstd body; past it the\n"
	  "call is marked partial (default 64 MiB)" },
	{ "request-timeout", 0, CFG_SECONDS, OFF(request_timeout_ns), 86400, "SEC",
	  "report a call with no response, or a response\nsilent, after SEC (default 600)" },
	{ "idle-timeout", 0, CFG_SECONDS, OFF(idle_timeout_ns), 86400, "SEC",
	  "forget a quiet connection after SEC (default 900)" },
	{ "max-attached-files", 0, CFG_U32, OFF(max_attached_files), 65536, "N",
	  "attach TLS probes to at most N files at once (libraries\n"
	  "and executables, containers' own copies too); more are\n"
	  "refused and counted (default 512)" },
	{ "exec-hold-ms", 0, CFG_U32, OFF(exec_hold_ms), 60000, "MS",
	  "hold a just-exec'd process whose executable needs\n"
	  "code-shape analysis (stripped agents) at most MS, so\n"
	  "its first calls are seen (default 3000)" },
	{ "no-exec-hold", 0, CFG_FLAG, OFF(no_exec_hold), 0, NULL,
	  "never hold a just-exec'd process (its first calls may\nthen be missed)" },
	{ "sock-rung", 0, CFG_STR, OFF(sock_rung), 0, "NAME",
	  "force the socket probe rung: fentry, kprobe, tracepoint", check_sock_rung },
	{ "probe-sites", 0, CFG_STR, OFF(probe_sites), 0, "auto|classic",
	  "auto: OpenSSL probes on emulated instructions where a\n"
	  "verified safe site exists; classic: uprobe+uretprobe\n"
	  "at every function's entry (default auto)", check_probe_sites },
	{ "state-dir", 0, CFG_STR, OFF(state_dir), 0, "DIR",
	  "where code-shape discoveries (BoringSSL, aws-lc) are cached\n"
	  "per binary build id ($TOKENTAP_STATE_DIR, default\n/var/lib/tokentap)" },
	{ "h2c-ports", 0, CFG_STR, OFF(h2c_ports), 0, "P1,P2..",
	  "server ports whose plain HTTP/2 (h2c) connections are\n"
	  "captured (default " CAPTURE_H2C_PORTS_DEFAULT "; '' = none)", check_ports },
	{ "config", 'c', CFG_CONFIG, OFF(config_path), 0, "FILE",
	  "read options from FILE (`name = value` lines; flags win)", NULL, "Other" },
	{ "check-config", 0, CFG_FLAG, OFF(check_config), 0, NULL,
	  "check the options, the config file and the pricing file,\n"
	  "print 'tokentap: configuration OK' and exit 0 (2 if not)" },
	{ "verbose", 'v', CFG_FLAG, OFF(verbose), 0, NULL,
	  "log attach decisions and libbpf messages" },
	{ "version", 'V', CFG_VERSION, 0, 0, NULL, "print the version" },
	{ "help", 'h', CFG_HELP, 0, 0, NULL, "this help" },
};

#define N_OPTIONS (sizeof(config_options) / sizeof(config_options[0]))

/* ---- validation ------------------------------------------------------------------------ */

static int check_format(const char *where, const char *v)
{
	if (!strcmp(v, "text") || !strcmp(v, "json"))
		return 0;
	fprintf(stderr, "tokentap: %s: must be 'text' or 'json', not '%s'\n", where, v);
	return -EINVAL;
}

static int check_sock_rung(const char *where, const char *v)
{
	if (!strcmp(v, "fentry") || !strcmp(v, "kprobe") || !strcmp(v, "tracepoint"))
		return 0;
	fprintf(stderr, "tokentap: %s: must be fentry, kprobe or tracepoint\n", where);
	return -EINVAL;
}

static int check_ports(const char *where, const char *v)
{
	uint16_t ports[CAPTURE_H2C_PORTS_MAX];

	if (capture__parse_ports(v, ports, CAPTURE_H2C_PORTS_MAX) >= 0)
		return 0;
	fprintf(stderr, "tokentap: %s: want PORT[,PORT..], at most %d ports\n", where,
		CAPTURE_H2C_PORTS_MAX);
	return -EINVAL;
}

static int check_probe_sites(const char *where, const char *v)
{
	if (!strcmp(v, "auto") || !strcmp(v, "classic"))
		return 0;
	fprintf(stderr, "tokentap: %s: must be auto or classic\n", where);
	return -EINVAL;
}

static int check_pow2(const char *where, const char *v)
{
	unsigned long long n = strtoull(v, NULL, 10);

	if (n >= 4096 && !(n & (n - 1)))
		return 0;
	fprintf(stderr, "tokentap: %s: must be a power of two >= 4096\n", where);
	return -EINVAL;
}

/* A tenant header must be a header name, and never a credential: its value is exported. */
static int check_header_name(const char *where, const char *v)
{
	static const char *const secret[] = { "authorization", "proxy-authorization", "x-api-key",
					      "api-key", "x-goog-api-key", "cookie" };

	if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			     "!#$%&'*+-.^_`|~") != strlen(v)) {
		fprintf(stderr, "tokentap: %s: '%s' is not a header name\n", where, v);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
		if (!strcasecmp(v, secret[i])) {
			fprintf(stderr, "tokentap: %s: %s carries credentials; it cannot be a "
					"tenant header\n", where, v);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_compression(const char *where, const char *v)
{
	if (!strcasecmp(v, "gzip") || !strcasecmp(v, "none"))
		return 0;
	fprintf(stderr, "tokentap: %s: must be 'gzip' or 'none', not '%s'\n", where, v);
	return -EINVAL;
}

static int parse_number(const char *where, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max) {
		fprintf(stderr, "tokentap: %s: invalid number '%s' (0..%llu)\n", where, s,
			(unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_bool(const char *where, const char *s, bool *out)
{
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0")) {
		*out = false;
		return 0;
	}
	fprintf(stderr, "tokentap: %s: expected true or false, not '%s'\n", where, s);
	return -EINVAL;
}

/* ---- setting one value ----------------------------------------------------------------- */

static int config__add_list(struct config_list *l, const char *where, const char *v)
{
	if (l->n >= CONFIG_MAX_LIST) {
		fprintf(stderr, "tokentap: %s: at most %d values\n", where, CONFIG_MAX_LIST);
		return -EINVAL;
	}
	l->v[l->n++] = v;
	return 0;
}

static int config__set(struct config *cfg, const struct config_option *o, const char *v,
		       const char *where)
{
	char *field = (char *)cfg + o->offset;
	uint64_t n = 0;

	/* Numbers are checked as numbers first: "-4096" is not a ring buffer size problem. */
	if (o->kind == CFG_U32 || o->kind == CFG_INT || o->kind == CFG_SECONDS) {
		if (parse_number(where, v, o->max, &n))
			return -EINVAL;
	}
	if (o->check && v && *v && o->check(where, v))
		return -EINVAL;
	switch (o->kind) {
	case CFG_STR:
	case CFG_CONFIG:
		*(const char **)field = v && *v ? v : NULL;
		return 0;
	case CFG_STR_SET:
		*(const char **)field = v ? v : "";
		*(bool *)((char *)cfg + o->set_offset) = true;
		return 0;
	case CFG_LIST:
		return config__add_list((struct config_list *)field, where, v);
	case CFG_FLAG:
		return parse_bool(where, v, (bool *)field);
	case CFG_U32:
	case CFG_INT:
	case CFG_SECONDS:
		if (o->kind == CFG_U32)
			*(uint32_t *)field = (uint32_t)n;
		else if (o->kind == CFG_INT)
			*(int *)field = (int)n;
		else
			*(uint64_t *)field = n * NS_PER_SEC;
		return 0;
	default:
		return -EINVAL;
	}
}

static const struct config_option *config__find(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (!strcmp(config_options[i].name, name))
			return &config_options[i];
	return NULL;
}

/* ---- the file -------------------------------------------------------------------------- */

static char *config__trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

static char *config__own(struct config *cfg, const char *v, const char *where)
{
	char *copy;

	if (cfg->n_owned >= (int)(sizeof(cfg->owned) / sizeof(cfg->owned[0]))) {
		fprintf(stderr, "tokentap: %s: too many values in the config file\n", where);
		return NULL;
	}
	copy = strdup(v);
	if (copy)
		cfg->owned[cfg->n_owned++] = copy;
	return copy;
}

static int config__file_line(struct config *cfg, const char *path, int lineno, char *line)
{
	const struct config_option *o;
	char where[512], *eq, *key, *val, *own;
	size_t n;

	line = config__trim(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq) {
		fprintf(stderr, "tokentap: %s:%d: expected 'name = value'\n", path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	key = config__trim(line);
	val = config__trim(eq + 1);
	for (char *p = key; *p; p++)
		if (*p == '_')
			*p = '-';
	n = strlen(val);
	if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
		val[n - 1] = '\0';
		val++;
	}
	snprintf(where, sizeof(where), "%s:%d: %s", path, lineno, key);
	o = config__find(key);
	if (o && o->kind == CFG_CONFIG) {
		fprintf(stderr, "tokentap: %s:%d: a config file cannot name another\n", path,
			lineno);
		return -EINVAL;
	}
	if (!o || o->kind == CFG_HELP || o->kind == CFG_VERSION) {
		fprintf(stderr, "tokentap: %s:%d: unknown option '%s'\n", path, lineno, key);
		return -EINVAL;
	}
	own = config__own(cfg, val, where);
	return own ? config__set(cfg, o, own, where) : -ENOMEM;
}

/* The file may set what tokentap does with everyone's traffic: only its owner may write it. */
static int config__open_checked(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "tokentap: cannot open config file %s: %s\n", path,
			strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "tokentap: config file %s is not a regular file\n", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(stderr, "tokentap: refusing config file %s: writable by group or others "
				"(chmod go-w %s)\n", path, path);
		close(fd);
		return -EPERM;
	}
	return fd;
}

static char *config__read_all(int fd, const char *path, size_t *out_len)
{
	char *buf = malloc(CONFIG_MAX_FILE + 1);
	size_t len = 0;
	ssize_t r;

	if (!buf)
		return NULL;
	while ((r = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len)) > 0 &&
	       len + (size_t)r <= CONFIG_MAX_FILE)
		len += (size_t)r;
	if (r != 0) {
		fprintf(stderr, "tokentap: config file %s: %s\n", path,
			r < 0 ? strerror(errno) : "larger than 1 MiB");
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*out_len = len;
	return buf;
}

int config__load_file(struct config *cfg, const char *path)
{
	char *buf, *line, *save = NULL;
	int fd = config__open_checked(path), lineno = 0, err = 0;
	size_t len = 0;

	if (fd < 0)
		return fd;
	buf = config__read_all(fd, path, &len);
	close(fd);
	if (!buf)
		return -EINVAL;
	if (strlen(buf) != len) {
		fprintf(stderr, "tokentap: config file %s is not text (NUL byte)\n", path);
		free(buf);
		return -EINVAL;
	}
	/* strtok_r would merge blank lines and shift the line numbers of errors. */
	for (line = buf; line && !err; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		err = config__file_line(cfg, path, ++lineno, line);
	}
	free(buf);
	return err;
}

/* ---- defaults and the command line ----------------------------------------------------- */

void config__defaults(struct config *cfg)
{
	const char *v;

	cfg->format = "text";
	cfg->flush_deadline_ms = 5000;
	cfg->fingerprint_key = CONFIG_DEFAULT_FINGERPRINT_KEY;
	cfg->control_socket = CONFIG_DEFAULT_CONTROL_SOCKET;
	v = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	if (v && *v)
		cfg->otlp_endpoint = v;
	v = getenv("OTEL_EXPORTER_OTLP_HEADERS");
	if (v && *v)
		cfg->otlp_headers = v;
	cfg->audit_fsync_ms = 1000;
	v = getenv("OTEL_EXPORTER_OTLP_CERTIFICATE");
	cfg->otlp_ca = v && *v ? v : NULL;
	v = getenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
	cfg->otlp_client_cert = v && *v ? v : NULL;
	v = getenv("OTEL_EXPORTER_OTLP_CLIENT_KEY");
	cfg->otlp_client_key = v && *v ? v : NULL;
}

void config__usage(FILE *out)
{
	fprintf(out, "Usage: tokentap [options]\n"
		     "Traces LLM API calls made over OpenSSL by any process on this host, with "
		     "eBPF.\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &config_options[i];
		char lhs[64];
		const char *h = o->help, *nl;

		if (o->group)
			fprintf(out, "%s%s:\n", i ? "" : "\n", o->group);
		snprintf(lhs, sizeof(lhs), "%c%c%s --%s%s%s", o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ', o->short_name ? "," : " ", o->name,
			 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		/* A name too long for its column gets a line of its own. */
		if (strlen(lhs) >= 29) {
			fprintf(out, "  %s\n", lhs);
			lhs[0] = '\0';
		}
		while ((nl = strchr(h, '\n'))) {
			fprintf(out, "  %-29s%.*s\n", lhs, (int)(nl - h), h);
			lhs[0] = '\0';
			h = nl + 1;
		}
		fprintf(out, "  %-29s%s\n", lhs, h);
	}
	fprintf(out, "Every option can also be set in the --config file as `name = value`.\n"
		     "Environment: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, "
		     "OTEL_EXPORTER_OTLP_*.\n");
}

static void config__longopts(struct option *lo, char *shorts)
{
	size_t s = 0;

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct config_option *o = &config_options[i];
		bool arg = o->kind != CFG_FLAG && o->kind != CFG_HELP && o->kind != CFG_VERSION;

		lo[i] = (struct option){ o->name, arg ? required_argument : no_argument, NULL,
					 256 + (int)i };
		if (o->short_name) {
			shorts[s++] = (char)o->short_name;
			if (arg)
				shorts[s++] = ':';
		}
	}
	lo[N_OPTIONS] = (struct option){};
	shorts[s] = '\0';
}

static const struct config_option *config__from_getopt(int opt)
{
	if (opt >= 256 && opt < 256 + (int)N_OPTIONS)
		return &config_options[opt - 256];
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (config_options[i].short_name == opt)
			return &config_options[i];
	return NULL;
}

/* First pass: only --config, so that the file is read before the flags that override it. */
static const char *config__find_config_flag(int argc, char **argv, struct option *lo,
					    const char *shorts)
{
	const char *path = NULL;
	int opt;

	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct config_option *o = config__from_getopt(opt);

		if (o && o->kind == CFG_CONFIG)
			path = optarg;
	}
	opterr = 1;
	optind = 0;
	return path;
}

static int config__apply_flag(struct config *cfg, const struct config_option *o, bool *list_seen)
{
	char where[80];
	struct config_list *l;

	snprintf(where, sizeof(where), "--%s", o->name);
	switch (o->kind) {
	case CFG_HELP:
		config__usage(stdout);
		exit(0);
	case CFG_VERSION:
		printf("tokentap %s\n", TOKENTAP_VERSION);
		exit(0);
	case CFG_FLAG:
		*(bool *)((char *)cfg + o->offset) = true;
		return 0;
	case CFG_LIST:
		/* The command line's values replace the file's, as every other flag does. */
		l = (struct config_list *)((char *)cfg + o->offset);
		if (!list_seen[o - config_options]) {
			list_seen[o - config_options] = true;
			l->n = 0;
		}
		return config__set(cfg, o, optarg, where);
	default:
		return config__set(cfg, o, optarg, where);
	}
}

int config__parse(struct config *cfg, int argc, char **argv)
{
	struct option lo[N_OPTIONS + 1];
	char shorts[2 * N_OPTIONS + 1];
	bool list_seen[N_OPTIONS] = {};
	int opt;

	config__defaults(cfg);
	config__longopts(lo, shorts);
	cfg->config_path = config__find_config_flag(argc, argv, lo, shorts);
	if (cfg->config_path && config__load_file(cfg, cfg->config_path))
		return -EINVAL;
	while ((opt = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct config_option *o = config__from_getopt(opt);

		if (!o) {
			config__usage(stderr);
			return -EINVAL;
		}
		if (o->kind != CFG_CONFIG && config__apply_flag(cfg, o, list_seen))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "tokentap: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

void config__free(struct config *cfg)
{
	for (int i = 0; i < cfg->n_owned; i++)
		free(cfg->owned[i]);
	cfg->n_owned = 0;
}
