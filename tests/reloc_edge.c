/* SPDX-License-Identifier: MIT */
/*
 * reloc_edge: the cases where redirecting an object's relocations would be
 * wrong (tests/reloc.bats).
 *
 * -DCANON (built -no-pie -fno-pic): the executable takes malloc's address, so its
 *  canonical PLT entry becomes what every object's GOT holds for malloc; tagging
 *  the executable must not make an untagged -fno-plt library's blocks secret.
 * -DOWNALLOC: the executable defines its own malloc family (a header before each
 *  block); a tagged library's lazy slots must keep binding to it, so its frees
 *  match its allocations.
 * Both call lib_alloc/lib_free from reloc_edge_lib.c.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secretmem.h> /* in a -no-pie -fno-pic build it looks the shim up with dlsym */

void *lib_alloc(size_t n);
void lib_free(void *p);

static int is_secret(const void *p)
{
	return secretmem_is_secret(p);
}

#ifdef OWNALLOC
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
#define MAGIC 0x5eedf00dcafe1234ull
struct hdr {
	uint64_t magic, size;
};
void *malloc(size_t n)
{
	struct hdr *h = __libc_malloc(n + sizeof(*h));
	if (!h)
		return NULL;
	h->magic = MAGIC;
	h->size = n;
	return h + 1;
}
void free(void *p)
{
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	if (h->magic != MAGIC) {
		fputs("exe free: not my block\n", stderr);
		abort();
	}
	__libc_free(h);
}
void *calloc(size_t a, size_t b)
{
	void *p = malloc(a * b);
	if (p)
		memset(p, 0, a * b);
	return p;
}
void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	struct hdr *h = (struct hdr *)p - 1;
	if (h->magic != MAGIC)
		abort();
	void *q = malloc(n);
	if (q)
		memcpy(q, p, h->size < n ? h->size : n);
	free(p);
	return q;
}
#endif

int main(void)
{
#ifdef CANON
	void *(*volatile fp)(size_t) = malloc; /* the address taken: a canonical PLT entry */
	void *mine = fp(16), *theirs = lib_alloc(16);
	printf("exe secret=%d lib secret=%d\n", is_secret(mine), is_secret(theirs));
#else
	void *p = lib_alloc(32);
	lib_free(p);
	printf("ok secret=%d\n", is_secret(p));
#endif
	return 0;
}
