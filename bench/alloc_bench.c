/* SPDX-License-Identifier: MIT */
/*
 * alloc_bench: one allocation workload, run against one allocator API, so that
 * the secret arena (through the preload) and the alternatives a user would pick
 * instead are timed by the same loop in the same run.
 *
 *   alloc_bench [-a malloc|openssl|sodium] [-w small|medium|mixed] [-t THREADS]
 *               [-n STEPS] [--scope] [--heap BYTES] [--seed N]
 *
 * APIs:
 *   malloc   malloc/realloc/free: glibc, or whatever is preloaded (jemalloc, or the
 *            shim; with --scope every thread's loop runs inside
 *            secretmem_scope_begin/end, so under the shim every block is secret)
 *   openssl  OPENSSL_secure_malloc/OPENSSL_secure_free on a heap set up with
 *            CRYPTO_secure_malloc_init(--heap, 16) (one global lock, buddy allocator)
 *   sodium   sodium_malloc/sodium_free (guard pages, an mmap per block)
 * Workloads (per thread, a fixed set of live slots; each step frees one random
 * slot and refills it):
 *   small    16-256 B, 256 slots
 *   medium   1 KiB-64 KiB, 256 slots
 *   mixed    log-uniform 16 B-64 KiB, 1024 slots; one step in five is a realloc
 *            of a live block to a new random size instead (openssl and sodium have
 *            no realloc: malloc+copy+free, as their users write it)
 * Output: one line, key=value: ns per step (per thread; cpu_ns_per_step: in the thread's
 * own CPU time, which other load on the machine does not inflate), total Msteps/s, peak live
 * bytes requested (summed over threads), and the secret mappings of the process
 * (/secretmem in /proc/self/smaps: mapped and resident bytes) read at the peak.
 */
#include <getopt.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretmem.h"

enum api { API_MALLOC, API_OPENSSL, API_SODIUM };
enum work { W_SMALL, W_MEDIUM, W_MIXED };

static enum api api = API_MALLOC;
static enum work work = W_SMALL;
static int threads = 1;
static long steps = 5000000;
static int scope;
static size_t heap = (size_t)256 << 20;
static uint64_t seed = 1;

static pthread_barrier_t start_line;
static size_t live_total, peak_total; /* requested bytes, all threads */
static int secret_seen = -1;

static void *a_alloc(size_t n)
{
	switch (api) {
	case API_OPENSSL: return OPENSSL_secure_malloc(n);
	case API_SODIUM: return sodium_malloc(n);
	default: return malloc(n);
	}
}

static void a_free(void *p)
{
	switch (api) {
	case API_OPENSSL: OPENSSL_secure_free(p); break;
	case API_SODIUM: sodium_free(p); break;
	default: free(p);
	}
}

