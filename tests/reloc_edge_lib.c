/* SPDX-License-Identifier: MIT */
/* The library of tests/reloc_edge.c: one allocation and one free, not tail calls. */
#include <stdlib.h>
#include <string.h>

void *lib_alloc(size_t n);
void lib_free(void *p);

void *lib_alloc(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 'k', n);
	__asm__ volatile("" ::: "memory");
	return p;
}

void lib_free(void *p)
{
	free(p);
	__asm__ volatile("" ::: "memory");
}
