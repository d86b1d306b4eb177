/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the routing cache (src/route_cache.h and the fast-path readers of
 * src/route.h): the entry encoding (address, class and generation in one word, no
 * field overlapping another), the 15-bit generation and its wrap (every slot wiped,
 * or an entry of the old generation would match again), which slot a new entry
 * takes, and what sm_route_fast and sm_route_lookup answer. route.c is not linked:
 * the cache and its tags are defined here, and stored the way route.c stores them.
 * TAP output; exits 1 if any test failed.
 */
#include "config.h"
#include "route.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

uint64_t sm_route_cache[SM_CACHE_SLOTS];
uint64_t sm_route_tag;
uint64_t sm_route_fast_tag = UINT64_MAX;

/* route.c's cache_store, on the test's cache. */
static void store(uintptr_t pc, enum sm_class cls)
{
	if (!sm_cache_representable(pc))
		return;
	unsigned v = sm_cache_victim(sm_route_cache, pc, sm_route_tag);
	sm_route_cache[v] = sm_cache_entry(pc, cls, sm_route_tag);
}

/* route.c's flush_cache and set_generation (whose update_fast_tag moves an
 * enabled fast tag to the new generation). */
static unsigned generation = 1;
static bool flush(void)
{
	bool wipe;
	unsigned g = sm_cache_next_generation(generation, &wipe);
	if (wipe)
		memset(sm_route_cache, 0, sizeof(sm_route_cache));
	generation = g;
	sm_route_tag = sm_cache_tag(g);
	if (sm_route_fast_tag != UINT64_MAX)
		sm_route_fast_tag = sm_route_tag;
	return wipe;
}

static void reset(void)
{
	memset(sm_route_cache, 0, sizeof(sm_route_cache));
	generation = 1;
	sm_route_tag = sm_cache_tag(1);
	sm_route_fast_tag = UINT64_MAX;
}

/* The n-th code address (from base, 16-byte steps) whose first slot is slot. */
static uintptr_t pc_in_slot(unsigned slot, unsigned n, uintptr_t base)
{
	for (uintptr_t pc = base;; pc += 16)
		if (sm_cache_slot(pc) == slot && n-- == 0)
			return pc;
}

static void test_encoding(void)
{
	const uintptr_t pcs[] = { 0x1000, 0x55555555a123, 0x7ffff7fc1234, (1ull << SM_PC_BITS) - 1 };
	const unsigned gens[] = { 1, 2, 12345, SM_GEN_MAX };
	bool round = true, other = true;
	for (size_t p = 0; p < sizeof(pcs) / sizeof(pcs[0]); p++)
		for (size_t g = 0; g < sizeof(gens) / sizeof(gens[0]); g++)
			for (unsigned c = SM_ORDINARY; c <= SM_MACHINERY; c++) {
				uint64_t tag = sm_cache_tag(gens[g]);
				uint64_t e = sm_cache_entry(pcs[p], c, tag);
				round &= sm_cache_match(e, pcs[p], tag) == (int)c;
				other &= sm_cache_match(e, pcs[p] ^ 0x10, tag) == -1;
				other &= sm_cache_match(e, pcs[p] ^ (1ull << 46), tag) == -1;
				other &= sm_cache_match(e, pcs[p], sm_cache_tag(gens[g] ^ 1)) == -1;
				other &= sm_cache_match(e, pcs[p], sm_cache_tag(gens[g] ^ SM_GEN_MAX)) == -1;
			}
	ok(round, "an entry gives back its class for its address and generation");
	ok(other, "an entry matches no other address (low bit, bit 46) and no other generation");

	ok(SM_PC_BITS + 2 + SM_GEN_BITS == 64 && SM_GEN_BITS == 15 && SM_GEN_MAX == 32767,
	   "47 address bits, 2 class bits, 15 generation bits (got %d %d)", SM_PC_BITS, SM_GEN_BITS);
	ok(sm_cache_entry(0, 0, sm_cache_tag(1)) == 1ull << 49, "generation 1 is bit 49");
	ok(sm_cache_entry(0, SM_SECRET, 0) == 1ull << 47 && sm_cache_entry(0, SM_MACHINERY, 0) == 1ull << 48,
	   "the class is bits 47 and 48");
	ok(sm_cache_tag(SM_GEN_MAX) == ~((1ull << 49) - 1), "generation 32767 fills bits 49-63 exactly");
	ok((sm_cache_entry((1ull << SM_PC_BITS) - 1, 0, 0) & ~((1ull << SM_PC_BITS) - 1)) == 0,
	   "the highest cacheable address stays in bits 0-46");
	ok(sm_cache_representable((1ull << SM_PC_BITS) - 1) && !sm_cache_representable(1ull << SM_PC_BITS) &&
	   !sm_cache_representable(UINTPTR_MAX - 0xfff),
	   "an address of 2^47 or more is never cached");

	/* No entry route.c stores (class 0-2) equals the fast path's "off" tag. */
	uint64_t top = sm_cache_entry((1ull << SM_PC_BITS) - 1, SM_MACHINERY, sm_cache_tag(SM_GEN_MAX));
	ok(top != UINT64_MAX, "no stored entry is all ones (the fast path's off tag)");
}

