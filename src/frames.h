/* SPDX-License-Identifier: MIT */
/*
 * Frames: the look-through walk's fast unwinder (x86_64). Steps from frame to frame
 * with the objects' own unwind tables (.eh_frame_hdr, found with _dl_find_object:
 * no lock), keeping for each return address the one rule that finds its caller,
 * so that a walk over known code is a few loads a frame. Anything it does not
 * handle (signal frames, a CFA not on rsp or rbp, DWARF expressions) makes it give
 * up, and the caller uses libgcc's unwinder instead.
 */
#ifndef SM_FRAMES_H
#define SM_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

/* Calls fn with each return address of the calling thread's stack, innermost
 * first (the first is in the caller of sm_frames_walk), until fn returns false, max
 * frames were seen or the stack ends: then returns true. Returns false if a frame
 * could not be unwound (nothing is known about the frames past those seen). With
 * store, the rules found are cached. A cached rule counts only for the object
 * whose unwind table it came from (at the same address), so an unload the caller
 * has not heard of yet makes no rule wrong. */
bool sm_frames_walk(bool (*fn)(uintptr_t pc, void *arg), void *arg, int max, bool store);

/* The extent [*lo, *hi) of the function whose code holds address a, from its
 * object's unwind table (the FDE that covers a); false if none does, or off
 * x86_64. */
bool sm_frames_function(uintptr_t a, uintptr_t *lo, uintptr_t *hi);

/* Forgets the cached rules of return addresses in [lo, hi): an object there was
 * unloaded. */
void sm_frames_forget(uintptr_t lo, uintptr_t hi);

#pragma GCC visibility pop

#endif
