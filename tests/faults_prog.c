/* SPDX-License-Identifier: MIT */
/*
 * faults_prog: the subject of faults.bats, which runs it under the preload to check
 * that the shim never crashes, deadlocks or corrupts data in the hard corners:
 * fork() while threads allocate, fork chains, dlopen/dlclose from several threads,
 * allocation in signal handlers, a program that closes every fd, a secure-execution
 * start, and the SECRETMEM_MAX cap reached by several threads at once.
 *
 * Secret blocks come from fp_secret_alloc (the tests name it in SECRETMEM_SITES),
 * ordinary ones from fp_plain_alloc. Every block is filled with a pattern derived
 * from a seed and checked before it is freed; secretmem_is_secret() must agree with
 * the kind asked for. The last line is "NAME ok ..." or "NAME FAIL ...", and the exit
 * status is 0 only if no check failed.
 *
 *   faults_prog fork N THREADS         N forks while THREADS threads allocate
 *   faults_prog chain DEPTH            fork from a child of a child..., threads at each level
 *   faults_prog dlopen THREADS N TAGGED PLAIN
 *                                      dlopen/dlclose of two libraries in a loop
 *   faults_prog signal MAIN HANDLER MS SIGALRM every 100 us for MS ms: MAIN and
 *                                      HANDLER are secret, plain or tcache (plain,
 *                                      one size, always served by glibc's tcache)
 *   faults_prog closefds FIRST         close_range(FIRST, ~0U) then secret memory, fork
 *   faults_prog maxthreads THREADS     the SECRETMEM_MAX cap hit by THREADS threads
 *   faults_prog blocks                 one block per kind of call site (rules tests)
 *   faults_prog secure                 AT_SECURE, whether the shim is active, one site
 *
 * Build with -O2 -g -fno-optimize-sibling-calls -pthread -ldl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secretmem.h"

#define NOINLINE __attribute__((noinline, noclone))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static atomic_int failures;
static const char *test_name = "?";
/* SECRETMEM_LIBS=*: every block is secret, whatever its call site. */
static bool all_secret;

