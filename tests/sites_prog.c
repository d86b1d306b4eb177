/* SPDX-License-Identifier: MIT */
/*
 * sites_prog: the subject of sites.bats. Runs the operations named on the command
 * line in order and prints one line per block, as route_prog does:
 *
 *   NAME secret=0|1 addr=0x...
 *
 *   sites_prog [pause] OP...
 *     tail_key tail_dup tail_calloc tail_plain    sites of this program (sites_keys.c)
 *     lib_tail_key lib_tail_dup lib_tail_plain    the same in libsites.so (linked)
 *     chdir DIR | dlopen PATH | mv FROM TO        set-up steps
 *     call SYM                                    SYM() from the last dlopen, block SYM
 *
 * Built -O2 -g (and -fno-plt, -O3 -flto, clang) without anything that keeps frames.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

char *tail_key(size_t n);
char *tail_dup(const char *s);
char *tail_calloc(size_t n);
char *tail_plain(size_t n);
#ifdef WITH_LIB
char *lib_tail_key(size_t n);
char *lib_tail_dup(const char *s);
char *lib_tail_plain(size_t n);
#endif

static void report(const char *name, char *p)
{
	if (!p) {
		fprintf(stderr, "sites_prog: %s: allocation failed\n", name);
		exit(2);
	}
	if (strncmp(p, "blk:", 4) != 0)
		snprintf(p, 64, "blk:%s", name);
	printf("%s secret=%d addr=%p\n", name, secretmem_is_secret(p), (void *)p);
}

int main(int argc, char **argv)
{
	int pause_at_end = argc > 1 && strcmp(argv[1], "pause") == 0;
	void *h = NULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	for (int i = 1 + pause_at_end; i < argc; i++) {
		const char *op = argv[i];
		if (strcmp(op, "tail_key") == 0)
			report(op, tail_key(64));
		else if (strcmp(op, "tail_dup") == 0)
			report(op, tail_dup("blk:tail_dup..................................................."));
		else if (strcmp(op, "tail_calloc") == 0)
			report(op, tail_calloc(64));
		else if (strcmp(op, "tail_plain") == 0)
			report(op, tail_plain(64));
#ifdef WITH_LIB
		else if (strcmp(op, "lib_tail_key") == 0)
			report(op, lib_tail_key(64));
		else if (strcmp(op, "lib_tail_dup") == 0)
			report(op, lib_tail_dup("blk:lib_tail_dup..............................................."));
		else if (strcmp(op, "lib_tail_plain") == 0)
			report(op, lib_tail_plain(64));
#endif
		else if (strcmp(op, "chdir") == 0 && i + 1 < argc) {
			if (chdir(argv[++i])) {
				perror("chdir");
				return 2;
			}
		} else if (strcmp(op, "dlopen") == 0 && i + 1 < argc) {
			if (!(h = dlopen(argv[++i], RTLD_NOW | RTLD_LOCAL))) {
				fprintf(stderr, "sites_prog: %s\n", dlerror());
				return 2;
			}
		} else if (strcmp(op, "mv") == 0 && i + 2 < argc) {
			if (rename(argv[i + 1], argv[i + 2])) {
				perror("rename");
				return 2;
			}
			i += 2;
		} else if (strcmp(op, "call") == 0 && i + 1 < argc && h) {
			char *(*f)(void) = (char *(*)(void))dlsym(h, argv[++i]);
			if (!f) {
				fprintf(stderr, "sites_prog: no %s\n", argv[i]);
				return 2;
			}
			report(argv[i], f());
		} else {
			fprintf(stderr, "sites_prog: unknown operation %s\n", op);
			return 2;
		}
	}
	if (pause_at_end) {
		printf("READY\n");
		pause();
	}
	return 0;
}
