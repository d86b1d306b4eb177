/* SPDX-License-Identifier: MIT */
/*
 * libcrashlib.so: a plugin that allocates, for tests/crash.bats. Built twice, at two
 * paths with two names (one tagged by SECRETMEM_LIBS, one not), so that a copy
 * loaded where the other was has its allocation at the very same offset.
 */
#include <stdlib.h>
#include <string.h>

/* Not a tail call: the block is filled before it is returned. */
char *crashlib_alloc(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 'k', n);
	return p;
}
