/* SPDX-License-Identifier: MIT */
/*
 * The second unit of sites_merged: gcc -O2 inlines unit_key into maybe, then
 * removes the copy as dead (unit_dead passes 0). Its abstract instance says
 * "inlined" and no copy of it is left in this unit, while main's unit keeps one:
 * the rule matches that copy, and nothing may warn.
 */
#include "sites_merged.h"

static char *maybe(int x)
{
	if (x)
		return unit_key(32);
	return NULL;
}

char *unit_dead(void)
{
	return maybe(0);
}
