/* SPDX-License-Identifier: MIT */
/*
 * streams_cycle N: the cost of the standard streams' secret buffers at each idle
 * cycle. main reads a line of stdin and prints one (glibc's buffers, from main),
 * then N times allocates one secret block (cyc_alloc, tagged with
 * SECRETMEM_SITES=cyc_alloc) and frees it: nothing is live after each free, so the
 * arena gives its memory back, and the next allocation maps a chunk again; with
 * the streams' buffers, each cycle also moves stdin's and stdout's buffers into
 * secret memory and back. Prints microseconds per cycle on stderr. Compare with
 * SECRETMEM_FORK=drop, where the streams keep glibc's buffers:
 *
 *   echo x | LD_PRELOAD=.libs/libsecretmem-preload.so SECRETMEM_SITES=cyc_alloc \
 *       bench/streams_cycle 1000 >/dev/null
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) void *cyc_alloc(size_t n);
void *cyc_alloc(size_t n)
{
	return malloc(n);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	printf("start\n");
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		char *volatile p = cyc_alloc(64);
		p[0] = 1;
		free(p);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	fprintf(stderr, "%.1f us a cycle\n",
		((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n);
	return 0;
}
