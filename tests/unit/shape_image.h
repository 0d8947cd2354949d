/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Synthetic x86-64 ELF images for the code-shape discoveries (test_boringssl.c, test_awslc.c):
 * a read-only segment holding a source file name, an executable one assembled byte by byte
 * (frame-pointer functions after int3 padding, ERR_put_error calls in both argument
 * conventions, the name loaded with lea rip or mov imm32), and optionally .eh_frame_hdr.
 */
#ifndef TT_SHAPE_IMAGE_H
#define TT_SHAPE_IMAGE_H

#include <dirent.h>
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMG_SIZE (6u << 20) /* above BSSL_MIN_FILE_SIZE so bssl__worth_analysing accepts it */
#define RO_OFF 0x1000
#define RO_VADDR 0x201000
#define TEXT_OFF 0x10000
#define TEXT_VADDR 0x410000
#define TEXT_SIZE 0x4000
#define EH_OFF 0x8000
#define EH_VADDR 0x208000
#define NAME_AT 0x40 /* of the string, in rodata */

struct asm_buf {
	uint8_t *img;
	uint64_t pos; /* file offset being written */
	bool lea;     /* load the file name with lea rip (else mov imm32) */
	bool four;    /* 4-argument ERR_put_error: file in rdx, reason in esi */
	uint64_t err_fn;
};

static inline uint64_t va(const struct asm_buf *b)
{
	return b->pos - TEXT_OFF + TEXT_VADDR;
}

static inline uint64_t off_of(uint64_t vaddr)
{
	return vaddr - TEXT_VADDR + TEXT_OFF;
}

static inline void emit(struct asm_buf *b, const void *bytes, size_t n)
{
	memcpy(b->img + b->pos, bytes, n);
	b->pos += n;
}

static inline void emit1(struct asm_buf *b, uint8_t x)
{
	emit(b, &x, 1);
}

static inline void emit32(struct asm_buf *b, uint32_t x)
{
	emit(b, &x, 4);
}

/* int3 padding to the next 16-byte boundary, then push rbp; mov rbp, rsp. Returns the vaddr. */
static inline uint64_t fn_begin(struct asm_buf *b)
{
	emit1(b, 0xcc);
	while (b->pos % 16)
		emit1(b, 0xcc);
	emit(b, "\x55\x48\x89\xe5", 4);
	return va(b) - 4;
}

static inline void fn_end(struct asm_buf *b)
{
	emit(b, "\x5d\xc3", 2); /* pop rbp; ret */
}

static inline void call(struct asm_buf *b, uint64_t target)
{
	emit1(b, 0xe8);
	emit32(b, (uint32_t)(target - (va(b) + 4)));
}

static inline void mov_imm(struct asm_buf *b, uint8_t op, uint32_t imm)
{
	emit1(b, op);
	emit32(b, imm);
}

/*
 * ERR_put_error(lib, reason) reported from the file named at vaddr name: the argument set-up
 * and the call. Five arguments (lib, 0, reason, file in rcx, line) or, with b->four, four (lib,
 * reason, file in rdx, line).
 */
static inline void put_err_at(struct asm_buf *b, uint64_t name, uint32_t lib, uint32_t reason,
			      uint32_t line)
{
	if (b->lea) {
		emit(b, b->four ? "\x48\x8d\x15" : "\x48\x8d\x0d", 3);
		emit32(b, (uint32_t)(name - (va(b) + 4)));
	} else {
		mov_imm(b, b->four ? 0xba : 0xb9, (uint32_t)name);
	}
	mov_imm(b, 0xbf, lib);
	if (b->four) {
		mov_imm(b, 0xbe, reason);
		mov_imm(b, 0xb9, line);
	} else {
		emit(b, "\x31\xf6", 2); /* xor esi, esi */
		mov_imm(b, 0xba, reason);
		emit(b, "\x41\xb8", 2);
		emit32(b, line);
	}
	call(b, b->err_fn);
}

static inline void put_phdr(uint8_t *img, int i, uint32_t type, uint32_t flags, uint64_t off,
			    uint64_t vaddr, uint64_t size)
{
	Elf64_Phdr ph = {.p_type = type,
			 .p_flags = flags,
			 .p_offset = off,
			 .p_vaddr = vaddr,
			 .p_paddr = vaddr,
			 .p_filesz = size,
			 .p_memsz = size,
			 .p_align = 0x1000};

	memcpy(img + sizeof(Elf64_Ehdr) + (size_t)i * sizeof(ph), &ph, sizeof(ph));
}

static inline void put_elf_header(uint8_t *img, int phnum)
{
	Elf64_Ehdr eh = {.e_type = ET_EXEC,
			 .e_machine = EM_X86_64,
			 .e_version = EV_CURRENT,
			 .e_phoff = sizeof(Elf64_Ehdr),
			 .e_ehsize = sizeof(Elf64_Ehdr),
			 .e_phentsize = sizeof(Elf64_Phdr),
			 .e_phnum = (uint16_t)phnum};

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	memcpy(img, &eh, sizeof(eh));
}

/* .eh_frame_hdr at EH_OFF: version 1, pcrel sdata4 pointer, udata4 count, datarel sdata4 table. */
static inline void put_eh_frame_hdr(uint8_t *img, const uint64_t *starts, uint32_t n)
{
	uint8_t *h = img + EH_OFF;
	uint32_t i;

	h[0] = 1, h[1] = 0x1b, h[2] = 0x03, h[3] = 0x3b;
	memcpy(h + 8, &n, 4);
	for (i = 0; i < n; i++) {
		int32_t rel = (int32_t)(starts[i] - EH_VADDR);

		memcpy(h + 12 + 8 * i, &rel, 4);
	}
}

static inline char *temp_dir(void)
{
	char tmpl[] = "/tmp/tt-bssl-XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static inline void rm_tree(const char *dir)
{
	char path[4200];
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

#endif
