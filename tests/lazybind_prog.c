/* SPDX-License-Identifier: MIT */
/*
 * lazybind_prog KEYFILE: reads a 64-byte key with read(2) straight into a block
 * (secret with SECRETMEM_LIBS=lazybind_prog), copies it into a second block (at
 * -O2 the compiler copies it through vector registers), then calls a libc function
 * for the first time: linked with -z lazy, that call goes through the dynamic
 * loader's resolver, which saves the vector registers on the stack. Then it says
 * "READY" on stderr (write(2)) and waits to be scanned.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY);
	unsigned char *key = malloc(64), *copy = malloc(64);
	ssize_t n = fd < 0 || !key || !copy ? -1 : read(fd, key, 64);
	if (n < 16)
		return 2;
	close(fd);
	memcpy(copy, key, (size_t)n);
	/* the first call of getppid: the loader binds it now */
	if (getppid() < 0)
		return 3;
	write(2, "READY\n", 6);
	pause();
	return copy[0] == key[0] ? 0 : 1;
}
