/* SPDX-License-Identifier: MIT */
/*
 * crash_prog: the probes of tests/crash.bats and of scripts/soak's "loader" case.
 * Each mode prints one line of counts; the tests read them.
 *
 *   crash_prog fork LIB N        a thread dlopens LIB, calls crashlib_alloc and
 *                                dlcloses it in a loop while the main thread forks N
 *                                children that asprintf and exit; a child that has
 *                                not exited after 2 s is hung (killed, counted)
 *   crash_prog copies TAGGED UNTAGGED THREADS ROUNDS
 *                                threads dlopen either copy, allocate through it,
 *                                check each block (secret exactly for TAGGED), dlclose
 *   crash_prog gconv TAGGED ROUNDS
 *                                iconv_open/iconv_close of several charsets (glibc
 *                                loads and unloads gconv modules internally), then
 *                                TAGGED dlopened, often where a gconv module was
 *   crash_prog threadexit ROUNDS THREADS
 *                                workers take strsignal/strerror buffers and exit
 *   crash_prog interior AT       free(p), then free(p + AT), p a large block
 *   crash_prog runpath OPENER    dlopens OPENER (tests/crash_opener.c), which loads
 *                                its neighbour by bare name through its RUNPATH;
 *                                then tries the same bare name from here
 *   crash_prog newns LIB         dlmopens LIB (tests/crash_lib.c) into a new
 *                                namespace and prints whether its block is secret
 *
 *   crash_prog soak LIB ROUNDS   all of the above at once, for scripts/soak: two
 *                                threads load, call and unload LIB, rounds of
 *                                short-lived workers with strsignal/strerror
 *                                buffers, iconv, and forked children that do the
 *                                same; prints rounds=, hung=, failed=
 *
 * In the fork children, CRASH_EXPECT=secret or =ordinary makes a child whose
 * asprintf block is not that exit with status 4 (counted as failed).
 *
 * Whether a block is secret: the shim's secretmem_impl_is_secret, and for the first
 * block of a kind the /proc/self/maps line that holds it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int (*is_secret_fn)(const void *);

static int is_secret(const void *p)
{
	return is_secret_fn && is_secret_fn(p);
}

/* Whether the mapping holding p is the shim's secret memory. */
static int in_secretmem_mapping(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
			found = strstr(line, "/secretmem") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

typedef char *(*alloc_fn)(size_t);

static void *open_lib(const char *path, alloc_fn *fn)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(2);
	}
	*fn = (alloc_fn)dlsym(h, "crashlib_alloc");
	if (!*fn) {
		fprintf(stderr, "dlsym crashlib_alloc: %s\n", dlerror());
		exit(2);
	}
	return h;
}

/* ---- fork ---- */

static const char *fork_lib;
static atomic_int stop;

static void *loader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		alloc_fn fn;
		void *h = open_lib(fork_lib, &fn);
		free(fn(32));
		dlclose(h);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits up to seconds for child pid: a child still running then is hung (and
 * killed), one that did not exit 0 failed. */
static void reap(pid_t pid, double seconds, int *hung, int *failed)
{
	int st = 0;
	double deadline = now() + seconds;
	pid_t r;
	while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now() < deadline)
		usleep(1000);
	if (r == 0) {
		++*hung;
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		++*failed;
	}
}


static int fork_storm(const char *lib, int n)
{
	fork_lib = lib;
	const char *e = getenv("CRASH_EXPECT");
	int expect = !e ? -1 : strcmp(e, "secret") == 0;
	pthread_t t;
	pthread_create(&t, NULL, loader, NULL);
	int hung = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		usleep(1000 + (unsigned)(rand() % 3000));
		pid_t pid = fork();
		if (pid == 0) {
			char *s;
			if (asprintf(&s, "child %d of %d", i, n) < 0)
				_exit(3);
			if (expect >= 0 && is_secret(s) != expect)
				_exit(4);
			free(s);
			_exit(0);
		}
		if (pid < 0) {
			failed++;
			continue;
		}
		reap(pid, 2.0, &hung, &failed);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("children=%d hung=%d failed=%d\n", n, hung, failed);
	return 0;
}

/* ---- copies ---- */

static const char *copy_path[2]; /* [1] is the tagged one */
static int copy_rounds;
static atomic_long copy_blocks[2], copy_wrong[2];
static atomic_int mapping_checked;

