/* SPDX-License-Identifier: MIT */
/*
 * Wiping freed secret memory: a large block over its resident pages only (one the
 * program never filled is not faulted in to be cleared), a small slot with AVX2
 * stores that do not branch on its size where the CPU has them, else
 * explicit_bzero (slab.c's slot_free). Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"

#include <string.h>

/* ---- wiping ---- */

/* explicit_bzero of the resident pages of [p, p+len) only (p page-aligned, len any):
 * a page the program never touched must not be faulted in just to be cleared.
 * Whether every page of the range was resident. */
bool wipe_resident(void *p, size_t len)
{
	enum { W = 256 };
	unsigned char vec[W];
	char *a = p;
	bool all = true;
	if (len <= PAGE) {
		explicit_bzero(p, len);
		return true;
	}
	/* mincore reports the system's pages (the arena's are the same but in tests
	 * of larger ones). */
	const size_t kp = sm_pages_size();
	for (size_t off = 0; off < len; off += W * kp) {
		size_t n = len - off < W * kp ? len - off : W * kp;
		if (sm_pages_resident(a + off, round_up(n, kp), vec) != 0) {
			explicit_bzero(a + off, n);
			continue;
		}
		/* One call for each run of resident pages: a page at a time made a
		 * 1 MiB block 256 calls. */
		for (size_t i = 0, run = 0;; i += kp) {
			bool end = i >= n; /* n need not be a multiple of kp */
			if (!end && (vec[i / kp] & 1))
				continue;
			size_t to = end ? n : i;
			if (to > run)
				explicit_bzero(a + off + run, to - run);
			if (end)
				break;
			all = false;
			run = i + kp;
		}
	}
	return all;
}

/* Wipes [p, p+len) of a large block: the bytes the program may have written (its
 * extent, not the page-rounded span: bench/arena_cases touch). A block carved from
 * touched pages is cleared with plain stores up to 64 KiB (mincore would cost more
 * than they do); one whose pages came untouched, or a bigger one, only where
 * resident (a first touch costs ~20 us, and a page the program never touched is
 * zero already). */
bool wipe_block(void *p, size_t len, bool all_touched)
{
	if (all_touched && len <= 16 * PAGE) {
		explicit_bzero(p, len);
		return true;
	}
	return wipe_resident(p, len);
}

/* The wipe of a freed slot of 32 to 256 bytes, the common case. Programs free
 * blocks of mixed sizes, and a wipe that branches on the size (memset's dispatch,
 * a loop, or a choice between two store patterns) then mispredicts a branch or two
 * a call: that, not the stores, made the wipe most of the cost of a small secret
 * pair (bench/results; cachegrind --branch-sim counted 0.34 mispredicted branches
 * a pair with two patterns, one for slots up to 64 bytes and one above, and 0.07,
 * the idle release's own, without). So it does not branch on the size: eight
 * 32-byte AVX2 stores at 0, 32, ..., 224, each clamped to the slot's last 32
 * bytes, cover any slot of 32 to 256 bytes. The offsets are computed (a compare
 * and a conditional move each): read from a table of the class, the stores waited
 * for the loads, 6% slower with 256 live slots (bench/case_bench small-live). The
 * 16-byte class is all link words and goes to slot_free. Without AVX2: slot_free. */
#ifdef WIPE_AVX2
#include <immintrin.h>
#ifdef HAVE_CPU_FEATURE_ACTIVE
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
bool have_avx2;

__attribute__((target("avx2"), noinline)) void slot_free_avx2(struct blk *x, unsigned c,
								  uint32_t sz)
{
	char *b = (char *)x;
	size_t last = sz - 32;
	__m256i z = _mm256_setzero_si256();
	/* Unaligned stores (as fast as aligned ones on aligned data), through void *:
	 * the vector type's alignment is no claim about b. */
#pragma GCC unroll 8
	for (size_t k = 0; k < 256; k += 32)
		_mm256_storeu_si256((__m256i *)(void *)(b + (k < last ? k : last)), z);
	__asm__ volatile("" : : "r"(b) : "memory"); /* the stores are not dead */
	slot_push(x, c, sz);
}
#endif

/* Whether the CPU and the kernel let us use AVX2. */
static bool cpu_has_avx2(void)
{
#if !defined(WIPE_AVX2)
	return false;
#elif defined(HAVE_CPU_FEATURE_ACTIVE)
	return CPU_FEATURE_ACTIVE(AVX2); /* the loader's findings: no CPUID */
#else
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
		return false;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 6) != 6) /* the kernel saves the YMM state */
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2);
#endif
}

bool sm_arena_vector_wipe(bool on)
{
#ifdef WIPE_AVX2
	bool was = have_avx2;
	have_avx2 = on && cpu_has_avx2();
	return was;
#else
	(void)on;
	return false;
#endif
}

void wipe_init(void)
{
#ifdef WIPE_AVX2
	have_avx2 = cpu_has_avx2();
#endif
}

