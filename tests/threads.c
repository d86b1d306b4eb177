/* SPDX-License-Identifier: MIT */
/*
 * Four threads allocate, grow, shrink and free blocks of random sizes, each block
 * filled with a pattern whose checksum is kept beside it and checked before every
 * realloc and free. A quarter of the blocks are handed to a shared queue and freed
 * by whichever thread pops them (usually another one). Every thread has its own
 * seeded generator, so the counts are the same on every run whatever the
 * scheduling; the summary line says them and "errors=0", and the exit status is 1
 * on any error.
 *
 *   threads [ITERATIONS]   per thread, default 20000
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define SLOTS 64
#define QCAP 256

struct block {
	unsigned char *p;
	size_t size;
	uint32_t sum;
};

/* The shared queue of blocks waiting for a cross-thread free. */
static struct block queue[QCAP];
static size_t q_head, q_len;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned long iterations = 20000;

struct counts {
	unsigned long allocs, callocs, aligned, reallocs, frees, handed, popped, errors;
};

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static size_t random_size(uint64_t *s)
{
	uint64_t r = next_rand(s);
	switch (r % 16) {
	case 0: return (size_t)(r >> 8) % 262144 + 1;  /* large, often mmapped */
	case 1: case 2: return (size_t)(r >> 8) % 16384 + 1;
	default: return (size_t)(r >> 8) % 512 + 1;
	}
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void fill(struct block *b, uint64_t *s)
{
	uint64_t seed = next_rand(s);
	for (size_t i = 0; i < b->size; i++)
		b->p[i] = (unsigned char)(seed >> (8 * (i % 8))) ^ (unsigned char)i;
	b->sum = checksum(b->p, b->size);
}

static void check_block(const struct block *b, struct counts *c)
{
	if (checksum(b->p, b->size) != b->sum)
		c->errors++;
}

static void release(struct block *b, struct counts *c)
{
	check_block(b, c);
	free(b->p);
	b->p = NULL;
	c->frees++;
}

/* Hands b over to the queue; when the queue is full, frees the oldest entry first. */
static void hand_over(struct block *b, struct counts *c)
{
	struct block old = { 0 };
	pthread_mutex_lock(&q_lock);
	if (q_len == QCAP) {
		old = queue[q_head];
		q_head = (q_head + 1) % QCAP;
		q_len--;
	}
	queue[(q_head + q_len) % QCAP] = *b;
	q_len++;
	pthread_mutex_unlock(&q_lock);
	b->p = NULL;
	c->handed++;
	if (old.p) {
		release(&old, c);
		c->popped++;
	}
}

static int pop(struct block *b)
{
	int got = 0;
	pthread_mutex_lock(&q_lock);
	if (q_len) {
		*b = queue[q_head];
		q_head = (q_head + 1) % QCAP;
		q_len--;
		got = 1;
	}
	pthread_mutex_unlock(&q_lock);
	return got;
}

struct job {
	int id;
	struct counts c;
};

static void *run(void *arg)
{
	struct job *j = arg;
	struct counts *c = &j->c;
	uint64_t s = 0x9e3779b97f4a7c15ULL * (uint64_t)(j->id + 1);
	struct block slots[SLOTS];
	memset(slots, 0, sizeof(slots));

	for (unsigned long it = 0; it < iterations; it++) {
		struct block *b = &slots[next_rand(&s) % SLOTS];
		uint64_t op = next_rand(&s) % 8;
		if (!b->p) {
			b->size = random_size(&s);
			if (op == 0) {
				b->p = calloc(1, b->size);
				c->callocs++;
				if (b->p)
					for (size_t i = 0; i < b->size; i++)
						if (b->p[i])
							c->errors++;
			} else if (op == 1) {
				void *p = NULL;
				size_t a = (size_t)16 << (next_rand(&s) % 9);
				if (posix_memalign(&p, a, b->size) == 0 && ((uintptr_t)p & (a - 1)))
					c->errors++;
				b->p = p;
				c->aligned++;
			} else {
				b->p = malloc(b->size);
				c->allocs++;
			}
			if (!b->p) {
				c->errors++;
				continue;
			}
			fill(b, &s);
		} else if (op < 3) {
			/* realloc keeps the first min(old, new) bytes */
			check_block(b, c);
			size_t n = random_size(&s);
			size_t keep = n < b->size ? n : b->size;
			uint32_t want = checksum(b->p, keep);
			unsigned char *q = realloc(b->p, n);
			c->reallocs++;
			if (!q) {
				c->errors++;
				continue;
			}
			if (checksum(q, keep) != want)
				c->errors++;
			b->p = q;
			b->size = n;
			fill(b, &s);
		} else if (op < 5) {
			hand_over(b, c);
		} else {
			release(b, c);
		}
		/* Every 8th iteration, free a block some thread handed over. */
		struct block other;
		if (it % 8 == 0 && pop(&other)) {
			release(&other, c);
			c->popped++;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].p)
			release(&slots[i], c);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		char *end;
		errno = 0;
		iterations = strtoul(argv[1], &end, 10);
		if (errno || *end || !iterations) {
			fprintf(stderr, "usage: %s [ITERATIONS]\n", argv[0]);
			return 2;
		}
	}

	struct job jobs[NTHREADS];
	pthread_t tid[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].id = i;
		if (pthread_create(&tid[i], NULL, run, &jobs[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	struct counts t = { 0 };
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		struct counts *c = &jobs[i].c;
		t.allocs += c->allocs;
		t.callocs += c->callocs;
		t.aligned += c->aligned;
		t.reallocs += c->reallocs;
		t.frees += c->frees;
		t.handed += c->handed;
		t.popped += c->popped;
		t.errors += c->errors;
	}
	/* What is still queued is freed here, by the main thread. */
	struct block b;
	while (pop(&b)) {
		release(&b, &t);
		t.popped++;
	}

	unsigned long made = t.allocs + t.callocs + t.aligned;
	if (t.frees != made || t.popped != t.handed)
		t.errors++;
	/* Which thread frees a handed-over block depends on scheduling; the totals
	 * do not. */
	printf("threads=%d iterations=%lu allocs=%lu callocs=%lu aligned=%lu reallocs=%lu "
	       "frees=%lu handed=%lu errors=%lu\n",
	       NTHREADS, iterations, t.allocs, t.callocs, t.aligned, t.reallocs, t.frees, t.handed,
	       t.errors);
	return t.errors ? 1 : 0;
}
