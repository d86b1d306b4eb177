/* SPDX-License-Identifier: MIT */
/*
 * atfork_prog MODE (tests/atfork.bats): fork handlers registered before the shim's.
 *   lib:   a secret block of site mk_key ('P'); libatfork's child handler (its
 *          constructor registered it) writes 'C' into it in the child.
 *   main:  main registers a child handler first, then makes a secret block in a
 *          scope (no rule); the handler writes 'C' into it in the child.
 *   alloc: 20 blocks of libatfork ('Q'); its child handler allocates one ('X').
 *   _Fork: a secret block of mk_key ('P'), then _Fork() (no fork handlers): the
 *          child reads the block (a copy), writes 'C' into it and makes 20 more;
 *          the parent's block stays 'P' and its next blocks are sound.
 * Prints what the child saw and what the parent's block holds afterwards.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secretmem.h"

extern pid_t _Fork(void);
extern char *volatile atl_target;
extern volatile int atl_alloc;
extern char *volatile atl_kept;
char *atl_block(size_t n);

static char *volatile main_target;

static void main_child(void)
{
	if (main_target)
		memset(main_target, 'C', 16);
}

static int in_secretmem(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)p >= lo &&
		    (unsigned long)p < hi)
			found = strstr(line, " /secretmem") != NULL;
	}
	if (f)
		fclose(f);
	return found;
}

__attribute__((noinline)) char *mk_key(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 'P', n);
	return p;
}

__attribute__((noinline)) static char *mk_scoped(size_t n)
{
	secretmem_scope_begin();
	char *p = malloc(n);
	secretmem_scope_end();
	if (p)
		memset(p, 'P', n);
	return p;
}

static int count_not(const char *p, size_t n, char c)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += p[i] != c;
	return bad;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "lib";
	int st;
	if (!strcmp(mode, "alloc")) {
		char *b[20];
		for (int i = 0; i < 20; i++)
			b[i] = atl_block(64);
		atl_alloc = 1;
		pid_t c = fork();
		if (c == 0) {
			int ok = atl_kept && atl_kept[0] == 'X' && secretmem_is_secret(atl_kept);
			char *q = atl_block(64);
			ok &= q && q[0] == 'Q';
			for (int i = 0; i < 20; i++)
				ok &= !count_not(b[i], 64, 'Q');
			_exit(ok ? 0 : 1);
		}
		waitpid(c, &st, 0);
		int bad = 0;
		for (int i = 0; i < 20; i++)
			bad += count_not(b[i], 64, 'Q');
		char *n = atl_block(64);
		printf("secret %d maps %d child ok %d parent changed %d new %c\n",
		       secretmem_is_secret(b[0]), in_secretmem(b[0]),
		       WIFEXITED(st) && WEXITSTATUS(st) == 0, bad, n ? n[0] : '-');
		return 0;
	}
	if (!strcmp(mode, "_Fork")) {
		char *k = mk_key(64);
		pid_t c = _Fork();
		if (c == 0) {
			int ok = !count_not(k, 64, 'P') && secretmem_is_secret(k);
			memset(k, 'C', 16);
			for (int i = 0; i < 20; i++) {
				char *q = mk_key(64);
				ok &= q && secretmem_is_secret(q) && !count_not(q, 64, 'P');
				memset(q, 'c', 64);
			}
			_exit(ok ? 0 : 1);
		}
		waitpid(c, &st, 0);
		int bad = 0;
		for (int i = 0; i < 30; i++) {
			char *q = mk_key(64);
			bad += !q || !secretmem_is_secret(q);
		}
		printf("secret %d maps %d child ok %d parent changed %d new bad %d\n",
		       secretmem_is_secret(k), in_secretmem(k), WIFEXITED(st) && WEXITSTATUS(st) == 0,
		       count_not(k, 64, 'P'), bad);
		return 0;
	}
	char *k;
	if (!strcmp(mode, "main")) {
		pthread_atfork(NULL, NULL, main_child);
		k = mk_scoped(64);
		main_target = k;
	} else {
		k = mk_key(64);
		atl_target = k;
	}
	pid_t c = fork();
	if (c == 0)
		_exit(count_not(k, 16, 'C') == 0 && count_not(k + 16, 48, 'P') == 0 ? 0 : 1);
	waitpid(c, &st, 0);
	printf("secret %d maps %d child wrote %d parent changed %d\n", secretmem_is_secret(k),
	       in_secretmem(k), WIFEXITED(st) && WEXITSTATUS(st) == 0, count_not(k, 64, 'P'));
	return 0;
}
