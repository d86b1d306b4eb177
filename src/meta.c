/* SPDX-License-Identifier: MIT */
/*
 * Bump allocator for metadata: 64 KiB blocks of anonymous memory, larger requests
 * mapped on their own. Used rarely (start-up, dlopen, arena growth), so one spin
 * lock is enough; it never calls malloc.
 */
#include "config.h"
#include "meta.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define META_BLOCK (64 * 1024)

static char *cur, *end;
static int lock;

static void take(void)
{
	while (__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE))
		;
}

static void release(void)
{
	__atomic_store_n(&lock, 0, __ATOMIC_RELEASE);
}

void sm_meta_fork_prepare(void) { take(); }
void sm_meta_fork_parent(void) { release(); }
void sm_meta_fork_child(void) { release(); }
bool sm_meta_fork_tryprepare(void) { return !__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE); }

static void *map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *sm_meta_alloc(size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (size >= META_BLOCK / 4)
		return map((size + 4095) & ~(size_t)4095);

	take();
	if (!cur || (size_t)(end - cur) < size) {
		char *b = map(META_BLOCK);
		if (!b) {
			release();
			return NULL;
		}
		cur = b;
		end = b + META_BLOCK;
	}
	void *p = cur;
	cur += size;
	release();
	return p;
}

char *sm_meta_strndup(const char *s, size_t n)
{
	char *p = sm_meta_alloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}
