/* SPDX-License-Identifier: MIT */
/*
 * Calls every function the shim interposes and checks the exact C, POSIX and glibc
 * contract of each. One deterministic line per check on stdout ("ok ..." or
 * "FAIL ..."), so a test can compare the output with and without the shim; the exit
 * status is 1 if any check failed.
 *
 *   allfuncs             the checks (glibc's contracts, which jemalloc shares except
 *                        where noted)
 *   allfuncs --jemalloc  the checks that hold for any allocator, then proof through
 *                        jemalloc's mallctl that every call reached jemalloc
 *   allfuncs --noalloc   writes "started" with write(2) and exits: a program that
 *                        never allocates
 *
 * ALLFUNCS_DEBUG=1 prints jemalloc's byte counts behind each --jemalloc check.
 *
 * Whether free_sized/free_aligned_sized exist depends on the process (glibc 2.36 has
 * neither, the shim exports both), so that is said on stderr, not stdout.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The checks use p after a realloc that failed (and so left p alone), which GCC
 * cannot tell from a use after free. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* Not declared by glibc 2.36 (C23); reached through dlsym when present. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

static int failures;
static int jemalloc_mode;

/* Keeps the compiler from reasoning about our allocations (eliding a
 * malloc/free pair, folding a calloc overflow). */
static void *escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

static volatile size_t vsize_max = SIZE_MAX;

/* errno as it is now: GCC knows that free leaves errno alone and would fold the
 * checks that it does. */
static __attribute__((noinline)) int errno_now(void)
{
	__asm__ volatile("" : : : "memory");
	return errno;
}

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(cond ? "ok " : "FAIL ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	if (!cond)
		failures++;
}

static int aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 31 + (i >> 8));
}

static int verify(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 31 + (i >> 8)))
			return 0;
	return 1;
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static void test_malloc(void)
{
	enum { N = 16 };
	void *z[N];
	int nonnull = 1, unique = 1;
	for (int i = 0; i < N; i++) {
		z[i] = escape(malloc(0));
		nonnull &= z[i] != NULL;
		for (int j = 0; j < i; j++)
			unique &= z[i] != z[j];
	}
	check(nonnull, "malloc(0) returns non-NULL");
	check(unique, "malloc(0) returns %d distinct pointers", N);
	for (int i = 0; i < N; i++)
		free(z[i]);

	static const size_t sizes[] = { 1, 15, 16, 17, 100, 4096, 100000, 1 << 20, 8 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = escape(malloc(n));
		/* jemalloc aligns blocks under 16 bytes to their size class only. */
		int ok = p && aligned(p, jemalloc_mode && n < 8 ? 1 : jemalloc_mode && n < 16 ? 8 :
					       alignof(max_align_t));
		if (ok) {
			fill(p, n, 7);
			ok = verify(p, n, 7) && malloc_usable_size(p) >= n;
		}
		check(ok, "malloc %zu aligned to max_align_t, writable, usable size >= request", n);
		free(p);
	}

	errno = 0;
	void *p = escape(malloc(vsize_max - 4096));
	check(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX - 4096) fails with ENOMEM");
	free(p);
}

static void test_free(void)
{
	errno = 1234;
	free(NULL);
	check(errno_now() == 1234, "free(NULL) is a no-op that keeps errno");

	static const size_t sizes[] = { 8, 1000, 200000, 4 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = escape(malloc(sizes[i]));
		memset(p, 1, sizes[i]);
		errno = 1234;
		free(p);
		check(errno_now() == 1234, "free of a %zu-byte block keeps errno", sizes[i]);
	}
}

