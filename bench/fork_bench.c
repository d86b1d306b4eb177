/* SPDX-License-Identifier: MIT */
/*
 * fork_bench: what fork() costs a process holding live memory, ordinary or (under
 * the shim, with --scope) secret. Run it without the shim and under the shim with
 * SECRETMEM_FORK=copy or drop, and compare in one run.
 *
 *   fork_bench [-m MIB] [-r REPEATS] [--scope]
 *
 * The live memory is MIB MiB in 64 KiB blocks, all written. Each repeat forks a
 * child that writes one byte to a pipe and exits; reported (median over repeats):
 *   ready   fork() until the child's byte arrives: the child is running user code
 *           (its copy of the secret memory, if any, is made by then)
 *   total   fork() until waitpid() returns: child created, run and torn down
 *   cpu     the forking thread's CPU time (CLOCK_THREAD_CPUTIME_ID) over the same span
 *           as ready: the fork itself and, under the shim in copy mode, the copy of
 *           the secret memory its fork handler makes; other load does not inflate it
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secretmem.h"

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fork_bench [-m MIB] [-r REPEATS] [--scope]\n"
		   "  -m, --mib N      live memory, MiB in 64 KiB blocks (default 16; 0 allowed)\n"
		   "  -r, --repeats N  forks to time (default 20); the median is printed\n"
		   "      --scope      allocate the live memory inside secretmem_scope_begin/end\n"
		   "Prints ms from fork() until the child runs (ready) and until it is reaped (total),\n"
		   "and the forking thread's CPU time until the child runs (cpu).\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mib", required_argument, NULL, 'm' }, { "repeats", required_argument, NULL, 'r' },
		{ "scope", no_argument, NULL, 'S' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long mib = 16, reps = 20;
	int scope = 0, c;
	while ((c = getopt_long(argc, argv, "m:r:h", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mib = atol(optarg); break;
		case 'r': reps = atol(optarg); break;
		case 'S': scope = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || mib < 0 || reps < 1 || reps > 10000) {
		usage(stderr);
		return 2;
	}
	size_t nblk = (size_t)mib * 16;
	void **blk = calloc(nblk + 1, sizeof(*blk));
	if (scope)
		secretmem_scope_begin();
	for (size_t i = 0; i < nblk; i++) {
		if (!(blk[i] = malloc(65536))) {
			fprintf(stderr, "fork_bench: out of memory after %zu blocks\n", i);
			return 1;
		}
		memset(blk[i], 0x5a, 65536);
	}
	if (scope)
		secretmem_scope_end();
	int secret = nblk ? secretmem_is_secret(blk[0]) : 0;

	double *ready = calloc((size_t)reps, sizeof(double)), *total = calloc((size_t)reps, sizeof(double));
	double *cpu = calloc((size_t)reps, sizeof(double));
	for (long r = 0; r < reps; r++) {
		int fd[2];
		char b = 0;
		if (pipe(fd))
			return 1;
		double c0 = cpu_ns(), t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork_bench: fork");
			return 1;
		}
		if (pid == 0) {
			(void)!write(fd[1], "x", 1);
			_exit(0);
		}
		if (read(fd[0], &b, 1) != 1)
			return 1;
		ready[r] = now_ns() - t0;
		cpu[r] = cpu_ns() - c0;
		waitpid(pid, NULL, 0);
		total[r] = now_ns() - t0;
		close(fd[0]);
		close(fd[1]);
	}
	qsort(ready, (size_t)reps, sizeof(double), cmp);
	qsort(total, (size_t)reps, sizeof(double), cmp);
	qsort(cpu, (size_t)reps, sizeof(double), cmp);
	printf("mib=%ld secret=%d repeats=%ld ready_ms=%.3f total_ms=%.3f cpu_ms=%.3f\n", mib, secret, reps,
	       ready[reps / 2] / 1e6, total[reps / 2] / 1e6, cpu[reps / 2] / 1e6);
	for (size_t i = 0; i < nblk; i++)
		free(blk[i]);
	return 0;
}