static void *copier(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int r = 0; r < copy_rounds; r++) {
		int tagged = (int)(rand_r(&seed) & 1);
		alloc_fn fn;
		void *h = open_lib(copy_path[tagged], &fn);
		for (int k = 0; k < 8; k++) {
			char *p = fn(24 + 40 * (size_t)k);
			if (!p)
				continue;
			atomic_fetch_add(&copy_blocks[tagged], 1);
			if (is_secret(p) != tagged)
				atomic_fetch_add(&copy_wrong[tagged], 1);
			else if (tagged && !atomic_exchange(&mapping_checked, 1) && !in_secretmem_mapping(p))
				atomic_fetch_add(&copy_wrong[1], 1);
			free(p);
		}
		dlclose(h);
	}
	return NULL;
}

static int copies(const char *tagged, const char *untagged, int nthreads, int rounds)
{
	copy_path[1] = tagged;
	copy_path[0] = untagged;
	copy_rounds = rounds;
	pthread_t t[64];
	if (nthreads > 64)
		nthreads = 64;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, copier, (void *)(uintptr_t)(i * 7919 + 1));
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	printf("tagged=%ld wrong_tagged=%ld untagged=%ld wrong_untagged=%ld\n",
	       atomic_load(&copy_blocks[1]), atomic_load(&copy_wrong[1]),
	       atomic_load(&copy_blocks[0]), atomic_load(&copy_wrong[0]));
	return 0;
}

/* ---- gconv ---- */

#define MAX_SEEN 256
static uintptr_t seen[MAX_SEEN];
static int nseen;

/* Remembers the start of every mapping of a gconv module now. */
static void note_gconv(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo;
		if (!strstr(line, "/gconv/") || sscanf(line, "%lx-", &lo) != 1)
			continue;
		int known = 0;
		for (int i = 0; i < nseen && !known; i++)
			known = seen[i] == lo;
		if (!known && nseen < MAX_SEEN)
			seen[nseen++] = lo;
	}
	fclose(f);
}

static int gconv(const char *tagged, int rounds)
{
	static const char *const sets[] = { "ISO-8859-2", "KOI8-R", "CP1251", "EUC-JP", "BIG5",
					    "ISO-8859-7", "CP1252", "SHIFT_JIS", "GB18030" };
	const size_t nsets = sizeof(sets) / sizeof(sets[0]);
	int reused = 0, wrong = 0, blocks = 0;
	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < nsets; i++) {
			iconv_t cd = iconv_open(sets[(i + (size_t)r) % nsets], "UTF-8");
			if (cd == (iconv_t)-1)
				continue;
			char in[] = "abc", out[16], *ip = in, *op = out;
			size_t il = 3, ol = sizeof(out);
			iconv(cd, &ip, &il, &op, &ol);
			note_gconv();
			/* While the module is loaded, something makes the shim look at the
			 * loaded objects: a call from code it has not seen. */
			char *s = strdup("x");
			free(s);
			iconv_close(cd);
		}
		alloc_fn fn;
		void *h = open_lib(tagged, &fn);
		Dl_info di;
		if (dladdr((void *)fn, &di)) {
			for (int i = 0; i < nseen; i++)
				reused += seen[i] == (uintptr_t)di.dli_fbase;
		}
		char *p = fn(48);
		blocks++;
		if (!is_secret(p) || (blocks == 1 && !in_secretmem_mapping(p)))
			wrong++;
		free(p);
		dlclose(h);
	}
	printf("rounds=%d reused=%d wrong=%d\n", rounds, reused, wrong);
	return 0;
}

/* ---- thread exit ---- */

static atomic_long secret_buffers;

static void *exiter(void *arg)
{
	int k = (int)(uintptr_t)arg;
	/* Per-thread buffers glibc frees in __libc_thread_freeres, after the
	 * thread-specific destructors. */
	const char *a = strsignal(SIGRTMIN + 1 + k % 4);
	const char *b = strerror(1000 + k);
	char *c = malloc(100);
	if (!a || !b || !c)
		return (void *)1;
	atomic_fetch_add(&secret_buffers, is_secret(a) + is_secret(b));
	free(c);
	return NULL;
}

static int threadexit(int rounds, int nthreads)
{
	long bad = 0;
	pthread_t t[64];
	if (nthreads > 64)
		nthreads = 64;
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < nthreads; i++)
			pthread_create(&t[i], NULL, exiter, (void *)(uintptr_t)(r * nthreads + i));
		for (int i = 0; i < nthreads; i++) {
			void *v;
			pthread_join(t[i], &v);
			bad += v != NULL;
		}
	}
	printf("threads=%d bad=%ld secret_buffers=%ld\n", rounds * nthreads, bad,
	       atomic_load(&secret_buffers));
	return 0;
}

/* ---- interior free ---- */

static int interior(int at)
{
	/* A block kept live: with nothing live the arena gives its chunks back, and a
	 * second free could then only be named "inside freed secret memory". */
	char *volatile keep = malloc(64);
	char *volatile p = malloc(1 << 20);
	printf("secret=%d\n", is_secret(p));
	free(p);
	free(p + at);
	free(keep);
	printf("survived\n");
	return 0;
}

