/* SPDX-License-Identifier: MIT */
/*
 * arena_prog: the subject of arena.bats, which runs it under the preload to test
 * the secret arena end to end. Secret blocks are made with a scope of secretmem.h
 * (or, with --sites, by sites_secret_alloc, for a SECRETMEM_SITES rule); ordinary
 * ones outside any scope. Every block the test inspects from outside is reported as
 *
 *   NAME secret=0|1 addr=0x...
 *
 * and a paused run prints "PID n", its lines and "READY", then waits in pause()
 * until it is killed. Checks made inside the program print "... ok" or
 * "... FAIL <why>"; the exit status is 1 if any failed.
 *
 *   arena_prog [--sites] hold          secret and control strings, paused
 *   arena_prog fork [pause]            SECRETMEM_FORK=copy across three generations
 *   arena_prog drop                    SECRETMEM_FORK=drop: the child's view
 *   arena_prog spawn                   posix_spawn, vfork, system, popen with secrets
 *   arena_prog exhaust SIZE            secret blocks of SIZE until NULL, then more
 *   arena_prog misuse KIND             double-small, double-large, interior-small,
 *                                      interior-large, realloc-freed-small,
 *                                      realloc-freed-large
 *   arena_prog wipe                    freed and moved secret blocks read zero
 *   arena_prog maxthread               out of secret memory while a thread allocates
 *
 * Build with -O2 -g -fno-optimize-sibling-calls (sites_secret_alloc keeps its frame).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secretmem.h"

#define NOINLINE __attribute__((noinline, noclone))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")
/* Hides where a copy of a pointer came from, so that the compiler cannot reason
 * about accesses through it after free() (the tests read freed secret memory on
 * purpose: it is still our mapping). Applied before the free. */
#define LAUNDER(p) __asm__ volatile("" : "+r"(p) :: "memory")

extern char **environ;

static int failures;
static bool use_sites;

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	/* Every line reaches the file before a fork or a pause. */
	fflush(stdout);
}

static void check(bool ok, const char *what, const char *why)
{
	if (ok) {
		say("%s ok", what);
	} else {
		say("%s FAIL %s", what, why);
		failures++;
	}
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "?";
}

/* ---- making blocks ---- */

/* The function a SECRETMEM_SITES rule names (with --sites). */
NOINLINE void *sites_secret_alloc(size_t n)
{
	void *p = malloc(n);
	KEEP_FRAME();
	return p;
}

static void *secret_alloc(size_t n)
{
	if (use_sites)
		return sites_secret_alloc(n);
	secretmem_scope_begin();
	void *p = malloc(n);
	secretmem_scope_end();
	return p;
}

static void *must(void *p, const char *what)
{
	if (!p) {
		fprintf(stderr, "arena_prog: %s: allocation failed: %s\n", what, strerror(errno));
		exit(2);
	}
	return p;
}

static void block(const char *name, const void *p)
{
	say("%s secret=%d addr=%p", name, secretmem_is_secret(p), p);
}

static void hex(const char *name, const char *s)
{
	printf("%s ", name);
	for (; *s; s++)
		printf("%02x", (unsigned char)*s);
	say("");
}

/* n random letters and digits written straight into p (then a NUL): the string
 * exists nowhere else in the process, not even on the stack. */
static void random_string(char *p, size_t n)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[64];
	if (n > sizeof(r) || getrandom(r, n, 0) != (ssize_t)n)
		exit(2);
	for (size_t i = 0; i < n; i++)
		p[i] = alnum[r[i] % 62];
	p[n] = 0;
	explicit_bzero(r, sizeof(r));
}

static void pause_forever(void) __attribute__((noreturn));
static void pause_forever(void)
{
	say("READY");
	for (;;)
		pause();
}

/* The /proc/self/maps line of the mapping holding p, into buf ("" if none). */
static const char *maps_line(const void *p, char *buf, size_t size)
{
	FILE *f = fopen("/proc/self/maps", "r");
	buf[0] = 0;
	if (!f)
		return buf;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= (uintptr_t)p && (uintptr_t)p < hi) {
			line[strcspn(line, "\n")] = 0;
			snprintf(buf, size, "%s", line);
			break;
		}
	}
	fclose(f);
	return buf;
}

