/* SPDX-License-Identifier: MIT */
/*
 * Frames (see frames.h): a small x86_64 unwinder for the look-through walk.
 *
 * For a return address it finds the object's .eh_frame_hdr with _dl_find_object
 * (lock-free, async-signal-safe, safe in a fork child), the FDE by binary search,
 * and runs the CIE's and FDE's call-frame instructions up to the call: what
 * compilers emit for ordinary code (CFA on rsp or rbp plus an offset, rbp saved at
 * an offset from the CFA, the return address at CFA-8). The result is cached per
 * return address, checked against the object's unwind table each time. Anything else (signal frames, DWARF expressions
 * for the CFA, rbp or the return address, 64-bit FDEs, unusual table encodings)
 * makes the walk give up; the caller then walks with libgcc's unwinder, which
 * handles everything. Never allocates, never takes a lock.
 *
 * Memory read: the unwind tables of loaded objects, and the stack slots the rules
 * name, each checked to lie above the frame below it (the stack grows down).
 */
#include "config.h"
#include "frames.h"
#include "compiler.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)

/* DWARF register numbers (x86_64 psABI). */
#define R_RBP 6
#define R_RSP 7
#define R_RA 16

struct rule {
	uint8_t cfa_reg;        /* R_RSP or R_RBP */
	int64_t cfa_off;
	bool bp_saved;          /* the caller's rbp is at CFA + bp_off */
	int64_t bp_off;
	bool end;               /* the return address is undefined: the outermost frame */
};

/* ---- the cache: two words a return address, its pc, and its rule (cfa on rbp: 1
 * bit, cfa_off / 8: 14, rbp saved: 1, -bp_off / 8: 8) under a 32-bit tag of the pc
 * and the address of its object's unwind table: an object loaded where another
 * was, unnoticed, has its table elsewhere unless it is the same file (same code,
 * same rules), and a pair of words torn between two writers does not match. A rule
 * that does not fit is not cached. */

#define CACHE_BITS 10
static struct {
	uint64_t pc, rule;
} cache[1u << CACHE_BITS];

static unsigned slot_of(uintptr_t pc)
{
	return sm_hash(pc, CACHE_BITS);
}

static uint64_t tag_of(uintptr_t pc, const void *table)
{
	uint64_t h = ((uint64_t)pc ^ ((uint64_t)(uintptr_t)table * 0xff51afd7ed558ccdull)) *
		     0xc4ceb9fe1a85ec53ull;
	return h & 0xffffffff00000000ull;
}

static bool cache_get(uintptr_t pc, const void *table, struct rule *r)
{
	unsigned i = slot_of(pc);
	if (__atomic_load_n(&cache[i].pc, __ATOMIC_RELAXED) != pc)
		return false;
	uint64_t e = __atomic_load_n(&cache[i].rule, __ATOMIC_RELAXED);
	if ((e & 0xffffffff00000000ull) != tag_of(pc, table) || !(e & 1))
		return false;
	r->cfa_reg = (e & 2) ? R_RBP : R_RSP;
	r->cfa_off = (int64_t)((e >> 2) & 0x3fff) * 8;
	r->bp_saved = (e >> 16) & 1;
	r->bp_off = -(int64_t)((e >> 17) & 0xff) * 8;
	r->end = false;
	return true;
}

static void cache_put(uintptr_t pc, const void *table, const struct rule *r)
{
	if (r->end || r->cfa_off < 0 || r->cfa_off % 8 || r->cfa_off / 8 > 0x3fff)
		return;
	uint64_t bp = 0;
	if (r->bp_saved) {
		if (r->bp_off > 0 || r->bp_off % 8 || -r->bp_off / 8 > 0xff)
			return;
		bp = 1 | (uint64_t)(-r->bp_off / 8) << 1;
	}
	uint64_t e = 1 | (uint64_t)(r->cfa_reg == R_RBP) << 1 | (uint64_t)(r->cfa_off / 8) << 2 |
		     bp << 16 | tag_of(pc, table);
	unsigned i = slot_of(pc);
	__atomic_store_n(&cache[i].pc, pc, __ATOMIC_RELAXED);
	__atomic_store_n(&cache[i].rule, e, __ATOMIC_RELAXED);
}

