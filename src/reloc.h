/* SPDX-License-Identifier: MIT */
/*
 * Relocations: a loaded object's own references to the allocation API (its PLT
 * slots, GOT entries and data pointers) pointed at the shim's entry points, so that
 * what the object's code calls does not depend on how the compiler reached the
 * function (a direct call, a PLT stub, a GOT load under -fno-plt, a tail call, a
 * pointer it took) nor on how the loader bound it (lazily, at load, under
 * RTLD_DEEPBIND).
 *
 * A tagged object's references go to secret entry points, which skip the routing
 * decision; an untagged object's references are left alone, except those the
 * loader bound past the shim to the next allocator (RTLD_DEEPBIND) and lazy slots
 * not yet bound, which go to the shim's ordinary (routed) functions, as the
 * loader's resolver would have made them. A reference the loader bound to any
 * other definition (the object's own malloc, an allocator it links) is kept.
 *
 * Every slot is changed with one aligned 8-byte store, so another thread running
 * the object's code sees the old or the new function, both correct. Slots in the
 * object's RELRO segment are made writable for the stores and read-only again.
 * Never calls malloc.
 */
#ifndef SM_RELOC_H
#define SM_RELOC_H

#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* One function of the allocation API: its name, the shim's public (routed)
 * function and its secret entry point (the public one where a function handles
 * both kinds of block: free, malloc_usable_size). Defined in preload.c. */
struct sm_api_fn {
	const char *name;
	void *routed;
	void *secret;
};
extern const struct sm_api_fn sm_api_fns[];
extern const size_t sm_api_nfns;

/* The next allocator's malloc (glibc's, or a jemalloc's preloaded after the
 * shim), set by preload.c at start-up: the object holding it, and libc, are where
 * a reference bound past the shim points. */
extern void *sm_api_next_malloc;

/* Finds where the shim, libc and the next allocator lie, and what the global
 * scope binds each API function to (sm_global_symbol). Once, at start-up, before
 * any lock of the routing tables is taken (it calls dl_iterate_phdr). */
void sm_reloc_init(void);

/* The global scope's definition of name (the real dlsym(RTLD_DEFAULT, name));
 * defined in preload.c. */
void *sm_global_symbol(const char *name);

/* What sm_reloc_patch did to one object. */
struct sm_reloc_result {
	unsigned secret;     /* references pointed at secret entry points */
	unsigned deep;       /* references the loader had bound past the shim */
	unsigned kept;       /* references bound to another definition, left alone */
	bool failed;         /* the RELRO segment could not be made writable */
};

/* Points the object's references to the allocation API at the shim: at the secret
 * entry points if secret, else only those that bypass the shim (see above). info
 * describes a loaded, relocated object (from dl_iterate_phdr), name is what the
 * messages call it. Says at debug level what it did, and warns when a secret
 * object's reference cannot be redirected. */
struct sm_reloc_result sm_reloc_patch(const struct dl_phdr_info *info, const char *name,
				      bool secret);

#pragma GCC visibility pop

#endif