#define FAIL(...)                                                     \
	do {                                                              \
		if (atomic_fetch_add(&failures, 1) < 20) {                      \
			fprintf(stderr, "%s: FAIL at line %d: ", test_name, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

/* ---- the two kinds of call site ---- */

NOINLINE void *fp_secret_alloc(size_t n)
{
	void *p = malloc(n);
	KEEP_FRAME();
	return p;
}

NOINLINE void *fp_plain_alloc(size_t n)
{
	void *p = malloc(n);
	KEEP_FRAME();
	return p;
}

/* A wrapper, and two callers of it (SITES/WRAPPERS contradiction tests). */
NOINLINE void *fp_wrapper(size_t n)
{
	void *p = malloc(n);
	KEEP_FRAME();
	return p;
}

NOINLINE void *fp_caller_tagged(size_t n)
{
	void *p = fp_wrapper(n);
	KEEP_FRAME();
	return p;
}

NOINLINE void *fp_caller_plain(size_t n)
{
	void *p = fp_wrapper(n);
	KEEP_FRAME();
	return p;
}

/* ---- patterns ---- */

static inline uint8_t pat(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 2654435761u + i * 131u + (i >> 8));
}

static void fill(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = pat(seed, i);
}

static bool check(const void *p, size_t n, uint32_t seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != pat(seed, i))
			return false;
	return true;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static size_t rnd_size(uint32_t *s)
{
	uint32_t r = rnd(s);
	/* mostly small, some above SMALL_MAX (8 KiB): large blocks */
	return (r & 7) == 0 ? 8192 + (r >> 8) % 24000 : 1 + (r >> 8) % 600;
}

struct blk {
	void *p;
	size_t n;
	uint32_t seed;
	bool secret;
};

static void *alloc_kind(bool secret, size_t n)
{
	return secret ? fp_secret_alloc(n) : fp_plain_alloc(n);
}

/* Allocates, fills and checks where the block lives; false if NULL. */
static bool blk_new(struct blk *b, bool secret, size_t n, uint32_t seed)
{
	b->p = alloc_kind(secret, n);
	if (!b->p) {
		FAIL("%s allocation of %zu bytes: NULL (%s)", secret ? "secret" : "ordinary", n,
		     strerror(errno));
		return false;
	}
	b->n = n;
	b->seed = seed;
	b->secret = secret;
	if (secretmem_is_secret(b->p) != (int)(secret || all_secret))
		FAIL("block %p of %zu bytes: secret=%d, expected %d", b->p, n,
		     secretmem_is_secret(b->p), secret || all_secret);
	fill(b->p, n, seed);
	return true;
}

static void blk_check(const struct blk *b, const char *when)
{
	if (b->p && !check(b->p, b->n, b->seed))
		FAIL("%s: %s block %p (%zu bytes) lost its content", when,
		     b->secret ? "secret" : "ordinary", b->p, b->n);
}

static void blk_free(struct blk *b, const char *when)
{
	blk_check(b, when);
	free(b->p);
	b->p = NULL;
}

/* ---- worker threads: allocate and free both kinds until told to stop ---- */

static atomic_bool stop;

struct worker {
	pthread_t t;
	uint32_t rng;
	unsigned long ops;
	bool plain_only;    /* ordinary blocks only */
};

#define WSLOTS 32

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct blk slot[WSLOTS] = { 0 };
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint32_t r = rnd(&w->rng);
		struct blk *b = &slot[r % WSLOTS];
		if (b->p) {
			if (r & 0x100) {
				blk_check(b, "worker realloc");
				size_t n = rnd_size(&w->rng);
				void *q = realloc(b->p, n);
				if (!q) {
					FAIL("worker realloc to %zu: NULL", n);
					continue;
				}
				/* realloc keeps a block where it lives */
				if (secretmem_is_secret(q) != (int)(b->secret || all_secret))
					FAIL("realloc moved a block between secret and ordinary memory");
				size_t keep = n < b->n ? n : b->n;
				if (!check(q, keep, b->seed))
					FAIL("realloc lost the content");
				b->p = q;
				b->n = n;
				fill(q, n, b->seed);
			} else {
				blk_free(b, "worker");
			}
		} else {
			bool secret = (r & 0x200) && !w->plain_only;
			blk_new(b, secret, rnd_size(&w->rng), r);
		}
		w->ops++;
	}
	for (int i = 0; i < WSLOTS; i++)
		if (slot[i].p)
			blk_free(&slot[i], "worker exit");
	return NULL;
}

static struct worker *workers_start_kind(int n, uint32_t seed, bool plain_only)
{
	struct worker *w = calloc((size_t)n, sizeof(*w));
	atomic_store(&stop, false);
	for (int i = 0; i < n; i++) {
		w[i].rng = seed * 7919u + (uint32_t)i * 104729u + 1;
		w[i].plain_only = plain_only;
		if (pthread_create(&w[i].t, NULL, worker_main, &w[i]))
			FAIL("pthread_create");
	}
	return w;
}

static struct worker *workers_start(int n, uint32_t seed)
{
	return workers_start_kind(n, seed, false);
}

static unsigned long workers_stop(struct worker *w, int n)
{
	unsigned long ops = 0;
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].t, NULL);
		ops += w[i].ops;
	}
	free(w);
	return ops;
}

/* ---- blocks the main thread holds across fork ---- */

#define HELD 48

static struct blk held[HELD];

static void held_make(uint32_t seed)
{
	uint32_t s = seed | 1;
	for (int i = 0; i < HELD; i++)
		blk_new(&held[i], i % 3 != 0, rnd_size(&s), seed + (uint32_t)i);
}

static uint64_t held_sum(bool secret_too)
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < HELD; i++)
		if (held[i].p && (secret_too || !held[i].secret))
			h = fnv(held[i].p, held[i].n, h);
	return h;
}

static void held_check(const char *when, bool secret_too)
{
	for (int i = 0; i < HELD; i++)
		if (secret_too || !held[i].secret)
			blk_check(&held[i], when);
}

static bool fork_drop(void)
{
	const char *f = getenv("SECRETMEM_FORK");
	return f && strcmp(f, "drop") == 0;
}

