/* SPDX-License-Identifier: MIT */
/*
 * route_prog: the routing tests' subject. Each case named on the command line makes
 * one or more allocations from a function named for the rule it exercises; every
 * block gets a recognisable content ("blk:NAME") and is reported as
 *
 *   NAME secret=0|1 addr=0x...
 *
 * so that routing.bats can check where it really lives (secretmem_is_secret, the
 * /proc/PID/maps line, what another process can read).
 *
 *   route_prog [pause] CASE...
 *
 * With "pause" it prints "PID n", the block lines and "READY", then waits in pause()
 * until it is killed, with every block still allocated.
 *
 * Build with -O2 -g -fno-optimize-sibling-calls: the functions named in rules must
 * keep their frames, and each returns through a compiler barrier so that a call to
 * an allocator is never a tail call (which would drop the frame the rule names).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

#define NOINLINE __attribute__((noinline, noclone))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")
#define BLK 64

#ifdef WITH_ANNOTATED
/* From libannotated.so and libroutetest.so, linked at build time in
 * route_prog_linked, so both are loaded before main. */
char *annotated_alloc(const char *tag);
char *routetest_alloc(const char *tag);
#endif

/* ---- reporting ---- */

#define MAX_BLOCKS 128
static struct {
	char name[48];
	void *p;
	int secret;
	int gone; /* freed or moved by realloc: not freed again at exit */
} blocks[MAX_BLOCKS];
static int nblocks;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;

/* Records a block; is_secret is taken now, by the thread that holds the block. */
static void record(const char *name, void *p)
{
	if (!p) {
		fprintf(stderr, "route_prog: %s: allocation failed: %s\n", name, strerror(errno));
		exit(2);
	}
	pthread_mutex_lock(&blocks_lock);
	if (nblocks < MAX_BLOCKS) {
		snprintf(blocks[nblocks].name, sizeof(blocks[nblocks].name), "%s", name);
		blocks[nblocks].p = p;
		blocks[nblocks].secret = secretmem_is_secret(p);
		nblocks++;
	}
	pthread_mutex_unlock(&blocks_lock);
}

/* The block at p was freed or moved (its first live entry). */
static void forget(const void *p)
{
	pthread_mutex_lock(&blocks_lock);
	for (int k = 0; k < nblocks; k++) {
		if (blocks[k].p == p && !blocks[k].gone) {
			blocks[k].gone = 1;
			break;
		}
	}
	pthread_mutex_unlock(&blocks_lock);
}

/* A line for a fact other than a block (e.g. "cross_free ok"). */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char notes[8192];
static size_t notes_len;

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&blocks_lock);
	int n = vsnprintf(notes + notes_len, sizeof(notes) - notes_len, fmt, ap);
	if (n > 0 && notes_len + (size_t)n + 1 < sizeof(notes)) {
		notes_len += (size_t)n;
		notes[notes_len++] = '\n';
		notes[notes_len] = '\0';
	}
	pthread_mutex_unlock(&blocks_lock);
	va_end(ap);
}

static void fill(char *p, const char *name)
{
	snprintf(p, BLK, "blk:%s", name);
}

/* ---- allocation sites (the names rules refer to) ---- */

NOINLINE char *plain_alloc(const char *name)
{
	char *p = malloc(BLK);
	KEEP_FRAME();
	if (p)
		fill(p, name);
	return p;
}

NOINLINE char *load_key(void)
{
	char *p = malloc(BLK);
	KEEP_FRAME();
	if (p)
		fill(p, "load_key");
	return p;
}

/* static: found only in .symtab, not .dynsym */
static NOINLINE char *static_secret(void)
{
	char *p = calloc(1, BLK);
	KEEP_FRAME();
	if (p)
		fill(p, "static_secret");
	return p;
}

NOINLINE char *dup_key(const char *s)
{
	char *p = strdup(s);
	KEEP_FRAME();
	return p;
}

NOINLINE char *ndup_key(const char *s)
{
	char *p = strndup(s, 100);
	KEEP_FRAME();
	return p;
}

/* 1000 strdup+free pairs from a function no rule names. */
NOINLINE void dup_loop(void)
{
	for (int i = 0; i < 1000; i++) {
		char *p = strdup("blk:dup_loop");
		/* the compiler must not see that p is unused: clang would remove the
		 * strdup+free pair */
		__asm__ volatile("" : : "r"(p) : "memory");
		KEEP_FRAME();
		free(p);
	}
}

