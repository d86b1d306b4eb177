/* SPDX-License-Identifier: MIT */
/*
 * annotated_prog: a program marked with SECRETMEM_ANNOTATE_LIBRARY: under the shim,
 * with no environment rule, its own allocations are secret; libc's on its own behalf
 * (here: the stdio buffer of stdout is allocated on the program's behalf, so it
 * counts as the program's) follow the call-site rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretmem.h"

SECRETMEM_ANNOTATE_LIBRARY;

int main(void)
{
	char *m = malloc(64);
	char *d = strdup("blk:annotated_strdup");
	char *c = calloc(4, 16);
	if (!m || !d || !c)
		return 2;
	strcpy(m, "blk:annotated_malloc");
	printf("annotated_malloc secret=%d addr=%p\n", secretmem_is_secret(m), (void *)m);
	printf("annotated_strdup secret=%d addr=%p\n", secretmem_is_secret(d), (void *)d);
	printf("annotated_calloc secret=%d addr=%p\n", secretmem_is_secret(c), (void *)c);
	printf("active=%d\n", secretmem_active());
	free(m);
	free(d);
	free(c);
	return 0;
}
