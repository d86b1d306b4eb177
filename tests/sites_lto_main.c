/* SPDX-License-Identifier: MIT */
/*
 * sites_lto: a site in another file (sites_lto_key.c) that -O3 -flto inlines into
 * main, leaving no symbol: only the debug information of the link's own unit
 * says where its code went, by a reference into the unit of its source file.
 * Prints "lto_key secret=0|1" and "plain secret=0|1" (the control).
 */
#include <stdio.h>
#include <stdlib.h>

#include "secretmem.h"

char *lto_key(void);

int main(void)
{
	char *k = lto_key();
	char *volatile p = malloc(64);
	printf("lto_key secret=%d\nplain secret=%d\n", secretmem_is_secret(k), secretmem_is_secret(p));
	return 0;
}
