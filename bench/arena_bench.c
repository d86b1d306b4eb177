/* SPDX-License-Identifier: MIT */
/*
 * Benchmark of the secret arena (linked directly, no preload) against the C
 * library's malloc in the same run.
 *
 *   pairs: ns per malloc+free pair, sizes uniform in [min,max], a fixed number of
 *          live slots per thread (a random slot is freed and refilled each step),
 *          at 1 and at N threads (then total pairs per second as well);
 *   mixed: a random workload (log-uniform sizes 16 B..64 KiB, a live set that grows,
 *          churns and shrinks) reporting pages touched against peak live bytes;
 *   fork:  the cost of fork() with a given amount of live secret memory, against
 *          the first-touch cost of that many pages.
 * Run as root (or with a large memlock limit), or pass --max.
 */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "options.h"
#include "pages.h"

#define STEPS 65536 /* precomputed random steps, reused cyclically */

static struct {
	int threads;
	long iters;
	size_t min, max, slots;
	size_t fork_mib;
	const char *only;
} cfg = { 2, 5000000, 16, 256, 256, 64, NULL };

struct alloc_ops {
	const char *name;
	void *(*alloc)(size_t);
	void (*release)(void *);
};

static const struct alloc_ops ops[] = {
	{ "secret arena", sm_arena_malloc, sm_arena_free },
	{ "libc malloc", malloc, free },
};

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct pair_arg {
	const struct alloc_ops *op;
	uint64_t seed;
	double ns;
};

