// SPDX-License-Identifier: Apache-2.0
/*
 * report/escape: strings from spans (model names, error messages, tenant names: all from the
 * network) written into HTML text, attributes and an inline JSON <script> block, each escaped so
 * that no byte of them can end the context it is in.
 */
#include <string.h>

#include "export/utf8.h"
#include "report/report.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

void html__escape(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		k = utf8__seq_len(p + i, n - i);
		if (!k) {
			fputs(REPLACEMENT, out);
			i++;
			continue;
		}
		switch (p[i]) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			/* Control characters have no business in a page. */
			if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f) && p[i] != '\t' && p[i] != '\n')
				fputs(REPLACEMENT, out);
			else
				fwrite(p + i, 1, k, out);
		}
		i += k;
	}
}

void html__json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	fputc('"', out);
	while (i < n) {
		k = utf8__seq_len(p + i, n - i);
		if (!k) {
			fputs("\\ufffd", out);
			i++;
			continue;
		}
		if (k == 3 && p[i] == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] & 0xFE) == 0xA8)
			fprintf(out, "\\u%04x", 0x2028 + (p[i + 2] - 0xA8)); /* JS line breaks */
		else if (k > 1)
			fwrite(p + i, 1, k, out);
		else if (p[i] == '"' || p[i] == '\\')
			fprintf(out, "\\%c", p[i]);
		/* < > & would let the data end its <script> element or open a comment in it. */
		else if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '<' || p[i] == '>' || p[i] == '&' ||
			 p[i] == '\'')
			fprintf(out, "\\u%04x", p[i]);
		else
			fputc(p[i], out);
		i += k;
	}
	fputc('"', out);
}
