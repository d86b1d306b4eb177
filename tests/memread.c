/* SPDX-License-Identifier: MIT */
/*
 * memread: what another process can read of a process's memory.
 *
 *   memread mem PID ADDR LEN    pread of /proc/PID/mem
 *   memread vm  PID ADDR LEN    process_vm_readv
 *
 * Prints "OK " and the bytes (up to the first NUL, non-printables as '.') when the
 * read succeeds, else "EIO", "EFAULT" or "ERR <errno> <message>"; exits 0 either way
 * (2 on a usage or open error), so the test decides what is expected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void show(const unsigned char *b, ssize_t n)
{
	fputs("OK ", stdout);
	for (ssize_t i = 0; i < n && b[i]; i++)
		putchar(b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '.');
	putchar('\n');
}

static void fail(int e)
{
	if (e == EIO)
		puts("EIO");
	else if (e == EFAULT)
		puts("EFAULT");
	else
		printf("ERR %d %s\n", e, strerror(e));
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: memread mem|vm PID ADDR LEN\n");
		return 2;
	}
	pid_t pid = (pid_t)strtol(argv[2], NULL, 10);
	unsigned long addr = strtoul(argv[3], NULL, 0);
	size_t len = strtoul(argv[4], NULL, 0);
	unsigned char *buf = calloc(1, len + 1);
	if (!buf)
		return 2;
	ssize_t n;
	if (!strcmp(argv[1], "mem")) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			perror(path);
			return 2;
		}
		n = pread(fd, buf, len, (off_t)addr);
	} else if (!strcmp(argv[1], "vm")) {
		struct iovec local = { buf, len }, remote = { (void *)addr, len };
		n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	} else {
		fprintf(stderr, "memread: mode is mem or vm\n");
		return 2;
	}
	if (n < 0)
		fail(errno);
	else if (n == 0)
		puts("EOF");
	else
		show(buf, n);
	return 0;
}
