/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics of the library.
 *
 * Every message goes to fd 2 with one write(2), prefixed "libsecretmem-preload: ",
 * through a small formatter of our own: never stdio, never malloc, so it is safe
 * from inside the allocator, before initialisation and in a forked child.
 * Formats understood: %s %d %u %ld %lu %zu %zd %llu %x %lx %p %c %%, with an
 * optional '-' (left) or '0' (zeros before) and field width.
 */
#ifndef SM_LOG_H
#define SM_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

enum sm_log_level { SM_LOG_ERROR = 0, SM_LOG_WARN, SM_LOG_INFO, SM_LOG_DEBUG };

/* Current threshold (SECRETMEM_LOG); messages above it are dropped. */
extern int sm_log_level;

void sm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "libsecretmem-preload: <message>" and ends the process with
 * SM_EXIT_CONFIG. Mostly before main (a bad variable, no secret memory: the
 * program never starts), but also later where going on would protect nothing:
 * a program whose first scope finds no secret memory, or whose unwinder cannot be
 * loaded when a dlopened annotated library starts routing. */
void sm_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Prints the message and aborts (SIGABRT), as glibc does on heap misuse. */
void sm_abort(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Formats into buf (always NUL-terminated); returns the length written. */
size_t sm_vformat(char *buf, size_t size, const char *fmt, va_list ap);
size_t sm_format(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Exit status of a program stopped at start-up by a configuration or kernel problem
 * (EX_CONFIG of sysexits.h). */
#define SM_EXIT_CONFIG 78

/* An invariant that must hold; checked only in --enable-debug builds. */
#ifdef SM_DEBUG
#define SM_ASSERT(cond)                                                          \
	do {                                                                     \
		if (__builtin_expect(!(cond), 0))                                \
			sm_abort("internal error: %s is false (%s:%d)", #cond, __FILE__, \
				 __LINE__);                                       \
	} while (0)
#else
#define SM_ASSERT(cond) ((void)0)
#endif

#define sm_error(...) sm_log(SM_LOG_ERROR, __VA_ARGS__)
#define sm_warn(...)  do { if (sm_log_level >= SM_LOG_WARN)  sm_log(SM_LOG_WARN,  __VA_ARGS__); } while (0)
#define sm_info(...)  do { if (sm_log_level >= SM_LOG_INFO)  sm_log(SM_LOG_INFO,  __VA_ARGS__); } while (0)
#define sm_debug(...) do { if (sm_log_level >= SM_LOG_DEBUG) sm_log(SM_LOG_DEBUG, __VA_ARGS__); } while (0)

#pragma GCC visibility pop

#endif
