/* SPDX-License-Identifier: MIT */
/*
 * header_prog: uses every function of secretmem.h and must run unchanged without
 * the shim (inactive, nothing secret, scopes do nothing) and with it (a scope's
 * blocks are secret, others not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretmem.h"

int main(void)
{
	char *before = malloc(32);
	secretmem_scope_begin();
	char *in = malloc(32);
	secretmem_scope_begin();
	char *nested = strdup("blk:nested");
	secretmem_scope_end();
	secretmem_scope_end();
	char *after = malloc(32);
	if (!before || !in || !nested || !after)
		return 2;
	strcpy(in, "blk:in");
	printf("active=%d\n", secretmem_active());
	printf("before secret=%d\n", secretmem_is_secret(before));
	printf("in_scope secret=%d\n", secretmem_is_secret(in));
	printf("nested secret=%d\n", secretmem_is_secret(nested));
	printf("after secret=%d\n", secretmem_is_secret(after));
	printf("null secret=%d\n", secretmem_is_secret(NULL));
	printf("stack secret=%d\n", secretmem_is_secret(&before));
	free(before);
	free(in);
	free(nested);
	free(after);
	return 0;
}