static void test_calloc(void)
{
	static const size_t sizes[] = { 1, 24, 1000, 65536, 1 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		/* Dirty memory of the same size first, so that a calloc reusing it
		 * must really clear it. */
		unsigned char *d = escape(malloc(n));
		memset(d, 0xa5, n);
		free(d);
		unsigned char *p = escape(calloc(n, 1));
		check(p && all_zero(p, n) && malloc_usable_size(p) >= n, "calloc %zu x 1 is zeroed", n);
		free(p);
		p = escape(calloc(1, n));
		check(p && all_zero(p, n), "calloc 1 x %zu is zeroed", n);
		free(p);
	}
	unsigned char *p = escape(calloc(1000, 17));
	check(p && all_zero(p, 17000), "calloc 1000 x 17 is zeroed");
	free(p);

	errno = 0;
	p = escape(calloc(vsize_max / 2, 3));
	check(p == NULL && errno == ENOMEM, "calloc(SIZE_MAX/2, 3) overflows: NULL and ENOMEM");
	errno = 0;
	p = escape(calloc(3, vsize_max / 2));
	check(p == NULL && errno == ENOMEM, "calloc(3, SIZE_MAX/2) overflows: NULL and ENOMEM");
	p = escape(calloc(0, 0));
	check(p != NULL, "calloc(0, 0) returns a unique pointer");
	free(p);
}

static void test_realloc(void)
{
	unsigned char *p = escape(realloc(NULL, 100));
	check(p != NULL, "realloc(NULL, 100) allocates");
	fill(p, 100, 3);
	unsigned char *q = escape(realloc(p, 300000));
	check(q && verify(q, 100, 3), "realloc grow 100 -> 300000 keeps the contents");
	fill(q, 300000, 4);
	p = escape(realloc(q, 5000));
	check(p && verify(p, 5000, 4), "realloc shrink 300000 -> 5000 keeps the contents");
	q = escape(realloc(p, 10));
	check(q && verify(q, 10, 4), "realloc shrink 5000 -> 10 keeps the contents");
	p = escape(realloc(q, 10));
	check(p && verify(p, 10, 4), "realloc to the same size keeps the contents");

	errno = 0;
	q = escape(realloc(p, vsize_max - 4096));
	/* jemalloc leaves errno alone here. */
	check(q == NULL && (jemalloc_mode || errno == ENOMEM) && verify(p, 10, 4),
	      "realloc(p, SIZE_MAX - 4096) fails with ENOMEM, p untouched");

	if (!jemalloc_mode) {
		/* glibc frees p and returns NULL (jemalloc's opt.zero_realloc decides). */
		q = escape(realloc(p, 0));
		check(q == NULL, "realloc(p, 0) frees p and returns NULL");
	} else {
		free(p);
	}
}

static void test_reallocarray(void)
{
	unsigned char *p = escape(reallocarray(NULL, 10, 8));
	check(p != NULL, "reallocarray(NULL, 10, 8) allocates");
	fill(p, 80, 9);
	unsigned char *q = escape(reallocarray(p, 1000, 8));
	check(q && verify(q, 80, 9) && malloc_usable_size(q) >= 8000,
	      "reallocarray grow 10x8 -> 1000x8 keeps the contents");
	p = q;
	fill(p, 8000, 10);

	errno = 0;
	q = escape(reallocarray(p, vsize_max / 2, 3));
	check(q == NULL && errno == ENOMEM, "reallocarray(p, SIZE_MAX/2, 3) overflows: NULL and ENOMEM");
	check(verify(p, 8000, 10), "reallocarray overflow leaves p untouched");
	q = escape(reallocarray(p, 2, 8));
	check(q && verify(q, 16, 10), "reallocarray shrink after a failed call keeps the contents");
	free(q);
}

static void test_posix_memalign(void)
{
	for (size_t a = sizeof(void *); a <= ((size_t)1 << 20); a <<= 1) {
		void *p = (void *)0x1;
		size_t n = a / 2 + 40;
		int r = posix_memalign(&p, a, n);
		int ok = r == 0 && p && aligned(p, a);
		if (ok) {
			fill(p, n, 5);
			ok = verify(p, n, 5) && malloc_usable_size(p) >= n;
		}
		check(ok, "posix_memalign %zu", a);
		if (r == 0)
			free(p);
	}
	static const size_t bad[] = { 0, 3, 24, 4, 1, 12, 100 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *sentinel = (void *)&failures, *p = sentinel;
		errno = 0;
		int r = posix_memalign(&p, bad[i], 64);
		check(r == EINVAL && p == sentinel, "posix_memalign alignment %zu is EINVAL, *p untouched",
		      bad[i]);
		if (r == 0)
			free(p);
	}
	void *sentinel = (void *)&failures, *p = sentinel;
	int r = posix_memalign(&p, 64, vsize_max - 4096);
	check(r == ENOMEM && p == sentinel, "posix_memalign of SIZE_MAX - 4096 is ENOMEM, *p untouched");
	p = NULL;
	r = posix_memalign(&p, 256, 0);
	check(r == 0 && p && aligned(p, 256), "posix_memalign size 0 gives an aligned pointer");
	free(p);
}

