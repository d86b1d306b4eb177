/* SPDX-License-Identifier: MIT */
/*
 * libannotated.so: a library marked with SECRETMEM_ANNOTATE_LIBRARY, so every
 * allocation it makes is secret without any environment rule.
 */
#include <stdio.h>
#include <stdlib.h>

#include "secretmem.h"

SECRETMEM_ANNOTATE_LIBRARY;

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

__attribute__((noinline)) char *annotated_alloc(const char *name)
{
	char *p = malloc(64);
	KEEP_FRAME();
	if (p)
		snprintf(p, 64, "blk:%s", name);
	return p;
}
