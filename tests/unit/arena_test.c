/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the secret arena (arena.c, pages.c), linked directly, no preload.
 * Prints TAP; exit status 0 when every test passed.
 *
 * What is checked is what the arena promises, observed from outside where
 * possible: blocks lie in a /secretmem mapping (/proc/self/maps), are zero when
 * handed out and zero again after free (peeked, it is our own memory), keep their
 * contents across realloc, honour every alignment up to 64 KiB; the limit gives
 * NULL + ENOMEM; after fork each side sees only its own writes (copy), or the
 * child faults on the parent's blocks (drop); misuse aborts with the exact message.
 * Tests that need other options (limits, modes, the mlock fallback under a seccomp
 * filter that hides memfd_secret) run in children forked before the main process
 * initialises the arena.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "log.h"
#include "pages.h"
#include "sandbox.h"
#include "options.h"

static int ntest, nfail;

static void ok(bool cond, const char *name)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, name);
	fflush(stdout);
}

/* ---- helpers ---- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs fn in a child with stderr captured; returns the wait status. */
static int run_child(void (*fn)(void *), void *arg, char *err, size_t errlen)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		abort();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 2);
		fn(arg);
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

static bool exited(int st, int code)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static bool signalled(int st, int sig)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == sig;
}

/* The /proc/self/maps line holding p contains word. */
static bool mapping_has(const void *p, const char *word)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
			found = strstr(line, word) != NULL;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static bool check(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			return false;
	return true;
}

/* ---- tests in children, before the main initialisation ---- */

static void child_enomem(void *arg)
{
	(void)arg;
	sm_opt.max = 1 << 20;
	sm_arena_init();
	void *last = NULL;
	size_t n = 0;
	for (;;) {
		errno = 0;
		void *p = sm_arena_malloc(4000);
		if (!p) {
			if (errno != ENOMEM)
				_exit(2);
			break;
		}
		if (!sm_arena_owns(p))
			_exit(3); /* ordinary memory: never */
		last = p;
		n++;
	}
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	if (!last || n < 100 || st.mapped_bytes > (1 << 20) || st.enomem != 1 ||
	    st.limit != (1 << 20))
		_exit(4);
	/* Small classes run dry too, and freeing makes room again. */
	while (sm_arena_malloc(100))
		;
	if (errno != ENOMEM)
		_exit(5);
	sm_arena_free(last);
	if (!sm_arena_malloc(4000))
		_exit(6);
	_exit(0);
}

static void child_tiny_limit(void *arg)
{
	(void)arg;
	sm_opt.max = 16 << 10;
	sm_arena_init();
	_exit(0);
}

static void child_uncached(void *arg)
{
	sm_opt.mode = SM_MODE_UNCACHED;
	sm_opt.fallback = (enum sm_fallback)(intptr_t)arg;
	sm_arena_init();
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	void *p = sm_arena_malloc(10);
	_exit(p && strcmp(st.backend, "memfd_secret") == 0 ? 0 : 1);
}

/* A seccomp filter that answers ENOSYS to memfd_secret, as an old kernel would. */
static void hide_memfd_secret(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 447, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(9);
}

static void child_enosys(void *arg)
{
	hide_memfd_secret();
	sm_opt.fallback = (enum sm_fallback)(intptr_t)arg;
	sm_arena_init();
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	char *p = sm_arena_malloc(100);
	if (!p || strcmp(st.backend, "mlock") != 0 || mapping_has(p, "secretmem"))
		_exit(1);
	strcpy(p, "parent");
	/* Copy-on-write gives the child its own copy. */
	pid_t pid = fork();
	if (pid == 0) {
		strcpy(p, "child");
		_exit(0);
	}
	int ws;
	waitpid(pid, &ws, 0);
	_exit(exited(ws, 0) && strcmp(p, "parent") == 0 ? 0 : 2);
}

static void grandchild_touch(void *p)
{
	signal(SIGSEGV, SIG_DFL); /* ASan's handler would turn the fault into exit(1) */
	*(volatile char *)p = 1;
	_exit(0);
}

static void grandchild_free(void *p)
{
	sm_arena_free(p); /* the parent's block: silently nothing */
	char *q = sm_arena_malloc(64);
	if (!q || (uintptr_t)q <= (uintptr_t)p || !all_zero(q, 64) || !mapping_has(q, "secretmem"))
		_exit(1);
	strcpy(q, "fresh");
	sm_arena_free(q);
	_exit(0);
}

static void grandchild_realloc(void *p)
{
	sm_arena_realloc(p, 100);
	_exit(0);
}

static void child_drop(void *arg)
{
	(void)arg;
	sm_opt.fork = SM_FORK_DROP;
	sm_arena_init();
	char *p = sm_arena_malloc(64), *big = sm_arena_malloc(100000);
	strcpy(p, "secret");
	strcpy(big, "big secret");
	char err[512];
	if (!signalled(run_child(grandchild_touch, p, err, sizeof(err)), SIGSEGV) ||
	    !signalled(run_child(grandchild_touch, big, err, sizeof(err)), SIGSEGV))
		_exit(1);
	if (!exited(run_child(grandchild_free, p, err, sizeof(err)), 0) ||
	    !exited(run_child(grandchild_free, big, err, sizeof(err)), 0))
		_exit(2);
	int st = run_child(grandchild_realloc, p, err, sizeof(err));
	if (!signalled(st, SIGABRT) || !strstr(err, "dropped at fork by SECRETMEM_FORK=drop"))
		_exit(3);
	/* The parent's blocks are intact. */
	_exit(strcmp(p, "secret") == 0 && strcmp(big, "big secret") == 0 ? 0 : 4);
}

/* Secret mappings in /proc/self/maps. */
static unsigned secret_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, " /secretmem (deleted)") != NULL;
	if (f)
		fclose(f);
	return n;
}

static bool arena_ok(void)
{
	char msg[256];
	if (sm_arena_check(msg, sizeof(msg))) {
		fprintf(stderr, "inconsistent: %s\n", msg);
		return false;
	}
	return true;
}

/* SECRETMEM_MAX=1M: two 300 KiB blocks fit (chunks sized to what is left), and
 * after they are freed, one of 480 KiB. */
static void child_max_1m(void *arg)
{
	(void)arg;
	sm_opt.max = 1 << 20;
	sm_arena_init();
	void *pin = sm_arena_malloc(16);
	void *a = sm_arena_malloc(300 << 10), *b = sm_arena_malloc(300 << 10);
	if (!pin || !a || !b)
		_exit(!a ? 1 : 2);
	sm_arena_free(a);
	sm_arena_free(b);
	void *c = sm_arena_malloc(480 << 10);
	_exit(!c ? 3 : !arena_ok() ? 4 : 0);
}

/* SECRETMEM_MAX=8M: 5 MiB allocated and freed, then 6 MiB fits, with a small block
 * live throughout (so the chunk goes back under pressure, not as idle). */
static void child_max_8m(void *arg)
{
	(void)arg;
	sm_opt.max = 8 << 20;
	sm_arena_init();
	void *pin = sm_arena_malloc(32), *a = sm_arena_malloc(5 << 20);
	if (!pin || !a)
		_exit(1);
	memset(a, 1, 5 << 20);
	sm_arena_free(a);
	void *b = sm_arena_malloc(6 << 20);
	if (!b)
		_exit(2);
	sm_arena_free(b);
	/* and small blocks fill close to all of it whatever came before */
	size_t n = 0;
	while (sm_arena_malloc(4000))
		n++;
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	fprintf(stderr, "filled %zu of %zu bytes\n", n * 4096, (size_t)st.limit);
	_exit(n * 4096 < st.limit * 9 / 10 ? 3 : !arena_ok() ? 4 : 0);
}

/* Blocks of blk bytes into b until the arena has no more or max are taken, block
 * i filled with i + 1; how many. */
static size_t fill_blocks(unsigned char **b, size_t max, size_t blk)
{
	size_t n = 0;
	while (n < max && (b[n] = sm_arena_malloc(blk)))
		memset(b[n], (int)(n + 1), blk), n++;
	return n;
}

/* SECRETMEM_MAX=1M filled with 16 KiB blocks, every other one freed: the free
 * pages lie in runs of 16 KiB between live blocks, and the budget is spent. A
 * block of 160 KiB fits all the same (compaction maps free runs side by side): it
 * is zero, secret to its last page, and the live blocks keep their contents. A
 * fork child gets its own copy of it; when every block is freed no secret mapping
 * is left, pieces and all. */