static void test_aligned_alloc(void)
{
	for (size_t a = 1; a <= 65536; a <<= 1) {
		size_t n = a * 3;
		unsigned char *p = escape(aligned_alloc(a, n));
		int ok = p && aligned(p, a);
		if (ok) {
			fill(p, n, 11);
			ok = verify(p, n, 11) && malloc_usable_size(p) >= n;
		}
		check(ok, "aligned_alloc %zu", a);
		free(p);
	}
}

static void test_memalign(void)
{
	for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 2) {
		unsigned char *p = escape(memalign(a, 1000));
		int ok = p && aligned(p, a);
		if (ok) {
			fill(p, 1000, 12);
			ok = verify(p, 1000, 12);
		}
		check(ok, "memalign %zu", a);
		free(p);
	}
	if (!jemalloc_mode) {
		/* glibc rounds a non-power-of-two alignment up to the next power of two
		 * (jemalloc refuses it). */
		static const size_t odd[][2] = { { 24, 32 }, { 48, 64 }, { 100, 128 }, { 3000, 4096 },
						 { 65535, 65536 } };
		for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
			unsigned char *p = escape(memalign(odd[i][0], 77));
			check(p && aligned(p, odd[i][1]), "memalign %zu rounds up to %zu", odd[i][0],
			      odd[i][1]);
			free(p);
		}
	}
	errno = 0;
	void *p = escape(memalign(64, vsize_max - 4096));
	/* jemalloc leaves errno alone here. */
	check(p == NULL && (jemalloc_mode || errno == ENOMEM),
	      "memalign of SIZE_MAX - 4096 fails with ENOMEM");
}

static void test_valloc(void)
{
	size_t ps = page();
	static const size_t sizes[] = { 1, 100, 4096, 10000, 1 << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = escape(valloc(sizes[i]));
		int ok = p && aligned(p, ps) && malloc_usable_size(p) >= sizes[i];
		if (ok)
			memset(p, 0x5a, sizes[i]);
		check(ok, "valloc %zu is page aligned", sizes[i]);
		free(p);
	}
}

static void test_pvalloc(void)
{
	size_t ps = page();
	const size_t sizes[] = { 1, 100, ps, ps + 1, 3 * ps - 1 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t want = (sizes[i] + ps - 1) / ps * ps;
		unsigned char *p = escape(pvalloc(sizes[i]));
		int ok = p && aligned(p, ps) && malloc_usable_size(p) >= want;
		if (ok)
			memset(p, 0x5a, want); /* the whole rounded-up size is ours */
		check(ok, "pvalloc %s is page aligned, usable size >= the size rounded to pages",
		      i == 0 ? "1" : i == 1 ? "100" : i == 2 ? "page" : i == 3 ? "page+1" : "3*page-1");
		free(p);
	}
	/* glibc rounds 0 to 0 pages: a minimal block, but still page aligned. */
	unsigned char *p = escape(pvalloc(0));
	check(p && aligned(p, ps), "pvalloc 0 gives a page-aligned pointer");
	free(p);
}

static void test_usable_size(void)
{
	check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is 0");
	for (size_t n = 1; n < (1 << 22); n = n * 3 + 1) {
		unsigned char *p = escape(malloc(n));
		size_t u = malloc_usable_size(p);
		int ok = p && u >= n;
		if (ok)
			memset(p, 0x33, u); /* all of it is usable */
		check(ok, "malloc_usable_size >= %zu", n);
		free(p);
	}
}

