/* SPDX-License-Identifier: MIT */
/*
 * stdio_prog: main reads the first line of stdin and prints a banner to stdout
 * (so glibc allocates both streams' buffers from main), then, but for "none",
 * libpw's pw_read reads the password on the second line (a secret block, with
 * SECRETMEM_LIBS=libpw.so) and, with "print", pw_print prints it to stdout, which
 * is not flushed. With "idle" it frees the password (no secret block is live
 * then), says how many secret mappings are left, reads the third line and prints
 * it (flushed). Then it says "PID <pid>" and "READY" on stderr and waits to be scanned.
 *
 *   stdio_prog read|print|idle|none
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *pw_read(void);
void pw_print(const char *token);

/* The secret mappings of this process, read with read(2): no stdio, no malloc. */
static unsigned secret_mappings(void)
{
	static char buf[1 << 18];
	size_t n = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY);
	while (fd >= 0 && n + 1 < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	if (fd >= 0)
		close(fd);
	buf[n] = '\0';
	unsigned count = 0;
	for (char *p = buf; (p = strstr(p, " /secretmem")); p++)
		count++;
	return count;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "read";
	char first[64];
	if (!fgets(first, sizeof(first), stdin))
		return 2;
	printf("hello from main\n");
	if (strcmp(mode, "none") != 0) {
		char *pw = pw_read();
		if (!pw)
			return 2;
		if (strcmp(mode, "print") == 0)
			pw_print(pw);
		if (strcmp(mode, "idle") == 0) {
			free(pw);
			fprintf(stderr, "secret mappings after the last free: %u\n", secret_mappings());
			char third[64];
			if (!fgets(third, sizeof(third), stdin))
				return 2;
			printf("third: %s", third);
			fflush(stdout);
		}
	}
	fprintf(stderr, "secret mappings: %u\nPID %d\nREADY\n", secret_mappings(), (int)getpid());
	pause();
	return 0;
}
