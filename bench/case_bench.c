/* SPDX-License-Identifier: MIT */
/*
 * case_bench: the allocation patterns of issue #15, one per run, against whatever
 * allocator is linked or preloaded (glibc, jemalloc, mimalloc, tcmalloc, or the shim
 * with a rule naming this program), so that bench/run.py can put them side by side.
 *
 *   case_bench CASE [-t THREADS] [-n STEPS] [--seed N]
 *
 * Times are per-thread CPU time (CLOCK_THREAD_CPUTIME_ID: user and kernel time of
 * the thread itself, so another process on the machine does not inflate them) and,
 * for scaling, wall time from the common start line until the last thread is done.
 * Each run also proves where its blocks went: a sample of the blocks live at the end
 * is looked up in /proc/self/maps, and secret=K/N says that K of N lie in a
 * /secretmem mapping (the shim's), so a secret run that fell back to ordinary memory
 * shows, and so does an ordinary run that did not.
 *
 * Nothing here calls the allocator beside the measured pattern while it runs: the
 * tables and the maps buffer are mmap'ed or static; stdio is used only at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum kase {
	C_SMALL_LIVE, C_SMALL_PAIR, C_MEDIUM_TOUCH, C_MEDIUM_FILL, C_CROSS_FREE, C_REALLOC,
	C_MANY_SMALL, C_FRESH_PAGES, C_FIRST_TOUCH, C_NCASES
};

static const struct {
	const char *name, *unit;
	long steps; /* default per thread */
	const char *what;
} cases[C_NCASES] = {
	{ "small-live", "step", 4000000, "16-256 B, 256 live slots: free a random slot, refill it" },
	{ "small-pair", "step", 4000000, "16-256 B, malloc then free at once" },
	{ "medium-touch", "step", 400000, "1-64 KiB, 256 live slots; the program writes 1 byte" },
	{ "medium-fill", "step", 200000, "1-64 KiB, 256 live slots; the program fills the block" },
	{ "cross-free", "block", 4000000, "16-256 B: thread 1 allocates batches, thread 2 frees them" },
	{ "realloc", "chain", 2000, "16 B to 1 MiB in +1000 B steps, then free; warm" },
	{ "many-small", "block", 1048576, "STEPS x 64 B live at once (fresh process), then freed" },
	{ "fresh-pages", "page", 4096, "STEPS pages in 64 KiB blocks (fresh process), 1 byte a page" },
	{ "first-touch", "page", 4096, "the kernel alone: fresh anonymous and memfd_secret pages" },
};

#define TABLE 65536 /* precomputed random steps, reused cyclically */
#define SLOTS 256
#define SAMPLE_MAX 1024
#define PAGE 4096

static enum kase kase;
static int threads = 1;
static long steps = -1;
static uint64_t seed = 1;

static pthread_barrier_t line;
static void *sample[SAMPLE_MAX];
static unsigned nsample;

struct worker {
	int id;
	double cpu_ns, cpu2_ns; /* the measured phase (and a second one: free) */
	struct timespec w0, w1;
	pthread_t tid;
};

