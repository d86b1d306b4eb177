/* SPDX-License-Identifier: MIT */
/*
 * A password library for tests/streams.bats: reads a password from stdin, and
 * prints a token to stdout. Tagged with SECRETMEM_LIBS=libpw.so, its own blocks
 * are secret; what stdio buffers for it is the question.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/types.h>

char *pw_read(void);
void pw_print(const char *token);

char *pw_read(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return n > 0 ? line : NULL;
}

void pw_print(const char *token)
{
	printf("token=%s\n", token);
}