/* ---- hold: a secret and a control string, for gcore and smaps ---- */

static int cmd_hold(void)
{
	char *secret = must(secret_alloc(64), "secret");
	char *control = must(malloc(64), "control");
	random_string(secret, 48);
	random_string(control, 48);
	say("PID %d", (int)getpid());
	hex("secret_hex", secret);
	hex("control_hex", control);
	block("secret", secret);
	block("control", control);
	pause_forever();
}

/* ---- fork, copy mode ---- */

#define SMALL 64
#define LARGE (64 * 1024)
#define SPARSE (512 * 1024)

static char *f_small, *f_large, *f_sparse;

/* Content number k: the small block says "content k", every byte of the large
 * block is k, and the sparse block has k only in its first and last byte. */
static void put_content(int k)
{
	snprintf(f_small, SMALL, "content %d", k);
	memset(f_large, k, LARGE);
	f_sparse[0] = (char)k;
	f_sparse[SPARSE - 1] = (char)k;
}

static bool has_content(int k)
{
	char want[SMALL];
	snprintf(want, sizeof(want), "content %d", k);
	if (strcmp(f_small, want))
		return false;
	for (size_t i = 0; i < LARGE; i++)
		if (f_large[i] != (char)k)
			return false;
	/* the pages in between were never touched: zero in every copy */
	return f_sparse[0] == (char)k && f_sparse[SPARSE - 1] == (char)k &&
	       f_sparse[SPARSE / 2] == 0;
}

static void xwrite(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(3);
}

static char xread(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1)
		_exit(3);
	return c;
}

/* Forks generation gen+1 off this process (generation gen, whose blocks hold
 * content 2*gen). Each side writes its own content after the fork and checks that
 * it sees only its own; the child forks the next generation up to last. With
 * hold, generation 1 stays paused for the test to inspect from outside. */
static void fork_round(int gen, int last, bool hold)
{
	int up[2], down[2];
	char what[96];
	if (pipe(up) || pipe(down))
		exit(2);
	int before = 2 * gen, child_k = 2 * (gen + 1), parent_k = 2 * gen + 1;
	pid_t pid = fork();
	if (pid < 0) {
		say("fork FAIL %s", strerror(errno));
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int g = gen + 1;
		snprintf(what, sizeof(what), "gen%d sees the contents from before the fork", g);
		check(has_content(before), what, f_small);
		put_content(child_k);
		xwrite(up[1], 'w');
		xread(down[0]);
		snprintf(what, sizeof(what), "gen%d sees only its own writes after the parent wrote", g);
		check(has_content(child_k), what, f_small);
		snprintf(what, sizeof(what), "gen%d blocks are secret", g);
		check(secretmem_is_secret(f_small) && secretmem_is_secret(f_large) &&
		      secretmem_is_secret(f_sparse), what, "");
		char buf[512];
		snprintf(what, sizeof(what), "gen%d blocks are in /secretmem mappings", g);
		check(strstr(maps_line(f_small, buf, sizeof(buf)), "/secretmem") &&
		      strstr(maps_line(f_large, buf, sizeof(buf)), "/secretmem") &&
		      strstr(maps_line(f_sparse, buf, sizeof(buf)), "/secretmem"), what, buf);
		/* A fresh secret block in the child. */
		char *q = secret_alloc(100);
		snprintf(what, sizeof(what), "gen%d allocates fresh secret memory", g);
		check(q && secretmem_is_secret(q) && q[0] == 0, what, "");
		if (q) {
			strcpy(q, "fresh");
			free(q);
		}
		if (g < last)
			fork_round(g, last, hold);
		if (g == 1 && hold)
			say("child_pid %d", (int)getpid());
		xwrite(up[1], failures ? '1' : '0');
		if (g == 1 && hold)
			for (;;)
				pause();
		_exit(failures ? 1 : 0);
	}
	char what2[96];
	xread(up[0]);
	snprintf(what2, sizeof(what2), "gen%d does not see the child's writes", gen);
	check(has_content(before), what2, f_small);
	put_content(parent_k);
	xwrite(down[1], 'w');
	char st = xread(up[0]);
	snprintf(what2, sizeof(what2), "gen%d child reported", gen + 1);
	check(st == '0', what2, "failures in the child");
	snprintf(what2, sizeof(what2), "gen%d sees only its own writes after the child wrote", gen);
	check(has_content(parent_k), what2, f_small);
	if (!(gen == 0 && hold)) {
		int ws;
		snprintf(what2, sizeof(what2), "gen%d exit status", gen + 1);
		check(waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, what2, "");
	}
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

static int cmd_fork(bool hold)
{
	f_small = must(secret_alloc(SMALL), "small");
	f_large = must(secret_alloc(LARGE), "large");
	f_sparse = must(secret_alloc(SPARSE), "sparse");
	put_content(0);
	fork_round(0, 3, hold);
	if (hold) {
		say("PID %d", (int)getpid());
		block("small", f_small);
		block("large", f_large);
		block("sparse", f_sparse);
		pause_forever();
	}
	return failures ? 1 : 0;
}

/* ---- fork, drop mode ---- */

/* Runs fn in a child and reports how it ended. */
static void in_child(const char *name, void (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(failures ? 1 : 0);
	}
	int ws;
	if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
		say("%s FAIL fork/waitpid: %s", name, strerror(errno));
		failures++;
		return;
	}
	if (WIFSIGNALED(ws))
		say("%s signal=%s", name, sigabbrev_np(WTERMSIG(ws)));
	else
		say("%s exit=%d", name, WEXITSTATUS(ws));
}

