/* SPDX-License-Identifier: MIT */
/*
 * The shim's state that must not change after start-up (hardened_malloc's
 * read-only section): the next allocator's functions and the options. Each such
 * object lives in the section "sm_ro", page-aligned and padded to whole pages, so
 * the section holds nothing else; sm_ro_seal() makes it read-only once start-up is
 * over. A stray or hostile write through the shim's addresses (to redirect the
 * next allocator's free, or turn the options off) then faults instead of taking
 * effect.
 *
 * Nothing may write an object of the section after sm_ro_seal(); a writer that
 * truly needs to (none today) would open a short window with mprotect itself.
 */
#ifndef SM_RO_H
#define SM_RO_H

#include <stdbool.h>
#include <stddef.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* The largest page size of the architecture's kernels (aarch64: 4, 16 or 64 KiB),
 * so that the section is whole pages whatever the run-time page size. */
#if defined(__aarch64__) || defined(__powerpc64__)
#define SM_RO_PAGE 65536
#else
#define SM_RO_PAGE 4096
#endif

/* For the definition of an object of the section. Its type must be whole pages
 * long: a struct type declared __attribute__((aligned(SM_RO_PAGE))) is (its size is
 * a multiple of its alignment), or a union of the type with a byte array of the
 * size rounded up (options.h). */
#define SM_RO __attribute__((section("sm_ro"), aligned(SM_RO_PAGE)))

/* Makes the section read-only; once, at the end of start-up. Whether it is (false
 * with a warning when mprotect refuses: the shim runs on, unprotected). */
bool sm_ro_seal(void);
/* The same for one object of its own section (the arena's constants, sealed when
 * the arena's init ends): whole pages. */
bool sm_ro_seal_range(void *p, size_t len, const char *what);

#pragma GCC visibility pop

#endif
