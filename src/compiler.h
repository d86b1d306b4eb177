/* SPDX-License-Identifier: MIT */
/*
 * Branch hints and the one address hash, for every module: defined here once so
 * that no file carries its own copy.
 */
#ifndef SM_COMPILER_H
#define SM_COMPILER_H

#include <stdint.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The top bits bits (1..32) of x times 2^64 / golden ratio (Fibonacci hashing):
 * addresses a few bytes or pages apart land far apart. For the tables indexed by
 * code address: the routing cache, the unwind-rule cache, the stats sites. */
static inline unsigned sm_hash(uint64_t x, unsigned bits)
{
	return (unsigned)((x * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

#endif
