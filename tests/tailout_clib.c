/* SPDX-License-Identifier: MIT */
/*
 * libtailoutc.so: a tagged C library whose functions end in a tail call into a
 * libc function that allocates what it returns (tests/tailout.bats): at -O2 each
 * is a jump, and libc returns straight into the caller (tailout_prog); asprintf
 * with fixed arguments too.
 * to_wcsdup_nt is the same wcsdup with no tail call. to_dsym_*: the allocation
 * API from dlsym (RTLD_DEFAULT: a tail call through the pointer; RTLD_NEXT:
 * glibc's functions, past the shim).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

extern char *__strdup(const char *);
extern char *__strndup(const char *, size_t);

wchar_t *to_wcsdup(const wchar_t *s) { return wcsdup(s); }
char *to___strdup(const char *s) { return __strdup(s); }
char *to___strndup(const char *s, size_t n) { return __strndup(s, n); }
int to_vasprintf(char **p, const char *fmt, va_list ap) { return vasprintf(p, fmt, ap); }
ssize_t to_getline(char **p, size_t *n, FILE *f) { return getline(p, n, f); }
char *to_cwd(void) { return get_current_dir_name(); }
char *to_getcwd(void) { return getcwd(NULL, 0); }
ssize_t to_getdelim(char **p, size_t *n, FILE *f) { return getdelim(p, n, ',', f); }
int to_asprintf(char **p, const char *s) { return asprintf(p, "%s and more", s); }
int to_scandir(const char *d, struct dirent ***l) { return scandir(d, l, NULL, alphasort); }

wchar_t *to_wcsdup_nt(const wchar_t *s)
{
	wchar_t *p = wcsdup(s);
	if (!p)
		abort();
	return p;
}

static void *(*m_def)(size_t), *(*m_next)(size_t), *(*r_next)(void *, size_t);
static void (*f_next)(void *);

void *to_dsym_default(size_t n)
{
	if (!m_def)
		m_def = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "malloc");
	return m_def(n);
}

void *to_dsym_next(size_t n)
{
	if (!m_next)
		m_next = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	void *p = m_next(n);
	if (!p)
		abort();
	return p;
}

void *to_dsym_realloc(void *p, size_t n)
{
	if (!r_next)
		r_next = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	return r_next(p, n);
}

void to_dsym_free(void *p)
{
	if (!f_next)
		f_next = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	f_next(p);
}
