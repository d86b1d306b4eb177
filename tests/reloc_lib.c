/* SPDX-License-Identifier: MIT */
/*
 * libreloc.so: a library whose functions hand the allocation API's result straight
 * back, as real libraries do (OpenSSL's CRYPTO_malloc ends in `jmp malloc@plt`).
 * Built the way distributions build (-O2 -g: these become tail calls), and also
 * with -fno-plt (calls through the GOT), -O3 -flto and clang: however the compiler
 * reached malloc, the return address is the caller's, not the library's, so only
 * the library's own relocations can tell that the call is its.
 *
 * With -DANNOTATED it carries SECRETMEM_ANNOTATE_LIBRARY and allocates in a
 * constructor that runs before the annotation's own (priority 101).
 */
#include <stdlib.h>
#include <string.h>

#ifdef ANNOTATED
#include "secretmem.h"
SECRETMEM_ANNOTATE_LIBRARY;

static char *early;

__attribute__((constructor(101))) static void early_ctor(void)
{
	early = malloc(64);
	if (early)
		strcpy(early, "blk:early");
}

char *lib_early(void)
{
	return early;
}
#endif

void *lib_alloc(size_t n)
{
	return malloc(n);
}

void *lib_calloc(size_t n)
{
	return calloc(1, n);
}

void *lib_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

char *lib_strdup(const char *s)
{
	return strdup(s);
}

void *lib_aligned(size_t n)
{
	return aligned_alloc(64, n);
}

/* A pointer the library took: whoever calls it calls the library's malloc. */
void *(*lib_malloc_ptr(void))(size_t)
{
	return malloc;
}

/* A table of pointers in read-only data (an absolute relocation, in RELRO). */
static void *(*const table[])(size_t) = { malloc, NULL };
static volatile int table_index;

void *lib_table_alloc(size_t n)
{
	return table[table_index](n);
}

/* The library's own strndup, as some libraries carry for old systems: the loader
 * binds the library's calls to the shim's (interposition), so they are its own
 * calls into the allocation API too. */
char *strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = malloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

char *lib_strndup(const char *s, size_t n)
{
	return strndup(s, n);
}

void lib_free(void *p)
{
	free(p);
}