static void child_fresh(void)
{
	char buf[512];
	char *q = secret_alloc(100), *l = secret_alloc(LARGE);
	check(q && l && secretmem_is_secret(q) && secretmem_is_secret(l), "child: fresh secret blocks", "");
	if (!q || !l)
		return;
	check(strstr(maps_line(q, buf, sizeof(buf)), "/secretmem") &&
	      strstr(maps_line(l, buf, sizeof(buf)), "/secretmem"),
	      "child: fresh blocks in /secretmem", buf);
	strcpy(q, "child");
	memset(l, 7, LARGE);
	check(!strcmp(q, "child") && l[LARGE - 1] == 7, "child: fresh blocks hold what it wrote", "");
	free(q);
	free(l);
}

static void child_free_parents(void)
{
	free(f_small);
	free(f_large);
	say("child: freed the parent's blocks");
}

static void child_touch_small(void)
{
	volatile char *p = f_small;
	say("child: read %d", p[0]);
}

static void child_touch_large(void)
{
	volatile char *p = f_large;
	p[100] = 1;
	say("child: wrote");
}

static int cmd_drop(void)
{
	f_small = must(secret_alloc(SMALL), "small");
	f_large = must(secret_alloc(LARGE), "large");
	strcpy(f_small, "parent secret");
	memset(f_large, 'L', LARGE);
	in_child("child_fresh", child_fresh);
	in_child("child_free_parent_blocks", child_free_parents);
	in_child("child_read_parent_small", child_touch_small);
	in_child("child_write_parent_large", child_touch_large);
	check(!strcmp(f_small, "parent secret") && f_large[100] == 'L' && f_large[LARGE - 1] == 'L',
	      "parent: blocks intact", f_small);
	return failures ? 1 : 0;
}

/* ---- posix_spawn, vfork, system, popen while holding secrets ---- */

static void report_status(const char *name, int ws)
{
	if (WIFEXITED(ws))
		say("%s exit=%d", name, WEXITSTATUS(ws));
	else if (WIFSIGNALED(ws))
		say("%s signal=%s", name, sigabbrev_np(WTERMSIG(ws)));
	else
		say("%s status=%d", name, ws);
}

static void spawn_true(const char *name)
{
	pid_t pid;
	int ws;
	char *argv[] = { "true", NULL };
	int e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	if (e || waitpid(pid, &ws, 0) != pid) {
		say("%s FAIL %s", name, strerror(e ? e : errno));
		failures++;
		return;
	}
	report_status(name, ws);
}

