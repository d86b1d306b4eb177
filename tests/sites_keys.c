/* SPDX-License-Identifier: MIT */
/*
 * The functions sites.bats names in SECRETMEM_SITES, compiled as a distribution
 * would (-O2 -g, tail calls allowed): each returns its allocation straight away,
 * so gcc and clang end it with "jmp malloc" / "jmp strdup" and the allocator's
 * return address lies in the caller, just after the call to the site. They live
 * apart from their callers (sites_prog.c) as code in another file does, so that
 * without LTO nothing inlines them. libsites.so is built from this file too.
 */
#include <stdlib.h>
#include <string.h>

#ifdef LIB
#define tail_key lib_tail_key
#define tail_dup lib_tail_dup
#define tail_calloc lib_tail_calloc
#define tail_plain lib_tail_plain
#endif

char *tail_key(size_t n);
char *tail_dup(const char *s);
char *tail_calloc(size_t n);
char *tail_plain(size_t n);
char *lib_key(void);
char *lib_hidden_entry(void);

char *tail_key(size_t n)
{
	return malloc(n);
}

char *tail_dup(const char *s)
{
	return strdup(s);
}

char *tail_calloc(size_t n)
{
	return calloc(1, n);
}

/* The same shape, named by no rule: the control. */
char *tail_plain(size_t n)
{
	return malloc(n);
}

/* Not a tail call: it fills the block first. */
char *lib_key(void)
{
	char *p = malloc(64);
	if (p)
		strcpy(p, "blk:lib_key");
	return p;
}

/* A static function, only in .symtab: found only when the file read is the one
 * mapped. noinline keeps it a function of its own (what is tested here is which
 * file is read, not inlining). */
static __attribute__((noinline)) char *hidden_key(void)
{
	char *p = malloc(64);
	if (p)
		strcpy(p, "blk:hidden_key");
	return p;
}

char *lib_hidden_entry(void)
{
	char *p = hidden_key();
	__asm__ volatile("" ::: "memory");
	return p;
}
