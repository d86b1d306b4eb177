/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the secret arena's blocks above the small classes (linked
 * directly, no preload): the wipe covers exactly what the program may have
 * written (the extent: sizes asked for, and the whole usable size once
 * malloc_usable_size reported it), pages the program never touched stay
 * untouched (mincore), and the consistency checker agrees after each step.
 * Prints TAP; exit status 0 when every test passed.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"

#define PG 4096

static int ntest, nfail;

static void ok(bool cond, const char *name)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
	fflush(stdout);
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

static void consistent(const char *after)
{
	char msg[256], name[160];
	unsigned n = sm_arena_check(msg, sizeof(msg));
	snprintf(name, sizeof(name), "arena consistent after %s", after);
	ok(n == 0, name);
	if (n)
		printf("# %u problems, the first: %s\n", n, msg);
}

/* Which of the npages pages from p are resident (faulted in), as a bit mask. */
static uint64_t resident(const void *p, size_t npages)
{
	unsigned char vec[64];
	uint64_t m = 0;
	if (npages > 64 || mincore((void *)p, npages * PG, vec) != 0)
		return ~(uint64_t)0;
	for (size_t i = 0; i < npages; i++)
		if (vec[i] & 1)
			m |= (uint64_t)1 << i;
	return m;
}

/* The last usable byte, written after malloc_usable_size reported it, is zero once
 * the block is freed, and zero again when the block is handed out anew; so is the
 * last byte asked for. Every size from just above the small classes to 1 MiB. */
static void test_extent_wipe(void)
{
	static const size_t sizes[] = { 8193, 9000, 12345, 16384, 40000, 65535, 65536,
					65537, 100000, 300001, 1 << 20 };
	bool last_usable = true, last_asked = true, again = true;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		unsigned char *p = sm_arena_malloc(n);
		p[n - 1] = 0xA5;
		sm_arena_free(p);
		last_asked = last_asked && p[n - 1] == 0;

		p = sm_arena_malloc(n);
		size_t u = sm_arena_usable_size(p);
		p[u - 1] = 0x5A;
		p[0] = 0x5A;
		sm_arena_free(p);
		last_usable = last_usable && p[u - 1] == 0 && p[0] == 0;

		unsigned char *q = sm_arena_malloc(n);
		again = again && all_zero(q, sm_arena_usable_size(q));
		sm_arena_free(q);
	}
	ok(last_asked, "free wipes the last byte asked for, every size above 8 KiB");
	ok(last_usable, "free wipes the last usable byte once malloc_usable_size reported it");
	ok(again, "a block handed out again is zero over its usable size");
	consistent("the extent wipes");

	/* realloc: what the block grew to is wiped when it moves or is freed. */
	bool moved = true;
	for (size_t n = 10000; n <= 400000; n = n * 3 / 2) {
		unsigned char *p = sm_arena_malloc(n);
		size_t u = sm_arena_usable_size(p);
		p[u - 1] = 0x77;
		unsigned char *blocker = sm_arena_malloc(20000); /* maybe right after p */
		unsigned char *q = sm_arena_realloc(p, u * 3);
		if (q != p)
			moved = moved && p[u - 1] == 0;
		moved = moved && q[u - 1] == 0x77;
		size_t v = sm_arena_usable_size(q);
		q[v - 1] = 0x66;
		sm_arena_free(q);
		moved = moved && q[v - 1] == 0 && q[u - 1] == 0;
		sm_arena_free(blocker);
	}
	ok(moved, "realloc: the old block is wiped when moved, the new one when freed");
	consistent("the realloc wipes");
}

/* A block grown in +1000-byte steps to 400 KB, with another block allocated
 * after each step (it may take the pages right after it): its contents stay, and
 * it moves O(log) times, not at every page it crosses (each move copies it). */
