/* SPDX-License-Identifier: MIT */
/*
 * The metadata allocator (src/meta.h) for fuzz_options: the real one hands out
 * bump memory that is never freed (options are parsed once per process), which a
 * fuzzer parsing millions of values would exhaust. Here every block comes from
 * malloc, so that ASan checks the parser's writes into it, and all blocks are
 * freed after each input (fuzz_meta_reset).
 */
#include "config.h"
#include "meta.h"

#include <stdlib.h>
#include <string.h>

void fuzz_meta_reset(void);

static void **blocks;
static size_t nblocks, cap;

void *sm_meta_alloc(size_t size)
{
	if (nblocks == cap) {
		size_t c = cap ? cap * 2 : 64;
		void **b = realloc(blocks, c * sizeof(*b));
		if (!b)
			return NULL;
		blocks = b;
		cap = c;
	}
	void *p = calloc(1, size ? size : 1);
	if (p)
		blocks[nblocks++] = p;
	return p;
}

char *sm_meta_strndup(const char *s, size_t n)
{
	char *p = sm_meta_alloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void fuzz_meta_reset(void)
{
	for (size_t i = 0; i < nblocks; i++)
		free(blocks[i]);
	nblocks = 0;
}

unsigned long sm_object_base(const void *addr)
{
	(void)addr;
	return 0;
}

void sm_meta_fork_prepare(void) {}
void sm_meta_fork_parent(void) {}
void sm_meta_fork_child(void) {}
