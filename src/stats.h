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

extern bool sm_stats_on;

/* Called at start-up once the options are read. */
void sm_stats_init(void);

/* A secret allocation of size bytes whose immediate caller returns to ra. */
void sm_stats_site(const void *ra, size_t size);

/* Writes the report as text (json false) or JSON to fd. */
void sm_stats_write(int fd, bool json);

#endif