/* ---- RUNPATH ---- */

static int runpath(const char *opener)
{
	void *h = dlopen(opener, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", opener, dlerror());
		return 2;
	}
	int (*load)(void) = (int (*)(void))dlsym(h, "opener_load");
	int (*mload)(void) = (int (*)(void))dlsym(h, "opener_mload");
	if (!load || !mload)
		return 2;
	void *here = dlopen("libcrashneighbour.so", RTLD_NOW | RTLD_LOCAL);
	printf("opener_dlopen=%d opener_dlmopen=%d main_dlopen=%d\n", load(), mload(), here != NULL);
	return 0;
}

/* ---- dlmopen into a new namespace ---- */

/* The library loaded into a namespace of its own allocates there: that
 * namespace's C library serves it, not the shim. */
static int newns(const char *lib)
{
	void *h = dlmopen(LM_ID_NEWLM, lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlmopen %s: %s\n", lib, dlerror());
		return 2;
	}
	char *(*alloc)(size_t) = (char *(*)(size_t))dlsym(h, "crashlib_alloc");
	if (!alloc)
		return 2;
	char *p = alloc(64);
	printf("newns_secret=%d\n", p ? is_secret(p) : -1);
	return 0;
}

/* ---- soak ---- */

static int expect_secret(const void *p, int expect)
{
	return expect < 0 || !p || is_secret(p) == expect;
}

static void *soak_loader(void *arg)
{
	long *bad = arg;
	const char *e = getenv("CRASH_EXPECT");
	int expect = !e ? -1 : strcmp(e, "secret") == 0;
	while (!atomic_load(&stop)) {
		alloc_fn fn;
		void *h = open_lib(fork_lib, &fn);
		char *p = fn(40);
		*bad += !expect_secret(p, expect);
		free(p);
		dlclose(h);
	}
	return NULL;
}

static void *soak_worker(void *arg)
{
	int expect = (int)(intptr_t)arg;
	const char *a = strsignal(SIGRTMIN + 2);
	const char *b = strerror(2000);
	char *c;
	if (asprintf(&c, "%s %s", a, b) < 0)
		return (void *)1;
	int ok = expect_secret(c, expect) && expect_secret(a, expect) && expect_secret(b, expect);
	free(c);
	return ok ? NULL : (void *)1;
}

/* One round of workers and an iconv; 0 when all went as expected. */
static int soak_round(int expect)
{
	pthread_t t[4];
	int bad = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, soak_worker, (void *)(intptr_t)expect);
	iconv_t cd = iconv_open("ISO-8859-5", "UTF-8");
	if (cd != (iconv_t)-1)
		iconv_close(cd);
	for (int i = 0; i < 4; i++) {
		void *v;
		pthread_join(t[i], &v);
		bad += v != NULL;
	}
	return bad;
}

static int soak(const char *lib, int rounds)
{
	const char *e = getenv("CRASH_EXPECT");
	int expect = !e ? -1 : strcmp(e, "secret") == 0;
	fork_lib = lib;
	long bad_loads[2] = { 0, 0 };
	pthread_t ld[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&ld[i], NULL, soak_loader, &bad_loads[i]);
	int hung = 0, failed = 0;
	for (int r = 0; r < rounds; r++) {
		failed += soak_round(expect) != 0;
		pid_t pid = fork();
		if (pid == 0)
			_exit(soak_round(expect) ? 4 : 0);
		if (pid < 0) {
			failed++;
			continue;
		}
		reap(pid, 5.0, &hung, &failed);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(ld[i], NULL);
	failed += bad_loads[0] + bad_loads[1] != 0;
	printf("rounds=%d hung=%d failed=%d\n", rounds, hung, failed);
	return 0;
}

int main(int argc, char **argv)
{
	is_secret_fn = (int (*)(const void *))dlsym(RTLD_DEFAULT, "secretmem_impl_is_secret");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "fork") == 0)
		return fork_storm(argv[2], atoi(argv[3]));
	if (argc == 6 && strcmp(argv[1], "copies") == 0)
		return copies(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "gconv") == 0)
		return gconv(argv[2], atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "threadexit") == 0)
		return threadexit(atoi(argv[2]), atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "interior") == 0)
		return interior(atoi(argv[2]));
	if (argc == 3 && strcmp(argv[1], "runpath") == 0)
		return runpath(argv[2]);
	if (argc == 3 && strcmp(argv[1], "newns") == 0)
		return newns(argv[2]);
	if (argc == 4 && strcmp(argv[1], "soak") == 0)
		return soak(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: see the comment at the top of tests/crash_prog.c\n");
	return 2;
}