static void child_compact(void *arg)
{
	(void)arg;
	enum { BLK = 16 << 10, MAXN = 128, BIG = 160 << 10 };
	sm_opt.max = 1 << 20;
	sm_arena_init();
	void *pin = sm_arena_malloc(16);
	unsigned char *b[MAXN];
	size_t n = fill_blocks(b, MAXN, BLK);
	if (!pin || n < 32 || n == MAXN)
		_exit(1);
	for (size_t i = 0; i < n; i += 2)
		sm_arena_free(b[i]);
	unsigned char *big = sm_arena_malloc(BIG);
	if (!big)
		_exit(2);
	if (!all_zero(big, BIG))
		_exit(3);
	for (size_t off = 0; off < BIG; off += 4096)
		if (!mapping_has(big + off, "secretmem"))
			_exit(4);
	memset(big, 0xb5, BIG);
	for (size_t i = 1; i < n; i += 2)
		for (size_t k = 0; k < BLK; k++)
			if (b[i][k] != (unsigned char)(i + 1))
				_exit(5);
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	fprintf(stderr, "%zu blocks of 16 KiB, half freed, then 160 KiB: %u secret mappings, "
		"%llu bytes mapped of %llu\n", n, secret_mappings(),
		(unsigned long long)st.mapped_bytes, (unsigned long long)st.limit);
	if (st.mapped_bytes > st.limit || !arena_ok())
		_exit(6);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		bool bad = big[0] != 0xb5 || big[BIG - 1] != 0xb5 || b[1][BLK - 1] != 2;
		memset(big, 0x11, BIG);
		_exit(bad || !arena_ok());
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid || !exited(ws, 0))
		_exit(7);
	if (big[BIG - 1] != 0xb5) /* the child's writes stay in the child */
		_exit(8);
	/* Freed, it is a run again: the same request fits, zero. */
	sm_arena_free(big);
	big = sm_arena_malloc(BIG);
	if (!big || !all_zero(big, BIG))
		_exit(9);
	big[BIG - 1] = 1; /* the last usable byte: wiped at free like the rest */
	sm_arena_free(big);
	for (size_t i = 1; i < n; i += 2)
		sm_arena_free(b[i]);
	if (!arena_ok())
		_exit(10);
	sm_arena_free(pin);
	unsigned left = secret_mappings();
	fprintf(stderr, "%u secret mappings once every block is freed\n", left);
	_exit(left ? 11 : 0);
}

/* Drops CAP_IPC_LOCK from the effective set under an RLIMIT_MEMLOCK of lim bytes:
 * the kernel enforces the limit from then on. false if it could not. */
static bool limit_memlock(size_t lim)
{
	struct rlimit rl = { lim, lim };
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || syscall(SYS_capget, &hdr, data) != 0)
		return false;
	data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &hdr, data) == 0;
}

/* Where one /secretmem mapping ends and another begins right there (chunks side by
 * side), above lo; 0 if nowhere. */
static uintptr_t secret_border(uintptr_t lo)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t prev_end = 0, found = 0;
	while (!found && f && fgets(line, sizeof(line), f)) {
		unsigned long a, e;
		if (sscanf(line, "%lx-%lx", &a, &e) != 2 || !strstr(line, " /secretmem (deleted)")) {
			prev_end = 0;
			continue;
		}
		if (a == prev_end && a > lo)
			found = a;
		prev_end = e;
	}
	if (f)
		fclose(f);
	return found;
}

/* A 1 MiB RLIMIT_MEMLOCK enforced, fork drop (the budget keeps one page of it
 * back for compaction's second mapping of a piece), and the program has locked
 * that page itself: every move is refused (EAGAIN). The largest free run lies
 * across the border of two chunks side by side, so compaction cuts it there
 * before its move fails. The 160 KiB block is NULL, and the run is whole again
 * (sm_arena_check: no free runs left unmerged). Unlocked, the page is room
 * enough: the block fits. */
static void child_compact_no_room(void *arg)
{
	(void)arg;
	enum { BLK = 12 << 10, MAXN = 128, BIG = 160 << 10 };
	static char own[1 << 16] __attribute__((aligned(4096)));
	sm_opt.fork = SM_FORK_DROP;
	sm_arena_init();
	/* The system call itself: ASan's mlock does nothing. */
	if (!limit_memlock(1 << 20) || syscall(SYS_mlock, own, 4096) != 0)
		_exit(1);
	void *pin = sm_arena_malloc(16);
	unsigned char *b[MAXN];
	size_t n = fill_blocks(b, MAXN, BLK);
	if (!pin || n < 32 || n == MAXN)
		_exit(2);
	/* The block across a border and the one after it make a 24 KiB run; every
	 * other block two or more away from them, runs of 12 KiB. */
	size_t at = n;
	for (uintptr_t border = secret_border(0); border && at == n; border = secret_border(border))
		for (size_t i = 0; i + 1 < n; i++)
			if ((uintptr_t)b[i] < border && (uintptr_t)b[i] + BLK > border &&
			    b[i + 1] == b[i] + BLK)
				at = i;
	if (at == n)
		_exit(7);
	for (size_t i = 0; i < n; i++) {
		size_t d = i > at ? i - at : at - i;
		if (i == at || i == at + 1 || (d >= 3 && d % 2 == 1)) {
			sm_arena_free(b[i]);
			b[i] = NULL;
		}
	}
	if (sm_arena_malloc(BIG))
		_exit(3); /* there was room after all: the test shows nothing */
	if (!arena_ok())
		_exit(4);
	syscall(SYS_munlock, own, 4096);
	unsigned char *big = sm_arena_malloc(BIG);
	fprintf(stderr, "%zu blocks, a run across a chunk border; 160 KiB with the room page "
		"locked: NULL; unlocked: %s\n", n, big ? "fits" : "NULL");
	_exit(!big ? 5 : !arena_ok() ? 6 : 0);
}

/* Rounds of blocks of 16 B to 32 KiB filling a 1 MiB limit, half freed at random
 * after each, until compaction has made at least 48 chunks; then fork, with 24
 * files allowed open: the child gets its copy (one secret file for every chunk),
 * and sees every live block's contents. */
static void child_fork_chunks(void *arg)
{
	(void)arg;
	enum { MAXN = 4096 };
	static unsigned char *b[MAXN];
	static size_t len[MAXN];
	sm_opt.max = 1 << 20;
	sm_arena_init();
	uint64_t x = 88172645463325252ull;
	size_t n = 0;
	struct sm_arena_stats st = { 0 };
	for (int r = 0; r < 400 && st.chunks < 48; r++) {
		for (;;) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t want = (size_t)16 << (x % 12);
			want += (x >> 8) % want;
			unsigned char *p = n < MAXN ? sm_arena_malloc(want) : NULL;
			if (!p)
				break;
			memset(p, (int)(n * 7 + 1), want);
			b[n] = p;
			len[n++] = want;
		}
		for (size_t i = 0; i < n;) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (x & 1) {
				sm_arena_free(b[i]);
				b[i] = b[--n];
				len[i] = len[n];
			} else {
				i++;
			}
		}
		sm_arena_get_stats(&st);
	}
	fprintf(stderr, "%llu chunks, %zu blocks live\n", (unsigned long long)st.chunks, n);
	if (st.chunks < 48 || !arena_ok())
		_exit(1);
	struct rlimit nofile = { 24, 24 };
	if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
		_exit(2);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		/* The block's first and last bytes: its pattern, then n * 7 + 1 of
		 * its index when it was made, kept apart: compare with a live peer. */
		for (size_t i = 0; i < n; i++)
			if (b[i][0] != b[i][len[i] - 1])
				_exit(3);
		_exit(arena_ok() ? 0 : 4);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid)
		_exit(5);
	_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 6);
}

/* The byte at k of block i of the fork-copy tests. */
static unsigned char fork_byte(size_t i, size_t k)
{
	return (unsigned char)(i * 31 + k * 7 + 1);
}

/* Forks; the child checks every byte of the n blocks b (of len[i] bytes, filled
 * with fork_byte) and the arena. Exits 0 if all were there, else 13-16. */
static _Noreturn void fork_reads_every_byte(unsigned char *const *b, const size_t *len, size_t n)
{
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < len[i]; k++)
				if (b[i][k] != fork_byte(i, k))
					_exit(13);
		_exit(arena_ok() ? 0 : 14);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid)
		_exit(15);
	_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 16);
}

/* A fork copy through windows of arg bytes (the page size, the 64 KiB of a
 * memlock limit, the largest): blocks of 16 B to 256 KiB, about 5 MiB, some freed,
 * each filled with bytes of its own up to its last; the child finds every byte of
 * every live block. */
static void child_fork_window(void *arg)
{
	enum { MAXN = 512 };
	static unsigned char *b[MAXN];
	static size_t len[MAXN];
	sm_arena_init();
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t n = 0, total = 0;
	while (n < MAXN && total < (5u << 20)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t want = ((size_t)16 << (x % 15)) + (x >> 20) % 4096;
		unsigned char *p = sm_arena_malloc(want);
		if (!p)
			_exit(1);
		for (size_t k = 0; k < want; k++)
			p[k] = fork_byte(n, k);
		b[n] = p;
		len[n++] = want;
		total += want;
		if ((x >> 40) % 4 == 0) { /* a hole */
			sm_arena_free(b[--n]);
			total -= want;
		}
	}
	size_t w = sm_pages_copy_window((size_t)(uintptr_t)arg);
	fprintf(stderr, "%zu blocks, %zu bytes, window %zu\n", n, total, w);
	if (w != (size_t)(uintptr_t)arg)
		_exit(2);
	fork_reads_every_byte(b, len, n);
}

