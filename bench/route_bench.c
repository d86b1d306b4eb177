/* SPDX-License-Identifier: MIT */
/*
 * route_bench: the cost of routing decisions, in ns per allocation+free, measured
 * by the caller's kind. Run it under the shim with the rule the case needs and
 * compare with the same run without the shim (see bench/run).
 *
 *   route_bench CASE [-n N]
 *   CASE: direct     malloc from ordinary code (the cached decision)
 *         tagged     malloc through a wrapper ending in `return malloc(n)` (a tail
 *                    call, as OpenSSL's CRYPTO_malloc): with SECRETMEM_LIBS=route_bench
 *                    the program is a tagged object and its calls go to the shim's
 *                    secret entry points (no decision)
 *         strdup     strdup from ordinary code (the shim is strdup: cached)
 *         wcsdup     wcsdup from ordinary code (libc is the caller: a look-through walk)
 *         cxxnew     operator new from ordinary code (libstdc++ is the caller: a walk)
 *         deep       malloc 8 frames below main (with SECRETMEM_DEPTH: a depth walk)
 *         dlopen     dlopen libz, one deflateInit/deflateEnd (libz allocates: the
 *                    first call from a new object makes the shim learn it, and
 *                    resolve the rules against it), dlclose; ns per cycle
 *         startup    posix_spawn this program (case "noop") and wait: ns per
 *                    process, start-up rule resolution included
 *         noop       nothing (the child of "startup")
 */
#include <dlfcn.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

extern char **environ;

void *cxx_new(size_t n);
void cxx_delete(void *p);

static long n = 1000000;

#define NOINLINE __attribute__((noinline))
#define KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")

static NOINLINE void direct(void)
{
	void *p = malloc(64);
	KEEP(p);
	free(p);
}

/* Ends in a jump to malloc: the return address malloc sees is tagged_pair's. */
static NOINLINE void *wrap_alloc(size_t size)
{
	return malloc(size);
}

static NOINLINE void tagged_pair(void)
{
	void *p = wrap_alloc(64);
	KEEP(p);
	free(p);
}

static NOINLINE void dup_str(void)
{
	char *p = strdup("a string of some length, like a key name");
	KEEP(p);
	free(p);
}

static NOINLINE void dup_wcs(void)
{
	wchar_t *p = wcsdup(L"a string of some length, like a key name");
	KEEP(p);
	free(p);
}

static NOINLINE void cxxnew(void)
{
	void *p = cxx_new(64);
	KEEP(p);
	cxx_delete(p);
}

static NOINLINE void deep(int level)
{
	if (level == 0) {
		direct();
		return;
	}
	deep(level - 1);
	KEEP(level);
}

/* The parts of zlib's API used here (no zlib.h needed: the library is dlopened). */
struct zstream {
	const unsigned char *next_in;
	unsigned avail_in;
	unsigned long total_in;
	unsigned char *next_out;
	unsigned avail_out;
	unsigned long total_out;
	const char *msg;
	void *state;
	void *zalloc, *zfree, *opaque;
	int data_type;
	unsigned long adler, reserved;
};

static NOINLINE int zcycle(void)
{
	void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -1;
	int (*init)(struct zstream *, int, const char *, int) =
		(int (*)(struct zstream *, int, const char *, int))dlsym(h, "deflateInit_");
	int (*end)(struct zstream *) = (int (*)(struct zstream *))dlsym(h, "deflateEnd");
	const char *(*version)(void) = (const char *(*)(void))dlsym(h, "zlibVersion");
	struct zstream z;
	memset(&z, 0, sizeof(z));
	if (!init || !end || !version || init(&z, 1, version(), (int)sizeof(z)) != 0)
		return -1;
	end(&z);
	return dlclose(h);
}

static NOINLINE int spawn_self(void)
{
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return -1;
	self[len] = '\0';
	char *argv[] = { self, (char *)"noop", NULL };
	pid_t pid;
	int st;
	if (posix_spawn(&pid, self, NULL, NULL, argv, environ))
		return -1;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: route_bench direct|tagged|strdup|wcsdup|cxxnew|deep|dlopen|startup|noop [-n N]\n"
		   "  direct   malloc+free from program code (the cached decision)\n"
		   "  tagged   malloc (tail-called from a wrapper)+free; with SECRETMEM_LIBS=route_bench:\n"
		   "           a tagged object's own calls (the shim's secret entry points)\n"
		   "  strdup   strdup+free (the shim is strdup: the cached decision)\n"
		   "  wcsdup   wcsdup+free (libc is the immediate caller: look-through walk)\n"
		   "  cxxnew   operator new+delete (libstdc++ is the immediate caller: look-through walk)\n"
		   "  deep     malloc+free 8 frames below main (SECRETMEM_DEPTH: depth walk)\n"
		   "  dlopen   dlopen libz.so.1, deflateInit+deflateEnd, dlclose (rules on dlopen)\n"
		   "  startup  spawn this program (noop) and wait (start-up rule resolution)\n"
		   "  prints ns per operation; compare runs with and without the shim and rules\n");
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "n:h")) != -1) {
		switch (c) {
		case 'n': n = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *kind = argv[optind];
	if (!strcmp(kind, "noop"))
		return 0;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (!strcmp(kind, "direct"))
			direct();
		else if (!strcmp(kind, "tagged"))
			tagged_pair();
		else if (!strcmp(kind, "strdup"))
			dup_str();
		else if (!strcmp(kind, "wcsdup"))
			dup_wcs();
		else if (!strcmp(kind, "cxxnew"))
			cxxnew();
		else if (!strcmp(kind, "deep"))
			deep(8);
		else if (!strcmp(kind, "dlopen")) {
			if (zcycle()) {
				fprintf(stderr, "route_bench: dlopen/deflateInit of libz.so.1 failed\n");
				return 1;
			}
		} else if (!strcmp(kind, "startup")) {
			if (spawn_self()) {
				fprintf(stderr, "route_bench: posix_spawn of itself failed\n");
				return 1;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
	printf("%s %.1f ns\n", kind, ns);
	return 0;
}
