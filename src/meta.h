/* SPDX-License-Identifier: MIT */
/*
 * Memory for the library's own bookkeeping (option lists, routing tables, arena
 * metadata): anonymous pages from mmap, handed out by a bump pointer and never
 * returned. Never calls malloc; never holds secret bytes.
 */
#ifndef SM_META_H
#define SM_META_H

#include <stdbool.h>
#include <stddef.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* Zeroed, 16-byte aligned; NULL when mmap fails. Thread-safe. */
void *sm_meta_alloc(size_t size);
/* A copy of the n bytes at s, NUL-terminated. */
char *sm_meta_strndup(const char *s, size_t n);

/* fork: hold the lock across fork() so the child never inherits it taken. */
void sm_meta_fork_prepare(void);
void sm_meta_fork_parent(void);
void sm_meta_fork_child(void);
bool sm_meta_fork_tryprepare(void); /* takes it only if free */

#pragma GCC visibility pop

#endif
