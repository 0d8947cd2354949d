// SPDX-License-Identifier: Apache-2.0
/* UTF-8 validation and repair, and JSON string writing on top of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/utf8.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* Ranges from RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t utf8__seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if (!is_cont(p[i]))
			return 0;
	}
	return len;
}

char *utf8__repair(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0, k;
	char *out;

	while (i < n && (k = utf8__seq_len(p + i, n - i)) != 0)
		i += k;
	if (i == n)
		return NULL;
	/* Each bad byte grows to 3 bytes at most. */
	out = malloc(n * 3 + 1);
	if (!out)
		return strdup("\xEF\xBF\xBD");
	for (i = 0; i < n;) {
		k = utf8__seq_len(p + i, n - i);
		if (k) {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(out + o, REPLACEMENT, 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

static void json__escape_byte(FILE *out, unsigned char c)
{
	switch (c) {
	case '"':
		fputs("\\\"", out);
		break;
	case '\\':
		fputs("\\\\", out);
		break;
	case '\b':
		fputs("\\b", out);
		break;
	case '\f':
		fputs("\\f", out);
		break;
	case '\n':
		fputs("\\n", out);
		break;
	case '\r':
		fputs("\\r", out);
		break;
	case '\t':
		fputs("\\t", out);
		break;
	default:
		if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
}

void utf8__write_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), i = 0, k;

	fputc('"', out);
	while (i < n) {
		k = utf8__seq_len(p + i, n - i);
		if (k == 1)
			json__escape_byte(out, p[i]);
		else if (k > 1)
			fwrite(p + i, 1, k, out);
		else
			fputs(REPLACEMENT, out);
		i += k ? k : 1;
	}
	fputc('"', out);
}