static void die(const char *what)
{
	char b[256];
	int n = snprintf(b, sizeof(b), "case_bench: %s failed: %s\n", what, strerror(errno));
	(void)!write(2, b, (size_t)n);
	_exit(1);
}

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static double ts_ns(const struct timespec *t)
{
	return (double)t->tv_sec * 1e9 + (double)t->tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *map_anon(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void keep(void *p)
{
	unsigned i = __atomic_fetch_add(&nsample, 1, __ATOMIC_RELAXED);
	if (i < SAMPLE_MAX)
		sample[i] = p;
}

static void xmalloc_fail(void)
{
	errno = ENOMEM;
	die("allocation");
}

/* The live-slot and pair cases: sizes and slots drawn in advance, so the loop is
 * the allocator's work and the program's own writes. */
static void run_slots(struct worker *w)
{
	uint32_t *slot_of = map_anon(TABLE * 2 * sizeof(uint32_t)), *size_of = slot_of + TABLE;
	void **live = map_anon(SLOTS * sizeof(void *));
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)w->id * 0x1234567ull + 1;
	int medium = kase == C_MEDIUM_TOUCH || kase == C_MEDIUM_FILL;
	size_t lo = medium ? 1024 : 16, hi = medium ? 65536 : 256;
	for (size_t i = 0; i < TABLE; i++) {
		slot_of[i] = (uint32_t)(rnd(&s) % SLOTS);
		size_of[i] = (uint32_t)(lo + rnd(&s) % (hi - lo + 1));
	}
	if (kase != C_SMALL_PAIR)
		for (size_t i = 0; i < SLOTS; i++) {
			if (!(live[i] = malloc(size_of[i])))
				xmalloc_fail();
			memset(live[i], 0x5a, kase == C_MEDIUM_FILL ? size_of[i] : 1);
		}
	for (int pass = 0; pass < 2; pass++) { /* a warm-up of a tenth, then the measure */
		long n = pass ? steps : steps / 10;
		if (pass) {
			pthread_barrier_wait(&line);
			clock_gettime(CLOCK_MONOTONIC, &w->w0);
		}
		double c0 = cpu_now();
		for (long i = 0; i < n; i++) {
			size_t k = (size_t)i & (TABLE - 1);
			char *p;
			switch (kase) {
			case C_SMALL_PAIR:
				if (!(p = malloc(size_of[k])))
					xmalloc_fail();
				*(volatile char *)p = 1;
				free(p);
				break;
			case C_MEDIUM_FILL:
				free(live[slot_of[k]]);
				if (!(p = malloc(size_of[k])))
					xmalloc_fail();
				memset(p, 0x5a, size_of[k]);
				__asm__ volatile("" : : "r"(p) : "memory");
				live[slot_of[k]] = p;
				break;
			default:
				free(live[slot_of[k]]);
				if (!(p = malloc(size_of[k])))
					xmalloc_fail();
				*(volatile char *)p = 1;
				live[slot_of[k]] = p;
			}
		}
		w->cpu_ns = cpu_now() - c0;
		clock_gettime(CLOCK_MONOTONIC, &w->w1);
	}
	if (kase == C_SMALL_PAIR) { /* a block of the pattern, live while maps is read */
		if (!(live[0] = malloc(size_of[0])))
			xmalloc_fail();
		for (size_t i = 1; i < SLOTS; i++)
			live[i] = NULL;
	}
	for (size_t i = 0; i < 16; i++)
		if (live[i])
			keep(live[i]);
	pthread_barrier_wait(&line); /* main reads the maps */
	pthread_barrier_wait(&line);
	for (size_t i = 0; i < SLOTS; i++)
		free(live[i]);
	munmap(slot_of, TABLE * 2 * sizeof(uint32_t));
	munmap(live, SLOTS * sizeof(void *));
}

/* cross-free: thread 0 fills batches, thread 1 frees them. Only the calls are timed
 * (per batch), not the waiting for the other thread. */
#define BATCH 1024
#define RING 8
static struct {
	void **blk[RING];
	int full[RING];
} ring;

static void run_cross(struct worker *w)
{
	long batches = steps / BATCH;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	double t = 0;
	if (w->id == 0)
		for (int r = 0; r < RING; r++)
			ring.blk[r] = map_anon(BATCH * sizeof(void *));
	pthread_barrier_wait(&line);
	clock_gettime(CLOCK_MONOTONIC, &w->w0);
	for (long b = 0; b < batches; b++) {
		int r = (int)(b % RING);
		int want = w->id == 0 ? 0 : 1;
		while (__atomic_load_n(&ring.full[r], __ATOMIC_ACQUIRE) != want)
			sched_yield();
		void **v = ring.blk[r];
		double c0 = cpu_now();
		if (w->id == 0) {
			for (int i = 0; i < BATCH; i++) {
				size_t n = 16 + rnd(&s) % 241;
				if (!(v[i] = malloc(n)))
					xmalloc_fail();
				*(volatile char *)v[i] = 1;
			}
		} else {
			for (int i = 0; i < BATCH; i++)
				free(v[i]);
		}
		t += cpu_now() - c0;
		__atomic_store_n(&ring.full[r], !want, __ATOMIC_RELEASE);
	}
	w->cpu_ns = t;
	clock_gettime(CLOCK_MONOTONIC, &w->w1);
	void *mine[16] = { 0 };
	if (w->id == 0)
		for (int i = 0; i < 16; i++)
			if ((mine[i] = malloc(16 + (size_t)i * 16)))
				keep(mine[i]);
	pthread_barrier_wait(&line);
	pthread_barrier_wait(&line);
	for (int i = 0; i < 16; i++)
		free(mine[i]);
}

static void run_realloc(struct worker *w)
{
	char *last = NULL;
	for (int pass = 0; pass < 2; pass++) { /* one chain to warm up, then the measure */
		long n = pass ? steps : 1;
		if (pass) {
			pthread_barrier_wait(&line);
			clock_gettime(CLOCK_MONOTONIC, &w->w0);
		}
		double c0 = cpu_now();
		for (long c = 0; c < n; c++) {
			char *p = malloc(16);
			if (!p)
				xmalloc_fail();
			p[0] = 1;
			for (size_t sz = 1016; sz <= (1u << 20); sz += 1000) {
				char *q = realloc(p, sz);
				if (!q)
					xmalloc_fail();
				p = q;
				p[sz - 1] = 1;
			}
			if (pass && c == n - 1)
				last = p; /* live while maps is read */
			else
				free(p);
		}
		w->cpu_ns = cpu_now() - c0;
		clock_gettime(CLOCK_MONOTONIC, &w->w1);
	}
	keep(last);
	pthread_barrier_wait(&line);
	pthread_barrier_wait(&line);
	free(last);
}

/* many-small (64 B blocks) and fresh-pages (64 KiB blocks, one byte written per
 * page): the first-touch cost of a fresh process's allocator is part of the figure.
 * cpu_ns is the allocation phase, cpu2_ns the frees. */
static void run_many(struct worker *w)
{
	int pages = kase == C_FRESH_PAGES;
	size_t bs = pages ? 65536 : 64;
	long n = pages ? (steps + 15) / 16 : steps;
	char **b = map_anon((size_t)n * sizeof(char *));
	pthread_barrier_wait(&line);
	clock_gettime(CLOCK_MONOTONIC, &w->w0);
	double c0 = cpu_now();
	for (long i = 0; i < n; i++) {
		if (!(b[i] = malloc(bs)))
			xmalloc_fail();
		for (size_t off = 0; off < bs; off += PAGE)
			b[i][off] = 1;
	}
	w->cpu_ns = cpu_now() - c0;
	clock_gettime(CLOCK_MONOTONIC, &w->w1);
	for (long i = 0; i < 16 && i < n; i++)
		keep(b[(size_t)i * (size_t)n / 16]);
	pthread_barrier_wait(&line);
	pthread_barrier_wait(&line);
	c0 = cpu_now();
	for (long i = 0; i < n; i++)
		free(b[i]);
	w->cpu2_ns = cpu_now() - c0;
	munmap(b, (size_t)n * sizeof(char *));
}

static void *worker(void *arg)
{
	struct worker *w = arg;
	switch (kase) {
	case C_CROSS_FREE: run_cross(w); break;
	case C_REALLOC: run_realloc(w); break;
	case C_MANY_SMALL:
	case C_FRESH_PAGES: run_many(w); break;
	default: run_slots(w);
	}
	return NULL;
}

/* How many of the sampled blocks lie in a /secretmem mapping. /proc/self/maps is
 * read with read(2) into a static buffer: no allocation while the blocks are live. */
static unsigned in_secret(unsigned n)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /proc/self/maps");
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = 0;
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		uintptr_t p = (uintptr_t)sample[i];
		for (char *l = buf; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
			char *e;
			uintptr_t a = (uintptr_t)strtoull(l, &e, 16), z = (uintptr_t)strtoull(e + 1, NULL, 16);
			char *eol = strchr(l, '\n');
			if (p < a || p >= z)
				continue;
			char *name = strstr(l, " /secretmem");
			if (name && (!eol || name < eol))
				k++;
			break;
		}
	}
	return k;
}