/* getline's buffer is allocated (and grown) inside libc. */
NOINLINE char *read_line(void)
{
	static const char text[] = "blk:read_line this line is longer than the first buffer "
				   "getline allocates, so that it also grows it\nsecond\n";
	FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");
	if (!f)
		return NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	KEEP_FRAME();
	fclose(f);
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

NOINLINE char *asprintf_key(void)
{
	char *p = NULL;
	if (asprintf(&p, "blk:%s %0100d", "asprintf_key", 7) < 0)
		return NULL;
	KEEP_FRAME();
	return p;
}

/* open_memstream's buffer is allocated at open and grown by stdio on write/close. */
NOINLINE char *memstream_key(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "blk:memstream_key ");
	for (int i = 0; i < 200; i++)
		fprintf(f, "%02d", i % 100);
	fclose(f);
	KEEP_FRAME();
	return buf;
}

/* An application's allocation wrapper: the call site malloc sees is xmalloc. */
NOINLINE void *xmalloc(size_t n)
{
	void *p = malloc(n);
	KEEP_FRAME();
	if (!p)
		abort();
	return p;
}

NOINLINE char *wrapped_key(void)
{
	char *p = xmalloc(BLK);
	KEEP_FRAME();
	fill(p, "wrapped_key");
	return p;
}

/* For SECRETMEM_DEPTH: a rule names outer, the allocation is in inner. */
NOINLINE char *inner(void)
{
	char *p = malloc(BLK);
	KEEP_FRAME();
	if (p)
		fill(p, "inner");
	return p;
}

NOINLINE char *outer(void)
{
	char *p = inner();
	KEEP_FRAME();
	return p;
}

NOINLINE void *realloc_key(void *p, size_t n)
{
	void *q = realloc(p, n);
	KEEP_FRAME();
	return q;
}

NOINLINE void *plain_realloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	KEEP_FRAME();
	return q;
}

/* ---- dlopen ---- */

/* Loads lib, calls its routetest_alloc (or annotated_alloc), records the block as
 * name and the object's base as "name_base"; closes the library if asked. */
static void *lib_call(const char *lib, const char *name, int close_it)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "route_prog: dlopen %s: %s\n", lib, dlerror());
		exit(2);
	}
	char *(*fn)(const char *) = (char *(*)(const char *))dlsym(h, "routetest_alloc");
	if (!fn)
		fn = (char *(*)(const char *))dlsym(h, "annotated_alloc");
	if (!fn) {
		fprintf(stderr, "route_prog: %s has no allocating function\n", lib);
		exit(2);
	}
	Dl_info info;
	if (dladdr((void *)fn, &info))
		note("%s_base %p", name, info.dli_fbase);
	record(name, fn(name));
	if (close_it && dlclose(h)) {
		fprintf(stderr, "route_prog: dlclose %s: %s\n", lib, dlerror());
		exit(2);
	}
	return h;
}

/* ---- scopes and threads ---- */

static void scope_nested(void)
{
	record("before_scope", plain_alloc("before_scope"));
	secretmem_scope_begin();
	record("scope_outer", plain_alloc("scope_outer"));
	secretmem_scope_begin();
	record("scope_inner", plain_alloc("scope_inner"));
	record("scope_inner_strdup", strdup("blk:scope_inner_strdup"));
	secretmem_scope_end();
	record("scope_after_inner_end", plain_alloc("scope_after_inner_end"));
	secretmem_scope_end();
	record("after_scope", plain_alloc("after_scope"));
}

static pthread_barrier_t bar;
static void *cross_block;

/* Thread A: opens a scope, lets B allocate while it is open, allocates itself. */
static void *scope_thread_a(void *arg)
{
	(void)arg;
	secretmem_scope_begin();
	pthread_barrier_wait(&bar); /* 1: scope open */
	pthread_barrier_wait(&bar); /* 2: B has allocated */
	record("thread_scope", plain_alloc("thread_scope"));
	cross_block = plain_alloc("cross_block");
	record("cross_block", cross_block);
	secretmem_scope_end();
	pthread_barrier_wait(&bar); /* 3: cross_block ready, scope closed */
	return NULL;
}

/* Thread B: allocates while A's scope is open, then frees A's secret block. */
static void *scope_thread_b(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&bar); /* 1 */
	record("other_thread", plain_alloc("other_thread"));
	pthread_barrier_wait(&bar); /* 2 */
	pthread_barrier_wait(&bar); /* 3 */
	int was = secretmem_is_secret(cross_block);
	int intact = strcmp(cross_block, "blk:cross_block") == 0;
	forget(cross_block);
	free(cross_block);
	/* The freed block's slot must not be handed to ordinary allocations. */
	char *after = plain_alloc("other_thread_after");
	record("other_thread_after", after);
	note("cross_free secret_before=%d intact=%d ok", was, intact);
	return NULL;
}

