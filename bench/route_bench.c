/* SPDX-License-Identifier: MIT */
/*
 * route_bench: the cost of routing decisions, in ns per allocation+free, measured
 * by the caller's kind. Run it under the shim with the rule the case needs and
 * compare with the same run without the shim (see bench/run).
 *
 *   route_bench CASE [-n N]
 *   CASE: direct     malloc from ordinary code (the cached decision)
 *         strdup     strdup from ordinary code (libc is the caller: a look-through walk)
 *         cxxnew     operator new from ordinary code (libstdc++: a walk)
 *         deep       malloc 8 frames below main (with SECRETMEM_DEPTH: a depth walk)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *cxx_new(size_t n);
void cxx_delete(void *p);

static long n = 1000000;

#define NOINLINE __attribute__((noinline))
#define KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")

static NOINLINE void direct(void)
{
	void *p = malloc(64);
	KEEP(p);
	free(p);
}

static NOINLINE void dup(void)
{
	char *p = strdup("a string of some length, like a key name");
	KEEP(p);
	free(p);
}

static NOINLINE void cxxnew(void)
{
	void *p = cxx_new(64);
	KEEP(p);
	cxx_delete(p);
}

static NOINLINE void deep(int level)
{
	if (level == 0) {
		direct();
		return;
	}
	deep(level - 1);
	KEEP(level);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: route_bench direct|strdup|cxxnew|deep [-n N]\n"
		   "  prints ns per allocation+free for the given kind of caller\n");
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "n:h")) != -1) {
		switch (c) {
		case 'n': n = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *kind = argv[optind];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (!strcmp(kind, "direct"))
			direct();
		else if (!strcmp(kind, "strdup"))
			dup();
		else if (!strcmp(kind, "cxxnew"))
			cxxnew();
		else if (!strcmp(kind, "deep"))
			deep(8);
		else {
			usage(stderr);
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
	printf("%s %.1f ns\n", kind, ns);
	return 0;
}