/* The window is 1 MiB (the limit was read when nothing limited memlock), and
 * then the kernel enforces a limit 256 KiB above what is mapped, which the
 * arena cannot read again (as under a seccomp filter): the window's mapping fails
 * with EAGAIN, and the copy goes on through smaller ones; the child reads every
 * byte. */
static void child_fork_window_short(void *arg)
{
	(void)arg;
	enum { MAXN = 64 };
	static unsigned char *b[MAXN];
	static size_t len[MAXN];
	sm_arena_init();
	size_t n = 0;
	for (; n < 24; n++) {
		len[n] = ((size_t)48 << 10) + n * 1000;
		if (!(b[n] = sm_arena_malloc(len[n])))
			_exit(1);
		for (size_t k = 0; k < len[n]; k++)
			b[n][k] = fork_byte(n, k);
	}
	struct sm_arena_stats st = { 0 };
	sm_arena_get_stats(&st);
	if (sm_pages_copy_window(SM_PAGES_COPY_WINDOW_MAX) != SM_PAGES_COPY_WINDOW_MAX)
		_exit(2);
	if (!limit_memlock((size_t)st.mapped_bytes + (256u << 10)))
		_exit(3);
	sm_sandboxed = true; /* the last reading of the limit stands */
	fprintf(stderr, "mapped %llu, limit %llu\n", (unsigned long long)st.mapped_bytes,
		(unsigned long long)st.mapped_bytes + (256u << 10));
	fork_reads_every_byte(b, len, n);
}

/* A fork whose child forks again before it allocates anything (a daemon's double
 * fork): the grandchild has its own copy too (the copy's file record is made
 * before a fork, never in its handlers). */
static void child_double_fork(void *arg)
{
	(void)arg;
	sm_arena_init();
	char *p = sm_arena_malloc(64), *big = sm_arena_malloc(200000);
	if (!p || !big)
		_exit(1);
	strcpy(p, "secret");
	strcpy(big + 150000, "big secret");
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		pid_t g = fork();
		if (g == 0)
			_exit(strcmp(p, "secret") || strcmp(big + 150000, "big secret") ||
			      !mapping_has(big, "secretmem") || !arena_ok() ? 3 : 0);
		int gs;
		if (g < 0 || waitpid(g, &gs, 0) != g)
			_exit(4);
		_exit(WIFEXITED(gs) ? WEXITSTATUS(gs) : 5);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid)
		_exit(6);
	_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 7);
}

/* A fork child's counts of allocations and frees start from what is its own: with
 * SECRETMEM_FORK=drop none of the parent's blocks (its own block freed, nothing is
 * live), with copy every thread's blocks (it frees the one another thread of the
 * parent allocated, and its own, and nothing is live). Either way no secret
 * mapping is left. (Small slots cached by another thread are lost to the child
 * and keep their chunk: design.md.) */
static int fc_go[2], fc_done[2];
static void *fc_thread(void *arg)
{
	/* A large block: a small one would leave slots in the thread's cache,
	 * which the child cannot take back (they keep their slab's chunk). */
	*(void **)arg = sm_arena_malloc(16 << 10);
	char c = 'x';
	if (write(fc_done[1], &c, 1) != 1 || read(fc_go[0], &c, 1) != 1)
		abort();
	return NULL;
}

static void child_fork_counts(void *arg)
{
	sm_opt.fork = (enum sm_fork)(intptr_t)arg;
	sm_arena_init();
	void *x = NULL, *p = sm_arena_malloc(100), *q = sm_arena_malloc(200);
	pthread_t t;
	char c = 'x';
	if (!p || !q || pipe(fc_go) || pipe(fc_done) || pthread_create(&t, NULL, fc_thread, &x) ||
	    read(fc_done[0], &c, 1) != 1 || !x)
		_exit(1);
	sm_arena_free(q);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		if (sm_opt.fork == SM_FORK_DROP) {
			void *r = sm_arena_malloc(64);
			if (!r)
				_exit(2);
			sm_arena_free(r);
		} else {
			sm_arena_free(x);
			sm_arena_free(p);
		}
		unsigned left = secret_mappings();
		fprintf(stderr, "the child: %u secret mappings with nothing live\n", left);
		_exit(left ? 3 : 0);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid || write(fc_go[1], &c, 1) != 1 || pthread_join(t, NULL))
		_exit(4);
	_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 5);
}

/* The arena on pages of (size_t)arg bytes (0: the system's), as on a kernel with
 * 16 or 64 KiB pages: the first small block's slab is one page (the 16-byte
 * class's slab size comes from the page size), a block above 8 KiB is rounded to
 * the page, page alignment is honoured; random batches of blocks keep their
 * contents in secret memory, the arena stays consistent, and a fork copies them. */
static void child_page(void *arg)
{
	size_t ps = (size_t)(uintptr_t)arg;
	if (ps)
		sm_arena_set_page_size(ps);
	else
		ps = (size_t)sysconf(_SC_PAGESIZE);
	sm_arena_init();
	struct sm_arena_stats st;
	void *first = sm_arena_malloc(16);
	sm_arena_get_stats(&st);
	if (!first || st.touched_bytes != ps) {
		fprintf(stderr, "first slab: %llu bytes touched, page %zu\n",
			(unsigned long long)st.touched_bytes, ps);
		_exit(1);
	}
	void *big = sm_arena_malloc(8193), *al = sm_arena_memalign(ps, 100),
	     *al2 = sm_arena_memalign(2 * ps, 5000);
	if (!big || sm_arena_usable_size(big) != (8193 + ps - 1) / ps * ps || !al ||
	    (uintptr_t)al % ps || !al2 || (uintptr_t)al2 % (2 * ps)) {
		fprintf(stderr, "large %zu, aligned %p %p, page %zu\n",
			big ? sm_arena_usable_size(big) : 0, al, al2, ps);
		_exit(2);
	}
	enum { N = 600 };
	static void *blk[N];
	static size_t len[N];
	unsigned r = 7;
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < N; i++) {
			r = r * 1103515245u + 12345u;
			if (blk[i] && (r & 0x100)) {
				if (!check(blk[i], len[i], (unsigned)i))
					_exit(3);
				sm_arena_free(blk[i]);
				blk[i] = NULL;
			}
			if (!blk[i]) {
				len[i] = (r >> 12) % 9 ? (r >> 12) % 8192 : (r >> 12) % (5 * ps);
				if (!(blk[i] = sm_arena_malloc(len[i])) || !all_zero(blk[i], len[i]))
					_exit(4);
				fill(blk[i], len[i], (unsigned)i);
			}
		}
		if (!arena_ok())
			_exit(5);
	}
	if (!mapping_has(blk[0], "secretmem") || !mapping_has(big, "secretmem"))
		_exit(6);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < N; i++)
			if (!check(blk[i], len[i], (unsigned)i))
				_exit(1);
		_exit(arena_ok() ? 0 : 2);
	}
	int wst;
	if (pid < 0 || waitpid(pid, &wst, 0) != pid || !exited(wst, 0))
		_exit(7);
	for (int i = 0; i < N; i++)
		sm_arena_free(blk[i]);
	sm_arena_free(first);
	sm_arena_free(big);
	sm_arena_free(al);
	sm_arena_free(al2);
	_exit(arena_ok() ? 0 : 8);
}

/* SECRETMEM_MAX=512K: a first chunk of 256 KiB holds a small block and 240 KiB,
 * 12 KiB left at its end; a block of 250 KiB needs a second chunk of 256 KiB, all
 * that is left of the limit. The chunks lie side by side and their free runs
 * merge: the block begins in the first, and 16 KiB still fit after it (with a
 * guard page between the chunks, 12 KiB and 4 KiB were left apart, and 16 KiB
 * failed). A fork copies the block that spans the two chunks; with nothing live,
 * both chunks go back. */
