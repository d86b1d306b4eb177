/* SPDX-License-Identifier: MIT */
/* unit_key, for sites_merged.c and sites_merged_unit.c: a static inline site in
 * a header, so each unit has an abstract instance of its own. */
#ifndef SITES_MERGED_H
#define SITES_MERGED_H

#include <stdlib.h>

static inline char *unit_key(size_t n)
{
	return malloc(n);
}

char *unit_dead(void);

#endif
