/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the shim's ELF reader (src/elfsym.c) on arbitrary bytes, both
 * ways it reads:
 *  - as a file: the input is written to a memfd and read with sm_elf_read_fd
 *    (section headers, .symtab/.dynsym and their string tables, all with offsets
 *    and sizes from the input: truncated tables, wrapped offset + size);
 *  - as a loaded image: the input is the image at its own address, its program
 *    headers taken from the input, keeping only PT_LOAD segments that really lie
 *    in the buffer (what the loader guarantees of a loaded object), then
 *    sm_elf_read_memory (dynamic section, DT_HASH / DT_GNU_HASH counts) and
 *    sm_elf_annotated (note walking).
 * Must hold: no crash, no hang, no sanitizer report; every reported symbol has a
 * NUL-terminated name and lo < hi.
 *
 *   ./configure --enable-fuzzing CC=clang && make tests/fuzz/fuzz_elfsym
 *   tests/fuzz/fuzz_elfsym -max_total_time=60 fuzz-corpus/elfsym tests/fuzz/corpus/elfsym
 */
#define _GNU_SOURCE
#include "config.h"
#include "elfsym.h"

#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	(void)ctx;
	if (strnlen(name, 1u << 30) == (1u << 30) || lo >= hi)
		abort();
}

static int fd = -1;

static void as_file(const uint8_t *data, size_t size)
{
	if (fd < 0 && (fd = memfd_create("fuzz_elfsym", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	sm_elf_read_fd(fd, 0x400000, check, NULL);
}

static void as_image(const uint8_t *data, size_t size)
{
	ElfW(Ehdr) eh;
	if (size < sizeof(eh))
		return;
	/* aligned, as a loaded image is */
	uint8_t *img = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	if (!img)
		return;
	memcpy(img, data, size);
	memcpy(&eh, img, sizeof(eh));
	ElfW(Phdr) ph[32];
	unsigned n = 0;
	for (unsigned i = 0; i < eh.e_phnum && n < 32; i++) {
		uint64_t off = eh.e_phoff + (uint64_t)i * sizeof(ElfW(Phdr));
		if (eh.e_phoff > size || off > size - sizeof(ElfW(Phdr)))
			break;
		memcpy(&ph[n], img + off, sizeof(ph[n]));
		/* the loader maps every PT_LOAD: keep only those inside the buffer */
		if (ph[n].p_type == PT_LOAD &&
		    (ph[n].p_vaddr > size || ph[n].p_memsz > size - ph[n].p_vaddr))
			continue;
		n++;
	}
	struct sm_elf_object o = { (uintptr_t)img, "fuzz", ph, n };
	sm_elf_read_memory(&o, check, NULL);
	sm_elf_annotated(&o);
	free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_file(data, size);
	as_image(data, size);
	return 0;
}