static void *pairs_thread(void *argp)
{
	struct pair_arg *a = argp;
	uint32_t *slot_of = mmap(NULL, STEPS * 2 * sizeof(uint32_t), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void **live = mmap(NULL, cfg.slots * sizeof(void *), PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *size_of = slot_of + STEPS;
	uint64_t s = a->seed | 1;
	for (size_t i = 0; i < STEPS; i++) {
		slot_of[i] = (uint32_t)(rnd(&s) % cfg.slots);
		size_of[i] = (uint32_t)(cfg.min + rnd(&s) % (cfg.max - cfg.min + 1));
	}
	for (size_t i = 0; i < cfg.slots; i++)
		live[i] = a->op->alloc(size_of[i]);
	/* Warm up, then measure. */
	for (long w = 0; w < 2; w++) {
		double t0 = now_ns();
		long n = w ? cfg.iters : cfg.iters / 10;
		for (long i = 0; i < n; i++) {
			size_t k = (size_t)i & (STEPS - 1);
			uint32_t j = slot_of[k];
			a->op->release(live[j]);
			char *p = a->op->alloc(size_of[k]);
			p[0] = 1;
			live[j] = p;
		}
		a->ns = (now_ns() - t0) / (double)n;
	}
	for (size_t i = 0; i < cfg.slots; i++)
		a->op->release(live[i]);
	munmap(slot_of, STEPS * 2 * sizeof(uint32_t));
	munmap(live, cfg.slots * sizeof(void *));
	return NULL;
}

/* Mean ns per pair over nthreads threads running at once; *mpairs: total rate. */
static double run_pairs(const struct alloc_ops *op, int nthreads, double *mpairs)
{
	pthread_t t[64];
	struct pair_arg a[64];
	double sum = 0, rate = 0;
	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct pair_arg){ op, 0x1234567ull * (uint64_t)(i + 1), 0 };
		pthread_create(&t[i], NULL, pairs_thread, &a[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += a[i].ns;
		rate += 1e3 / a[i].ns;
	}
	*mpairs = rate;
	return sum / nthreads;
}

static void bench_pairs(void)
{
	printf("pairs: malloc+free, sizes %zu..%zu B, %zu live slots per thread, %ld pairs per thread\n",
	       cfg.min, cfg.max, cfg.slots, cfg.iters);
	double one[2], rate1[2], rateN[2];
	for (int k = 0; k < 2; k++) {
		one[k] = run_pairs(&ops[k], 1, &rate1[k]);
		double nsN = run_pairs(&ops[k], cfg.threads, &rateN[k]);
		printf("  %-13s 1 thread: %6.1f ns/pair (%6.1f Mpairs/s)   %d threads: %6.1f ns/pair, "
		       "%6.1f Mpairs/s total (%.2fx one thread)\n", ops[k].name, one[k], rate1[k],
		       cfg.threads, nsN, rateN[k], rateN[k] / rate1[k]);
	}
	printf("  arena / libc at 1 thread: %.2fx\n", one[0] / one[1]);
}

static void bench_mixed(void)
{
	enum { N = 20000 };
	static void *blk[N];
	static size_t len[N];
	uint64_t s = 42, live = 0, peak = 0;
	size_t target = 0;

	for (long step = 0; step < 600000; step++) {
		/* Live set: grows to N, churns, shrinks to a quarter, grows back. */
		long phase = step / 100000;
		target = phase % 2 == 0 ? N : N / 4;
		size_t i = rnd(&s) % N;
		bool want = (rnd(&s) % N) < target;
		if (blk[i] && !want) {
			sm_arena_free(blk[i]);
			blk[i] = NULL;
			live -= len[i];
		} else if (!blk[i] && want) {
			/* about log-uniform in 16 B .. 64 KiB: 2^(4+k) * (1 + f), f in [0,1) */
			uint64_t e = rnd(&s) % 12000;
			len[i] = ((size_t)16 << (e / 1000)) * (1000 + e % 1000) / 1000;
			blk[i] = sm_arena_malloc(len[i]);
			memset(blk[i], 0x5a, len[i]);
			live += len[i];
			if (live > peak)
				peak = live;
		}
	}
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	printf("mixed: peak live %.1f MiB (requested), pages touched %.1f MiB = %.3fx, mapped %.1f MiB "
	       "in %llu chunks\n", (double)peak / 1048576, (double)st.touched_bytes / 1048576,
	       (double)st.touched_bytes / (double)peak, (double)st.mapped_bytes / 1048576,
	       (unsigned long long)st.chunks);
	for (size_t i = 0; i < N; i++)
		if (blk[i])
			sm_arena_free(blk[i]);
}

static void bench_fork(void)
{
	size_t bytes = cfg.fork_mib << 20, n = bytes / 16384;
	void **b = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < n; i++) {
		b[i] = sm_arena_malloc(16384);
		memset(b[i], 1, 16384);
	}
	/* First touch of fresh secret pages, measured on a file of our own (the arena's
	 * pages may have been touched by an earlier benchmark). */
	const size_t probe = 8 << 20;
	int fd = sm_pages_new_file(SM_BACKEND_SECRET, probe);
	char *m = fd < 0 ? MAP_FAILED : mmap(NULL, probe, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		printf("fork: cannot map a probe secret file\n");
		return;
	}
	double t0 = now_ns();
	for (size_t off = 0; off < probe; off += 4096)
		m[off] = 1;
	double touch = (now_ns() - t0) / (double)(probe / 4096);
	munmap(m, probe);
	close(fd);

	double best = 1e18;
	for (int r = 0; r < 5; r++) {
		t0 = now_ns();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		double t = now_ns() - t0; /* the parent resumes once the child's copy exists */
		waitpid(pid, NULL, 0);
		best = t < best ? t : best;
	}
	double pages = (double)(bytes / 4096);
	printf("fork: %zu MiB live: fork() %.1f ms; first touch %.1f us/page x %.0f pages = %.1f ms; "
	       "ratio %.2f\n", cfg.fork_mib, best / 1e6, touch / 1e3, pages, touch * pages / 1e6,
	       best / (touch * pages));
	for (size_t i = 0; i < n; i++)
		sm_arena_free(b[i]);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: arena_bench [options] [pairs|mixed|fork]\n"
		"  -t, --threads N   threads for the parallel run (default 2)\n"
		"  -n, --iters N     malloc+free pairs per thread (default 5000000)\n"
		"  -s, --sizes A-B   size range in bytes (default 16-256)\n"
		"  -l, --slots N     live slots per thread (default 256)\n"
		"  -f, --fork-mib N  live MiB for the fork benchmark (default 64)\n"
		"  -m, --max BYTES   cap the arena (SECRETMEM_MAX); default: RLIMIT_MEMLOCK\n"
		"  -h, --help        this text\n"
		"With no benchmark named, runs all three.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' }, { "iters", required_argument, NULL, 'n' },
		{ "sizes", required_argument, NULL, 's' }, { "slots", required_argument, NULL, 'l' },
		{ "fork-mib", required_argument, NULL, 'f' }, { "max", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "t:n:s:l:f:m:h", lo, NULL)) != -1) {
		switch (c) {
		case 't': cfg.threads = atoi(optarg); break;
		case 'n': cfg.iters = atol(optarg); break;
		case 's':
			if (sscanf(optarg, "%zu-%zu", &cfg.min, &cfg.max) != 2 || cfg.min > cfg.max) {
				usage(stderr);
				return 2;
			}
			break;
		case 'l': cfg.slots = strtoul(optarg, NULL, 10); break;
		case 'f': cfg.fork_mib = strtoul(optarg, NULL, 10); break;
		case 'm': sm_opt.max = strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.threads < 1 || cfg.threads > 64 || cfg.iters < 10 || cfg.slots < 1) {
		usage(stderr);
		return 2;
	}
	cfg.only = optind < argc ? argv[optind] : NULL;
	sm_arena_init();
	if (!cfg.only || !strcmp(cfg.only, "pairs"))
		bench_pairs();
	if (!cfg.only || !strcmp(cfg.only, "mixed"))
		bench_mixed();
	if (!cfg.only || !strcmp(cfg.only, "fork"))
		bench_fork();
	return 0;
}