static void test_free_sized(void)
{
	void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
	void (*fas)(void *, size_t, size_t) =
		(void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");

	void *p = escape(malloc(100));
	memset(p, 1, 100);
	if (fs) {
		errno = 1234;
		fs(p, 100);
		fs(NULL, 0);
		check(errno_now() == 1234, "free_sized frees and keeps errno");
		fprintf(stderr, "free_sized: present, called\n");
	} else {
		free(p);
		check(1, "free_sized frees and keeps errno");
		fprintf(stderr, "free_sized: absent, not called\n");
	}

	p = escape(aligned_alloc(256, 512));
	memset(p, 1, 512);
	if (fas) {
		errno = 1234;
		fas(p, 256, 512);
		fas(NULL, 64, 0);
		check(errno_now() == 1234, "free_aligned_sized frees and keeps errno");
		fprintf(stderr, "free_aligned_sized: present, called\n");
	} else {
		free(p);
		check(1, "free_aligned_sized frees and keeps errno");
		fprintf(stderr, "free_aligned_sized: absent, not called\n");
	}
}

/* C11 over-aligned types: aligned_alloc with alignof, and arrays of them. */
struct over64 {
	alignas(64) unsigned char b[64];
};
struct over4k {
	alignas(4096) unsigned char b[100];
};

static void test_strdup(void)
{
	static const char text[] = "a string of some length, for strdup and strndup";
	char *a = strdup(text);
	check(a && a != text && strcmp(a, text) == 0, "strdup copies the string");
	char *b = strdup("");
	check(b && b[0] == '\0', "strdup of the empty string");
	char *c = strndup(text, 8);
	check(c && strlen(c) == 8 && memcmp(c, text, 8) == 0, "strndup truncates to n bytes and terminates");
	size_t big = 1000;
	__asm__("" : "+r"(big)); /* a bound the compiler cannot check */
	char *d = strndup(text, big);
	check(d && strcmp(d, text) == 0, "strndup with n beyond the end copies the whole string");
	char unterminated[4] = { 'a', 'b', 'c', 'd' };
	char *e = strndup(unterminated, 4);
	check(e && strcmp(e, "abcd") == 0, "strndup reads no further than n bytes");
	free(a);
	free(b);
	free(c);
	free(d);
	free(e);
}

static void test_overaligned(void)
{
	struct over64 *a = escape(aligned_alloc(alignof(struct over64), 10 * sizeof(struct over64)));
	int ok = a && aligned(a, 64);
	for (int i = 0; ok && i < 10; i++) {
		ok = aligned(&a[i], 64);
		memset(a[i].b, i, sizeof(a[i].b));
	}
	check(ok, "over-aligned type alignas(64) x 10 via aligned_alloc");
	free(a);

	struct over4k *b = escape(aligned_alloc(alignof(struct over4k), 3 * sizeof(struct over4k)));
	ok = b && aligned(b, 4096) && sizeof(struct over4k) == 4096;
	for (int i = 0; ok && i < 3; i++) {
		ok = aligned(&b[i], 4096);
		memset(b[i].b, i, sizeof(b[i].b));
	}
	check(ok, "over-aligned type alignas(4096) x 3 via aligned_alloc");
	free(b);

	max_align_t *m = escape(malloc(sizeof(max_align_t) * 5));
	check(m && aligned(m, alignof(max_align_t)), "malloc result suits max_align_t (%zu)",
	      alignof(max_align_t));
	free(m);
}

/* ---- jemalloc: prove that the calls reached it ---- */

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
static mallctl_fn mallctl_p;

static size_t je_allocated(void)
{
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);
	mallctl_p("epoch", &epoch, &sz, &epoch, sz);
	size_t allocated = 0;
	sz = sizeof(allocated);
	if (mallctl_p("stats.allocated", &allocated, &sz, NULL, 0) != 0)
		return 0;
	return allocated;
}

/* Whether jemalloc owns p ("arenas.lookup" succeeds only for its own pointers;
 * only ever asked about pointers we expect it to own). */
static int je_owns(void *p)
{
	unsigned arena;
	size_t sz = sizeof(arena);
	return mallctl_p("arenas.lookup", &arena, &sz, &p, sizeof(p)) == 0;
}

