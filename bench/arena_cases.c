/* SPDX-License-Identifier: MIT */
/*
 * arena_cases: the cases of issue #15 for the secret arena linked directly (no
 * preload, no routing), against the C library's malloc in the same process, as
 * same-run ratios. The configurations take turns round by round and each figure is
 * the median; times are the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
 * so other load on the machine shifts them less than wall time would.
 *
 *   once     16-256 B, malloc then free at once (ns/pair)
 *   slots    16-256 B, 256 live slots, a random one freed and refilled (ns/step)
 *   touch    1-64 KiB, 256 live slots, the program writes 1 byte (ns/step)
 *   fill     1-64 KiB, 256 live slots, the program fills its block (ns/step)
 *   touch2   touch at 2 threads at once (ns/step/thread, and the scaling: 2 threads'
 *            steps per CPU-second against one thread's)
 *   realloc  16 B grown to 1 MiB in +1000 B steps, then freed, warm (us/chain)
 *   many     1M x 64 B blocks allocated (ns/block, cold: the first touch of every
 *            page is in it), then freed
 *   fork     16 MiB live in 16 KiB blocks: fork() until the parent resumes (ms of
 *            its CPU time), against the live pages times the first-touch cost of a
 *            secret page (CPU time too)
 *
 * One small secret block stays live throughout (see main).
 * With --mlock the arena uses locked anonymous memory (what valgrind can run: it
 * does not know memfd_secret); the code paths are the same. Run as root, or with a
 * memlock limit of a few hundred MiB.
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

#include <malloc.h>

#include "arena.h"
#include "options.h"
#include "pages.h"

struct alloc_ops {
	const char *name;
	void *(*alloc)(size_t);
	void (*release)(void *);
	void *(*resize)(void *, size_t);
};

static const struct alloc_ops ops[] = {
	{ "arena", sm_arena_malloc, sm_arena_free, sm_arena_realloc },
	{ "glibc", malloc, free, realloc },
};
#define NOPS 2

static long scale = 1; /* --quick divides the step counts by 10 */

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define STEPS 65536 /* precomputed random steps, reused cyclically */

struct slots_arg {
	const struct alloc_ops *op;
	size_t min, max;
	int fill;                   /* 0: write 1 byte, 1: fill the block */
	long iters;
	uint64_t seed;
	double ns;
};

/* 256 live slots; each step frees a random one and refills it. */
static void *slots_thread(void *argp)
{
	struct slots_arg *a = argp;
	enum { SLOTS = 256 };
	static __thread uint32_t slot_of[STEPS], size_of[STEPS];
	void *live[SLOTS];
	uint64_t s = a->seed | 1;
	for (size_t i = 0; i < STEPS; i++) {
		slot_of[i] = (uint32_t)(rnd(&s) % SLOTS);
		size_of[i] = (uint32_t)(a->min + rnd(&s) % (a->max - a->min + 1));
	}
	for (size_t i = 0; i < SLOTS; i++)
		live[i] = a->op->alloc(size_of[i]);
	for (int w = 0; w < 2; w++) {
		long n = w ? a->iters : a->iters / 10;
		double t0 = cpu_ns();
		for (long i = 0; i < n; i++) {
			size_t k = (size_t)i & (STEPS - 1);
			uint32_t j = slot_of[k];
			a->op->release(live[j]);
			char *p = a->op->alloc(size_of[k]);
			if (a->fill)
				memset(p, 0x5a, size_of[k]);
			else
				p[0] = 1;
			live[j] = p;
		}
		a->ns = (cpu_ns() - t0) / (double)n;
	}
	for (size_t i = 0; i < SLOTS; i++)
		a->op->release(live[i]);
	return NULL;
}

static double run_slots(const struct alloc_ops *op, size_t min, size_t max, int fill, long iters,
			int nthreads)
{
	pthread_t t[2];
	struct slots_arg a[2];
	double sum = 0;
	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct slots_arg){ op, min, max, fill, iters, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1), 0 };
		pthread_create(&t[i], NULL, slots_thread, &a[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += a[i].ns;
	}
	return sum / nthreads;
}

static double case_once(const struct alloc_ops *op)
{
	static uint32_t size_of[STEPS];
	uint64_t s = 7;
	for (size_t i = 0; i < STEPS; i++)
		size_of[i] = (uint32_t)(16 + rnd(&s) % 241);
	long n = 5000000 / scale;
	double ns = 0;
	for (int w = 0; w < 2; w++) {
		double t0 = cpu_ns();
		for (long i = 0; i < n; i++) {
			char *p = op->alloc(size_of[i & (STEPS - 1)]);
			p[0] = 1;
			__asm__ volatile("" : : "r"(p) : "memory");
			op->release(p);
		}
		ns = (cpu_ns() - t0) / (double)n;
	}
	return ns;
}

static double case_realloc(const struct alloc_ops *op)
{
	long chains = 200 / scale + 2;
	double ns = 0;
	for (int w = 0; w < 2; w++) {
		double t0 = cpu_ns();
		for (long c = 0; c < (w ? chains : 3); c++) {
			char *p = op->alloc(16);
			p[0] = 1;
			for (size_t sz = 16 + 1000; sz <= (1 << 20); sz += 1000) {
				p = op->resize(p, sz);
				p[sz - 1] = 1;
			}
			op->release(p);
		}
		ns = (cpu_ns() - t0) / (double)(w ? chains : 3);
	}
	return ns / 1e3;
}

