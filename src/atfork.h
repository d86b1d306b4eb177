/* SPDX-License-Identifier: MIT */
#ifndef SM_ATFORK_H
#define SM_ATFORK_H

#include <stdbool.h>

#pragma GCC visibility push(hidden)

/* Registers the shim's fork handlers, once, before any other (atfork.c). */
void sm_atfork_init(void);

/* Set once the routing tables exist: their locks are then held over fork(). */
extern bool sm_atfork_route;

#pragma GCC visibility pop

#endif
