/* SPDX-License-Identifier: MIT */
/* The known answer of tests/audit.bats: akey_load() copies a 32-byte key into a
 * block it allocates itself, in a library of its own (a call the compiler cannot
 * inline into the program), so the block's call site is akey_load in libaudit_key. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

unsigned char *akey_load(const char *path);

unsigned char *akey_load(const char *path)
{
	unsigned char *k = malloc(64);
	int fd = open(path, O_RDONLY);
	if (!k || fd < 0 || read(fd, k, 32) != 32)
		exit(3);
	close(fd);
	return k;
}