void sm_frames_forget(uintptr_t lo, uintptr_t hi)
{
	for (size_t i = 0; i < (1u << CACHE_BITS); i++)
		if (__atomic_load_n(&cache[i].pc, __ATOMIC_RELAXED) - 1 - lo < hi - lo)
			__atomic_store_n(&cache[i].rule, 0, __ATOMIC_RELAXED);
}

/* ---- reading the tables ---- */

struct cursor {
	const uint8_t *p, *end;
	bool bad;
};

static uint8_t u8(struct cursor *c)
{
	if (c->p >= c->end) {
		c->bad = true;
		return 0;
	}
	return *c->p++;
}

static uint64_t uleb(struct cursor *c)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b = u8(c);
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	c->bad = true;
	return 0;
}

static int64_t sleb(struct cursor *c)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b;
	do {
		b = u8(c);
		if (shift >= 64) {
			c->bad = true;
			return 0;
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~0ull << shift;
	return (int64_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The pointer encodings compilers use in shared objects and PIE programs. */
#define PE_PCREL_SDATA4 0x1b
#define PE_DATAREL_SDATA4 0x3b
#define PE_UDATA4 0x03

/* Skips one encoded pointer (for the personality routine). */
static void skip_ptr(struct cursor *c, uint8_t enc)
{
	if (enc == 0xff)
		return;
	switch (enc & 0x0f) {
	case 0x00: case 0x04: case 0x0c: c->p += 8; break; /* absptr, udata8, sdata8 */
	case 0x02: case 0x0a: c->p += 2; break;
	case 0x03: case 0x0b: c->p += 4; break;
	case 0x01: uleb(c); break;
	case 0x09: sleb(c); break;
	default: c->bad = true;
	}
	if (c->p > c->end)
		c->bad = true;
}

/* The state of the call-frame program: the CFA and the rules of rbp and the
 * return address (the only registers the walk needs). */
struct state {
	uint8_t cfa_reg;
	int64_t cfa_off;
	uint8_t bp, ra;         /* 0 same value, 1 at CFA + off, 2 undefined */
	int64_t bp_off, ra_off;
};

#define STACK_DEPTH 8

/* Runs call-frame instructions from loc while the row applies to target; with
 * init, the initial state for DW_CFA_restore. False: something not handled. */
static bool run(struct cursor *c, struct state *s, const struct state *init, uintptr_t loc,
		uintptr_t target, int64_t data_align)
{
	struct state stack[STACK_DEPTH];
	int depth = 0;
	while (c->p < c->end && !c->bad) {
		uint8_t op = u8(c);
		uint64_t reg, delta;
		int64_t off;
		switch (op >> 6) {
		case 1: /* advance_loc */
			delta = op & 0x3f;
			goto advance;
		case 2: /* offset */
			reg = op & 0x3f;
			off = (int64_t)uleb(c) * data_align;
			goto offset;
		case 3: /* restore */
			reg = op & 0x3f;
			goto restore;
		}
		switch (op) {
		case 0x00: /* nop */
			continue;
		case 0x02: delta = u8(c); goto advance;
		case 0x03:
			if (c->end - c->p < 2)
				return false;
			delta = (uint64_t)c->p[0] | (uint64_t)c->p[1] << 8;
			c->p += 2;
			goto advance;
		case 0x04:
			if (c->end - c->p < 4)
				return false;
			delta = rd32(c->p);
			c->p += 4;
			goto advance;
		case 0x05: /* offset_extended */
			reg = uleb(c);
			off = (int64_t)uleb(c) * data_align;
			goto offset;
		case 0x11: /* offset_extended_sf */
			reg = uleb(c);
			off = sleb(c) * data_align;
			goto offset;
		case 0x06: /* restore_extended */
			reg = uleb(c);
			goto restore;
		case 0x07: /* undefined */
		case 0x08: /* same_value */
			reg = uleb(c);
			if (reg == R_RBP)
				s->bp = op == 0x07 ? 2 : 0;
			else if (reg == R_RA)
				s->ra = op == 0x07 ? 2 : 0;
			continue;
		case 0x09: /* register */
			reg = uleb(c);
			uleb(c);
			if (reg == R_RBP || reg == R_RA)
				return false;
			continue;
		case 0x0a: /* remember_state */
			if (depth == STACK_DEPTH)
				return false;
			stack[depth++] = *s;
			continue;
		case 0x0b: /* restore_state */
			if (depth == 0)
				return false;
			*s = stack[--depth]; /* the CFA rule included, as in GCC's unwinder */
			continue;
		case 0x0c: /* def_cfa */
			s->cfa_reg = (uint8_t)uleb(c);
			s->cfa_off = (int64_t)uleb(c);
			continue;
		case 0x12: /* def_cfa_sf */
			s->cfa_reg = (uint8_t)uleb(c);
			s->cfa_off = sleb(c) * data_align;
			continue;
		case 0x0d: /* def_cfa_register */
			s->cfa_reg = (uint8_t)uleb(c);
			continue;
		case 0x0e: /* def_cfa_offset */
			s->cfa_off = (int64_t)uleb(c);
			continue;
		case 0x13: /* def_cfa_offset_sf */
			s->cfa_off = sleb(c) * data_align;
			continue;
		case 0x10: /* expression */
		case 0x16: /* val_expression */
			reg = uleb(c);
			delta = uleb(c);
			if (reg == R_RBP || reg == R_RA || delta > (uint64_t)(c->end - c->p))
				return false;
			c->p += delta;
			continue;
		case 0x14: /* val_offset */
		case 0x15: /* val_offset_sf */
			reg = uleb(c);
			if (op == 0x14)
				uleb(c);
			else
				sleb(c);
			if (reg == R_RBP || reg == R_RA)
				return false;
			continue;
		case 0x2e: /* GNU_args_size */
			uleb(c);
			continue;
		default: /* set_loc, def_cfa_expression, anything newer */
			return false;
		}
	advance:
		if (loc + delta > target)
			return true; /* the row in force at target is this one */
		loc += delta;
		continue;
	offset:
		if (reg == R_RBP) {
			s->bp = 1;
			s->bp_off = off;
		} else if (reg == R_RA) {
			s->ra = 1;
			s->ra_off = off;
		}
		continue;
	restore:
		if (!init)
			return false;
		if (reg == R_RBP) {
			s->bp = init->bp;
			s->bp_off = init->bp_off;
		} else if (reg == R_RA) {
			s->ra = init->ra;
			s->ra_off = init->ra_off;
		}
		continue;
	}
	return !c->bad;
}

/* The FDE whose start is the last at or before target, from hdr, an object's
 * .eh_frame_hdr (its binary search table); NULL if there is none. */
static const uint8_t *fde_search(const uint8_t *hdr, uintptr_t target)
{
	if (hdr[0] != 1 || hdr[2] != PE_UDATA4 || hdr[3] != PE_DATAREL_SDATA4 ||
	    ((hdr[1] & 0x0f) != 0x03 && (hdr[1] & 0x0f) != 0x0b))
		return NULL;
	uint32_t count = rd32(hdr + 8);
	const uint8_t *tab = hdr + 12;
	intptr_t rel = (intptr_t)(target - (uintptr_t)hdr);
	if (!count || rel < (int32_t)rd32(tab))
		return NULL;
	size_t lo = 0, hi = count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if ((int32_t)rd32(tab + 8 * mid) <= rel)
			lo = mid;
		else
			hi = mid;
	}
	return hdr + (int32_t)rd32(tab + 8 * lo + 4);
}

/* The rule in force at address target (a return address minus one, or the exact
 * address of the first frame), from hdr, its object's .eh_frame_hdr. */
static bool find_rule(const uint8_t *hdr, uintptr_t target, struct rule *r)
{
	const uint8_t *fde = fde_search(hdr, target);
	if (!fde)
		return false;

	/* The FDE and its CIE. */
	uint32_t len = rd32(fde);
	if (len == 0 || len >= 0xfffffff0u)
		return false;
	uint32_t cie_ptr = rd32(fde + 4);
	if (cie_ptr == 0)
		return false;
	const uint8_t *cie = fde + 4 - cie_ptr;
	uint32_t cie_len = rd32(cie);
	if (cie_len == 0 || cie_len >= 0xfffffff0u || rd32(cie + 4) != 0)
		return false;
	struct cursor c = { cie + 8, cie + 4 + cie_len, false };
	uint8_t version = u8(&c);
	if (version != 1 && version != 3)
		return false;
	const char *aug = (const char *)c.p;
	size_t auglen = strnlen(aug, (size_t)(c.end - c.p));
	if (c.p + auglen >= c.end)
		return false;
	c.p += auglen + 1;
	uint64_t code_align = uleb(&c);
	int64_t data_align = sleb(&c);
	uint64_t ra_reg = version == 1 ? u8(&c) : uleb(&c);
	if (code_align != 1 || ra_reg != R_RA || c.bad)
		return false;
	uint8_t fde_enc = 0;
	if (aug[0] == 'z') {
		uint64_t n = uleb(&c);
		const uint8_t *data_end = c.p + n;
		if (n > (uint64_t)(c.end - c.p))
			return false;
		for (const char *a = aug + 1; *a; a++) {
			if (*a == 'R')
				fde_enc = u8(&c);
			else if (*a == 'L')
				u8(&c);
			else if (*a == 'P') {
				uint8_t enc = u8(&c);
				skip_ptr(&c, enc);
			} else
				return false; /* 'S' (a signal frame) and anything newer */
		}
		if (c.bad || c.p > data_end)
			return false;
		c.p = data_end;
	} else if (aug[0]) {
		return false;
	}
	if (fde_enc != PE_PCREL_SDATA4)
		return false;

	const uint8_t *p = fde + 8;
	uintptr_t begin = (uintptr_t)p + (intptr_t)(int32_t)rd32(p);
	uintptr_t range = rd32(p + 4);
	if (target - begin >= range)
		return false; /* no FDE covers it */
	struct cursor fc = { p + 8, fde + 4 + len, false };
	if (aug[0] == 'z') {
		uint64_t n = uleb(&fc);
		if (n > (uint64_t)(fc.end - fc.p))
			return false;
		fc.p += n;
	}

	struct state s = { .cfa_reg = R_RSP, .cfa_off = 8, .ra = 2 };
	if (!run(&c, &s, NULL, begin, UINTPTR_MAX, data_align))
		return false;
	struct state init = s;
	if (!run(&fc, &s, &init, begin, target, data_align))
		return false;
	if (s.cfa_reg != R_RSP && s.cfa_reg != R_RBP)
		return false;
	*r = (struct rule){ .cfa_reg = s.cfa_reg, .cfa_off = s.cfa_off, .bp_saved = s.bp == 1,
			    .bp_off = s.bp_off, .end = s.ra == 2 };
	if (!r->end && (s.ra != 1 || s.ra_off != -8))
		return false;
	if (s.bp == 2)
		r->bp_saved = false; /* undefined: leave it, nothing above may use it */
	return true;
}

/* Not inlined: the first frame is this function's, at the address of the asm. */
__attribute__((noinline)) bool sm_frames_walk(bool (*fn)(uintptr_t, void *), void *arg, int max,
					      bool store)
{
	uintptr_t pc, sp, bp;
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(pc), "=r"(sp), "=r"(bp));
	uintptr_t target = pc; /* exact for this frame, pc - 1 for return addresses */
	for (int n = 0; n <= max; n++) {
		struct dl_find_object f;
		if (_dl_find_object((void *)target, &f) != 0 || !f.dlfo_eh_frame)
			return false;
		/* Keyed by target + 1: the return address, or for this function's own
		 * frame the byte after the asm's first, which no call returns to. */
		struct rule r;
		if (!cache_get(target + 1, f.dlfo_eh_frame, &r)) {
			if (!find_rule(f.dlfo_eh_frame, target, &r))
				return false;
			if (store)
				cache_put(target + 1, f.dlfo_eh_frame, &r);
		}
		if (r.end)
			return true;
		uintptr_t cfa = (r.cfa_reg == R_RSP ? sp : bp) + (uintptr_t)r.cfa_off;
		/* The caller's frame lies above this one, within reason. */
		if (cfa <= sp || cfa - sp > (64u << 20) || (cfa & 7))
			return false;
		uintptr_t ra = *(const uintptr_t *)(cfa - 8);
		if (r.bp_saved)
			bp = *(const uintptr_t *)(cfa + (uintptr_t)r.bp_off);
		sp = cfa;
		pc = ra;
		if (!pc)
			return true; /* the outermost frame */
		if (!fn(pc, arg))
			return true;
		target = pc - 1;
	}
	return true;
}

/* The code an FDE covers, if its CIE says how its addresses are written the way
 * GCC and clang write them (pc-relative, signed 4 bytes). */
static bool fde_extent(const uint8_t *fde, uintptr_t *begin, uintptr_t *range)
{
	uint32_t len = rd32(fde);
	if (len == 0 || len >= 0xfffffff0u || rd32(fde + 4) == 0)
		return false;
	const uint8_t *cie = fde + 4 - rd32(fde + 4);
	uint32_t cie_len = rd32(cie);
	if (cie_len == 0 || cie_len >= 0xfffffff0u || rd32(cie + 4) != 0)
		return false;
	struct cursor c = { cie + 8, cie + 4 + cie_len, false };
	uint8_t version = u8(&c);
	const char *aug = (const char *)c.p;
	size_t auglen = strnlen(aug, (size_t)(c.end - c.p));
	if ((version != 1 && version != 3) || aug[0] != 'z' || c.p + auglen >= c.end)
		return false;
	c.p += auglen + 1;
	uleb(&c);
	sleb(&c);
	if (version == 1)
		u8(&c);
	else
		uleb(&c);
	uleb(&c); /* the augmentation data's length */
	uint8_t fde_enc = 0;
	for (const char *a = aug + 1; *a && !c.bad; a++) {
		if (*a == 'R')
			fde_enc = u8(&c);
		else if (*a == 'L')
			u8(&c);
		else if (*a == 'P')
			skip_ptr(&c, u8(&c));
		else if (*a != 'S')
			return false;
	}
	if (c.bad || fde_enc != PE_PCREL_SDATA4)
		return false;
	const uint8_t *p = fde + 8;
	*begin = (uintptr_t)p + (intptr_t)(int32_t)rd32(p);
	*range = rd32(p + 4);
	return true;
}

bool sm_frames_function(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
	struct dl_find_object f;
	if (_dl_find_object((void *)a, &f) != 0 || !f.dlfo_eh_frame)
		return false;
	const uint8_t *fde = fde_search(f.dlfo_eh_frame, a);
	uintptr_t begin, range;
	if (!fde || !fde_extent(fde, &begin, &range) || a - begin >= range)
		return false;
	*lo = begin;
	*hi = begin + range;
	return true;
}

#else

bool sm_frames_function(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
	(void)a;
	(void)lo;
	(void)hi;
	return false;
}

bool sm_frames_walk(bool (*fn)(uintptr_t, void *), void *arg, int max, bool store)
{
	(void)fn;
	(void)arg;
	(void)max;
	(void)store;
	return false; /* libgcc's unwinder does the walks */
}

void sm_frames_forget(uintptr_t lo, uintptr_t hi)
{
	(void)lo;
	(void)hi;
}

#endif
