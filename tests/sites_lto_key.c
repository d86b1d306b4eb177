/* SPDX-License-Identifier: MIT */
/* The site of tests/sites_lto_main.c, in a file of its own. */
#include <stdlib.h>
#include <string.h>

char *lto_key(void);

char *lto_key(void)
{
	char *p = malloc(64);
	if (p)
		strcpy(p, "blk:lto_key");
	return p;
}
