/* SPDX-License-Identifier: MIT */
/*
 * The routing cache's entry encoding, pure: no state but the array and the values
 * passed in, so that the unit test (tests/unit/route_test.c) checks the very code
 * route.c and the fast path run.
 *
 * An entry is one 64-bit word, read and written without locks:
 *   bits  0..46  the code address (a return address below 2^47; others are never
 *                cached),
 *   bits 47..48  its class (enum sm_class),
 *   bits 49..63  the generation of the object table, 1..32767 (0 never: an empty
 *                slot is 0, and a tag of all ones, the fast path's "off", never
 *                equals an entry because no address has all of bits 0..46 set
 *                together with class 3).
 * The generation goes up by one at every flush; after 32767 it wraps to 1, and then
 * every slot is wiped first, or an entry of the old generation 1 would match again.
 */
#ifndef SM_ROUTE_CACHE_H
#define SM_ROUTE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

#define SM_CACHE_BITS 14
#define SM_CACHE_SLOTS (1u << SM_CACHE_BITS)
#define SM_CACHE_PROBE 4
#define SM_PC_BITS 47
#define SM_GEN_SHIFT (SM_PC_BITS + 2)
#define SM_GEN_BITS (64 - SM_GEN_SHIFT)
#define SM_GEN_MAX ((1u << SM_GEN_BITS) - 1)

/* The generation in its place in an entry. */
static inline uint64_t sm_cache_tag(unsigned generation)
{
	return (uint64_t)generation << SM_GEN_SHIFT;
}

/* The generation after g, 1..SM_GEN_MAX; *wipe says whether every slot must be
 * emptied first (it wrapped). */
static inline unsigned sm_cache_next_generation(unsigned g, bool *wipe)
{
	*wipe = g + 1 > SM_GEN_MAX;
	return *wipe ? 1 : g + 1;
}

/* Whether pc can be cached at all. */
static inline bool sm_cache_representable(uintptr_t pc)
{
	return !((uint64_t)pc >> SM_PC_BITS);
}

static inline uint64_t sm_cache_entry(uintptr_t pc, unsigned cls, uint64_t tag)
{
	return (uint64_t)pc | ((uint64_t)cls << SM_PC_BITS) | tag;
}

/* The first slot probed for pc. */
static inline unsigned sm_cache_slot(uintptr_t pc)
{
	return sm_hash(pc, SM_CACHE_BITS);
}

/* The class entry e holds for pc under tag, or -1 when it is for another address
 * or generation. */
static inline int sm_cache_match(uint64_t e, uintptr_t pc, uint64_t tag)
{
	if ((e & ~(3ull << SM_PC_BITS)) != ((uint64_t)pc | tag))
		return -1;
	return (int)((e >> SM_PC_BITS) & 3);
}

/* Where an entry for pc under tag goes: the first of the probed slots that is
 * empty, of an older generation, or pc's own; else the first probed slot. */
static inline unsigned sm_cache_victim(const uint64_t *cache, uintptr_t pc, uint64_t tag)
{
	unsigned i = sm_cache_slot(pc);
	for (unsigned k = 0; k < SM_CACHE_PROBE; k++) {
		unsigned j = (i + k) & (SM_CACHE_SLOTS - 1);
		uint64_t old = __atomic_load_n(&cache[j], __ATOMIC_RELAXED);
		if (!old || (old & ~((1ull << SM_GEN_SHIFT) - 1)) != tag ||
		    (old & ((1ull << SM_PC_BITS) - 1)) == pc)
			return j;
	}
	return i;
}

#endif