static void test_realloc_growth(void)
{
	enum { STEPS = 392, BLOCKERS = STEPS };
	static void *blocker[BLOCKERS];
	unsigned char *p = sm_arena_malloc(9000), *last = p;
	for (size_t i = 0; i < 9000; i++)
		p[i] = (unsigned char)(i * 13);
	unsigned moves = 0;
	bool kept = true;
	size_t size = 9000;
	for (int k = 0; k < STEPS; k++) {
		size += 1000;
		p = sm_arena_realloc(p, size);
		if (!p)
			break;
		if (p != last)
			moves++;
		last = p;
		p[size - 1] = (unsigned char)((size - 1) * 13);
		blocker[k] = sm_arena_malloc(20000);
	}
	for (size_t i = 0; p && i < 9000; i++)
		kept = kept && p[i] == (unsigned char)(i * 13);
	for (size_t n = 10000; p && n <= size; n += 1000)
		kept = kept && p[n - 1] == (unsigned char)((n - 1) * 13);
	kept = kept && p && sm_arena_usable_size(p) >= size;
	ok(kept, "realloc in +1000-byte steps to 401 KB: contents kept");
	ok(moves <= 10, "and the block moved O(log) times, not at every page");
	if (moves > 10)
		printf("# %u moves\n", moves);
	sm_arena_free(p);
	for (int k = 0; k < BLOCKERS; k++)
		sm_arena_free(blocker[k]);
	consistent("the realloc growth");
}

/* A block carved from pages never touched: free clears only what the program
 * touched, without faulting in the rest (each first touch costs ~20 us and memory
 * the kernel cannot take back). */
static void test_untouched_stay(void)
{
	/* 16 pages: bigger than any touched free run this fresh process has. */
	unsigned char *p = sm_arena_malloc(16 * PG);
	uint64_t before = resident(p, 16);
	p[0] = 1;
	p[5 * PG + 100] = 2;
	sm_arena_free(p);
	uint64_t after = resident(p, 16);
	ok(before == 0 && after == ((1u << 0) | (1u << 5)),
	   "free of a fresh 64 KiB block faults in no page the program did not touch");
	if (before != 0 || after != ((1u << 0) | (1u << 5)))
		printf("# resident before %#llx, after %#llx\n", (unsigned long long)before,
		       (unsigned long long)after);
	ok(p[0] == 0 && p[5 * PG + 100] == 0, "and the pages it touched are wiped");
	consistent("a fresh block's free");
}

/* ---- misuse of a freed block in the thread cache, each in a child ---- */

/* Runs fn in a child with stderr captured; returns the wait status. */
static int run_child(void (*fn)(void), char *err, size_t errlen)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		abort();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 2);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < errlen && (r = read(pfd[0], err + n, errlen - 1 - n)) > 0)
		n += (size_t)r;
	err[n] = '\0';
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	return st;
}

/* What the child expects its message to be (it names the child's addresses):
 * shared memory, written just before the bad call. */
static char *want;
#define WANT 256

static void m_realloc_cached(void)
{
	void *p = sm_arena_malloc(12 * PG);
	sm_arena_free(p);
	snprintf(want, WANT, "libsecretmem-preload: realloc(): invalid pointer %p (secret block "
		 "already freed)\n", p);
	sm_arena_realloc(p, 200);
}

static void m_double_cached(void)
{
	void *p = sm_arena_malloc(30000);
	sm_arena_free(p);
	snprintf(want, WANT, "libsecretmem-preload: free(): double free of secret block %p\n", p);
	sm_arena_free(p);
}

static void m_interior_cached(void)
{
	char *p = sm_arena_malloc(40000);
	sm_arena_free(p);
	snprintf(want, WANT, "libsecretmem-preload: free(): invalid pointer %p (inside freed "
		 "secret memory: an address inside a freed block, or a block freed twice)\n", p + PG);
	sm_arena_free(p + PG);
}

static void test_misuse(void)
{
	static const struct {
		const char *name;
		void (*act)(void);
	} m[] = {
		{ "realloc of a freed 48 KiB block", m_realloc_cached },
		{ "double free of a 30000-byte block", m_double_cached },
		{ "free inside a freed 40000-byte block", m_interior_cached },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		char err[512], name[128];
		want[0] = '\0';
		int st = run_child(m[i].act, err, sizeof(err));
		snprintf(name, sizeof(name), "misuse: %s: SIGABRT and its message", m[i].name);
		bool good = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && want[0] && !strcmp(err, want);
		ok(good, name);
		if (!good)
			printf("# want: %s# got (status %#x): %s", want, st, err);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	sm_arena_init();
	/* One live block keeps the arena from unmapping its chunks when nothing else
	 * is live: the tests read freed blocks. */
	void *pin = sm_arena_malloc(16);
	want = mmap(NULL, WANT, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	test_untouched_stay();
	test_extent_wipe();
	test_realloc_growth();
	test_misuse();
	consistent("the misuse children");
	sm_arena_free(pin);
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
