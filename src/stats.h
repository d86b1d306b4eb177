/* SPDX-License-Identifier: MIT */
/*
 * Statistics (SECRETMEM_STATS): the arena's counters plus the call sites that
 * allocated the most secret bytes, reported at exit as text or JSON. Recording a
 * site costs nothing unless SECRETMEM_STATS is set; names are resolved at exit,
 * never on the allocation path. Never calls malloc.
 */
#ifndef SM_STATS_H
#define SM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

extern bool sm_stats_on;

/* While SECRETMEM_STATS is set: allocations routed (every call while rules are
 * active), and the stack walks among them (look-through and SECRETMEM_DEPTH). */
extern uint64_t sm_stats_decisions, sm_stats_walks;

/* Called at start-up once the options are read. */
void sm_stats_init(void);

/* Publishes the backend and the arena's counter addresses (once the arena exists). */
void sm_stats_refresh(void);

/* A secret allocation of size bytes whose immediate caller returns to ra. */
void sm_stats_site(const void *ra, size_t size);

/* Writes the report as text (json false) or JSON to fd. */
void sm_stats_write(int fd, bool json);

/*
 * Live statistics for other processes: with SECRETMEM_STATS set, the exported
 * object secretmem_impl_live holds the count of secret allocations and frees
 * (counted as they happen) and the addresses of the arena's own counters.
 * secretmem-inspect finds it through the shim's .dynsym and reads it, and the
 * counters it points to, from /proc/PID/mem. The layout is versioned by magic;
 * it holds counters and addresses only, never a secret byte.
 */
#define SM_LIVE_MAGIC "secretmem-live2"
struct sm_live {
	char magic[16];
	uint64_t mode;
	char backend[32];
	uint64_t allocs, frees;
	uint64_t addr_live, addr_peak, addr_touched, addr_mapped, addr_chunks, addr_enomem,
		 addr_limit;
};

/* A secret block is freed (counted when SECRETMEM_STATS is set). */
void sm_stats_free(void);

/* In a signal handler, the process about to end by signal sig: the report, from
 * lock-free counters only, call sites unnamed (async-signal-safe). Once. */
void sm_stats_write_fatal(int sig);

/* With SECRETMEM_STATS set: stands in for the default action of SIGTERM, SIGINT
 * and SIGHUP to write the report (signals.c). */
void sm_signals_init(void);

#pragma GCC visibility pop

#endif
