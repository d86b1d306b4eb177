/* SPDX-License-Identifier: MIT */
/*
 * sites_inline [pause]: sites the compiler inlines at -O2 -g. inl_key is static
 * and called once: gcc and clang inline it into main and drop its symbol.
 * glob_key is global: clang inlines it into main too and keeps an unused
 * out-of-line copy, so its symbol matches and catches nothing. Only the debug
 * information (DW_TAG_inlined_subroutine) says where their code went. Prints
 * "NAME secret=0|1 addr=0x..." as sites_prog does; plain is the control.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

char *glob_key(int n);

static char *inl_key(int n)
{
	char *p = malloc((size_t)n);
	if (p)
		strcpy(p, "blk:inl_key");
	return p;
}

char *glob_key(int n)
{
	char *p = malloc((size_t)n);
	if (p)
		strcpy(p, "blk:glob_key");
	return p;
}

static void report(const char *name, void *p)
{
	printf("%s secret=%d addr=%p\n", name, secretmem_is_secret(p), p);
}

int main(int argc, char **argv)
{
	int pause_at_end = argc > 1 && strcmp(argv[1], "pause") == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	char *a = inl_key(64), *b = glob_key(64), *c = malloc(64);
	if (!a || !b || !c)
		return 2;
	strcpy(c, "blk:plain");
	report("inl_key", a);
	report("glob_key", b);
	report("plain", c);
	if (pause_at_end) {
		printf("READY\n");
		pause();
	}
	return 0;
}