#define BIG ((size_t)16 << 20)

/* After the call that allocated p (BIG bytes), jemalloc's count of allocated bytes
 * rose by BIG; after free it fell by BIG again. Under glibc (a shim that sent the
 * call past jemalloc) neither moves, and arenas.lookup crashes or fails. */
static void je_check(const char *what, size_t before, void *p)
{
	size_t during = je_allocated();
	int owns = p && je_owns(p);
	if (p)
		memset(p, 0x77, BIG);
	free(p);
	size_t after = je_allocated();
	if (getenv("ALLFUNCS_DEBUG"))
		fprintf(stderr, "%s: p=%p owns=%d before=%zu during=%zu after=%zu\n", what, p, owns,
			before, during, after);
	/* Slack for jemalloc's thread cache moving small blocks in and out of the
	 * count meanwhile; a call that missed jemalloc moves it by about nothing. */
	const long long slack = 1 << 20;
	check(p && owns && (long long)during - (long long)before >= (long long)BIG - slack &&
		      (long long)during - (long long)after >= (long long)BIG - slack,
	      "jemalloc serves %s and its free", what);
}

static void test_jemalloc(void)
{
	mallctl_p = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
	check(mallctl_p != NULL, "jemalloc's mallctl is in the process");
	if (!mallctl_p)
		return;
	const char *version = NULL;
	size_t sz = sizeof(version);
	check(mallctl_p("version", &version, &sz, NULL, 0) == 0 && version,
	      "jemalloc answers mallctl(\"version\")");

	size_t b;
	void *p;
	b = je_allocated();
	je_check("malloc", b, escape(malloc(BIG)));
	b = je_allocated();
	je_check("calloc", b, escape(calloc(BIG / 16, 16)));
	b = je_allocated();
	p = escape(malloc(64));
	je_check("realloc", b, escape(realloc(p, BIG)));
	b = je_allocated();
	je_check("realloc(NULL)", b, escape(realloc(NULL, BIG)));
	b = je_allocated();
	p = escape(malloc(64));
	je_check("reallocarray", b, escape(reallocarray(p, BIG / 8, 8)));
	b = je_allocated();
	p = NULL;
	posix_memalign(&p, 4096, BIG);
	je_check("posix_memalign", b, p);
	b = je_allocated();
	je_check("aligned_alloc", b, escape(aligned_alloc(65536, BIG)));
	b = je_allocated();
	je_check("memalign", b, escape(memalign(65536, BIG)));
	b = je_allocated();
	je_check("valloc", b, escape(valloc(BIG)));
	/* jemalloc has no pvalloc: glibc's would take the block from glibc's heap. */
	b = je_allocated();
	je_check("pvalloc", b, escape(pvalloc(BIG)));

	/* jemalloc's usable size of a 16 MiB + 1 block is its size class (20 MiB);
	 * glibc's would be the request rounded to a page. */
	p = escape(malloc(BIG + 1));
	size_t u = malloc_usable_size(p);
	check(u == BIG + BIG / 4 && je_owns(p), "jemalloc answers malloc_usable_size");
	free(p);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--noalloc") == 0) {
		static const char msg[] = "started\n";
		return write(1, msg, sizeof(msg) - 1) == (ssize_t)(sizeof(msg) - 1) ? 0 : 1;
	}
	jemalloc_mode = argc > 1 && strcmp(argv[1], "--jemalloc") == 0;
	if (argc > 1 && !jemalloc_mode) {
		fprintf(stderr, "usage: %s [--jemalloc | --noalloc]\n", argv[0]);
		return 2;
	}

	test_malloc();
	test_free();
	test_calloc();
	test_realloc();
	test_reallocarray();
	test_posix_memalign();
	test_aligned_alloc();
	test_memalign();
	test_valloc();
	if (!jemalloc_mode) /* jemalloc has none; test_jemalloc checks the shim's */
		test_pvalloc();
	test_usable_size();
	test_free_sized();
	test_strdup();
	test_overaligned();
	if (jemalloc_mode)
		test_jemalloc();

	printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
