/* SPDX-License-Identifier: MIT */
/*
 * stdio_prog: main reads the first line of stdin and prints a banner to stdout
 * (so glibc allocates both streams' buffers from main), then libpw's pw_read reads
 * the password on the second line and, with "print", pw_print prints it to stdout,
 * which is not flushed. Then it says "PID <pid>" and "READY" on stderr and waits
 * to be scanned.
 *
 *   stdio_prog read|print
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

char *pw_read(void);
void pw_print(const char *token);

int main(int argc, char **argv)
{
	char first[64];
	if (!fgets(first, sizeof(first), stdin))
		return 2;
	printf("hello from main\n");
	char *pw = pw_read();
	if (!pw)
		return 2;
	if (argc > 1 && strcmp(argv[1], "print") == 0)
		pw_print(pw);
	fprintf(stderr, "PID %d\nREADY\n", (int)getpid());
	pause();
	return 0;
}
