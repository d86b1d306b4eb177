/* SPDX-License-Identifier: MIT */
/*
 * faults_lib: a library that faults.bats builds twice (libfaulttag.so, named in
 * SECRETMEM_LIBS, and libfaultplain.so, not named) and that faults_prog dlopens and
 * dlcloses from several threads. Its constructor allocates while the loader holds
 * its lock, its destructor frees that block; fl_alloc allocates on request.
 */
#include <stdlib.h>
#include <string.h>

#include "secretmem.h"

static void *ctor_block;

__attribute__((constructor)) static void fl_init(void)
{
	ctor_block = malloc(48);
	if (ctor_block)
		memset(ctor_block, 0x5a, 48);
}

__attribute__((destructor)) static void fl_fini(void)
{
	free(ctor_block);
	ctor_block = NULL;
}

__attribute__((noinline)) void *fl_alloc(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory");
	return p;
}

/* 1 if the constructor's block is secret, 0 if ordinary, -1 if there is none. */
int fl_ctor_block_secret(void)
{
	return ctor_block ? secretmem_is_secret(ctor_block) : -1;
}
