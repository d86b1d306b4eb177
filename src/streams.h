/* SPDX-License-Identifier: MIT */
/*
 * The standard streams' buffers in secret memory while the process holds secret
 * memory (see streams.c). Never calls malloc.
 */
#ifndef SM_STREAMS_H
#define SM_STREAMS_H

#pragma GCC visibility push(hidden)

/* Gives stdin, stdout and stderr (where buffered) secret buffers, moving what
 * their ordinary ones hold. Called by the arena, with no lock held, after the
 * secret allocation that follows start-up or an idle release. */
void sm_streams_hold(void);

/* Gives the secret buffers back (pending output flushed, unread input moved to
 * ordinary buffers): called by the arena, with no lock held, when no secret block
 * is live, before it unmaps its chunks. A stream in use keeps its buffer. */
void sm_streams_give_back(void);

#pragma GCC visibility pop

#endif