/* What a forked child does: its view of the held blocks, its own allocations, and
 * writes that must not reach the parent. Returns the exit status. */
static int child_work(uint32_t seed)
{
	bool drop = fork_drop();
	held_check("child", !drop);
	uint32_t s = seed | 1;
	struct blk mine[16] = { 0 };
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 16; i++)
			blk_new(&mine[i], i & 1, rnd_size(&s), seed + (uint32_t)i);
		for (int i = 0; i < 16; i++)
			blk_free(&mine[i], "child own");
	}
	/* Overwrite what the child may touch: the parent must not see it. */
	for (int i = 0; i < HELD; i++)
		if (!drop || !held[i].secret)
			memset(held[i].p, 0xee, held[i].n);
	/* and free them (in drop mode, freeing a dropped block does nothing) */
	for (int i = 0; i < HELD; i++) {
		free(held[i].p);
		held[i].p = NULL;
	}
	return atomic_load(&failures) ? 1 : 0;
}

static int wait_child(pid_t pid, const char *what)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			FAIL("waitpid: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		FAIL("%s: child %s %d", what, WIFEXITED(st) ? "exited" : "killed by signal",
		     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -1;
	}
	return 0;
}

static int finish(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int finish(const char *fmt, ...)
{
	int f = atomic_load(&failures);
	printf("%s %s", test_name, f ? "FAIL" : "ok");
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" failures=%d\n", f);
	return f ? 1 : 0;
}

/* ---- fork while threads allocate ---- */

static int t_fork(int n, int nthreads)
{
	held_make(7);
	uint64_t sum = held_sum(true);
	struct worker *w = workers_start(nthreads, 3);
	int forks = 0;
	for (int i = 0; i < n && !atomic_load(&failures); i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			FAIL("fork: %s", strerror(errno));
			break;
		}
		if (pid == 0)
			_exit(child_work(1000 + (uint32_t)i));
		/* The parent keeps allocating meanwhile, as its threads do. */
		void *p = fp_secret_alloc(100), *q = fp_plain_alloc(100);
		free(p);
		free(q);
		wait_child(pid, "fork");
		forks++;
	}
	unsigned long ops = workers_stop(w, nthreads);
	held_check("parent after the forks", true);
	if (held_sum(true) != sum)
		FAIL("checksum of the held blocks changed in the parent");
	for (int i = 0; i < HELD; i++)
		blk_free(&held[i], "parent end");
	return finish(" forks=%d worker_ops=%lu", forks, ops);
}

/* ---- fork from a child of a child ---- */

static int chain_level(int level, int depth)
{
	struct worker *w = workers_start(2, (uint32_t)level + 11);
	/* Each generation's own secret block, and a check of its ancestors' blocks. */
	struct blk own;
	blk_new(&own, true, 3000 + (size_t)level * 1000, 500 + (uint32_t)level);
	held_check("chain: the ancestors' blocks", !fork_drop());
	usleep(2000);
	int rc = 0;
	if (level < depth) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			FAIL("fork at level %d: %s", level, strerror(errno));
		} else if (pid == 0) {
			/* Only this thread lives on in the child. */
			held_check("chain: in the child", !fork_drop());
			struct blk copy = own;
			if (!fork_drop())
				blk_check(&copy, "chain: the parent's block in the child");
			int r = chain_level(level + 1, depth);
			if (!fork_drop()) {
				memset(own.p, 0x11, own.n);
				for (int i = 0; i < HELD; i++)
					memset(held[i].p, 0x22, held[i].n);
			}
			_exit(r || atomic_load(&failures) ? 1 : 0);
		} else {
			rc = wait_child(pid, "chain");
		}
	}
	workers_stop(w, 2);
	blk_free(&own, "chain: own block after the child ended");
	/* a child in drop mode cannot touch its ancestors' secret blocks */
	held_check("chain: after the child ended", level == 0 || !fork_drop());
	return rc || atomic_load(&failures) ? 1 : 0;
}

static int t_chain(int depth)
{
	held_make(5);
	int rc = chain_level(0, depth);
	for (int i = 0; i < HELD; i++)
		blk_free(&held[i], "chain end");
	(void)rc;
	return finish(" depth=%d", depth);
}

