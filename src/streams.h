/* SPDX-License-Identifier: MIT */
/*
 * The standard streams' buffers in secret memory (see streams.c). Never calls
 * malloc.
 */
#ifndef SM_STREAMS_H
#define SM_STREAMS_H

#pragma GCC visibility push(hidden)

/* Gives stdin and stdout secret buffers if they have none yet. Called once,
 * before main, when routing is on and the arena is ready. */
void sm_streams_secret(void);

#pragma GCC visibility pop

#endif
