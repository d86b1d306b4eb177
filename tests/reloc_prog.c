/* SPDX-License-Identifier: MIT */
/*
 * reloc_prog: an untagged program that has libreloc.so (reloc_lib.c) allocate for
 * it, or libcrypto/libssl. Each case prints
 *
 *   NAME secret=0|1 addr=0x...
 *
 * with the block's content "blk:NAME", for reloc.bats to check where it lives.
 *
 *   reloc_prog [pause] [open PATH now|lazy|deep|deeplazy] [rescan] CASE...
 *
 * open: dlopen the library (else it is linked: DT_NEEDED, or LD_PRELOADed, found
 * by dlsym(RTLD_DEFAULT)). rescan: dlclose(dlopen(NULL)), after which the shim has
 * looked at the loaded objects again (it does after a dlopen once the shim wraps
 * dlopen; until then this stands in). Cases: alloc calloc realloc strdup aligned
 * strndup (libreloc's own strndup) ptr table (libreloc's functions), plain (the program's own malloc), freesecret (a
 * secret block from a scope, freed by libreloc: must not abort), reallocsecret
 * (one reallocated by libreloc: stays secret, keeps its content), early (what
 * libreloc's early constructor allocated), ossl (OPENSSL_malloc from the program),
 * threads (two threads allocate and free through libreloc while the shim
 * rewrites its slots: a rescan in the middle), reopen N PATH MODE (N rounds of
 * dlopen of PATH as MODE, lib_strdup and lib_free of a secret block, dlclose,
 * while another thread allocates and frees from the program: prints how many of
 * lib_strdup's blocks were not secret), sslctx (SSL_CTX_new: libssl's OPENSSL_zalloc, through CRYPTO_zalloc), sslbuf
 * (SSL_CIPHER_description with no buffer: libssl's own OPENSSL_malloc call),
 * hooks (the program gives OpenSSL counting allocation functions with
 * CRYPTO_set_mem_functions, as stunnel does, then has libcrypto's OPENSSL_strdup
 * allocate through them; must come before any OpenSSL call).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

#ifdef WITH_OPENSSL
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#endif

static void *lib = RTLD_DEFAULT;

static void *fn(const char *name)
{
	void *f = dlsym(lib, name);
	if (!f) {
		fprintf(stderr, "reloc_prog: %s: %s\n", name, dlerror());
		exit(2);
	}
	return f;
}

static volatile int stop;
static long rounds[2];

static void *churn(void *arg)
{
	long *n = arg;
	void *(*alloc)(size_t) = (void *(*)(size_t))fn("lib_alloc");
	void (*release)(void *) = (void (*)(void *))fn("lib_free");
	while (!stop) {
		void *p = alloc(64);
		if (!p)
			abort();
		((char *)p)[0] = 1;
		release(p);
		++*n;
	}
	return NULL;
}

static void threads(void)
{
	pthread_t t[2];
	for (int k = 0; k < 2; k++)
		if (pthread_create(&t[k], NULL, churn, &rounds[k]))
			exit(1);
	usleep(20000);
	dlclose(dlopen(NULL, RTLD_NOW)); /* the shim rewrites libreloc's slots now */
	usleep(20000);
	stop = 1;
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	printf("threads done %d\n", rounds[0] > 0 && rounds[1] > 0);
}

static void *program_churn(void *arg)
{
	(void)arg;
	while (!stop) {
		void *volatile p = malloc(32);
		free(p);
	}
	return NULL;
}

/* The library loaded and unloaded again and again while another thread allocates
 * (its rescans take the scan lock at any moment). */
static void reopen(long n, const char *path, const char *m)
{
	int flags = !strcmp(m, "lazy") || !strcmp(m, "deeplazy") ? RTLD_LAZY : RTLD_NOW;
	if (!strncmp(m, "deep", 4))
		flags |= RTLD_DEEPBIND;
	pthread_t t;
	if (pthread_create(&t, NULL, program_churn, NULL))
		exit(1);
	long missed = 0;
	for (long i = 0; i < n; i++) {
		void *h = dlopen(path, flags);
		if (!h) {
			fprintf(stderr, "reloc_prog: %s\n", dlerror());
			exit(2);
		}
		char *(*dup)(const char *) = (char *(*)(const char *))dlsym(h, "lib_strdup");
		void (*release)(void *) = (void (*)(void *))dlsym(h, "lib_free");
		if (!dup || !release)
			exit(2);
		char *s = dup("blk:reopen");
		missed += !secretmem_is_secret(s);
		secretmem_scope_begin();
		void *p = malloc(64);
		secretmem_scope_end();
		release(p); /* a secret block: glibc's free would abort */
		release(s);
		dlclose(h);
	}
	stop = 1;
	pthread_join(t, NULL);
	printf("reopen %ld missed %ld done\n", n, missed);
}

#ifdef WITH_OPENSSL
/* Allocation functions a program gives OpenSSL: they count, so they are no tail
 * calls of malloc, and live in the program. */