/* ---- dlopen/dlclose from several threads ---- */

struct dl_arg {
	pthread_t t;
	int iters;
	const char *tagged, *plain;
	unsigned long secret_blocks, plain_blocks;
};

typedef void *(*alloc_fn)(size_t);
typedef int (*ctor_fn)(void);

static void *dl_main(void *arg)
{
	struct dl_arg *a = arg;
	for (int i = 0; i < a->iters && !atomic_load(&failures); i++) {
		void *ht = dlopen(a->tagged, RTLD_NOW | RTLD_LOCAL);
		void *hp = dlopen(a->plain, RTLD_NOW | RTLD_LOCAL);
		if (!ht || !hp) {
			FAIL("dlopen: %s", dlerror());
			return NULL;
		}
		alloc_fn ft = (alloc_fn)dlsym(ht, "fl_alloc"), fp = (alloc_fn)dlsym(hp, "fl_alloc");
		ctor_fn ct = (ctor_fn)dlsym(ht, "fl_ctor_block_secret");
		ctor_fn cp = (ctor_fn)dlsym(hp, "fl_ctor_block_secret");
		if (!ft || !fp || !ct || !cp) {
			FAIL("dlsym: %s", dlerror());
			return NULL;
		}
		size_t n = 16 + (size_t)(i * 37) % 9000;
		void *s = ft(n), *o = fp(n);
		if (!s || !o) {
			FAIL("fl_alloc(%zu): NULL", n);
			return NULL;
		}
		if (!secretmem_is_secret(s))
			FAIL("iteration %d: a block of the tagged library is not secret", i);
		if (secretmem_is_secret(o))
			FAIL("iteration %d: a block of the plain library is secret", i);
		if (ct() != 1)
			FAIL("iteration %d: the tagged library's constructor block is not secret", i);
		if (cp() != 0)
			FAIL("iteration %d: the plain library's constructor block is secret", i);
		a->secret_blocks += secretmem_is_secret(s);
		a->plain_blocks += !secretmem_is_secret(o);
		fill(s, n, (uint32_t)i);
		fill(o, n, (uint32_t)i + 1);
		free(o);
		/* freed after dlclose: free decides by address alone */
		dlclose(ht);
		dlclose(hp);
		if (!check(s, n, (uint32_t)i))
			FAIL("the tagged library's block changed after dlclose");
		free(s);
	}
	return NULL;
}

static int t_dlopen(int nthreads, int iters, const char *tagged, const char *plain)
{
	struct dl_arg a[16];
	if (nthreads > 16)
		nthreads = 16;
	struct worker *w = workers_start_kind(1, 9, true); /* ordinary work meanwhile */
	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct dl_arg){ .iters = iters, .tagged = tagged, .plain = plain };
		pthread_create(&a[i].t, NULL, dl_main, &a[i]);
	}
	unsigned long s = 0, p = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(a[i].t, NULL);
		s += a[i].secret_blocks;
		p += a[i].plain_blocks;
	}
	workers_stop(w, 1);
	return finish(" secret_blocks=%lu plain_blocks=%lu", s, p);
}

/* ---- allocation in a signal handler ---- */

enum kind { K_SECRET, K_PLAIN, K_TCACHE };

static enum kind main_kind, handler_kind;
static volatile sig_atomic_t handler_runs, handler_bad, handler_wrong;

