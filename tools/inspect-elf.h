/* SPDX-License-Identifier: MIT */
/*
 * The ELF reader of secretmem-inspect: finds a symbol in the .dynsym of a 64-bit
 * ELF object, read from an open file (pread) or from a buffer (the fuzz target).
 * The object is untrusted input: it is a file that the inspected process mapped,
 * and root runs the inspector. Every offset and size is checked before use,
 * with overflow-safe arithmetic; nothing is read past what the file holds now
 * (a file can shrink while it is read: a short pread is an error, never a
 * fault); no table larger than IE_MAX_TABLE is read.
 */
#ifndef SM_INSPECT_ELF_H
#define SM_INSPECT_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest section header table, symbol table or string table read. */
#define IE_MAX_TABLE ((uint64_t)64 << 20)

/* Where the object's bytes are: a file descriptor (buf NULL) or a buffer. */
struct ie_src {
	int fd;
	const unsigned char *buf;
	uint64_t size; /* the file's size when it was opened, or the buffer's */
};

struct ie_sym {
	uint64_t value; /* relative to the load base */
	uint64_t size;
	unsigned type;  /* STT_* */
};

enum ie_result {
	IE_FOUND,
	IE_NOT_FOUND, /* a well-formed object without the symbol */
	IE_BAD,       /* not a 64-bit ELF object of this machine's byte order, or damaged */
	IE_NOMEM,
};

/* Finds the defined symbol called name in src's dynamic symbol tables. */
enum ie_result ie_find_symbol(const struct ie_src *src, const char *name, struct ie_sym *out);

#endif