static int cmd_spawn(void)
{
	char *s = must(secret_alloc(SMALL), "small");
	char *l = must(secret_alloc(LARGE), "large");
	strcpy(s, "held across spawns");
	memset(l, 'S', LARGE);

	spawn_true("posix_spawn");

	pid_t pid = vfork();
	if (pid == 0) {
		char *argv[] = { "sh", "-c", "exit 5", NULL };
		execve("/bin/sh", argv, environ);
		_exit(127);
	}
	int ws;
	if (pid > 0 && waitpid(pid, &ws, 0) == pid)
		report_status("vfork_exec", ws);
	else
		check(false, "vfork_exec", strerror(errno));

	pid = vfork();
	if (pid == 0)
		_exit(6);
	if (pid > 0 && waitpid(pid, &ws, 0) == pid)
		report_status("vfork_exit", ws);
	else
		check(false, "vfork_exit", strerror(errno));

	ws = system("exit 7");
	report_status("system", ws);

	FILE *f = popen("echo spawned", "r");
	char line[64] = "";
	if (!f || !fgets(line, sizeof(line), f))
		check(false, "popen", strerror(errno));
	else
		say("popen read %.*s exit=%d", (int)strcspn(line, "\n"), line, WEXITSTATUS(pclose(f)));

	/* The same inside a scope: what posix_spawn allocates is secret then. */
	secretmem_scope_begin();
	spawn_true("posix_spawn_in_scope");
	secretmem_scope_end();

	check(secretmem_is_secret(s) && !strcmp(s, "held across spawns") && l[0] == 'S' &&
	      l[LARGE - 1] == 'S', "secrets intact", "");
	free(s);
	free(l);
	return failures ? 1 : 0;
}

/* ---- out of secret memory ---- */

#define MAXBLOCKS 100000
static void *held[MAXBLOCKS];

static int cmd_exhaust(size_t size)
{
	say("main");
	size_t n = 0;
	void *p = NULL;
	errno = 0;
	while (n < MAXBLOCKS && (p = secret_alloc(size)) != NULL) {
		if (!secretmem_is_secret(p)) {
			say("block %zu FAIL not secret", n);
			return 1;
		}
		memset(p, 0x5a, size);
		held[n++] = p;
	}
	int e = errno;
	if (p) {
		say("never NULL after %zu blocks FAIL", n);
		return 1;
	}
	say("null after %zu bytes errno=%s", n * size, ename(e));
	/* Again: still NULL and ENOMEM, and no second warning. */
	errno = 0;
	p = secret_alloc(size);
	e = errno;
	say("again null=%d errno=%s", p == NULL, ename(e));
	/* The ordinary heap is untouched by it. */
	char *big = must(malloc(4 << 20), "ordinary");
	memset(big, 1, 4 << 20);
	char *small[1000];
	for (int i = 0; i < 1000; i++) {
		small[i] = must(malloc(i + 1), "ordinary");
		memset(small[i], 2, i + 1);
	}
	bool ok = !secretmem_is_secret(big) && big[(4 << 20) - 1] == 1;
	for (int i = 0; i < 1000; i++) {
		ok = ok && small[i][i] == 2 && !secretmem_is_secret(small[i]);
		free(small[i]);
	}
	free(big);
	check(ok, "ordinary allocations", "");
	/* Freed secret memory is usable again. */
	for (size_t i = 0; i < n; i++)
		free(held[i]);
	p = secret_alloc(size);
	check(p && secretmem_is_secret(p), "secret allocation after free", strerror(errno));
	free(p);
	return failures ? 1 : 0;
}

/* ---- misuse ---- */