static void child_span(void *arg)
{
	(void)arg;
	sm_opt.max = 512 << 10;
	sm_arena_init();
	char *pin = sm_arena_malloc(16), *a = sm_arena_malloc(240 << 10), *b = sm_arena_malloc(250 << 10);
	if (!pin || !a || !b)
		_exit(1);
	char *c = sm_arena_malloc(16 << 10);
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	fprintf(stderr, "16 KiB %s, %llu chunks, %llu bytes mapped\n", c ? "fit" : "failed",
		(unsigned long long)st.chunks, (unsigned long long)st.mapped_bytes);
	if (!c || st.mapped_bytes > (512 << 10))
		_exit(2);
	fill(b, 250 << 10, 5);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(check(b, 250 << 10, 5) && arena_ok() ? 0 : 1);
	int wst;
	if (pid < 0 || waitpid(pid, &wst, 0) != pid || !exited(wst, 0))
		_exit(3);
	if (!arena_ok())
		_exit(4);
	sm_arena_free(c);
	sm_arena_free(b);
	sm_arena_free(a);
	sm_arena_free(pin);
	unsigned left = secret_mappings();
	_exit(left ? 5 : !arena_ok() ? 6 : 0);
}

/* Blocks that one thread allocated and another frees (a producer and a consumer):
 * when the consumer frees the last, nothing is live and no secret mapping may be
 * left. The consumer has freed more blocks than it allocated; before, only a
 * thread that had freed exactly as many looked, so the memory stayed mapped. */
static void *producer_thread(void *arg)
{
	void **b = arg;
	for (int i = 0; i < 40; i++)
		if (!(b[i] = sm_arena_malloc(i % 2 ? 200 : 20000)))
			abort();
	return NULL;
}

static void child_producer(void *arg)
{
	(void)arg;
	sm_arena_init();
	void *b[40];
	pthread_t t;
	if (pthread_create(&t, NULL, producer_thread, b) || pthread_join(t, NULL))
		_exit(1);
	unsigned live = secret_mappings();
	for (int i = 0; i < 40; i++)
		sm_arena_free(b[i]);
	unsigned left = secret_mappings();
	fprintf(stderr, "mappings: %u with the blocks live, %u after\n", live, left);
	_exit(!live ? 3 : left ? 4 : !arena_ok() ? 5 : 0);
}

/* The same with the producer alive while the consumer frees: its cache of free
 * slots keeps a chunk (only its owner may touch it) until it exits; then no
 * secret mapping may be left, though no thread frees anything after. */
static int prod_go[2], prod_done[2];

static void *producer_then_exit(void *arg)
{
	producer_thread(arg);
	char c = 'x';
	if (write(prod_done[1], &c, 1) != 1 || read(prod_go[0], &c, 1) != 1)
		abort();
	return NULL;
}

static void child_producer_exits(void *arg)
{
	(void)arg;
	sm_arena_init();
	void *b[40];
	pthread_t t;
	char c = 'x';
	if (pipe(prod_go) || pipe(prod_done) ||
	    pthread_create(&t, NULL, producer_then_exit, b) || read(prod_done[0], &c, 1) != 1)
		_exit(1);
	for (int i = 0; i < 40; i++)
		sm_arena_free(b[i]);
	unsigned before = secret_mappings();
	if (write(prod_go[1], &c, 1) != 1 || pthread_join(t, NULL))
		_exit(2);
	unsigned left = secret_mappings();
	fprintf(stderr, "mappings: %u before the producer exits, %u after\n", before, left);
	_exit(left ? 4 : !arena_ok() ? 5 : 0);
}

/* SECRETMEM_MAX=4M: another thread allocates two blocks of each size of 1 to 16
 * pages (1088 KiB, what its cache holds while memory is not short), frees them
 * all (into its cache; one small block stays live) and sleeps while the process
 * forks. In the child only the forking thread lives: the other one's cached
 * blocks must come back to it (before, they were lost, over a quarter of the
 * limit). */
static int forkc_done[2], forkc_go[2];

static void *fork_cache_thread(void *arg)
{
	(void)arg;
	void *b[32];
	size_t n = 0;
	/* one block kept live: a thread with nothing live gives its cache back */
	void *keep = sm_arena_malloc(100);
	for (size_t pages = 1; n < 32; pages = pages % 16 + 1) {
		void *p = sm_arena_malloc(pages * 4096);
		if (!p)
			abort();
		memset(p, 0x5a, pages * 4096);
		b[n++] = p;
	}
	for (size_t i = 0; i < n; i++)
		sm_arena_free(b[i]);
	char c = 'x';
	if (write(forkc_done[1], &c, 1) != 1 || read(forkc_go[0], &c, 1) != 1)
		abort();
	sm_arena_free(keep);
	return NULL;
}

