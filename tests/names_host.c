/* SPDX-License-Identifier: MIT */
/*
 * The probe of tests/names.bats: an object matches a SECRETMEM_LIBS pattern by any
 * name it is known by. One block, allocated by
 *   self        the program itself (its own names: as started, its file);
 *   dlopen NAME nk_load() of the plugin dlopen(3) finds by NAME (a relative path,
 *               a symbolic link, a name the RUNPATH $ORIGIN/../lib leads to);
 *   wrap NAME   the program itself, through nk_alloc() of the plugin dlopen(3)
 *               finds by NAME (an allocation wrapper: SECRETMEM_WRAPPERS);
 *   linked      nk_load() of libnameskey.so.1, the library names_linked (this
 *               source with -DNAMES_LINKED) is linked with, found through its
 *               RUNPATH $ORIGIN/../lib at start-up.
 * The block holds the 32 bytes of KEYFILE if one is given (for secretmem-audit),
 * else "blk:key".
 *
 *   names_host [pause] self|dlopen NAME|wrap NAME|linked [KEYFILE]
 *
 * Prints "key secret=0|1 addr=0x..."; with pause "PID n" first and "READY" last,
 * then waits in pause().
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

char *nk_load(const char *keyfile);

static char *own_load(const char *keyfile)
{
	char *p = malloc(64);
	if (!p)
		exit(3);
	if (!keyfile) {
		snprintf(p, 64, "blk:key");
		return p;
	}
	int fd = open(keyfile, O_RDONLY);
	if (fd < 0 || read(fd, p, 32) != 32)
		exit(3);
	close(fd);
	return p;
}

int main(int argc, char **argv)
{
	int i = 1, pause_at_end = 0;
	if (i < argc && !strcmp(argv[i], "pause")) {
		pause_at_end = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: names_host [pause] self|dlopen NAME|wrap NAME|linked [KEYFILE]\n");
		return 2;
	}
	const char *mode = argv[i++];
	char *p;
	if (!strcmp(mode, "self")) {
		p = own_load(i < argc ? argv[i] : NULL);
	} else if ((!strcmp(mode, "dlopen") || !strcmp(mode, "wrap")) && i < argc) {
		const char *name = argv[i++];
		bool wrap = !strcmp(mode, "wrap");
		void *h = dlopen(name, RTLD_NOW);
		void *f = h ? dlsym(h, wrap ? "nk_alloc" : "nk_load") : NULL;
		if (!f) {
			fprintf(stderr, "names_host: %s: %s\n", name, dlerror());
			return 2;
		}
		if (wrap)
			p = ((char *(*)(void))f)();
		else
			p = ((char *(*)(const char *))f)(i < argc ? argv[i] : NULL);
#ifdef NAMES_LINKED
	} else if (!strcmp(mode, "linked")) {
		p = nk_load(i < argc ? argv[i] : NULL);
#endif
	} else {
		fprintf(stderr, "names_host: unknown mode %s\n", mode);
		return 2;
	}
	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	printf("key secret=%d addr=%p\n", secretmem_is_secret(p), (void *)p);
	if (pause_at_end) {
		printf("READY\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	return p[0] ? 0 : 1; /* the block stays live until exit (secretmem-audit finds it there) */
}