static void test_generation(void)
{
	unsigned g = 1, steps = 0;
	bool wipe = false, in_range = true;
	while (!wipe) {
		g = sm_cache_next_generation(g, &wipe);
		in_range &= g >= 1 && g <= SM_GEN_MAX;
		steps++;
	}
	ok(in_range, "every generation is in 1..32767");
	ok(steps == SM_GEN_MAX && g == 1, "from 1 the wrap comes after 32767 steps, back to 1 (%u steps, %u)",
	   steps, g);
	sm_cache_next_generation(SM_GEN_MAX - 1, &wipe);
	ok(!wipe, "32766 to 32767 keeps the cache");
	ok(sm_cache_next_generation(SM_GEN_MAX, &wipe) == 1 && wipe, "after 32767 the cache is wiped");

	/* An entry of generation 1, then a whole cycle of flushes: it must not match
	 * when generation 1 comes round again. */
	reset();
	uintptr_t pc = 0x55555555a000;
	store(pc, SM_SECRET);
	ok(sm_route_lookup(pc) == SM_SECRET, "an entry stored is found");
	flush();
	ok(sm_route_lookup(pc) == -1, "after a flush it is not found");
	unsigned wipes = 0;
	for (unsigned i = 1; i < SM_GEN_MAX; i++)
		wipes += flush();
	ok(generation == 1 && wipes == 1, "32767 flushes bring generation 1 back (%u, %u wipes)", generation,
	   wipes);
	ok(sm_route_lookup(pc) == -1, "an entry of the old generation 1 does not match the new one");

	/* The control: without the wipe, the old entry would match again. */
	reset();
	store(pc, SM_SECRET);
	uint64_t kept = sm_route_cache[sm_cache_slot(pc)];
	for (unsigned i = 0; i < SM_GEN_MAX; i++)
		flush();
	sm_route_cache[sm_cache_slot(pc)] = kept;
	ok(sm_route_lookup(pc) == SM_SECRET, "control: an unwiped entry of generation 1 would match again");
}

