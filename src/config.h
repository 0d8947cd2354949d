/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tokentap's options: one table of descriptors (src/config.c) read by both the command line
 * (--name VALUE) and the configuration file (`name = value` lines). Precedence, lowest first:
 * built-in defaults, OTEL_* environment, the --config file, flags.
 *
 * Adding an option: a field here, one line in config_options[] in config.c (its kind says how
 * the value is parsed and stored). The flag, the file key and the --help line follow.
 */
#ifndef TOKENTAP_CONFIG_H
#define TOKENTAP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LIST 16

/* A repeatable option: every occurrence adds a value (flags replace the file's values). */
struct config_list {
	const char *v[CONFIG_MAX_LIST];
	int n;
};

struct config {
	const char *format; /* "text" or "json" */
	const char *otlp_endpoint;
	const char *otlp_headers;
	const char *sock_rung;
	const char *h2c_ports; /* --h2c-ports: NULL = capture's default list, "" = none */
	const char *control_socket; /* "" = none */
	bool control_socket_set;    /* given explicitly: failing to open it is fatal */
	uint32_t ringbuf_bytes;
	uint32_t max_decoded_bytes; /* per compressed body; 0: DECODE_DEFAULT_MAX_OUT (64 MiB) */
	uint64_t request_timeout_ns;
	uint64_t idle_timeout_ns;
	int stats_interval_s;
	int flush_deadline_ms;
	bool verbose;

	/* cost and attribution (issue 4) */
	const char *config_path;     /* --config: the file these values came from, or NULL */
	const char *pricing_path;    /* NULL: the table built in from deploy/pricing.json */
	const char *fingerprint_key; /* file with the per-install API-key fingerprint secret */
	struct config_list tenant_headers;

	/* metrics and export (issue 4) */
	const char *prometheus;       /* --prometheus ADDR:PORT; NULL: no scrape endpoint */
	int metrics_interval_s;       /* OTLP metrics push period; 0: default (10 s) */
	int metrics_max_series;       /* attribute sets per metric; 0: default (2000) */
	const char *otlp_compression; /* NULL: $OTEL_EXPORTER_OTLP_COMPRESSION, else gzip */

	/* audit and security (issue 6) */
	const char *audit_path;       /* --audit FILE: hash-chained JSON lines; NULL: off */
	uint32_t audit_max_bytes;     /* rotate past this; 0: 100 MiB */
	int audit_keep;               /* rotated files kept; 0: 5 */
	int audit_fsync_ms;           /* fdatasync period; 0: after every record */
	const char *policy_path;      /* --policy FILE (JSON) */
	const char *containerd_state; /* containerd's task state dir; NULL: the standard one */
	const char *crio_state;       /* CRI-O's overlay-containers dir; NULL: the standard one */
	const char *docker_state;     /* Docker's containers dir; NULL: the standard one */
	bool capture_content;         /* export prompts and completions (redacted) */
	uint32_t content_max_bytes;   /* per content attribute; 0: 16 KiB */
	struct config_list redact;    /* extra POSIX ERE secret patterns */
	const char *otlp_ca;          /* PEM CA bundle for the OTLP endpoint */
	const char *otlp_client_cert; /* PEM client certificate (mutual TLS) */
	const char *otlp_client_key;  /* PEM private key of the client certificate */
	bool keep_caps;               /* do not drop capabilities after attaching */
	uint32_t max_attached_files;  /* files with TLS probes at once; 0: 512 (issue 5) */
	uint32_t exec_hold_ms;        /* hold bound for a just-exec'd process; 0: 3000 (issue 8) */
	bool no_exec_hold;            /* never hold a just-exec'd process */
	const char *probe_sites;      /* "auto" (NULL) or "classic" (issue 7, attach/sites.c) */
	const char *state_dir;        /* discovery cache (issue 8); NULL: $TOKENTAP_STATE_DIR or
				       * /var/lib/tokentap */

	/* deployment (issue 5) */
	bool check_config;            /* --check-config: validate the options and exit */

	/* Strings read from the config file, freed by config__free. */
	char *owned[256];
	int n_owned;
};

#define CONFIG_DEFAULT_FINGERPRINT_KEY "/var/lib/tokentap/fingerprint.key"
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/tokentap.sock"

/*
 * Fills cfg from defaults, environment, the --config file and flags. Handles --help and
 * --version itself (prints, exits 0). Returns 0, or -EINVAL after one error line on stderr.
 */
int config__parse(struct config *cfg, int argc, char **argv);
/* Reads one config file into cfg (flags not applied). For tests and config__parse. */
int config__load_file(struct config *cfg, const char *path);
void config__defaults(struct config *cfg);
void config__usage(FILE *out);
void config__free(struct config *cfg);

#endif