/* first-touch: what the kernel charges for a fresh page, with no allocator in the
 * way: write one byte per page, or fault the whole range in with one
 * madvise(MADV_POPULATE_WRITE); then unmap. Anonymous and memfd_secret memory. */
static int populate_errno[2];

static double wall_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts_ns(&t);
}

/* ns per page in per-thread CPU time; *wall_ns: the same in wall time (for figures,
 * such as fork's, that can only be had in wall time). */
static double touch_ns(int secret, int populate, double *unmap_ns, double *wall_ns)
{
	size_t len = (size_t)steps * PAGE;
	int fd = -1;
	char *m;
	if (secret) {
		if ((fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC)) < 0)
			die("memfd_secret");
		if (ftruncate(fd, (off_t)len))
			die("ftruncate");
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (m == MAP_FAILED)
		die("mmap");
	double c0 = cpu_now(), w0 = wall_now(), t = -1;
	*wall_ns = -1;
	if (!populate) {
		for (size_t off = 0; off < len; off += PAGE)
			m[off] = 1;
		t = (cpu_now() - c0) / (double)steps;
		*wall_ns = (wall_now() - w0) / (double)steps;
	} else if (madvise(m, len, MADV_POPULATE_WRITE) == 0) {
		t = (cpu_now() - c0) / (double)steps;
		*wall_ns = (wall_now() - w0) / (double)steps;
	} else {
		populate_errno[secret] = errno; /* memfd_secret: EINVAL, its pages cannot be pinned */
	}
	c0 = cpu_now();
	munmap(m, len);
	if (fd >= 0)
		close(fd);
	*unmap_ns = (cpu_now() - c0) / (double)steps;
	return t;
}