static void child_fork_cache(void *arg)
{
	(void)arg;
	sm_opt.max = 4 << 20;
	sm_arena_init();
	void *pin = sm_arena_malloc(100);
	pthread_t t;
	char c = 'x';
	if (!pin || pipe(forkc_done) || pipe(forkc_go) ||
	    pthread_create(&t, NULL, fork_cache_thread, NULL) || read(forkc_done[0], &c, 1) != 1)
		_exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		size_t n = 0;
		while (sm_arena_malloc(4000))
			n++;
		struct sm_arena_stats st;
		sm_arena_get_stats(&st);
		fprintf(stderr, "the fork's child filled %zu of %zu bytes\n", n * 4096,
			(size_t)st.limit);
		_exit(n * 4096 < st.limit * 8 / 10 ? 3 : !arena_ok() ? 4 : 0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		_exit(2);
	if (write(forkc_go[1], &c, 1) != 1 || pthread_join(t, NULL))
		_exit(2);
	_exit(!WIFEXITED(st) ? 5 : WEXITSTATUS(st) ? WEXITSTATUS(st) : !arena_ok() ? 6 : 0);
}

/* Another thread allocated and freed blocks of several classes and sleeps: when
 * the last block of the process is freed, no secret mapping is left (the other
 * thread's cached free slots do not keep their chunks). */
static int cached_done[2], cached_go[2];

static void *cached_thread(void *arg)
{
	(void)arg;
	void *b[12];
	for (int i = 0; i < 12; i++)
		b[i] = sm_arena_malloc((size_t)16 << (i % 9));
	for (int i = 0; i < 12; i++)
		sm_arena_free(b[i]);
	char c = 'x';
	if (write(cached_done[1], &c, 1) != 1 || read(cached_go[0], &c, 1) != 1)
		abort();
	return NULL;
}

static void child_cached(void *arg)
{
	(void)arg;
	sm_arena_init();
	void *pin = sm_arena_malloc(100);
	pthread_t t;
	char c = 'x';
	if (!pin || pipe(cached_done) || pipe(cached_go) ||
	    pthread_create(&t, NULL, cached_thread, NULL) || read(cached_done[0], &c, 1) != 1)
		_exit(1);
	unsigned live = secret_mappings();
	sm_arena_free(pin);
	unsigned left = secret_mappings();
	if (write(cached_go[1], &c, 1) != 1 || pthread_join(t, NULL))
		_exit(2);
	fprintf(stderr, "mappings: %u with the pin live, %u after\n", live, left);
	_exit(!live ? 3 : left ? 4 : !arena_ok() ? 5 : 0);
}

/* One thread allocates 4161 blocks of 16 bytes and frees them all: no secret
 * mapping may be left. The class's cache holds 128 (whatever the limit) and is
 * refilled 64 at a time; with 4161 the last free takes the bin over its bound
 * (129), and that free was not an idle moment (the test of nfree == nalloc sat
 * in the else of the overflow test). */
static void child_last_overflows(void *arg)
{
	(void)arg;
	enum { N = 4161 };
	static void *b[N];
	sm_arena_init();
	for (int i = 0; i < N; i++)
		if (!(b[i] = sm_arena_malloc(16)))
			_exit(1);
	for (int i = 0; i < N; i++)
		sm_arena_free(b[i]);
	unsigned left = secret_mappings();
	fprintf(stderr, "mappings with nothing live: %u\n", left);
	_exit(left ? 3 : !arena_ok() ? 4 : 0);
}

/* Two threads, and the last live block is freed long after any look: no secret
 * mapping may be left (the man page: every chunk is unmapped when the thread that
 * frees the last live secret block has freed as many as it allocated). The other
 * thread frees its last block 200 ms after this one's look found it live, and
 * its own look at an earlier idle moment (this thread's block live) must not keep
 * it from looking then. */
static int skip_go[2], skip_done[2];
static void *skip_b;

static void *skip_thread(void *arg)
{
	(void)arg;
	char c;
	if (read(skip_go[0], &c, 1) != 1)
		abort();
	sm_arena_free(sm_arena_malloc(100)); /* an idle moment: the pin is live */
	skip_b = sm_arena_malloc(100);
	if (write(skip_done[1], &c, 1) != 1 || read(skip_go[0], &c, 1) != 1)
		abort();
	sm_arena_free(skip_b);               /* the last live block of the process */
	if (write(skip_done[1], &c, 1) != 1 || read(skip_go[0], &c, 1) != 1)
		abort();
	return NULL;
}

static void child_idle_skip(void *arg)
{
	(void)arg;
	sm_arena_init();
	pthread_t t;
	char c = 'x';
	void *pin[8]; /* several: a look that finds one live elsewhere skips none */
	for (int i = 0; i < 8; i++)
		if (!(pin[i] = sm_arena_malloc(100)))
			_exit(1);
	if (pipe(skip_go) || pipe(skip_done) || pthread_create(&t, NULL, skip_thread, NULL) ||
	    write(skip_go[1], &c, 1) != 1 || read(skip_done[0], &c, 1) != 1)
		_exit(1);
	for (int i = 0; i < 8; i++)
		sm_arena_free(pin[i]); /* the last: an idle moment, the other's block live */
	usleep(200 * 1000);
	if (write(skip_go[1], &c, 1) != 1 || read(skip_done[0], &c, 1) != 1)
		_exit(1);
	unsigned left = secret_mappings();
	if (write(skip_go[1], &c, 1) != 1 || pthread_join(t, NULL))
		_exit(2);
	fprintf(stderr, "mappings with nothing live: %u\n", left);
	_exit(left ? 3 : !arena_ok() ? 4 : 0);
}

/* SECRETMEM_FORK=drop: another thread holds blocks and this one has an idle
 * moment (its look finds them live), then forks. The child, one thread with an
 * arena of its own, allocates a block and frees it: no secret mapping may be left
 * (before, it inherited the parent thread's skip of its next looks). */
static int fskip_go[2], fskip_done[2];

static void *fork_skip_thread(void *arg)
{
	(void)arg;
	char c = 'x';
	void *p[8];
	for (int i = 0; i < 8; i++)
		if (!(p[i] = sm_arena_malloc(100)))
			abort();
	if (write(fskip_done[1], &c, 1) != 1 || read(fskip_go[0], &c, 1) != 1)
		abort();
	for (int i = 0; i < 8; i++)
		sm_arena_free(p[i]);
	return NULL;
}

static void child_fork_skip(void *arg)
{
	(void)arg;
	sm_opt.fork = SM_FORK_DROP;
	sm_arena_init();
	pthread_t t;
	char c = 'x';
	if (pipe(fskip_go) || pipe(fskip_done) || pthread_create(&t, NULL, fork_skip_thread, NULL) ||
	    read(fskip_done[0], &c, 1) != 1)
		_exit(1);
	sm_arena_free(sm_arena_malloc(100)); /* an idle moment: the other blocks are live */
	pid_t pid = fork();
	if (pid == 0) {
		sm_arena_free(sm_arena_malloc(100));
		unsigned left = secret_mappings();
		fprintf(stderr, "the fork's child: mappings with nothing live: %u\n", left);
		_exit(left ? 3 : !arena_ok() ? 4 : 0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || write(fskip_go[1], &c, 1) != 1 ||
	    pthread_join(t, NULL))
		_exit(2);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 5);
}

/* Root (CAP_IPC_LOCK, no limit in force) at start, then a privilege drop to a
 * 2 MiB RLIMIT_MEMLOCK: the limit reported is the new one, and 1500 KiB then
 * 400 KiB fit. */
static void child_drop_priv(void *arg)
{
	(void)arg;
	sm_arena_init();
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	if (st.limit < (64u << 20))
		_exit(1); /* not a privileged start: the test needs CAP_IPC_LOCK */
	if (!limit_memlock(2 << 20))
		_exit(2);
	sm_arena_get_stats(&st); /* before any chunk is mapped again */
	if (st.limit != (2u << 20) - (64u << 10))
		_exit(7);
	void *a = sm_arena_malloc(1500 << 10), *b = sm_arena_malloc(400 << 10);
	sm_arena_get_stats(&st);
	fprintf(stderr, "limit %llu\n", (unsigned long long)st.limit);
	_exit(!a ? 3 : !b ? 4 : st.limit > (2u << 20) ? 5 : !arena_ok() ? 6 : 0);
}

static void pre_init_tests(void)
{
	char err[2048];
	int st;

	st = run_child(child_enomem, NULL, err, sizeof(err));
	ok(exited(st, 0), "SECRETMEM_MAX reached: NULL, ENOMEM, never ordinary memory");
	ok(strstr(err, "out of secret memory: the limit is 1048576 bytes (SECRETMEM_MAX)") &&
	   strstr(err, "raise it with SECRETMEM_MAX") && !strstr(strstr(err, "SECRETMEM_MAX)") + 1, "out of"),
	   "out of secret memory: one warning naming the limit");

	st = run_child(child_tiny_limit, NULL, err, sizeof(err));
	ok(exited(st, SM_EXIT_CONFIG) && strstr(err, "16384 bytes (SECRETMEM_MAX)") &&
	   strstr(err, "ulimit -l"), "a limit below one chunk stops at start-up");

	st = run_child(child_uncached, (void *)(intptr_t)SM_FALLBACK_NONE, err, sizeof(err));
	ok(exited(st, SM_EXIT_CONFIG) && strstr(err, "SECRETMEM_MODE=uncached") &&
	   strstr(err, "SECRETMEM_FALLBACK=exclusive"), "uncached without fallback: refused");
	st = run_child(child_uncached, (void *)(intptr_t)SM_FALLBACK_EXCLUSIVE, err, sizeof(err));
	ok(exited(st, 0) && strstr(err, "using exclusive mode"), "uncached, fallback exclusive: warns, runs");

	st = run_child(child_enosys, (void *)(intptr_t)SM_FALLBACK_EXCLUSIVE, err, sizeof(err));
	ok(exited(st, SM_EXIT_CONFIG) && strstr(err, "ENOSYS") && strstr(err, "secretmem.enable=1") &&
	   strstr(err, "SECRETMEM_FALLBACK=mlock"), "no memfd_secret, no mlock fallback: refused");
	st = run_child(child_enosys, (void *)(intptr_t)SM_FALLBACK_MLOCK, err, sizeof(err));
	ok(exited(st, 0) && strstr(err, "direct map"), "no memfd_secret, fallback mlock: warns, runs, fork copies");

	st = run_child(child_drop, NULL, err, sizeof(err));
	ok(exited(st, 0), "fork drop: child faults on, frees silently, cannot realloc parent blocks");

	st = run_child(child_max_1m, NULL, err, sizeof(err));
	ok(exited(st, 0), "SECRETMEM_MAX=1M: two 300 KiB blocks fit, then 480 KiB once they are freed");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_compact, NULL, err, sizeof(err));
	ok(exited(st, 0), "free runs between live blocks, budget spent: a larger block fits from them");
	printf("# status %#x: %s", st, err);

	st = run_child(child_compact_no_room, NULL, err, sizeof(err));
	ok(exited(st, 0), "compaction refused its room (the program locked it): the runs stay whole");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_fork_chunks, NULL, err, sizeof(err));
	ok(exited(st, 0) && !strstr(err, "cannot give the child"),
	   "fork copy of dozens of chunks with 24 files allowed open: the child has its copy");
	if (!exited(st, 0) || strstr(err, "cannot give the child"))
		printf("# status %#x: %s", st, err);

	static const size_t windows[] = { 4096, 64 * 1024, SM_PAGES_COPY_WINDOW_MAX };
	for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		char name[128];
		st = run_child(child_fork_window, (void *)(uintptr_t)windows[i], err, sizeof(err));
		snprintf(name, sizeof(name), "fork copy of 5 MiB through %zu KiB windows: the child reads every byte",
			 windows[i] / 1024);
		ok(exited(st, 0) && !strstr(err, "cannot give the child"), name);
		if (!exited(st, 0) || strstr(err, "cannot give the child"))
			printf("# status %#x: %s", st, err);
	}

	st = run_child(child_fork_window_short, NULL, err, sizeof(err));
	ok(exited(st, 0) && !strstr(err, "cannot give the child"),
	   "fork copy when the limit enforced has no room for the window: smaller windows, the child has its copy");
	if (!exited(st, 0) || strstr(err, "cannot give the child"))
		printf("# status %#x: %s", st, err);

	st = run_child(child_double_fork, NULL, err, sizeof(err));
	ok(exited(st, 0) && !strstr(err, "cannot give the child"),
	   "fork copy, and the child forks again at once: the grandchild has its copy too");
	if (!exited(st, 0) || strstr(err, "cannot give the child"))
		printf("# status %#x: %s", st, err);

	st = run_child(child_fork_counts, (void *)(intptr_t)SM_FORK_DROP, err, sizeof(err));
	ok(exited(st, 0), "fork drop: the child's own block freed, no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_fork_counts, (void *)(intptr_t)SM_FORK_COPY, err, sizeof(err));
	ok(exited(st, 0), "fork copy: the child frees another thread's block and its own, no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);

	st = run_child(child_max_8m, NULL, err, sizeof(err));
	ok(exited(st, 0), "SECRETMEM_MAX=8M: 6 MiB after 5 MiB freed; small blocks fill 90% after");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	static const size_t page_sizes[] = { 0, 16384, 65536 };
	for (unsigned i = 0; i < sizeof(page_sizes) / sizeof(page_sizes[0]); i++) {
		char name[128];
		st = run_child(child_page, (void *)(uintptr_t)page_sizes[i], err, sizeof(err));
		snprintf(name, sizeof(name), "pages of %s: slabs, large blocks, alignment and fork "
			 "built from the page size", page_sizes[i] ? page_sizes[i] == 16384 ?
			 "16 KiB" : "64 KiB" : "the system's size");
		ok(exited(st, 0), name);
		if (!exited(st, 0))
			printf("# status %#x: %s", st, err);
	}
	st = run_child(child_span, NULL, err, sizeof(err));
	ok(exited(st, 0), "chunks side by side: a block spans two, the limit is used to its end, fork copies it");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_cached, NULL, err, sizeof(err));
	ok(exited(st, 0), "nothing live, another thread's cache holds free slots: no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_producer, NULL, err, sizeof(err));
	ok(exited(st, 0), "blocks one thread allocated, freed by another: no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_producer_exits, NULL, err, sizeof(err));
	ok(exited(st, 0), "the producer, alive while its blocks are freed, exits: no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_last_overflows, NULL, err, sizeof(err));
	ok(exited(st, 0), "the last free takes the thread's bin over its bound: no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_fork_skip, NULL, err, sizeof(err));
	ok(exited(st, 0), "fork drop after a look found another thread busy: the child's own "
	   "block freed, no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_idle_skip, NULL, err, sizeof(err));
	ok(exited(st, 0), "two threads, the last block freed 200 ms after the other's look: "
	   "no secret mapping is left");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_fork_cache, NULL, err, sizeof(err));
	ok(exited(st, 0), "fork while another thread's cache holds freed blocks: the child gets them back");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
	st = run_child(child_page, (void *)(uintptr_t)24576, err, sizeof(err));
	ok(exited(st, SM_EXIT_CONFIG) && strstr(err, "page size 24576 is not supported"),
	   "a page size that is no power of two is refused with a message");
	st = run_child(child_drop_priv, NULL, err, sizeof(err));
	ok(exited(st, 0) && strstr(err, "limit 2031616"),
	   "privilege drop: the limit in force is reported, 1500 KiB then 400 KiB fit");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
}

/* ---- tests in the main process ---- */

static void test_sizes(void)
{
	enum { N = 4097 + 40 };
	static void *blk[N];
	static size_t len[N];
	size_t n = 0;
	bool good = true;

	for (size_t s = 0; s <= 4096; s++)
		len[n++] = s;
	for (size_t s = 4097; s <= (1 << 20) && n < N; s = s * 3 / 2 + 1)
		len[n++] = s;
	len[n++] = 1 << 20;
	for (size_t i = 0; i < n; i++) {
		blk[i] = sm_arena_malloc(len[i]);
		good = good && blk[i] && ((uintptr_t)blk[i] & 15) == 0 && sm_arena_owns(blk[i]) &&
		       all_zero(blk[i], len[i]) && sm_arena_usable_size(blk[i]) >= len[i];
		if (blk[i])
			fill(blk[i], len[i], (unsigned)i);
	}
	ok(good, "sizes 0..1 MiB: 16-aligned, zero, usable_size >= size");
	good = true;
	for (size_t i = 0; i < n; i++)
		good = good && check(blk[i], len[i], (unsigned)i);
	ok(good, "sizes 0..1 MiB: contents kept");
	ok(mapping_has(blk[0], "secretmem") && mapping_has(blk[n - 1], "secretmem"),
	   "blocks lie in a /secretmem mapping");
	for (size_t i = 0; i < n; i++)
		sm_arena_free(blk[i]);
	/* Everything handed out again is zero, whatever it held before. */
	good = true;
	for (size_t i = 0; i < n; i++) {
		blk[i] = sm_arena_malloc(len[i]);
		good = good && blk[i] && all_zero(blk[i], len[i]);
	}
	for (size_t i = 0; i < n; i++)
		sm_arena_free(blk[i]);
	ok(good, "reused blocks are zero");
}

static void test_align(void)
{
	static const size_t sizes[] = { 0, 1, 17, 100, 1000, 4096, 5000, 9000, 70000 };
	bool good = true;
	for (size_t a = 16; a <= 65536; a *= 2) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			void *p = sm_arena_memalign(a, sizes[i]), *q = sm_arena_memalign(a, sizes[i]);
			good = good && p && q && ((uintptr_t)p & (a - 1)) == 0 && ((uintptr_t)q & (a - 1)) == 0 &&
			       all_zero(p, sizes[i]) && sm_arena_usable_size(p) >= sizes[i];
			if (p && q) {
				fill(p, sizes[i], 1);
				fill(q, sizes[i], 2);
				good = good && check(p, sizes[i], 1);
			}
			sm_arena_free(p);
			sm_arena_free(q);
		}
	}
	ok(good, "every alignment 16..64 KiB, sizes 0..70000");
}

static void test_realloc(void)
{
	char *p = sm_arena_malloc(20);
	fill(p, 20, 3);
	char *q = sm_arena_realloc(p, 30);
	ok(q == p && check(q, 20, 3), "realloc within the usable size: same pointer");
	char *r = sm_arena_realloc(q, 3000);
	ok(r && r != q && check(r, 20, 3) && all_zero(q + 16, 16),
	   "realloc small grow: moved, contents kept, old block wiped");
	char *s = sm_arena_realloc(r, 100000);
	ok(s && check(s, 20, 3), "realloc small to large: contents kept");
	fill(s, 100000, 4);
	/* Large: shrink in place, then grow back into the pages it gave up. */
	char *t = sm_arena_realloc(s, 50000);
	const size_t kept = 13 * 4096; /* 50000 rounded up to pages */
	ok(t == s && check(t, 50000, 4) && sm_arena_usable_size(t) == kept &&
	   all_zero(t + kept, 100000 - kept), "realloc large shrink: in place, tail wiped");
	char *u = sm_arena_realloc(t, 60000);
	ok(u == t && check(u, 50000, 4) && sm_arena_usable_size(u) >= 60000 &&
	   all_zero(u + kept, 60000 - kept), "realloc large grow: in place, new part zero");
	char *blocker = sm_arena_malloc(20000); /* maybe right after u */
	char *v = sm_arena_realloc(u, 400000);
	ok(v && check(v, 50000, 4), "realloc large grow: contents kept when moved");
	sm_arena_free(blocker);
	sm_arena_free(v);
}

static void test_wipe(void)
{
	bool good = true;
	static const size_t sizes[] = { 16, 48, 256, 2000, 8192, 12345, 300000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = sm_arena_malloc(sizes[i]);
		size_t u = sm_arena_usable_size(p);
		memset(p, 0xAA, u);
		sm_arena_free(p);
		/* A small block keeps its two link words while free. */
		size_t skip = sizes[i] <= 8192 ? 16 : 0;
		good = good && all_zero(p + skip, u - skip);
	}
	ok(good, "free wipes the block");

	/* Every small class, with vector stores and with explicit_bzero: a freed
	 * block is zero but for its link words, and its neighbours are untouched. */
	for (int vec = 1; vec >= 0; vec--) {
		bool was = sm_arena_vector_wipe(vec);
		bool active = sm_arena_vector_wipe(vec); /* what the first call set */
		unsigned tested = 0, classes = 0;
		good = true;
		for (size_t n = 16; n <= 8192; n += 16) {
			enum { N = 24 };
			unsigned char *p[N], *t;
			for (int i = 0; i < N; i++)
				p[i] = sm_arena_malloc(n);
			size_t u = sm_arena_usable_size(p[0]);
			for (int i = 0; i < N; i++) /* in address order */
				for (int j = i + 1; j < N; j++)
					if (p[j] < p[i])
						t = p[i], p[i] = p[j], p[j] = t;
			int mid = -1;
			for (int i = 1; i + 1 < N && mid < 0; i++)
				if (p[i] == p[i - 1] + u && p[i + 1] == p[i] + u)
					mid = i;
			if (u == n) { /* one test per class, at its size */
				classes++;
				if (mid >= 0) {
					memset(p[mid - 1], 0xAA, 3 * u);
					sm_arena_free(p[mid]);
					p[mid] = NULL;
					good = good && all_zero(p[mid - 1] + u + 16, u - 16);
					for (size_t k = 0; k < u; k++)
						good = good && p[mid - 1][k] == 0xAA &&
						       p[mid + 1][k] == 0xAA;
					tested++;
				}
			}
			for (int i = 0; i < N; i++)
				if (p[i])
					sm_arena_free(p[i]);
		}
		sm_arena_vector_wipe(was);
		if (!good || tested != classes)
			printf("# wipe: %u of %u classes tested\n", tested, classes);
		ok(good && tested == classes && classes == 32,
		   !vec ? "free wipes every small class exactly (explicit_bzero)"
		   : active ? "free wipes every small class exactly (vector stores)"
			    : "free wipes every small class exactly (explicit_bzero: no AVX2 here)");
	}

	int e = 12345;
	errno = e;
	sm_arena_free(sm_arena_malloc(10));
	sm_arena_free(sm_arena_malloc(100000));
	ok(errno == e, "free preserves errno");
}

static void test_fork_copy(void)
{
	char *p = sm_arena_malloc(64), *big = sm_arena_malloc(200000);
	strcpy(p, "before");
	strcpy(big + 150000, "big before");
	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent))
		abort();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		int bad = strcmp(p, "before") || strcmp(big + 150000, "big before");
		strcpy(p, "child");
		strcpy(big + 150000, "big child");
		/* Let the parent write now, then look again. */
		if (write(to_parent[1], "x", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		bad |= strcmp(p, "child") || strcmp(big + 150000, "big child");
		char *q = sm_arena_malloc(64); /* the child's arena works */
		bad |= !q || !all_zero(q, 64) || !mapping_has(q, "secretmem");
		_exit(bad);
	}
	char c;
	if (read(to_parent[0], &c, 1) != 1)
		abort();
	bool parent_ok = strcmp(p, "before") == 0 && strcmp(big + 150000, "big before") == 0;
	strcpy(p, "parent");
	strcpy(big + 150000, "big parent");
	if (write(to_child[1], "x", 1) != 1)
		abort();
	int st;
	waitpid(pid, &st, 0);
	ok(exited(st, 0), "fork copy: the child sees the parent's data and only its own writes");
	ok(parent_ok && strcmp(p, "parent") == 0, "fork copy: the child's writes never reach the parent");
	close(to_child[0]); close(to_child[1]); close(to_parent[0]); close(to_parent[1]);
	sm_arena_free(p);
	sm_arena_free(big);
}

/* ---- misuse, each in a child ---- */

/* The child writes the message it expects (its addresses) to this pipe just
 * before the bad call; the parent compares it with what stderr got. */
static int expect_fd = -1;

__attribute__((format(printf, 1, 2))) static void expect(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (write(expect_fd, buf, (size_t)n) != n)
		_exit(7);
}

struct misuse {
	const char *name;
	void (*act)(void);
};

static void m_double_small(void)
{
	void *p = sm_arena_malloc(40);
	sm_arena_free(p);
	expect("libsecretmem-preload: free(): double free of secret block %p\n", p);
	sm_arena_free(p);
}

static void m_double_large(void)
{
	void *p = sm_arena_malloc(50000);
	sm_arena_free(p);
	expect("libsecretmem-preload: free(): double free of secret block %p\n", p);
	sm_arena_free(p);
}

static void m_interior_small(void)
{
	char *p = sm_arena_malloc(100);
	expect("libsecretmem-preload: free(): invalid pointer %p (inside a secret block, not at its start)\n", p + 16);
	sm_arena_free(p + 16);
}

static void m_interior_large(void)
{
	char *p = sm_arena_malloc(50000);
	expect("libsecretmem-preload: free(): invalid pointer %p (inside a secret block, not at its start)\n", p + 4096);
	sm_arena_free(p + 4096);
}

static void m_realloc_freed(void)
{
	void *p = sm_arena_malloc(24);
	sm_arena_free(p);
	expect("libsecretmem-preload: realloc(): invalid pointer %p (secret block already freed)\n", p);
	sm_arena_realloc(p, 200);
}

static void m_realloc_freed_large(void)
{
	void *p = sm_arena_malloc(80000);
	sm_arena_free(p);
	expect("libsecretmem-preload: realloc(): invalid pointer %p (secret block already freed)\n", p);
	sm_arena_realloc(p, 200);
}

static void m_realloc_interior(void)
{
	char *p = sm_arena_malloc(64);
	expect("libsecretmem-preload: realloc(): invalid pointer %p (inside a secret block, not at its start)\n", p + 8);
	sm_arena_realloc(p + 8, 200);
}

static void m_not_block(void)
{
	void *p = (void *)(sm_arena_base + sm_arena_span - 4096 + 48);
	expect("libsecretmem-preload: free(): invalid pointer %p (not a secret block)\n", p);
	sm_arena_free(p);
}

static void m_corrupt_link(void)
{
	void **p = sm_arena_malloc(32), **q = sm_arena_malloc(32);
	sm_arena_free(q);
	sm_arena_free(p);
	p[0] = (void *)0x4141414141414141; /* a use-after-free write over the link */
	expect("libsecretmem-preload: malloc(): corrupted free list of secret blocks (at %p)\n", (void *)p);
	sm_arena_malloc(32);
}

static const struct misuse misuses[] = {
	{ "double free (small)", m_double_small },
	{ "double free (large)", m_double_large },
	{ "free of an interior pointer (small)", m_interior_small },
	{ "free of an interior pointer (large)", m_interior_large },
	{ "realloc of a freed block (small)", m_realloc_freed },
	{ "realloc of a freed block (large)", m_realloc_freed_large },
	{ "realloc of an interior pointer", m_realloc_interior },
	{ "free of an address that is no block", m_not_block },
	{ "use-after-free write over a free-list link", m_corrupt_link },
};

static const struct misuse *cur_misuse;

static void misuse_child(void *arg)
{
	(void)arg;
	cur_misuse->act();
	_exit(0); /* not reached if the arena aborts */
}

static void test_misuse(void)
{
	for (size_t i = 0; i < sizeof(misuses) / sizeof(misuses[0]); i++) {
		int pfd[2];
		if (pipe(pfd))
			abort();
		cur_misuse = &misuses[i];
		expect_fd = pfd[1];
		char err[1024], want[256], name[128];
		int st = run_child(misuse_child, NULL, err, sizeof(err));
		close(pfd[1]);
		ssize_t n = read(pfd[0], want, sizeof(want) - 1);
		want[n > 0 ? n : 0] = '\0';
		close(pfd[0]);
		snprintf(name, sizeof(name), "misuse: %s: SIGABRT and its message", misuses[i].name);
		bool good = signalled(st, SIGABRT) && n > 0 && strcmp(err, want) == 0;
		ok(good, name);
		if (!good)
			printf("# want: %s# got (status %#x): %s", want, st, err);
	}
}

/* The arena's own consistency check after a test's operations. */
static void consistent(const char *after)
{
	char msg[256], name[128];
	unsigned n = sm_arena_check(msg, sizeof(msg));
	snprintf(name, sizeof(name), "arena consistent after %s", after);
	ok(n == 0, name);
	if (n)
		printf("# %u problems, the first: %s\n", n, msg);
}

/* Random mallocs, reallocs and frees of every size class and large blocks, with
 * the consistency check after each batch. */
static void test_random_batches(void)
{
	enum { SLOTS = 512, BATCHES = 20, OPS = 2000 };
	static unsigned char *blk[SLOTS];
	uint32_t r = 2463534242u;
	unsigned bad = 0;
	for (int b = 0; b < BATCHES; b++) {
		for (int i = 0; i < OPS; i++) {
			r ^= r << 13, r ^= r >> 17, r ^= r << 5;
			unsigned k = r % SLOTS;
			size_t n = (r >> 9) % 8 == 0 ? (r >> 12) % 70000 : (r >> 12) % 600;
			if (!blk[k]) {
				blk[k] = sm_arena_malloc(n);
				if (blk[k])
					memset(blk[k], 0xa5, n);
			} else if ((r >> 20) % 3 == 0 && n) {
				unsigned char *q = sm_arena_realloc(blk[k], n);
				if (q) {
					blk[k] = q;
					memset(q, 0x5a, n);
				}
			} else {
				sm_arena_free(blk[k]);
				blk[k] = NULL;
			}
		}
		bad += sm_arena_check(NULL, 0) != 0;
	}
	ok(bad == 0, "random batches: the arena is consistent after each of 20 batches");
	for (int k = 0; k < SLOTS; k++)
		if (blk[k])
			sm_arena_free(blk[k]);
	consistent("freeing every block of the random batches");
}

/* The check can fail: a byte written into a freed block (a use after free) and a
 * broken page run are found. */
static void child_corrupt(void *arg)
{
	(void)arg;
	char msg[256];
	unsigned char *p = sm_arena_malloc(100);
	sm_arena_free(sm_arena_malloc(100)); /* another freed slot around */
	sm_arena_free(p);
	if (sm_arena_check(msg, sizeof(msg)))
		_exit(3); /* not yet corrupt */
	p[60] = 1; /* after free */
	unsigned n = sm_arena_check(msg, sizeof(msg));
	fprintf(stderr, "%s\n", msg);
	_exit(n ? 0 : 1);
}

static void test_check_fails(void)
{
	char err[512];
	int st = run_child(child_corrupt, NULL, err, sizeof(err));
	ok(exited(st, 0) && (strstr(err, "is not zero") != NULL),
	   "the consistency check finds a write into a freed block");
	if (!exited(st, 0))
		printf("# status %#x: %s", st, err);
}

/* When no secret block is live, no secret mapping is left (hibernation), and the
 * next allocation maps one again. */
static void test_release(void *pin)
{
	void *big = sm_arena_malloc(100000), *small = sm_arena_malloc(200);
	bool before = secret_mappings() > 0;
	sm_arena_free(big);
	sm_arena_free(small);
	bool kept = secret_mappings() > 0; /* the pin is live */
	uint64_t released = mono_ns();
	sm_arena_free(pin);
	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	ok(before && kept && secret_mappings() == 0 && st.mapped_bytes == 0 && st.chunks == 0 &&
	   st.touched_bytes == 0, "nothing live: every secret mapping is given back");
	consistent("the release");
	char *p = sm_arena_malloc(64);
	ok(p && mapping_has(p, "/secretmem") && all_zero(p, 64), "and the next allocation maps one again");
	consistent("the remap");
	/* Freed at once (within the hold of the release, 50 ms or more): kept for the next
	 * allocation, which then pays no chunk map and no first touch. A test process
	 * descheduled for the whole hold cannot see it. */
	sm_arena_free(p);
	bool held = secret_mappings() > 0;
	uint64_t dt = mono_ns() - released;
	ok(held || dt >= 50 * 1000 * 1000, "freed again at once: the memory is kept for the next allocation");
	if (!held)
		printf("# not held, %llu ns after the release\n", (unsigned long long)dt);
	consistent("the hold");
	usleep(110 * 1000); /* needed again at once: the hold doubled, to 100 ms */
	p = sm_arena_malloc(64);
	sm_arena_free(p);
	ok(secret_mappings() == 0, "after the hold, a small block freed alone is given back too");
}

/* From a release: a block allocated and freed every 10 ms until the memory is
 * given back again. The ms from the release to that one. */
static unsigned next_release_ms(uint64_t from)
{
	do {
		usleep(10 * 1000);
		void *p = sm_arena_malloc(64);
		sm_arena_free(p);
	} while (secret_mappings() != 0 && mono_ns() - from < 3000ull * 1000 * 1000);
	return (unsigned)((mono_ns() - from) / 1000000);
}

/* The hold after a release doubles each time the memory given back is needed again
 * within a second (a chunk mapped), to 1 s at most; needed again later than that, it
 * is 50 ms again. A program that allocates a block every 10 ms: given back at 100,
 * 200, 400, 800, 1000 and 1000 ms from each release (its next allocation is 10 ms
 * after each, and the hold was already 100 ms: test_release's). A test process
 * descheduled for long can only make one later, hence the wide upper bounds; each
 * is at least its hold less the coarse clock's tick. */
static void test_hold_doubles(void)
{
	static const unsigned want[] = { 200, 400, 800, 1000, 1000 };
	void *p = sm_arena_malloc(64); /* test_release gave every chunk back */
	sm_arena_free(p);
	uint64_t from = mono_ns();
	bool ok_all = secret_mappings() != 0;
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		unsigned ms = next_release_ms(from);
		from = mono_ns();
		bool in = ms + 10 >= want[i] && ms <= want[i] + 300;
		if (!in)
			printf("# release %zu: %u ms after the one before, want %u\n", i, ms, want[i]);
		ok_all &= in;
	}
	ok(ok_all, "memory needed again at once after each release: held 200, 400, 800, then 1000 ms, no longer");
	usleep(1100 * 1000);
	p = sm_arena_malloc(64); /* more than a second after the release */
	sm_arena_free(p);
	from = mono_ns();
	unsigned ms = next_release_ms(from);
	ok(ms <= 50 + 300, "needed again more than a second after the release: the hold is 50 ms again");
	if (ms > 350)
		printf("# given back %u ms after the release\n", ms);
	consistent("the hold's doubling");
}

