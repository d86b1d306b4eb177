/* SPDX-License-Identifier: MIT */
/*
 * Debug information: where the compiler put copies of a SECRETMEM_SITES function
 * that no symbol names, namely its inlined instances (DW_TAG_inlined_subroutine
 * whose abstract origin is the site). Read with elfutils' libdw, loaded with
 * dlopen at start-up only when SECRETMEM_SITES is set, from the object's own file
 * or its separate debug file by build-id (/usr/lib/debug/.build-id/xx/rest.debug).
 *
 * libdw allocates: call only under the shim's re-entry guard (its blocks then
 * come from the next allocator). Never on an allocation's fast path.
 */
#ifndef SM_DEBUGINFO_H
#define SM_DEBUGINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elfsym.h"

#pragma GCC visibility push(hidden)

/* Loads libdw if it can; false when it is not installed (or not built in). */
bool sm_debuginfo_load(void);

enum sm_debuginfo {
	SM_DEBUGINFO_READ,      /* debug information was read */
	SM_DEBUGINFO_NONE,      /* the object has none (stripped, no debug file) */
	SM_DEBUGINFO_NO_LIBDW,  /* libdw is missing */
};

/* Called for each inlined instance range [lo, hi) of a function whose name (its
 * linkage name when it has one) is name. */
typedef void (*sm_inline_fn)(void *ctx, const char *name, uintptr_t lo, uintptr_t hi);

/* Called, after every instance, for each function the compiler inlined (its
 * abstract instance says so) of which no copy with code is left, inlined or out
 * of line: its code was merged into identical code the debug information
 * attributes to another function, or removed, and nothing says where it went.
 * (A function with an out-of-line copy is never reported: GCC's identical code
 * folding makes an equal function a wrapper of it and inlines it there,
 * recording no copy, and that code is the other function's.) */
typedef void (*sm_lost_fn)(void *ctx, const char *name);

/* Reports the inlined instances in object o, whose file is path, of the
 * functions wanted(ctx, name) says yes to, then those of them lost. keys: nkeys
 * strings, the keys of the rules that have one (sm_rule_key); a C++ function
 * that has no linkage name and whose name is one of them, or an operator when
 * unkeyed (some rule has no key), is also offered by its qualified name. With
 * filter (every rule has a key), a file whose DWARF strings hold none of the keys
 * is not walked. */
enum sm_debuginfo sm_debuginfo_inlined(const struct sm_elf_object *o, const char *path,
				       const char *const *keys, size_t nkeys, bool filter,
				       bool unkeyed, bool (*wanted)(void *ctx, const char *name),
				       sm_inline_fn fn, sm_lost_fn lost, void *ctx);

#pragma GCC visibility pop

#endif
