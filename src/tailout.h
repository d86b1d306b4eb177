/* SPDX-License-Identifier: MIT */
/*
 * Tail-out wrappers: what a tagged object's references to allocating functions the
 * shim looks through (the C++ runtime's operator new, libc's wcsdup, getline,
 * asprintf...) are pointed at (reloc.c), so that a tagged function ending in a tail
 * call into one of them still gets secret memory. Each wrapper runs the real
 * function inside the calling thread's secret scope (the depth that
 * secretmem_scope_begin() raises) and ends that scope on return and when an
 * exception passes through it (operator new's bad_alloc).
 *
 * An untagged object's references are never pointed here: they cost nothing.
 * Never calls malloc on the allocation path; the first call of a wrapper whose
 * function was not yet bound looks it up under the re-entry guard.
 */
#ifndef SM_TAILOUT_H
#define SM_TAILOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* One function a tagged object may reach by a tail call: its (unversioned)
 * name and the shim's wrapper. */
struct sm_tail_fn {
	const char *name;
	void *wrapper;
};
extern const struct sm_tail_fn sm_tail_fns[];
extern const size_t sm_tail_nfns;

/* What a wrapper calls: the definition a tagged object's reference was bound to
 * (value). Recorded by reloc.c before it points the reference at the wrapper;
 * false when another definition was recorded already (the reference is then left
 * alone: one definition per name). */
bool sm_tail_bind(const struct sm_tail_fn *fn, void *value);

/* A tagged object whose reference was not bound yet (lazy binding): the wrapper
 * looks the function up at its first call, in the global scope, else among the
 * dependencies of the object holding the address at (an address inside it). */
void sm_tail_lazy(const struct sm_tail_fn *fn, uintptr_t at);

#pragma GCC visibility pop

#endif
