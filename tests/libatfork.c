/* SPDX-License-Identifier: MIT */
/*
 * libatfork.so (tests/atfork.bats): its constructor, which the loader runs before
 * the shim's, registers a pthread_atfork child handler, as a library that resets
 * its state in a child does. The handler writes 'C' into the block atl_target
 * points at, and with atl_alloc set allocates a block (secret when the rule names
 * this library), fills it with 'X' and keeps it in atl_kept.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

char *volatile atl_target;
volatile int atl_alloc;
char *volatile atl_kept;

char *atl_block(size_t n);
char *atl_block(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 'Q', n);
	return p;
}

static void child(void)
{
	if (atl_target)
		memset(atl_target, 'C', 16);
	if (atl_alloc) {
		char *p = malloc(64);
		if (p)
			memset(p, 'X', 64);
		atl_kept = p;
	}
}

__attribute__((constructor)) static void init(void)
{
	pthread_atfork(NULL, NULL, child);
}
