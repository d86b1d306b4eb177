/* SPDX-License-Identifier: MIT */
/*
 * How much of its secret-memory limit a process can really use: the secret arena
 * linked directly (no preload) under SECRETMEM_MAX, a mixed workload of blocks of
 * 16 B to limit/32 (log-uniform), allocated until one fails, then a random half
 * freed, for several rounds. At each failure it records the bytes live (as
 * requested) over the limit; it prints the first, the lowest and the median, and
 * the cost of giving the arena back when nothing is live (a free and the next
 * allocation, with the pages faulted in again).
 *
 * -g: the same workload against glibc's malloc instead, for reference: an
 * allocation "fails" when glibc took more memory from the system for it and now
 * holds more than the limit (mallinfo2's arena and mmapped bytes; the block is
 * freed, the growth trimmed, and the round ends), so the figure is how much of
 * that much memory glibc gives to live blocks under the same history.
 *
 *   limit_bench [-g] [-m LIMIT_MIB] [-r ROUNDS] [-s SEED]
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "options.h"

#define MAXBLK 65536

static void *blk[MAXBLK];
static size_t len[MAXBLK];
static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* log-uniform in [16, max] */
static size_t pick(size_t max)
{
	double lo = 4, hi = __builtin_log2((double)max);
	double e = lo + (hi - lo) * (double)(next() >> 11) / (double)(1ull << 53);
	return (size_t)__builtin_exp2(e);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static bool use_glibc;
static size_t glibc_limit;

/* One block of the workload, or NULL when the limit is reached. */
static void *take(size_t want)
{
	if (!use_glibc)
		return sm_arena_malloc(want);
	struct mallinfo2 mi = mallinfo2();
	size_t before = mi.arena + mi.hblkhd;
	void *p = malloc(want);
	mi = mallinfo2();
	if (p && mi.arena + mi.hblkhd > glibc_limit && mi.arena + mi.hblkhd > before) {
		free(p);
		malloc_trim(0); /* the growth goes back: it was over the limit */
		return NULL;
	}
	return p;
}

static void give(void *p)
{
	if (use_glibc)
		free(p);
	else
		sm_arena_free(p);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t mib = 8;
	int rounds = 20, c;
	while ((c = getopt(argc, argv, "gm:r:s:h")) != -1) {
		if (c == 'g')
			use_glibc = true;
		else if (c == 'm')
			mib = strtoul(optarg, NULL, 10);
		else if (c == 'r')
			rounds = atoi(optarg);
		else if (c == 's')
			rng = strtoull(optarg, NULL, 10) | 1;
		else {
			fprintf(stderr, "usage: limit_bench [-g] [-m LIMIT_MIB] [-r ROUNDS] [-s SEED]\n");
			return c == 'h' ? 0 : 64;
		}
	}
	if (rounds < 1 || rounds > 1000 || !mib)
		return 64;
	size_t limit = mib << 20, max = limit / 32;
	if (use_glibc) {
		/* what glibc holds already (stdio, this program's start) is not the
		 * workload's */
		struct mallinfo2 mi = mallinfo2();
		glibc_limit = mi.arena + mi.hblkhd + limit;
	} else {
		sm_opt.max = limit;
		sm_arena_init();
	}

	double frac[1000];
	size_t n = 0, live = 0;
	for (int r = 0; r < rounds; r++) {
		for (;;) {
			size_t want = pick(max);
			void *p = n < MAXBLK ? take(want) : NULL;
			if (!p)
				break;
			memset(p, 1, want < 64 ? want : 64); /* touch it, as a program would */
			blk[n] = p;
			len[n++] = want;
			live += want;
		}
		frac[r] = (double)live / (double)limit;
		for (size_t i = 0; i < n;) { /* free a random half */
			if (next() & 1) {
				give(blk[i]);
				live -= len[i];
				blk[i] = blk[--n];
				len[i] = len[n];
			} else {
				i++;
			}
		}
	}
	double first = frac[0];
	qsort(frac, (size_t)rounds, sizeof(frac[0]), cmp);
	printf("%slimit %zu MiB, blocks 16 B-%zu KiB, %d rounds: usable fraction first %.1f%% "
	       "lowest %.1f%% median %.1f%%\n", use_glibc ? "glibc, " : "", mib, max >> 10, rounds,
	       100 * first, 100 * frac[0], 100 * frac[rounds / 2]);
	if (use_glibc)
		return 0;

	/* Nothing live: the arena unmaps; the next allocation maps and faults again. */
	while (n)
		sm_arena_free(blk[--n]);
	enum { CYCLES = 200 };
	double t0 = now();
	for (int i = 0; i < CYCLES; i++) {
		char *p = sm_arena_malloc(64);
		p[0] = 1;
		sm_arena_free(p);
	}
	double t1 = now();
	char *pin = sm_arena_malloc(16);
	for (int i = 0; i < CYCLES; i++) {
		char *p = sm_arena_malloc(64);
		p[0] = 1;
		sm_arena_free(p);
	}
	double t2 = now();
	sm_arena_free(pin);
	printf("last secret freed then one allocated again: %.1f us a cycle (%.2f us with another "
	       "block live)\n", (t1 - t0) / CYCLES * 1e6, (t2 - t1) / CYCLES * 1e6);
	return 0;
}