static enum kind parse_kind(const char *s)
{
	if (strcmp(s, "secret") == 0)
		return K_SECRET;
	if (strcmp(s, "plain") == 0)
		return K_PLAIN;
	if (strcmp(s, "tcache") == 0)
		return K_TCACHE;
	fprintf(stderr, "faults_prog: unknown kind %s\n", s);
	exit(2);
}

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	/* A size no allocation of the main loop uses (tcache: another glibc bin). */
	size_t n = handler_kind == K_TCACHE ? 200 : 48 + (size_t)(handler_runs % 7) * 100;
	unsigned char *p = alloc_kind(handler_kind == K_SECRET, n);
	if (!p) {
		handler_bad++;
	} else {
		if (secretmem_is_secret(p) != (handler_kind == K_SECRET || all_secret))
			handler_wrong++;
		for (size_t i = 0; i < n; i++)
			p[i] = (unsigned char)(i + 3);
		for (size_t i = 0; i < n; i++)
			if (p[i] != (unsigned char)(i + 3))
				handler_bad++;
		free(p);
	}
	handler_runs++;
	errno = saved;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int t_signal(const char *mk, const char *hk, int ms)
{
	main_kind = parse_kind(mk);
	handler_kind = parse_kind(hk);
	/* glibc sets up a thread's tcache at its first malloc, under the arena lock: a
	 * handler that interrupted that would deadlock or crash without any shim. Warm
	 * both bins first, so the control measures what the case is about. */
	free(fp_plain_alloc(24));
	free(fp_plain_alloc(200));
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 100 }, { 0, 100 } };
	setitimer(ITIMER_REAL, &it, NULL);
	uint32_t s = 12345;
	unsigned long loops = 0;
	struct blk live[8] = { 0 };
	double end = now() + ms / 1000.0;
	while (now() < end) {
		if (main_kind == K_TCACHE) {
			unsigned char *p = fp_plain_alloc(24);
			p[0] = 1;
			free(p);
		} else {
			struct blk *b = &live[loops % 8];
			if (b->p)
				blk_free(b, "signal main loop");
			size_t n = (size_t)(rnd(&s) % 700) + 1;
			blk_new(b, main_kind == K_SECRET, n, (uint32_t)loops);
		}
		loops++;
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	for (int i = 0; i < 8; i++)
		if (live[i].p)
			blk_free(&live[i], "signal end");
	if (handler_bad)
		FAIL("%d bad blocks in the handler (NULL or corrupted)", (int)handler_bad);
	if (handler_wrong)
		FAIL("%d of %d blocks allocated in the handler were %s memory", (int)handler_wrong,
		     (int)handler_runs,
		     handler_kind == K_SECRET || all_secret ? "ordinary, not secret" : "secret");
	if (handler_runs < 10)
		FAIL("the handler ran only %d times", (int)handler_runs);
	return finish(" main=%s handler=%s loops=%lu handler_runs=%d", mk, hk, loops,
		      (int)handler_runs);
}

/* ---- a program that closes every file descriptor ---- */

static int t_closefds(unsigned first)
{
	if (syscall(SYS_close_range, first, ~0u, 0) != 0) {
		FAIL("close_range: %s", strerror(errno));
		return finish(" first=%u", first);
	}
	/* Enough secret memory for several new chunks (each a new memfd_secret). */
	enum { N = 600 };
	static struct blk b[N];
	uint32_t s = 99;
	for (int i = 0; i < N; i++)
		if (!blk_new(&b[i], true, (i % 5 == 0) ? 40000 : rnd_size(&s), (uint32_t)i))
			break;
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < N; i++)
			blk_check(&b[i], "closefds child");
		for (int i = 0; i < N; i++)
			memset(b[i].p, 0, b[i].n);
		_exit(atomic_load(&failures) ? 1 : 0);
	}
	wait_child(pid, "closefds");
	for (int i = 0; i < N; i++)
		blk_free(&b[i], "closefds parent");
	/* fds 0-2 may be closed: report through the exit status (and stdout if open). */
	return finish(" first=%u", first);
}

/* ---- SECRETMEM_MAX reached by several threads at once ---- */

struct max_arg {
	pthread_t t;
	uint32_t id;
	unsigned long got, refused;
	int rounds_without_any;
};

#define MAXBLK 4096

static pthread_barrier_t max_bar;