static void scope_threads(void)
{
	pthread_t a, b;
	pthread_barrier_init(&bar, NULL, 2);
	if (pthread_create(&a, NULL, scope_thread_a, NULL) ||
	    pthread_create(&b, NULL, scope_thread_b, NULL)) {
		fprintf(stderr, "route_prog: pthread_create failed\n");
		exit(2);
	}
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_barrier_destroy(&bar);
	/* the main thread never opened a scope */
	record("main_thread", plain_alloc("main_thread"));
}

/* ---- realloc ---- */

static void realloc_cases(void)
{
	/* ordinary block, grown from a tagged site: moves into secret memory */
	char *p = plain_alloc("realloc_in");
	record("realloc_in_before", p);
	forget(p);
	char *q = realloc_key(p, 4 * BLK);
	if (q && strcmp(q, "blk:realloc_in") != 0)
		note("realloc_in content lost");
	record("realloc_in", q);

	/* secret block, grown from an untagged site: stays secret */
	char *s = load_key();
	record("realloc_keep_before", s);
	forget(s);
	char *t = plain_realloc(s, 64 * BLK);
	if (t && strcmp(t, "blk:load_key") != 0)
		note("realloc_keep content lost");
	if (t)
		fill(t, "realloc_keep");
	record("realloc_keep", t);
}

/* ---- main ---- */

static int run_case(char **argv, int i)
{
	const char *c = argv[i];
	if (!strcmp(c, "plain")) {
		record("plain", plain_alloc("plain"));
	} else if (!strcmp(c, "load_key")) {
		record("load_key", load_key());
	} else if (!strcmp(c, "static_secret")) {
		record("static_secret", static_secret());
	} else if (!strcmp(c, "dup_key")) {
		record("dup_key", dup_key("blk:dup_key"));
	} else if (!strcmp(c, "ndup_key")) {
		record("ndup_key", ndup_key("blk:ndup_key"));
	} else if (!strcmp(c, "dup_loop")) {
		dup_loop();
	} else if (!strcmp(c, "read_line")) {
		record("read_line", read_line());
	} else if (!strcmp(c, "asprintf_key")) {
		record("asprintf_key", asprintf_key());
	} else if (!strcmp(c, "memstream_key")) {
		record("memstream_key", memstream_key());
	} else if (!strcmp(c, "wrapped_key")) {
		record("wrapped_key", wrapped_key());
	} else if (!strcmp(c, "depth")) {
		record("inner", outer());
	} else if (!strcmp(c, "realloc")) {
		realloc_cases();
	} else if (!strcmp(c, "scope")) {
		scope_nested();
	} else if (!strcmp(c, "threads")) {
		scope_threads();
	} else if (!strcmp(c, "lib") && argv[i + 1]) {
		/* lib PATH: dlopen, allocate, keep loaded */
		lib_call(argv[i + 1], "lib", 0);
		return i + 2;
	} else if (!strcmp(c, "reload") && argv[i + 1] && argv[i + 2]) {
		/* reload TAGGED PLAIN: tagged, dlclose, plain (likely at the same address),
		 * dlclose, tagged again */
		lib_call(argv[i + 1], "lib_first", 1);
		lib_call(argv[i + 2], "plain_lib", 1);
		lib_call(argv[i + 1], "lib_again", 0);
		return i + 3;
#ifdef WITH_ANNOTATED
	} else if (!strcmp(c, "annotated_linked")) {
		record("annotated_linked", annotated_alloc("annotated_linked"));
	} else if (!strcmp(c, "lib_linked")) {
		record("lib_linked", routetest_alloc("lib_linked"));
#endif
	} else {
		fprintf(stderr, "route_prog: unknown case %s\n", c);
		exit(2);
	}
	return i + 1;
}

int main(int argc, char **argv)
{
	int i = 1, pause_at_end = 0;
	if (i < argc && !strcmp(argv[i], "pause")) {
		pause_at_end = 1;
		i++;
	}
	while (i < argc)
		i = run_case(argv, i);

	if (pause_at_end)
		printf("PID %d\n", (int)getpid());
	for (int k = 0; k < nblocks; k++)
		printf("%s secret=%d addr=%p\n", blocks[k].name, blocks[k].secret, blocks[k].p);
	fputs(notes, stdout);
	printf("active=%d\n", secretmem_active());
	if (pause_at_end) {
		printf("READY\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	for (int k = 0; k < nblocks; k++)
		if (!blocks[k].gone)
			free(blocks[k].p);
	return 0;
}