static void *a_realloc(void *p, size_t old, size_t n)
{
	if (api == API_MALLOC)
		return realloc(p, n);
	void *q = a_alloc(n);
	if (q) {
		memcpy(q, p, old < n ? old : n);
		a_free(p);
	}
	return q;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick_size(uint64_t *s)
{
	switch (work) {
	case W_SMALL: return 16 + rnd(s) % 241;
	case W_MEDIUM: return 1024 + rnd(s) % (65536 - 1024 + 1);
	default: {
		/* about log-uniform over 16 B .. 64 KiB: 2^(4 + e/1000) */
		uint64_t e = rnd(s) % 12000;
		return ((size_t)16 << (e / 1000)) * (1000 + e % 1000) / 1000;
	}
	}
}

static void account(long delta)
{
	size_t now = __atomic_add_fetch(&live_total, (size_t)delta, __ATOMIC_RELAXED);
	size_t peak = __atomic_load_n(&peak_total, __ATOMIC_RELAXED);
	while (now > peak && !__atomic_compare_exchange_n(&peak_total, &peak, now, 1,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

struct targ {
	int id;
	double ns, cpu_ns;
};

static void die(const char *what)
{
	fprintf(stderr, "alloc_bench: %s failed\n", what);
	exit(1);
}

static void *run(void *argp)
{
	struct targ *t = argp;
	size_t nslots = work == W_MIXED ? 1024 : 256;
	void **slot = calloc(nslots, sizeof(*slot));
	size_t *len = calloc(nslots, sizeof(*len));
	if (!slot || !len)
		die("calloc");
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)t->id * 0x1234567ull + 1;
	long delta = 0;

	if (scope)
		secretmem_scope_begin();
	for (size_t k = 0; k < nslots; k++) {
		len[k] = pick_size(&s);
		if (!(slot[k] = a_alloc(len[k])))
			die("allocation");
		*(volatile char *)slot[k] = 1;
		delta += (long)len[k];
	}
	account(delta);
	if (t->id == 0)
		secret_seen = secretmem_is_secret(slot[0]);
	pthread_barrier_wait(&start_line);

	struct timespec a, b, ca, cb;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < steps; i++) {
		uint64_t r = rnd(&s);
		size_t k = r % nslots;
		size_t n = pick_size(&s);
		void *p;
		if (work == W_MIXED && (r >> 40) % 5 == 0) {
			p = a_realloc(slot[k], len[k], n);
		} else {
			a_free(slot[k]);
			p = a_alloc(n);
		}
		if (!p)
			die("allocation");
		*(volatile char *)p = 1;
		if (work == W_MIXED) {
			/* the peak is tracked only where sizes vary widely */
			delta = (long)n - (long)len[k];
			if (delta)
				account(delta);
		}
		slot[k] = p;
		len[k] = n;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
	t->ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)steps;
	t->cpu_ns = ((double)(cb.tv_sec - ca.tv_sec) * 1e9 + (double)(cb.tv_nsec - ca.tv_nsec)) /
		    (double)steps;
	pthread_barrier_wait(&start_line); /* everyone's blocks still live: read smaps now */
	pthread_barrier_wait(&start_line);
	for (size_t k = 0; k < nslots; k++)
		a_free(slot[k]);
	if (scope)
		secretmem_scope_end();
	free(slot);
	free(len);
	return NULL;
}

/* Size and Rss of the secret mappings, in bytes. Mapping header lines start with
 * a lower-case hex address, field lines with an upper-case name. */
static void secret_maps(unsigned long long *size, unsigned long long *rss)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	unsigned long long v;
	*size = *rss = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f'))
			in = strstr(line, "/secretmem") != NULL;
		else if (in && sscanf(line, "Size: %llu kB", &v) == 1)
			*size += v << 10;
		else if (in && sscanf(line, "Rss: %llu kB", &v) == 1)
			*rss += v << 10;
	}
	fclose(f);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: alloc_bench [-a malloc|openssl|sodium] [-w small|medium|mixed] [-t THREADS]\n"
		"                   [-n STEPS] [--scope] [--heap BYTES] [--seed N]\n"
		"  -a, --api       allocator API to call (default malloc: whatever is linked or preloaded)\n"
		"  -w, --work      small (16-256 B), medium (1-64 KiB) or mixed (16 B-64 KiB, realloc);\n"
		"                  256 live slots per thread (mixed: 1024)\n"
		"  -t, --threads   threads, each with its own slots (default 1)\n"
		"  -n, --steps     free+allocate steps per thread (default 5000000)\n"
		"      --scope     run each thread inside secretmem_scope_begin/end (secret under the shim)\n"
		"      --heap      OpenSSL secure heap size, a power of two (default 256 MiB)\n"
		"Prints ns per step per thread (wall, and the thread's CPU time), total Msteps/s, peak\n"
		"live bytes requested, and the process's secret mappings (/secretmem in smaps) mapped\n"
		"and resident at the peak.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "api", required_argument, NULL, 'a' }, { "work", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' }, { "steps", required_argument, NULL, 'n' },
		{ "scope", no_argument, NULL, 'S' }, { "heap", required_argument, NULL, 'H' },
		{ "seed", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "a:w:t:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!strcmp(optarg, "malloc")) api = API_MALLOC;
			else if (!strcmp(optarg, "openssl")) api = API_OPENSSL;
			else if (!strcmp(optarg, "sodium")) api = API_SODIUM;
			else { usage(stderr); return 2; }
			break;
		case 'w':
			if (!strcmp(optarg, "small")) work = W_SMALL;
			else if (!strcmp(optarg, "medium")) work = W_MEDIUM;
			else if (!strcmp(optarg, "mixed")) work = W_MIXED;
			else { usage(stderr); return 2; }
			break;
		case 't': threads = atoi(optarg); break;
		case 'n': steps = atol(optarg); break;
		case 'S': scope = 1; break;
		case 'H': heap = strtoull(optarg, NULL, 0); break;
		case 'r': seed = strtoull(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || threads < 1 || threads > 64 || steps < 1) {
		usage(stderr);
		return 2;
	}
	if (api == API_OPENSSL && CRYPTO_secure_malloc_init(heap, 16) != 1)
		die("CRYPTO_secure_malloc_init (run as root, or raise RLIMIT_MEMLOCK)");
	if (api == API_SODIUM && sodium_init() < 0)
		die("sodium_init");

	pthread_t tid[64];
	struct targ ta[64];
	pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		ta[i] = (struct targ){ i, 0, 0 };
		if (pthread_create(&tid[i], NULL, run, &ta[i]))
			die("pthread_create");
	}
	pthread_barrier_wait(&start_line); /* all set up */
	pthread_barrier_wait(&start_line); /* all measured */
	unsigned long long msize, mrss;
	secret_maps(&msize, &mrss);
	pthread_barrier_wait(&start_line);
	double sum = 0, cpu = 0, rate = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		sum += ta[i].ns;
		cpu += ta[i].cpu_ns;
		rate += 1e3 / ta[i].ns;
	}
	static const char *an[] = { "malloc", "openssl", "sodium" };
	static const char *wn[] = { "small", "medium", "mixed" };
	printf("api=%s work=%s threads=%d steps=%ld ns_per_step=%.2f cpu_ns_per_step=%.2f "
	       "msteps_per_s=%.3f peak_live=%zu secret_mapped=%llu secret_rss=%llu secret=%d\n",
	       an[api], wn[work], threads, steps, sum / threads, cpu / threads, rate, peak_total, msize, mrss,
	       api == API_OPENSSL ? 1 : api == API_SODIUM ? 0 : secret_seen);
	return 0;
}
