// SPDX-License-Identifier: Apache-2.0
/*
 * The built-in pricing table: deploy/pricing.json, linked into the binary as it is in the
 * repository (NUL-terminated), so that tokentap prices calls without any file installed.
 * The path is relative to the repository root, where every build compiles from.
 */
__asm__(".pushsection .rodata\n"
	".global tokentap_pricing_json\n"
	".type tokentap_pricing_json, @object\n"
	".balign 8\n"
	"tokentap_pricing_json:\n"
	".incbin \"deploy/pricing.json\"\n"
	".byte 0\n"
	".size tokentap_pricing_json, . - tokentap_pricing_json\n"
	".popsection\n");
