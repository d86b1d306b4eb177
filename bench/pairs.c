/* SPDX-License-Identifier: MIT */
/*
 * pairs: malloc+free pairs of 16-256 bytes with 256 live slots, the pattern of the
 * allocation anchors in docs/kernel-facts.md (and the contract's figures). Run it with and without the shim (or with a
 * rule that makes its allocations secret) and compare ns per pair in one run;
 * under callgrind, compare instructions per pair.
 *
 *   pairs [-n PAIRS] [-t THREADS] [-s MIN-MAX] [--scope]
 *
 * --scope wraps the loop in secretmem_scope_begin/end, so every pair is secret.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretmem.h"

static long pairs = 10000000;
static int threads = 1;
static size_t min_size = 16, max_size = 256;
static int scope;

#define SLOTS 256

static void *run(void *arg)
{
	unsigned x = (unsigned)(unsigned long)arg * 2654435761u + 1;
	void *slot[SLOTS] = { 0 };
	size_t span = max_size - min_size + 1;

	if (scope)
		secretmem_scope_begin();
	for (long i = 0; i < pairs; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		unsigned k = x % SLOTS;
		free(slot[k]);
		slot[k] = malloc(min_size + x % span);
		if (!slot[k])
			abort();
		*(volatile char *)slot[k] = 1;
	}
	for (int k = 0; k < SLOTS; k++)
		free(slot[k]);
	if (scope)
		secretmem_scope_end();
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pairs [-n PAIRS] [-t THREADS] [-s MIN-MAX] [--scope]\n"
		   "  malloc+free pairs with %d live slots; prints ns per pair and Mpairs/s\n", SLOTS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "scope", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:t:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': pairs = atol(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 's': if (sscanf(optarg, "%zu-%zu", &min_size, &max_size) != 2 || min_size > max_size) { usage(stderr); return 2; } break;
		case 'S': scope = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (threads < 1 || threads > 64 || pairs < 1) {
		usage(stderr);
		return 2;
	}
	pthread_t tid[64];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, run, (void *)(unsigned long)i);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	double total = (double)pairs * threads;
	printf("threads=%d pairs=%ld size=%zu-%zu ns/pair=%.1f Mpairs/s=%.2f secret=%d\n",
	       threads, pairs, min_size, max_size, ns * threads / total, total / ns * 1e3,
	       secretmem_is_secret(NULL) || 0);
	return 0;
}