static void *max_main(void *arg)
{
	struct max_arg *a = arg;
	static __thread struct blk b[MAXBLK];
	uint32_t s = a->id * 31 + 1;
	for (int round = 0; round < 6; round++) {
		pthread_barrier_wait(&max_bar);
		int n = 0;
		unsigned long got = 0;
		while (n < MAXBLK) {
			size_t sz = rnd_size(&s);
			errno = 0;
			void *p = fp_secret_alloc(sz);
			if (!p) {
				if (errno != ENOMEM)
					FAIL("secret allocation refused with errno %d, not ENOMEM", errno);
				a->refused++;
				/* after a refusal the ordinary heap still works */
				void *q = fp_plain_alloc(sz);
				if (!q || secretmem_is_secret(q))
					FAIL("ordinary allocation after ENOMEM failed or is secret");
				free(q);
				if (a->refused % 4 == 0)
					break;
				continue;
			}
			if (!secretmem_is_secret(p))
				FAIL("an allocation at the cap came from ordinary memory");
			b[n] = (struct blk){ p, sz, s, true };
			fill(p, sz, s);
			n++;
			got++;
		}
		a->got += got;
		if (!got)
			a->rounds_without_any++;
		pthread_barrier_wait(&max_bar);
		for (int i = 0; i < n; i++)
			blk_free(&b[i], "maxthreads");
	}
	return NULL;
}

static int t_maxthreads(int nthreads)
{
	struct max_arg a[16];
	if (nthreads > 16)
		nthreads = 16;
	pthread_barrier_init(&max_bar, NULL, (unsigned)nthreads);
	struct worker *w = workers_start_kind(1, 17, true); /* a thread of ordinary work */
	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct max_arg){ .id = (uint32_t)i };
		pthread_create(&a[i].t, NULL, max_main, &a[i]);
	}
	unsigned long got = 0, refused = 0;
	int starved = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(a[i].t, NULL);
		got += a[i].got;
		refused += a[i].refused;
		starved += a[i].rounds_without_any;
	}
	workers_stop(w, 1);
	if (!refused)
		FAIL("the cap was never reached");
	/* After everything was freed, the cap no longer stops a new secret block. */
	void *p = fp_secret_alloc(100000);
	if (!p || !secretmem_is_secret(p))
		FAIL("after freeing everything, a 100000-byte secret block was refused");
	free(p);
	return finish(" got=%lu refused=%lu starved_rounds=%d", got, refused, starved);
}

/* ---- one block per kind of call site ---- */

static int t_blocks(void)
{
	void *d = fp_secret_alloc(64), *p = fp_plain_alloc(64);
	void *t = fp_caller_tagged(64), *u = fp_caller_plain(64);
	printf("direct=%d plain=%d wrapper_from_tagged=%d wrapper_from_plain=%d\n",
	       secretmem_is_secret(d), secretmem_is_secret(p), secretmem_is_secret(t),
	       secretmem_is_secret(u));
	free(d);
	free(p);
	free(t);
	free(u);
	return 0;
}

static int t_secure(void)
{
	void *p = fp_secret_alloc(64);
	printf("at_secure=%lu active=%d secret=%d\n", getauxval(AT_SECURE), secretmem_active(),
	       secretmem_is_secret(p));
	free(p);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		goto usage;
	test_name = argv[1];
	const char *libs = getenv("SECRETMEM_LIBS");
	all_secret = libs && strcmp(libs, "*") == 0;
	if (strcmp(argv[1], "fork") == 0 && argc == 4)
		return t_fork(atoi(argv[2]), atoi(argv[3]));
	if (strcmp(argv[1], "chain") == 0 && argc == 3)
		return t_chain(atoi(argv[2]));
	if (strcmp(argv[1], "dlopen") == 0 && argc == 6)
		return t_dlopen(atoi(argv[2]), atoi(argv[3]), argv[4], argv[5]);
	if (strcmp(argv[1], "signal") == 0 && argc == 5)
		return t_signal(argv[2], argv[3], atoi(argv[4]));
	if (strcmp(argv[1], "closefds") == 0 && argc == 3)
		return t_closefds((unsigned)atoi(argv[2]));
	if (strcmp(argv[1], "maxthreads") == 0 && argc == 3)
		return t_maxthreads(atoi(argv[2]));
	if (strcmp(argv[1], "blocks") == 0)
		return t_blocks();
	if (strcmp(argv[1], "secure") == 0)
		return t_secure();
usage:
	fprintf(stderr, "usage: see the comment at the top of faults_prog.c\n");
	return 2;
}
