/* SPDX-License-Identifier: MIT */
/*
 * tailout_prog: an untagged program that has libtailout.so (tailout_lib.cc) and
 * libtailoutc.so (tailout_clib.c) allocate for it through functions ending in a
 * tail call (tests/tailout.bats). Each case prints
 *
 *   NAME secret=0|1 addr=0x...
 *
 * with the block's content "blk:NAME".
 *
 *   tailout_prog [pause] [open] CASE...
 *
 * open: dlopen libtailout.so (RTLD_LAZY, RTLD_LOCAL: libstdc++ comes with it,
 * in its local scope only; the program itself does not link it), else it is
 * linked. Cases: new newarr newal newnt newalnt allocstd (libtailout), wcsdup
 * strdup_ strndup_ vasprintf getline cwd getcwd getdelim asprintf scandir
 * wcsdup_nt, dsym_default dsym_next dsym_realloc (the allocation API from
 * dlsym), dsym_free (a block from to_dsym_next and one of the program's, freed
 * through dlsym(RTLD_NEXT, "free")) (libtailoutc), plain (the
 * program's own malloc), throw (to_new of a size no allocator gives: bad_alloc
 * thrown through the shim's wrapper and caught in libtailout; then the
 * program's malloc: after_throw), nothrow (the same with to_newnt: NULL;
 * then after_nothrow).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "secretmem.h"

static void *lib = RTLD_DEFAULT;

static void *fn(const char *name)
{
	void *f = dlsym(lib, name);
	if (!f) {
		fprintf(stderr, "tailout_prog: %s: %s\n", name, dlerror());
		exit(2);
	}
	return f;
}

static void show_n(const char *name, void *p, size_t size)
{
	if (!p) {
		fprintf(stderr, "tailout_prog: %s: no block\n", name);
		exit(1);
	}
	snprintf(p, size < 64 ? size : 64, "blk:%s", name);
	printf("%s secret=%d addr=%p\n", name, secretmem_is_secret(p), p);
}

static void show(const char *name, void *p)
{
	show_n(name, p, 64);
}

static char *vdup(const char *fmt, ...)
{
	int (*f)(char **, const char *, va_list) =
		(int (*)(char **, const char *, va_list))fn("to_vasprintf");
	char *p = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = f(&p, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : p;
}

static const wchar_t wide[] = L"a wide string of more than sixty-four bytes, long enough";
static const char narrow[] = "a string of more than sixty-four bytes, long enough for the tag";

int main(int argc, char **argv)
{
	int i = 1, do_pause = 0;
	if (i < argc && !strcmp(argv[i], "pause")) {
		do_pause = 1;
		i++;
	}
	if (i < argc && !strcmp(argv[i], "open")) {
		lib = dlopen("libtailout.so", RTLD_LAZY | RTLD_LOCAL);
		if (!lib) {
			fprintf(stderr, "tailout_prog: %s\n", dlerror());
			return 2;
		}
		i++;
	}
	if (do_pause)
		printf("PID %d\n", (int)getpid());
	typedef void *(*sized)(size_t);
	for (; i < argc; i++) {
		const char *c = argv[i];
		if (!strcmp(c, "new") || !strcmp(c, "newarr") || !strcmp(c, "newal") ||
		    !strcmp(c, "newnt") || !strcmp(c, "newalnt") || !strcmp(c, "allocstd")) {
			char name[32];
			snprintf(name, sizeof(name), "to_%s", c);
			show(c, ((sized)fn(name))(96));
		} else if (!strcmp(c, "wcsdup")) {
			show(c, ((wchar_t * (*)(const wchar_t *)) fn("to_wcsdup"))(wide));
		} else if (!strcmp(c, "wcsdup_nt")) {
			show(c, ((wchar_t * (*)(const wchar_t *)) fn("to_wcsdup_nt"))(wide));
		} else if (!strcmp(c, "strdup_")) {
			show(c, ((char *(*)(const char *))fn("to___strdup"))(narrow));
		} else if (!strcmp(c, "strndup_")) {
			show(c, ((char *(*)(const char *, size_t))fn("to___strndup"))(narrow, 80));
		} else if (!strcmp(c, "vasprintf")) {
			show(c, vdup("%s %d", narrow, 42));
		} else if (!strcmp(c, "getline")) {
			FILE *f = fmemopen((void *)narrow, sizeof(narrow) - 1, "r");
			char *line = NULL;
			size_t n = 0;
			if (!f || ((ssize_t(*)(char **, size_t *, FILE *))fn("to_getline"))(&line, &n, f) < 0)
				return 1;
			fclose(f);
			show(c, line);
		} else if (!strcmp(c, "cwd")) {
			/* run in a directory whose name is longer than the tag */
			char *d = ((char *(*)(void))fn("to_cwd"))();
			show_n(c, d, d ? strlen(d) + 1 : 0);
		} else if (!strcmp(c, "getcwd")) {
			char *d = ((char *(*)(void))fn("to_getcwd"))();
			show_n(c, d, d ? strlen(d) + 1 : 0);
		} else if (!strcmp(c, "getdelim")) {
			FILE *f = fmemopen((void *)narrow, sizeof(narrow) - 1, "r");
			char *line = NULL;
			size_t n = 0;
			if (!f || ((ssize_t(*)(char **, size_t *, FILE *))fn("to_getdelim"))(&line, &n, f) < 0)
				return 1;
			fclose(f);
			show(c, line);
		} else if (!strcmp(c, "asprintf")) {
			char *p = NULL;
			if (((int (*)(char **, const char *))fn("to_asprintf"))(&p, narrow) < 0)
				return 1;
			show(c, p);
		} else if (!strcmp(c, "scandir")) {
			/* the array of entries (one pointer a name: 8 entries are enough) */
			struct dirent **l = NULL;
			int n = ((int (*)(const char *, struct dirent ***))fn("to_scandir"))("/", &l);
			if (n < 8)
				return 1;
			show(c, l);
		} else if (!strcmp(c, "dsym_default") || !strcmp(c, "dsym_next")) {
			char name[32];
			snprintf(name, sizeof(name), "to_%s", c);
			show(c, ((sized)fn(name))(96));
		} else if (!strcmp(c, "dsym_realloc")) {
			void *(*re)(void *, size_t) = (void *(*)(void *, size_t))fn("to_dsym_realloc");
			show(c, re(re(NULL, 16), 200));
		} else if (!strcmp(c, "dsym_free")) {
			/* a block of each kind freed through dlsym(RTLD_NEXT, "free") */
			void (*release)(void *) = (void (*)(void *))fn("to_dsym_free");
			release(((sized)fn("to_dsym_next"))(96));
			release(malloc(96));
			printf("dsym_free done\n");
		} else if (!strcmp(c, "plain")) {
			show(c, malloc(96));
		} else if (!strcmp(c, "throw")) {
			int caught = ((int (*)(size_t))fn("to_new_catch"))(SIZE_MAX / 2);
			printf("throw caught=%d\n", caught);
			show("after_throw", malloc(96));
		} else if (!strcmp(c, "nothrow")) {
			void *p = ((sized)fn("to_newnt"))(SIZE_MAX / 2);
			printf("nothrow null=%d\n", p == NULL);
			show("after_nothrow", malloc(96));
		} else {
			fprintf(stderr, "tailout_prog: unknown case %s\n", c);
			return 2;
		}
	}
	fflush(stdout);
	if (do_pause) {
		printf("READY\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	return 0;
}
