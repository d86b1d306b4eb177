/* SPDX-License-Identifier: MIT */
/*
 * secret_holder: the subject of tools.bats. Reads SECRETFILE into a block allocated
 * by load_secret (the function a SECRETMEM_SITES rule names) and PLAINFILE into an
 * ordinary block, and reports them as route_prog does:
 *
 *   secret_holder [pause] SECRETFILE PLAINFILE
 *
 *   PID n              (with pause)
 *   secret secret=0|1 addr=0x...
 *   plain secret=0|1 addr=0x...
 *   READY              (with pause; then waits in pause() until killed)
 *
 * The bytes come from files through read(2), straight into the blocks, so that no
 * other copy of them exists in the process (no argv, no stdio buffer, nothing in the
 * binary): a scan that finds them anywhere has found the block. Without pause it
 * exits without freeing the blocks, so the statistics at exit show live bytes.
 *
 * Build with -g -fno-optimize-sibling-calls: load_secret must keep its frame.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

#define NOINLINE __attribute__((noinline, noclone))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")
#define BLK 256

static void fill_from(char *p, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, p, BLK) <= 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

NOINLINE char *load_secret(const char *path)
{
	char *p = calloc(1, BLK);
	KEEP_FRAME();
	if (p)
		fill_from(p, path);
	return p;
}

NOINLINE char *load_plain(const char *path)
{
	char *p = calloc(1, BLK);
	KEEP_FRAME();
	if (p)
		fill_from(p, path);
	return p;
}

int main(int argc, char **argv)
{
	int pause_at_end = argc > 1 && strcmp(argv[1], "pause") == 0;
	if (argc != 3 + pause_at_end) {
		fprintf(stderr, "usage: secret_holder [pause] SECRETFILE PLAINFILE\n");
		return 2;
	}
	char *secret = load_secret(argv[1 + pause_at_end]);
	char *plain = load_plain(argv[2 + pause_at_end]);
	if (!secret || !plain) {
		perror("calloc");
		return 2;
	}
	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	printf("secret secret=%d addr=%p\n", secretmem_is_secret(secret), (void *)secret);
	printf("plain secret=%d addr=%p\n", secretmem_is_secret(plain), (void *)plain);
	if (!pause_at_end)
		return 0;
	printf("READY\n");
	fflush(stdout);
	for (;;)
		pause();
}
