/* SPDX-License-Identifier: Apache-2.0 */
/* attach/: where named functions live in an ELF file, as the file offsets uprobes take. */
#ifndef TOKENTAP_ELF_SYMS_H
#define TOKENTAP_ELF_SYMS_H

#include <stddef.h>
#include <stdint.h>

#include <libelf.h>

/*
 * Looks up each of names[0..n) among the defined functions of .dynsym, then .symtab, and stores
 * its file offset in offs[i] (0 when absent). Returns how many were found, 0 for a file that is
 * not ELF, or -errno when the file cannot be opened.
 */
int elf_syms__lookup(const char *path, const char *const *names, size_t n, uint64_t *offs);

/* Opens path read-only as an ELF object: the fd (release with elf_syms__close) or -errno;
 * *e is NULL when the file is no ELF object. */
int elf_syms__open(const char *path, Elf **e);
void elf_syms__close(Elf *e, int fd);
/* A virtual address's file offset through the executable PT_LOAD that holds it (0: none): a
 * uprobe takes file offsets. */
uint64_t elf_syms__file_offset(Elf *e, uint64_t vaddr);

#endif
