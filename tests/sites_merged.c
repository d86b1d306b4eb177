/* SPDX-License-Identifier: MIT */
/*
 * sites_merged [pause]: two pairs of sites that gcc -O2 -g inlines into main as
 * the same instructions, and merges. grow_key(NULL, n) folds to malloc(n), the
 * code of alloc_key(n); dup_name(s) and copy_key(s) are both strdup(s). main
 * picks one of each pair by a condition the compiler cannot know (argc), so one
 * copy of each pair is left, and the debug information names it after one site
 * only (alloc_key, copy_key): the other (grow_key, dup_name; static, so with no
 * out-of-line copy either) has an abstract instance that says "inlined" and no
 * copy at all. unit_key (sites_merged.h) is inlined here and in a copy
 * sites_merged_unit.c removes. Prints "NAME secret=0|1 addr=0x..." as
 * sites_inline does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"
#include "sites_merged.h"

static char *alloc_key(size_t n)
{
	return malloc(n);
}

static char *grow_key(char *p, size_t n)
{
	return realloc(p, n);
}

static char *copy_key(const char *s)
{
	return strdup(s);
}

static char *dup_name(const char *s)
{
	return strdup(s);
}

int main(int argc, char **argv)
{
	int pause_at_end = argc > 1 && strcmp(argv[1], "pause") == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	char *a = argc > 5 ? grow_key(NULL, 64) : alloc_key(64);
	char *b = argc > 5 ? dup_name("blk:copy_key") : copy_key("blk:copy_key");
	char *u = unit_key(64 + (size_t)argc);
	if (!a || !b || !u || unit_dead())
		return 2;
	strcpy(a, "blk:alloc_key");
	strcpy(u, "blk:unit_key");
	printf("alloc_key secret=%d addr=%p\n", secretmem_is_secret(a), (void *)a);
	printf("copy_key secret=%d addr=%p\n", secretmem_is_secret(b), (void *)b);
	printf("unit_key secret=%d addr=%p\n", secretmem_is_secret(u), (void *)u);
	if (pause_at_end) {
		printf("READY\n");
		pause();
	}
	return 0;
}
