/* SPDX-License-Identifier: MIT */
/*
 * crash_walk: look-through walks through frames of every kind, for crash.bats.
 * Built with several compilers and flags (frame pointers or not, -O0 with its
 * rbp-based frames, alloca's dynamic frames); the shim's own unwinder handles the
 * usual frames and hands over to libgcc's at signal frames.
 *
 *   crash_walk plain    key_site() asprintfs (libc allocates: a walk to key_site)
 *   crash_walk alloca   the same below a frame with alloca
 *   crash_walk signal   key_site() raises a signal whose handler asprintfs: with
 *                       SECRETMEM_SITES=key_site SECRETMEM_DEPTH=4 the walk passes
 *                       the signal frame to reach key_site
 * Prints secret=0 or secret=1 for the block.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int (*is_secret)(const void *);
static char *volatile got;

static void handler(int sig)
{
	char *s;
	if (asprintf(&s, "in the handler of %d", sig) >= 0)
		got = s;
}

__attribute__((noinline)) void key_site(int mode)
{
	char *s = NULL;
	if (mode == 2) {
		raise(SIGUSR1);
		s = got;
	} else if (asprintf(&s, "key %d", mode) < 0) {
		s = NULL;
	}
	got = s;
	__asm__ volatile("" ::: "memory"); /* keep the frame: not a tail call */
}

__attribute__((noinline)) static void dynamic_frame(size_t n)
{
	char *buf = alloca(n);
	memset(buf, 0, n);
	__asm__ volatile("" : : "r"(buf) : "memory");
	key_site(1);
}

int main(int argc, char **argv)
{
	is_secret = (int (*)(const void *))dlsym(RTLD_DEFAULT, "secretmem_impl_is_secret");
	signal(SIGUSR1, handler);
	const char *m = argc > 1 ? argv[1] : "plain";
	if (strcmp(m, "alloca") == 0)
		dynamic_frame((size_t)argc * 100);
	else
		key_site(strcmp(m, "signal") == 0 ? 2 : 0);
	printf("secret=%d\n", got && is_secret && is_secret(got));
	return 0;
}