static int cmd_misuse(const char *kind)
{
	bool large = strstr(kind, "large") != NULL;
	char *p = must(secret_alloc(large ? LARGE : SMALL), "block");
	char *keep = must(secret_alloc(large ? LARGE : SMALL), "neighbour"); /* p is not the last */
	if (!secretmem_is_secret(p)) {
		say("block not secret FAIL");
		return 1;
	}
	memset(p, 'x', large ? LARGE : SMALL);
	char *again = p;
	LAUNDER(again);
	if (!strncmp(kind, "double", 6)) {
		free(p);
		say("ptr %p", (void *)again);
		free(again);
	} else if (!strncmp(kind, "interior", 8)) {
		char *q = p + (large ? 4096 + 16 : 16);
		LAUNDER(q);
		say("ptr %p", (void *)q);
		free(q);
	} else if (!strncmp(kind, "realloc-freed", 13)) {
		free(p);
		say("ptr %p", (void *)again);
		p = realloc(again, large ? 2 * LARGE : 2 * SMALL);
		LAUNDER(p);
	} else {
		fprintf(stderr, "arena_prog: unknown misuse %s\n", kind);
		return 2;
	}
	say("survived");
	free(keep);
	return 0;
}

/* ---- wipe ---- */

/* Bytes of [p+from, p+to) that are not zero. */
static size_t nonzero(const char *p, size_t from, size_t to)
{
	size_t n = 0;
	for (size_t i = from; i < to; i++)
		n += p[i] != 0;
	return n;
}

static int cmd_wipe(void)
{
	/* Read through dangling pointers: a live block keeps the arena from giving
	 * its memory back when nothing is live (the reads would fault then). */
	char *pin = must(secret_alloc(16), "pin");
	LAUNDER(pin);
	/* A small block: freed, read through the dangling pointer (its first 16 bytes
	 * hold the free list's link words), then handed out again. */
	char *p = must(secret_alloc(200), "small");
	size_t us = malloc_usable_size(p);
	memset(p, 0xa5, us);
	say("small usable=%zu pattern=%zu", us, nonzero(p, 0, us));
	char *old = p;
	LAUNDER(old);
	free(p);
	say("small freed nonzero_after_links=%zu", nonzero(old, 16, us));
	char *q = must(secret_alloc(200), "small again");
	if (q != old) {
		say("small realloc_same_address FAIL got %p, freed %p", (void *)q, (void *)old);
		failures++;
	}
	say("small reused same=%d nonzero=%zu", q == old, nonzero(q, 0, us));
	free(q);

	/* A large block, likewise: its pages are reused before any fresh ones. */
	p = must(secret_alloc(LARGE), "large");
	us = malloc_usable_size(p);
	memset(p, 0xa5, us);
	old = p;
	LAUNDER(old);
	free(p);
	say("large freed nonzero=%zu", nonzero(old, 0, us));
	q = must(secret_alloc(LARGE), "large again");
	say("large reused same=%d nonzero=%zu", q == old, nonzero(q, 0, us));
	free(q);

	/* realloc moving a small block to a bigger class. */
	p = must(secret_alloc(100), "small to move");
	us = malloc_usable_size(p);
	memset(p, 0x5a, us);
	old = p;
	LAUNDER(old);
	q = realloc(p, 5000);
	say("small moved moved=%d copied=%d old_nonzero_after_links=%zu", q && q != old,
	    q && nonzero(q, 0, 100) == 100 && (unsigned char)q[99] == 0x5a, nonzero(old, 16, us));
	free(q);

	/* realloc moving a large block (a neighbour keeps it from growing in place). */
	p = must(secret_alloc(LARGE), "large to move");
	char *wall = must(secret_alloc(LARGE), "wall");
	memset(p, 0x5a, LARGE);
	old = p;
	LAUNDER(old);
	q = realloc(p, 4 * LARGE);
	say("large moved moved=%d copied=%d old_nonzero=%zu", q && q != old,
	    q && nonzero(q, 0, LARGE) == LARGE && (unsigned char)q[LARGE - 1] == 0x5a,
	    nonzero(old, 0, LARGE));
	free(q);
	free(wall);

	/* realloc shrinking a large block in place: the pages given back are zero. */
	p = must(secret_alloc(LARGE), "large to shrink");
	memset(p, 0x5a, LARGE);
	old = p;
	LAUNDER(old);
	q = realloc(p, 20000);
	say("large shrunk in_place=%d kept=%d tail_nonzero=%zu", q == old,
	    q && nonzero(q, 0, 20000) == 20000, q == old ? nonzero(old, 5 * 4096, LARGE) : (size_t)-1);
	free(q);

	/* An ordinary block that realloc moves into secret memory (from a scope): the
	 * ordinary copy is wiped before glibc gets it back (glibc writes its own 16
	 * bytes of links at the start of a freed chunk). */
	p = must(malloc(300), "ordinary");
	us = malloc_usable_size(p);
	memset(p, 0x5a, us);
	old = p;
	LAUNDER(old);
	secretmem_scope_begin();
	q = realloc(p, 300);
	secretmem_scope_end();
	say("ordinary to secret moved=%d secret=%d copied=%d old_nonzero_after_links=%zu",
	    q && q != old, q && secretmem_is_secret(q), q && nonzero(q, 0, 300) == 300,
	    nonzero(old, 16, us));
	free(q);
	free(pin);
	return failures ? 1 : 0;
}