static size_t hook_bytes;
static void *hook_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	void *p = malloc(n);
	if (p)
		hook_bytes += n;
	return p;
}
static void *hook_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	void *q = realloc(p, n);
	if (q)
		hook_bytes += n;
	return q;
}
static void hook_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	hook_bytes -= p != NULL;
	free(p);
}
#endif

static void report(const char *name, void *p, int fill)
{
	if (!p) {
		fprintf(stderr, "reloc_prog: %s: allocation failed\n", name);
		exit(1);
	}
	if (fill)
		snprintf(p, 64, "blk:%s", name);
	printf("%s secret=%d addr=%p\n", name, secretmem_is_secret(p), p);
}

int main(int argc, char **argv)
{
	int i = 1, do_pause = 0;
	if (i < argc && !strcmp(argv[i], "pause")) {
		do_pause = 1;
		i++;
	}
	if (i + 2 < argc && !strcmp(argv[i], "open")) {
		const char *m = argv[i + 2];
		int flags = !strcmp(m, "lazy") || !strcmp(m, "deeplazy") ? RTLD_LAZY : RTLD_NOW;
		if (!strncmp(m, "deep", 4))
			flags |= RTLD_DEEPBIND;
		lib = dlopen(argv[i + 1], flags);
		if (!lib) {
			fprintf(stderr, "reloc_prog: %s\n", dlerror());
			return 2;
		}
		i += 3;
	}
	if (do_pause)
		printf("PID %d\n", (int)getpid());
	for (; i < argc; i++) {
		const char *c = argv[i];
		if (!strcmp(c, "rescan")) {
			dlclose(dlopen(NULL, RTLD_NOW));
		} else if (!strcmp(c, "alloc")) {
			report(c, ((void *(*)(size_t))fn("lib_alloc"))(64), 1);
		} else if (!strcmp(c, "calloc")) {
			report(c, ((void *(*)(size_t))fn("lib_calloc"))(64), 1);
		} else if (!strcmp(c, "realloc")) {
			char *p = malloc(16); /* the program's: ordinary */
			if (p)
				strcpy(p, "blk:realloc");
			report(c, ((void *(*)(void *, size_t))fn("lib_realloc"))(p, 64), 0);
		} else if (!strcmp(c, "strndup")) {
			report(c, ((char *(*)(const char *, size_t))fn("lib_strndup"))("blk:strndup", 64), 0);
		} else if (!strcmp(c, "strdup")) {
			report(c, ((char *(*)(const char *))fn("lib_strdup"))("blk:strdup"), 0);
		} else if (!strcmp(c, "aligned")) {
			report(c, ((void *(*)(size_t))fn("lib_aligned"))(64), 1);
		} else if (!strcmp(c, "ptr")) {
			void *(*m)(size_t) = ((void *(*(*)(void))(size_t))fn("lib_malloc_ptr"))();
			report(c, m(64), 1);
		} else if (!strcmp(c, "table")) {
			report(c, ((void *(*)(size_t))fn("lib_table_alloc"))(64), 1);
		} else if (!strcmp(c, "threads")) {
			threads();
		} else if (!strcmp(c, "reopen") && i + 3 < argc) {
			reopen(atol(argv[i + 1]), argv[i + 2], argv[i + 3]);
			i += 3;
		} else if (!strcmp(c, "plain")) {
			report(c, malloc(64), 1);
		} else if (!strcmp(c, "freesecret")) {
			secretmem_scope_begin();
			void *p = malloc(64);
			secretmem_scope_end();
			printf("freesecret_block secret=%d\n", secretmem_is_secret(p));
			((void (*)(void *))fn("lib_free"))(p);
			printf("freesecret done\n");
		} else if (!strcmp(c, "reallocsecret")) {
			secretmem_scope_begin();
			char *p = malloc(32);
			secretmem_scope_end();
			if (p)
				strcpy(p, "blk:reallocsecret");
			p = ((void *(*)(void *, size_t))fn("lib_realloc"))(p, 4096);
			printf("reallocsecret secret=%d same=%d\n", secretmem_is_secret(p),
			       p && !strcmp(p, "blk:reallocsecret"));
		} else if (!strcmp(c, "early")) {
			report(c, ((char *(*)(void))fn("lib_early"))(), 0);
#ifdef WITH_OPENSSL
		} else if (!strcmp(c, "ossl")) {
			report(c, OPENSSL_malloc(64), 1);
		} else if (!strcmp(c, "hooks")) {
			if (!CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free))
				return 3;
			report(c, OPENSSL_strdup("blk:hooks"), 0);
			printf("hook_bytes %d\n", hook_bytes > 0);
		} else if (!strcmp(c, "sslctx")) {
			report(c, SSL_CTX_new(TLS_method()), 0);
		} else if (!strcmp(c, "sslbuf")) {
			SSL_CTX *ctx = SSL_CTX_new(TLS_method());
			const SSL_CIPHER *ci = ctx ? sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(ctx), 0) : NULL;
			report(c, ci ? SSL_CIPHER_description(ci, NULL, 0) : NULL, 0);
#endif
		} else {
			fprintf(stderr, "reloc_prog: unknown case %s\n", c);
			return 2;
		}
	}
	fflush(stdout);
	if (do_pause) {
		printf("READY\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	return 0;
}