static void test_slots(void)
{
	reset();
	unsigned slot = 1000;
	uintptr_t pc[SM_CACHE_PROBE + 1];
	for (unsigned k = 0; k <= SM_CACHE_PROBE; k++)
		pc[k] = pc_in_slot(slot, k, 0x400000);
	for (unsigned k = 0; k < SM_CACHE_PROBE; k++)
		store(pc[k], k & 1 ? SM_SECRET : SM_ORDINARY);
	bool placed = true, found = true;
	for (unsigned k = 0; k < SM_CACHE_PROBE; k++) {
		placed &= sm_cache_match(sm_route_cache[slot + k], pc[k], sm_route_tag) >= 0;
		found &= sm_route_lookup(pc[k]) == (int)(k & 1 ? SM_SECRET : SM_ORDINARY);
	}
	ok(placed, "colliding addresses take the next %d slots in turn", SM_CACHE_PROBE);
	ok(found, "each of them is found with its class");
	store(pc[SM_CACHE_PROBE], SM_MACHINERY);
	ok(sm_route_lookup(pc[SM_CACHE_PROBE]) == SM_MACHINERY && sm_route_lookup(pc[0]) == -1 &&
	   sm_route_lookup(pc[1]) == SM_SECRET,
	   "a fifth one replaces the first slot's entry");
	store(pc[2], SM_SECRET);
	ok(sm_route_lookup(pc[2]) == SM_SECRET && sm_route_lookup(pc[3]) == SM_SECRET &&
	   sm_cache_match(sm_route_cache[slot + 2], pc[2], sm_route_tag) == SM_SECRET,
	   "storing an address again updates its own slot");

	flush();
	uintptr_t fresh = pc_in_slot(slot, SM_CACHE_PROBE + 1, 0x400000);
	store(fresh, SM_SECRET);
	ok(sm_cache_match(sm_route_cache[slot], fresh, sm_route_tag) == SM_SECRET,
	   "an entry of an older generation is replaced first");

	/* The probe wraps from the last slot to slot 0. */
	reset();
	unsigned last = SM_CACHE_SLOTS - 1;
	uintptr_t a = pc_in_slot(last, 0, 0x400000), b = pc_in_slot(last, 1, 0x400000);
	store(a, SM_ORDINARY);
	store(b, SM_SECRET);
	ok(sm_cache_match(sm_route_cache[0], b, sm_route_tag) == SM_SECRET && sm_route_lookup(b) == SM_SECRET,
	   "the probe wraps from the last slot to slot 0");

	/* The lookup stops at an empty slot. */
	reset();
	uintptr_t c0 = pc_in_slot(slot, 0, 0x400000), c1 = pc_in_slot(slot, 1, 0x400000);
	sm_route_cache[slot + 1] = sm_cache_entry(c1, SM_SECRET, sm_route_tag);
	ok(sm_route_lookup(c1) == -1 && sm_route_lookup(c0) == -1, "the lookup stops at an empty slot");

	/* An address of 2^47 or more is never stored. */
	reset();
	uintptr_t high = (uintptr_t)1 << SM_PC_BITS;
	store(high, SM_SECRET);
	uint64_t any = 0;
	for (unsigned i = 0; i < SM_CACHE_SLOTS; i++)
		any |= sm_route_cache[i];
	ok(any == 0 && sm_route_lookup(high) == -1, "an address above 2^47 is not stored");
}

static void test_fast(void)
{
	reset();
	uintptr_t o = pc_in_slot(7, 0, 0x400000), s = pc_in_slot(9, 0, 0x400000), m = pc_in_slot(11, 0, 0x400000);
	store(o, SM_ORDINARY);
	store(s, SM_SECRET);
	store(m, SM_MACHINERY);
	ok(sm_route_fast(o) == -1 && sm_route_fast(s) == -1 && sm_route_fast(m) == -1,
	   "with the fast tag off (all ones) nothing is settled inline");
	sm_route_fast_tag = sm_route_tag;
	ok(sm_route_fast(o) == SM_ORDINARY && sm_route_fast(s) == SM_SECRET,
	   "with the fast tag on, cached ordinary and secret addresses are settled");
	ok(sm_route_fast(m) == -1, "machinery is never settled inline (it needs the stack walk)");
	ok(sm_route_fast(o + 16) == -1, "an address not cached is not settled");
	flush();
	ok(sm_route_fast(o) == -1 && sm_route_fast(s) == -1, "after a flush the old entries settle nothing");

	/* The fast path probes one slot only: an entry in the second is found by the
	 * lookup, not inline. */
	reset();
	sm_route_fast_tag = sm_route_tag;
	uintptr_t a = pc_in_slot(300, 0, 0x400000), b = pc_in_slot(300, 1, 0x400000);
	store(a, SM_ORDINARY);
	store(b, SM_SECRET);
	ok(sm_route_fast(b) == -1 && sm_route_lookup(b) == SM_SECRET, "the fast path probes one slot only");
}

int main(void)
{
	test_encoding();
	test_generation();
	test_slots();
	test_fast();
	return tap_done();
}
