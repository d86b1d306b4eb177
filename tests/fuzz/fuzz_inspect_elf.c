/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the ELF reader of secretmem-inspect (tools/inspect-elf.c),
 * ie_find_symbol(src, "secretmem_impl_live"), on arbitrary bytes as the object
 * file that a hostile process maps. Each input is read three ways: from a buffer,
 * from a file (memfd, pread: the path the inspector takes), and cut to half its
 * length (a truncated object, a file that shrank).
 * Must hold: no crash, no hang, no sanitizer report; the buffer and the file give
 * the same answer; a symbol found lies in a section the reader was able to read
 * (its name is in the input).
 *
 *   ./configure --enable-fuzzing CC=clang && make tests/fuzz/fuzz_inspect_elf
 *   tests/fuzz/fuzz_inspect_elf -max_total_time=60 tests/fuzz/corpus/inspect_elf
 */
#include "config.h"

#include "inspect-elf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char name[] = "secretmem_impl_live";

static int file_of(const uint8_t *d, size_t n)
{
	static int fd = -1;
	if (fd < 0)
		fd = memfd_create("fuzz_inspect_elf", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) || (n && pwrite(fd, d, n, 0) != (ssize_t)n)) {
		perror("memfd");
		abort();
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct ie_sym a = { 0 }, b = { 0 }, c;
	struct ie_src buf = { .fd = -1, .buf = d, .size = n };
	enum ie_result ra = ie_find_symbol(&buf, name, &a);

	struct ie_src file = { .fd = file_of(d, n), .size = n };
	enum ie_result rb = ie_find_symbol(&file, name, &b);
	if (ra != rb || (ra == IE_FOUND && memcmp(&a, &b, sizeof(a)) != 0)) {
		fprintf(stderr, "buffer and file differ: %d vs %d\n", ra, rb);
		abort();
	}
	if (ra == IE_FOUND && !memmem(d, n, name, sizeof(name))) {
		fprintf(stderr, "found a symbol whose name is not in the input\n");
		abort();
	}

	/* The same object cut short, read from a file whose size says more: every
	 * read past the end must fail, not fault. */
	if (n > 1 && ftruncate(file.fd, (off_t)(n / 2)) == 0)
		(void)ie_find_symbol(&file, name, &c);
	buf.size = n / 2;
	(void)ie_find_symbol(&buf, name, &c);
	return 0;
}
