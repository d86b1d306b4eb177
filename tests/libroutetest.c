/* SPDX-License-Identifier: MIT */
/*
 * libroutetest.so: a plain shared library that allocates, for the SECRETMEM_LIBS and
 * LIB:FUNCTION rules and for dlopen/dlclose. The same source is also built as
 * libplain.so, so that a library loaded where libroutetest.so was has its
 * allocation call at the very same code address (what a stale cache would get wrong).
 */
#include <stdio.h>
#include <stdlib.h>

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

__attribute__((noinline)) char *routetest_alloc(const char *name)
{
	char *p = malloc(64);
	KEEP_FRAME();
	if (p)
		snprintf(p, 64, "blk:%s", name);
	return p;
}