/* Under a seccomp filter the arena makes no mincore call (sandbox.c): a freed
 * block whose pages came untouched is wiped over its whole extent, the last
 * usable byte too. The filter runner answers as the kernel would, and a program
 * it cannot run counts as killing. */
static void test_sandbox(void)
{
	sm_sandboxed = true;
	bool good = true;
	static const size_t sizes[] = { 70000, 300000, 3u << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = sm_arena_malloc(sizes[i]);
		size_t u = sm_arena_usable_size(p);
		p[0] = 0xAA;
		p[u / 2] = 0xAA;
		p[u - 1] = 0xAA;
		sm_arena_free(p);
		good = good && all_zero(p, u);
	}
	sm_sandboxed = false;
	ok(good, "under a sandbox (no mincore) free wipes the whole block, the last usable byte too");

	struct sock_filter allow_mmap_rw[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog p = { sizeof(allow_mmap_rw) / sizeof(*allow_mmap_rw), allow_mmap_rw };
	unsigned long rw[6] = { 0, 4096, PROT_READ | PROT_WRITE }, rx[6] = { 0, 4096, PROT_EXEC };
	unsigned long none[6] = { 0 };
	ok(sm_sandbox_run(&p, SYS_mmap, rw) == SECCOMP_RET_ALLOW &&
	   sm_sandbox_run(&p, SYS_mmap, rx) == (SECCOMP_RET_ERRNO | EPERM) &&
	   sm_sandbox_run(&p, SYS_close, none) == (SECCOMP_RET_ERRNO | EPERM),
	   "the filter runner reads the call's number and arguments as the kernel does");
	const char *refused = NULL;
	struct sock_filter kill_ftruncate[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ftruncate, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog kf = { 4, kill_ftruncate };
	ok(sm_sandbox_allows_chunks(&p, &refused) && !sm_sandbox_allows_chunks(&kf, &refused) &&
	   refused && strcmp(refused, "ftruncate") == 0,
	   "a filter answering an error is not fatal; one killing a chunk's call is, and names it");
	struct sock_filter bad_jump[] = { BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0),
					  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_filter bad_load[] = { BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4096),
					  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_filter no_ret[] = { BPF_STMT(BPF_LD | BPF_IMM, 1) };
	struct sock_fprog bj = { 2, bad_jump }, bl = { 2, bad_load }, nr = { 1, no_ret };
	ok(sm_sandbox_run(&bj, SYS_mmap, rw) == SECCOMP_RET_KILL_PROCESS &&
	   sm_sandbox_run(&bl, SYS_mmap, rw) == SECCOMP_RET_KILL_PROCESS &&
	   sm_sandbox_run(&nr, SYS_mmap, rw) == SECCOMP_RET_KILL_PROCESS &&
	   !sm_sandbox_allows_chunks(NULL, &refused),
	   "a filter it cannot run (a jump past the end, a load out of range, no return) counts as killing");
	consistent("the sandbox tests");
}

/* A thread that frees each block at once passes most idle moments within a quiet
 * window without reading the clock (chunk.c's unread), but never more than 15 in a
 * row: after a burst of such pairs and a pause past every hold, memory is given
 * back within 16 idle moments. */
static void test_quiet_unread(void)
{
	for (int i = 0; i < 200000; i++) {
		void *p = sm_arena_malloc(16 + (size_t)(i & 15) * 16);
		sm_arena_free(p);
	}
	bool mapped = secret_mappings() != 0;
	usleep(1100 * 1000);
	unsigned n = 0;
	while (secret_mappings() != 0 && n < 1000) {
		void *p = sm_arena_malloc(64);
		sm_arena_free(p);
		n++;
	}
	printf("# given back at the %u%s idle moment after the pause\n", n,
	       n == 1 ? "st" : n == 2 ? "nd" : n == 3 ? "rd" : "th");
	ok(mapped && n >= 1 && n <= 16,
	   "a burst of pairs freed at once, then a pause: given back within 16 idle moments");
	consistent("idle moments passed unread");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	pre_init_tests();

	sm_arena_init();
	sm_arena_init(); /* idempotent */
	ok(sm_arena_base && sm_arena_reserved >= (4ul << 20) && sm_arena_span <= sm_arena_reserved,
	   "init reserves the range");

	consistent("init");
	/* The tests below read freed blocks: one live block keeps the arena from
	 * giving its chunks back when nothing else is live (test_release does that). */
	void *pin = sm_arena_malloc(16);
	test_sizes();
	consistent("the size tests");
	test_align();
	consistent("the alignment tests");
	test_realloc();
	consistent("the realloc tests");
	test_wipe();
	consistent("the wipe tests");
	test_fork_copy();
	consistent("fork copy");
	test_misuse();
	test_random_batches();
	test_check_fails();
	test_release(pin);
	test_hold_doubles();
	test_quiet_unread();
	test_sandbox();

	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	ok(strcmp(st.backend, "memfd_secret") == 0 && st.allocs >= st.frees &&
	   st.touched_bytes <= st.mapped_bytes && st.mapped_bytes <= st.limit,
	   "stats are consistent");
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