/* ---- out of secret memory while another thread allocates ---- */

static volatile int secret_done;
static unsigned long other_iters, other_errors, iters_at_done;

static void *other_thread(void *arg)
{
	(void)arg;
	uint64_t s = 88172645463325252ULL;
	void *slots[32] = { 0 };
	size_t sizes[32] = { 0 };
	unsigned long after = 0;
	/* Until the main thread is done and 20000 more iterations after that. */
	for (;;) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		unsigned k = (unsigned)(s % 32);
		if (slots[k]) {
			unsigned char *b = slots[k];
			for (size_t i = 0; i < sizes[k]; i++)
				if (b[i] != (unsigned char)(k + sizes[k]))
					other_errors++;
			free(slots[k]);
			slots[k] = NULL;
		} else {
			sizes[k] = (size_t)(s >> 16) % 20000 + 1;
			slots[k] = malloc(sizes[k]);
			if (!slots[k] || secretmem_is_secret(slots[k])) {
				other_errors++;
				continue;
			}
			memset(slots[k], (int)(k + sizes[k]), sizes[k]);
		}
		other_iters++;
		if (secret_done && !iters_at_done)
			iters_at_done = other_iters;
		if (secret_done && ++after >= 20000)
			break;
	}
	for (unsigned k = 0; k < 32; k++)
		free(slots[k]);
	return NULL;
}

static int cmd_maxthread(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, other_thread, NULL))
		return 2;
	/* Let the other thread get going first. */
	while (__atomic_load_n(&other_iters, __ATOMIC_RELAXED) < 1000)
		sched_yield();
	size_t n = 0;
	void *p;
	errno = 0;
	while (n < MAXBLOCKS && (p = secret_alloc(16384)) != NULL)
		held[n++] = p;
	int e = errno;
	unsigned long during = __atomic_load_n(&other_iters, __ATOMIC_RELAXED);
	secret_done = 1;
	pthread_join(t, NULL);
	say("secret null after %zu blocks errno=%s", n, ename(e));
	say("other thread iterations_before_done=%d errors=%lu finished=1", during >= 1000,
	    other_errors);
	for (size_t i = 0; i < n; i++)
		free(held[i]);
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && !strcmp(argv[i], "--sites")) {
		use_sites = true;
		i++;
	}
	if (i >= argc)
		goto usage;
	const char *cmd = argv[i++];
	if (!strcmp(cmd, "hold"))
		return cmd_hold();
	if (!strcmp(cmd, "fork"))
		return cmd_fork(i < argc && !strcmp(argv[i], "pause"));
	if (!strcmp(cmd, "drop"))
		return cmd_drop();
	if (!strcmp(cmd, "spawn"))
		return cmd_spawn();
	if (!strcmp(cmd, "exhaust") && i < argc)
		return cmd_exhaust(strtoul(argv[i], NULL, 0));
	if (!strcmp(cmd, "misuse") && i < argc)
		return cmd_misuse(argv[i]);
	if (!strcmp(cmd, "wipe"))
		return cmd_wipe();
	if (!strcmp(cmd, "maxthread"))
		return cmd_maxthread();
usage:
	fprintf(stderr, "usage: arena_prog [--sites] hold|fork [pause]|drop|spawn|exhaust SIZE|"
			"misuse KIND|wipe|maxthread\n");
	return 2;
}
