/* SPDX-License-Identifier: MIT */
/* The library of tests/names.bats (libnameskey.so.1, its SONAME): nk_load()
 * allocates a block of its own and puts in it the 32 bytes of keyfile, or
 * "blk:key". Its allocations are secret when SECRETMEM_LIBS names it. nk_alloc()
 * is an allocation wrapper (it fills the block after malloc returns: no tail
 * call), for SECRETMEM_WRAPPERS. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char *nk_load(const char *keyfile);
char *nk_alloc(void);

char *nk_alloc(void)
{
	char *p = malloc(64);
	if (!p)
		exit(3);
	snprintf(p, 64, "blk:key");
	return p;
}

char *nk_load(const char *keyfile)
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