static double case_many(const struct alloc_ops *op)
{
	size_t n = (size_t)1000000 / (size_t)scale;
	void **b = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	double t0 = cpu_ns();
	for (size_t i = 0; i < n; i++) {
		char *p = op->alloc(64);
		p[0] = 1;
		b[i] = p;
	}
	double ns = (cpu_ns() - t0) / (double)n;
	for (size_t i = 0; i < n; i++)
		op->release(b[i]);
	munmap(b, n * sizeof(void *));
	if (op->release == free)
		malloc_trim(0);
	return ns;
}

/* First touch of a secret page (a fresh file) in ns. */
static double first_touch(void)
{
	const size_t probe = 4 << 20;
	int fd = sm_pages_new_file(SM_BACKEND_SECRET, probe);
	char *m = fd < 0 ? MAP_FAILED : mmap(NULL, probe, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd);
	if (m == MAP_FAILED)
		return 0;
	double t0 = cpu_ns();
	for (size_t off = 0; off < probe; off += 4096)
		m[off] = 1;
	double t = (cpu_ns() - t0) / (double)(probe / 4096);
	munmap(m, probe);
	return t;
}

static double case_fork(const struct alloc_ops *op, double *touch_ms)
{
	size_t bytes = 16 << 20, n = bytes / 16384;
	void **b = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < n; i++) {
		b[i] = op->alloc(16384);
		memset(b[i], 1, 16384);
	}
	/* CPU time, as the first touch is measured: the copy is made by this thread
	 * (the prepare handler), and wall time on a loaded machine is mostly waiting. */
	double t0 = cpu_ns();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	double t = cpu_ns() - t0;
	waitpid(pid, NULL, 0);
	for (size_t i = 0; i < n; i++)
		op->release(b[i]);
	munmap(b, n * sizeof(void *));
	*touch_ms = first_touch() * (double)(bytes / 4096) / 1e6;
	return t / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

enum { MAXR = 31 };

static bool wanted(const char *only, const char *name)
{
	if (!only)
		return true;
	size_t l = strlen(name);
	for (const char *p = only; (p = strstr(p, name)); p += l)
		if ((p == only || p[-1] == ',') && (p[l] == ',' || !p[l]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "rounds", required_argument, NULL, 'r' }, { "quick", no_argument, NULL, 'q' },
		{ "mlock", no_argument, NULL, 'M' }, { "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int rounds = 5, c;
	const char *only = NULL;
	while ((c = getopt_long(argc, argv, "r:qMo:h", lo, NULL)) != -1) {
		switch (c) {
		case 'r': rounds = atoi(optarg); break;
		case 'q': scale = 10; break;
		case 'M': sm_opt.fallback = SM_FALLBACK_MLOCK; break;
		case 'o': only = optarg; break;
		case 'h':
			printf("usage: arena_cases [-r ROUNDS] [--quick] [--mlock] [--only CASE,...]\n"
			       "cases: once slots touch fill touch2 realloc many fork\n");
			return 0;
		default: return 2;
		}
	}
	if (rounds < 1 || rounds > MAXR)
		rounds = 5;
	sm_arena_init();
	/* One block stays live throughout, as in a program that holds a key: with
	 * nothing live the arena gives every chunk back at each last free (for
	 * hibernation), and "once" and "realloc" would measure that cycle instead. */
	void *keep = sm_arena_malloc(32);

	static const char *names[] = { "once", "slots", "touch", "fill", "touch2", "realloc", "many", "fork" };
	static const char *unit[] = { "ns/pair", "ns/step", "ns/step", "ns/step", "ns/step/thread",
				      "us/chain", "ns/block", "ms" };
	enum { NC = 8 };
	double v[NC][NOPS][MAXR], extra[NC][NOPS][MAXR];
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < NOPS; k++) {
			const struct alloc_ops *op = &ops[k];
			long it = 2000000 / scale;
			if (wanted(only, "once"))
				v[0][k][r] = case_once(op);
			if (wanted(only, "slots"))
				v[1][k][r] = run_slots(op, 16, 256, 0, it, 1);
			if (wanted(only, "touch"))
				v[2][k][r] = run_slots(op, 1024, 65536, 0, it / 4, 1);
			if (wanted(only, "fill"))
				v[3][k][r] = run_slots(op, 1024, 65536, 1, it / 10, 1);
			if (wanted(only, "touch2")) {
				double one = run_slots(op, 1024, 65536, 0, it / 4, 1);
				v[4][k][r] = run_slots(op, 1024, 65536, 0, it / 4, 2);
				extra[4][k][r] = 2 * one / v[4][k][r];
			}
			if (wanted(only, "realloc"))
				v[5][k][r] = case_realloc(op);
			if (wanted(only, "many"))
				v[6][k][r] = case_many(op);
			if (wanted(only, "fork"))
				v[7][k][r] = case_fork(op, &extra[7][k][r]);
		}
	}
	printf("%-8s %14s %10s %10s %7s\n", "case", "unit", ops[0].name, ops[1].name, "ratio");
	for (int i = 0; i < NC; i++) {
		if (!wanted(only, names[i]))
			continue;
		double m[NOPS], e[NOPS];
		for (int k = 0; k < NOPS; k++) {
			m[k] = median(v[i][k], rounds);
			e[k] = median(extra[i][k], rounds);
		}
		printf("%-8s %14s %10.1f %10.1f %7.2f", names[i], unit[i], m[0], m[1], m[0] / m[1]);
		if (i == 4)
			printf("   scaling %.2fx (glibc %.2fx)", e[0], e[1]);
		if (i == 7)
			printf("   live pages x first touch %.1f ms: %.2fx", e[0], m[0] / e[0]);
		printf("\n");
	}
	sm_arena_free(keep);
	return 0;
}
