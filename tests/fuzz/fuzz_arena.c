/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the secret arena (src/arena.c and its files over src/pages.c) driven through
 * its API by arbitrary sequences of malloc, calloc, realloc, memalign, free and
 * usable_size on 64 slots. Content checks: a fresh block reads zero; every live
 * block keeps its pattern until it is freed; realloc keeps the common prefix; an
 * aligned block is aligned; usable size covers the request; a refusal is NULL with
 * ENOMEM (the cap is 64 MiB, so big requests hit it). Each input ends by freeing
 * what it holds, so inputs do not depend on each other.
 *
 * Every operation takes 4 bytes: op, slot, and a 16-bit size (scaled: bit 15 set
 * means up to 1 MiB in 32-byte steps). memalign's alignment comes from the slot
 * byte's top bits.
 *
 * sm_arena_init reserves 64 GiB of address space (PROT_NONE): libFuzzer's
 * -rss_limit_mb counts resident memory only, so that is fine. Run as root (or with
 * RLIMIT_MEMLOCK of at least 64 MiB); under ASan, see docs/fuzzing.md.
 */
#include "config.h"
#include "arena.h"
#include "options.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

struct slot {
	unsigned char *p;
	size_t n;
	uint8_t seed;
};

static struct slot slots[SLOTS];
static uint8_t counter;

/* The pattern: byte i of a block is tmpl[(seed + 13 * (i / 4096)) & 255][i % 4096], so
 * that fills and checks run at memcpy/memcmp speed on blocks of up to 1 MiB. */
#define TPAGE 4096
static unsigned char tmpl[256][TPAGE];
static const unsigned char zero[TPAGE];

static const unsigned char *row(const struct slot *s, size_t page)
{
	return tmpl[(uint8_t)(s->seed + 13 * page)];
}

static void fill(struct slot *s, size_t from)
{
	for (size_t off = from; off < s->n;) {
		size_t in = off % TPAGE, len = TPAGE - in;
		if (len > s->n - off)
			len = s->n - off;
		memcpy(s->p + off, row(s, off / TPAGE) + in, len);
		off += len;
	}
}

static void check(const struct slot *s, size_t upto, const char *what)
{
	for (size_t off = 0; off < upto;) {
		size_t in = off % TPAGE, len = TPAGE - in;
		if (len > upto - off)
			len = upto - off;
		if (memcmp(s->p + off, row(s, off / TPAGE) + in, len)) {
			fprintf(stderr, "%s: block %p (%zu bytes) changed in [%zu, %zu)\n", what,
				(void *)s->p, s->n, off, off + len);
			abort();
		}
		off += len;
	}
}

static void check_zero(const unsigned char *p, size_t n, const char *what)
{
	for (size_t off = 0; off < n; off += TPAGE) {
		size_t len = n - off < TPAGE ? n - off : TPAGE;
		if (memcmp(p + off, zero, len)) {
			fprintf(stderr, "%s: fresh block %p (%zu bytes) not zero in [%zu, %zu)\n",
				what, (const void *)p, n, off, off + len);
			abort();
		}
	}
}

static void refused(const void *p, const char *what)
{
	if (!p && errno != ENOMEM) {
		fprintf(stderr, "%s: NULL with errno %d, not ENOMEM\n", what, errno);
		abort();
	}
}

static void release(struct slot *s)
{
	if (!s->p)
		return;
	check(s, s->n, "free");
	sm_arena_free(s->p);
	s->p = NULL;
}

static void take(struct slot *s, unsigned char *p, size_t n, const char *what)
{
	if (!sm_arena_owns(p)) {
		fprintf(stderr, "%s: %p is not in the arena\n", what, (void *)p);
		abort();
	}
	check_zero(p, n, what);
	if (sm_arena_usable_size(p) < n)
		abort();
	s->p = p;
	s->n = n;
	s->seed = counter++;
	fill(s, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	for (int r = 0; r < 256; r++)
		for (int i = 0; i < TPAGE; i++)
			tmpl[r][i] = (uint8_t)(r * 31 + i * 7 + (i >> 8) + 1);
	sm_opt.max = (size_t)64 << 20;
	sm_arena_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
	for (size_t k = 0; k + 4 <= size; k += 4) {
		uint8_t op = d[k] % 6;
		struct slot *s = &slots[d[k + 1] % SLOTS];
		unsigned v = d[k + 2] | (unsigned)d[k + 3] << 8;
		size_t n = v & 0x8000 ? (size_t)(v & 0x7fff) * 32 : v;
		errno = 0;
		switch (op) {
		case 0: /* malloc */
		case 1: /* calloc: the preload serves it with a fresh (zero) block */
		{
			release(s);
			unsigned char *p = sm_arena_malloc(n);
			refused(p, "malloc");
			if (p)
				take(s, p, n, "malloc");
			break;
		}
		case 2: /* realloc (size 0 is the caller's free) */
			if (!s->p || !n) {
				release(s);
				break;
			}
			{
				unsigned char *q = sm_arena_realloc(s->p, n);
				refused(q, "realloc");
				if (!q) {
					check(s, s->n, "realloc refused");
					break;
				}
				s->p = q;
				check(s, s->n < n ? s->n : n, "realloc");
				size_t old = s->n;
				s->n = n;
				if (n > old)
					fill(s, old);
				if (sm_arena_usable_size(q) < n)
					abort();
			}
			break;
		case 3: /* memalign: 16 B to 64 KiB */
		{
			release(s);
			size_t align = (size_t)16 << (d[k + 1] >> 6 << 2); /* 16, 256, 4K, 64K */
			unsigned char *p = sm_arena_memalign(align, n);
			refused(p, "memalign");
			if (p) {
				if ((uintptr_t)p & (align - 1))
					abort();
				take(s, p, n, "memalign");
			}
			break;
		}
		case 4: /* free */
			release(s);
			break;
		case 5: /* usable size, and a full check */
			if (s->p) {
				if (sm_arena_usable_size(s->p) < s->n)
					abort();
				check(s, s->n, "usable_size");
			}
			break;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		release(&slots[i]);
	/* The arena's invariants after every input (spans, slabs, bins, zero pages). */
	char msg[256];
	if (sm_arena_check(msg, sizeof(msg))) {
		fprintf(stderr, "fuzz_arena: arena inconsistent: %s\n", msg);
		abort();
	}
	return 0;
}
