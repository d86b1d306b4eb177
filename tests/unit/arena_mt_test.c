/* SPDX-License-Identifier: MIT */
/*
 * Threads against the secret arena (linked directly; built plain, under ASan+UBSan
 * and under TSan). Prints TAP; exit status 0 when every test passed.
 *
 * Worker threads allocate, realloc and free blocks of random sizes, each filled
 * with a pattern derived from a per-block seed and checked before every realloc and
 * free; a quarter of the blocks go through a shared queue and are freed by another
 * thread. Short-lived threads come and go so their caches are flushed at exit.
 * Meanwhile the main thread forks 200 times: each child checks a block the parent
 * wrote before fork, allocates, and exits; an alarm turns a deadlock into failure.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "options.h"

#define NWORKERS 3
#define SLOTS 64
#define QCAP 128
#define FORKS 200

struct block {
	unsigned char *p;
	size_t size;
	uint32_t seed;
};

static struct {
	pthread_mutex_t lock;
	struct block q[QCAP];
	size_t n;
} queue = { PTHREAD_MUTEX_INITIALIZER, { { 0 } }, 0 };

static int errors;
static int stop;

static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void fill(struct block *b)
{
	for (size_t i = 0; i < b->size; i++)
		b->p[i] = (unsigned char)(b->seed + i * 13);
}

static bool intact(const struct block *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b->p[i] != (unsigned char)(b->seed + i * 13))
			return false;
	return true;
}

static void error(const char *what)
{
	__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
	printf("# error: %s\n", what);
}

static size_t pick_size(uint64_t *s)
{
	uint32_t r = rnd(s);
	if (r % 16 == 0)
		return 8192 + r % 60000; /* large now and then */
	return r % 600;
}

static void release(struct block *b)
{
	if (!intact(b, b->size))
		error("block changed before free");
	sm_arena_free(b->p);
	b->p = NULL;
}

static void work(uint64_t seed, int iters)
{
	struct block slot[SLOTS] = { { 0 } };
	for (int it = 0; it < iters; it++) {
		struct block *b = &slot[rnd(&seed) % SLOTS];
		uint32_t op = rnd(&seed) % 8;
		if (!b->p) {
			b->size = pick_size(&seed);
			b->seed = rnd(&seed);
			b->p = sm_arena_malloc(b->size);
			if (!b->p) {
				error("malloc failed");
				continue;
			}
			for (size_t i = 0; i < b->size; i++)
				if (b->p[i]) {
					error("fresh block not zero");
					break;
				}
			fill(b);
		} else if (op < 3) {
			size_t n = pick_size(&seed) + 1;
			if (!intact(b, b->size))
				error("block changed before realloc");
			unsigned char *q = sm_arena_realloc(b->p, n);
			if (!q) {
				error("realloc failed");
				continue;
			}
			b->p = q;
			if (!intact(b, n < b->size ? n : b->size))
				error("realloc lost contents");
			b->size = n;
			fill(b);
		} else if (op < 5) {
			/* Hand it over; free one that another thread (mostly) handed over. */
			struct block got = { 0 };
			pthread_mutex_lock(&queue.lock);
			if (queue.n && (op == 4 || queue.n == QCAP))
				got = queue.q[--queue.n];
			queue.q[queue.n++] = *b;
			pthread_mutex_unlock(&queue.lock);
			b->p = NULL;
			if (got.p)
				release(&got);
		} else {
			release(b);
		}
	}
	for (int i = 0; i < SLOTS; i++)
		if (slot[i].p)
			release(&slot[i]);
}

static void *worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		work(seed++, 2000);
	return NULL;
}

static void *short_lived(void *arg)
{
	work((uintptr_t)arg, 300);
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "# deadlock: alarm fired\nnot ok - no deadlock\n";
	if (write(1, m, sizeof(m) - 1) < 0)
		_exit(3);
	_exit(2);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	alarm(120);
	sm_arena_init();

	struct block witness = { sm_arena_malloc(3000), 3000, 77 };
	fill(&witness);

	pthread_t t[NWORKERS];
	for (uintptr_t i = 0; i < NWORKERS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(i + 1));

	int fork_bad = 0;
	for (int i = 0; i < FORKS; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			int bad = !intact(&witness, witness.size);
			struct block b = { sm_arena_malloc(100 + (size_t)i), 100 + (size_t)i, (uint32_t)i };
			bad |= !b.p;
			if (b.p) {
				fill(&b);
				bad |= !intact(&b, b.size);
				sm_arena_free(b.p);
			}
			memset(witness.p, 0, witness.size); /* must not reach the parent */
			_exit(bad);
		}
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			fork_bad++;
		if (i % 20 == 0) {
			pthread_t s;
			pthread_create(&s, NULL, short_lived, (void *)(uintptr_t)(1000 + i));
			pthread_join(s, NULL);
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&queue.lock);
	while (queue.n)
		release(&queue.q[--queue.n]);
	pthread_mutex_unlock(&queue.lock);

	printf("%sok 1 - workers: contents kept, fresh blocks zero, cross-thread frees (%d errors)\n",
	       errors ? "not " : "", errors);
	printf("%sok 2 - %d forks while threads allocate: no deadlock, child has its own copy\n",
	       fork_bad ? "not " : "", FORKS);
	bool witness_ok = intact(&witness, witness.size);
	printf("%sok 3 - the children's writes never reached the parent\n", witness_ok ? "" : "not ");
	sm_arena_free(witness.p);

	struct sm_arena_stats st;
	sm_arena_get_stats(&st);
	bool balanced = st.allocs == st.frees && st.live_bytes == 0;
	printf("%sok 4 - stats balance after every block is freed (allocs %llu, frees %llu, live %llu)\n",
	       balanced ? "" : "not ", (unsigned long long)st.allocs, (unsigned long long)st.frees,
	       (unsigned long long)st.live_bytes);
	char msg[256];
	unsigned problems = sm_arena_check(msg, sizeof(msg));
	printf("%sok 5 - the arena is consistent after the workers and forks%s%s\n",
	       problems ? "not " : "", problems ? ": " : "", problems ? msg : "");
	printf("1..5\n");
	return errors || fork_bad || !witness_ok || !balanced || problems;
}