static void first_touch(void)
{
	double u[4], t[4], w[4];
	for (int i = 0; i < 4; i++)
		t[i] = touch_ns(i >> 1, i & 1, &u[i], &w[i]);
	printf("case=first-touch unit=page pages=%ld anon_touch_ns=%.1f anon_populate_ns=%.1f "
	       "secret_touch_ns=%.1f secret_populate_ns=%.1f anon_unmap_ns=%.1f secret_unmap_ns=%.1f "
	       "anon_touch_wall_ns=%.1f secret_touch_wall_ns=%.1f "
	       "anon_populate_error=%s secret_populate_error=%s\n",
	       steps, t[0], t[1], t[2], t[3], u[0], u[2], w[0], w[2],
	       populate_errno[0] ? strerrorname_np(populate_errno[0]) : "none",
	       populate_errno[1] ? strerrorname_np(populate_errno[1]) : "none");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: case_bench CASE [-t THREADS] [-n STEPS] [--seed N]\n"
		   "  -t, --threads N  threads, each running the case on its own blocks (default 1;\n"
		   "                   cross-free always runs 2: one allocates, one frees)\n"
		   "  -n, --steps N    steps per thread (blocks, chains or pages; defaults below)\n"
		   "Cases (unit, default steps):\n");
	for (int i = 0; i < C_NCASES; i++)
		fprintf(f, "  %-13s %s (%s, %ld)\n", cases[i].name, cases[i].what, cases[i].unit,
			cases[i].steps);
	fprintf(f, "Prints one line, key=value: cpu_ns, per unit per thread in per-thread CPU time\n"
		   "(free_ns: the frees of many-small and fresh-pages; malloc_ns/free_ns: the two\n"
		   "threads of cross-free); wall_ns, per unit per thread in wall time; mups, total units\n"
		   "per wall microsecond; secret=K/N, K of N blocks live at the end in /secretmem.\n"
		   "first-touch prints ns per page touched, populated (-1: madvise failed, the error\n"
		   "named) and unmapped, for anonymous and memfd_secret memory.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' }, { "steps", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	char *e;
	while ((c = getopt_long(argc, argv, "t:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			threads = (int)strtol(optarg, &e, 10);
			if (*e || threads < 1 || threads > 64)
				goto bad;
			break;
		case 'n':
			steps = strtol(optarg, &e, 10);
			if (*e || steps < 1)
				goto bad;
			break;
		case 'r':
			seed = strtoull(optarg, &e, 0);
			if (*e)
				goto bad;
			break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc - 1)
		goto bad;
	for (kase = 0; kase < C_NCASES && strcmp(argv[optind], cases[kase].name); kase++)
		;
	if (kase == C_NCASES)
		goto bad;
	if (steps < 0)
		steps = cases[kase].steps;
	if (kase == C_FIRST_TOUCH) {
		first_touch();
		return 0;
	}
	if (kase == C_CROSS_FREE) {
		threads = 2;
		if (steps < BATCH)
			steps = BATCH;
	}

	static struct worker w[64];
	pthread_barrier_init(&line, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		w[i].id = i;
		if ((errno = pthread_create(&w[i].tid, NULL, worker, &w[i])))
			die("pthread_create");
	}
	pthread_barrier_wait(&line); /* the start line */
	pthread_barrier_wait(&line); /* all measured, their blocks live */
	unsigned n = nsample < SAMPLE_MAX ? nsample : SAMPLE_MAX, k = in_secret(n);
	pthread_barrier_wait(&line);
	double cpu = 0, wall = 0, first = 1e300, last = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		double a = ts_ns(&w[i].w0), b = ts_ns(&w[i].w1);
		cpu += w[i].cpu_ns;
		wall += b - a;
		first = a < first ? a : first;
		last = b > last ? b : last;
	}
	long units = kase == C_CROSS_FREE ? steps / BATCH * BATCH : steps;
	char extra[160] = "";
	if (kase == C_CROSS_FREE)
		snprintf(extra, sizeof(extra), " malloc_ns=%.2f free_ns=%.2f", w[0].cpu_ns / (double)units,
			 w[1].cpu_ns / (double)units);
	else if (kase == C_MANY_SMALL || kase == C_FRESH_PAGES)
		snprintf(extra, sizeof(extra), " free_ns=%.2f", w[0].cpu2_ns / (double)units);
	/* cross-free: one stream of blocks shared by two threads, so per block, not per thread */
	int per = kase == C_CROSS_FREE ? 1 : threads;
	printf("case=%s unit=%s threads=%d steps=%ld cpu_ns=%.2f wall_ns=%.2f mups=%.4f%s secret=%u/%u\n",
	       cases[kase].name, cases[kase].unit, threads, units, cpu / per / (double)units,
	       wall / threads / (double)units, (double)units * per / ((last - first) / 1e3), extra, k, n);
	return 0;
bad:
	usage(stderr);
	return 2;
}
