/* SPDX-License-Identifier: MIT */
/*
 * Seccomp filters over the process (sandbox.c): what the arena must not call there.
 */
#ifndef SM_SANDBOX_H
#define SM_SANDBOX_H

#include <stdbool.h>

/* A seccomp filter applies (inherited at start-up, or installed since): the arena
 * makes no call a sandbox may refuse fatally that it can do without (mincore,
 * the limit's re-reads). Read on slow paths only. */
extern bool sm_sandboxed;
/* A filter installed since start-up kills (or traps) a call that mapping a chunk
 * makes: no chunk is mapped from then on, and none is given back. */
extern bool sm_sandbox_no_chunks;
/* The call that filter refuses fatally ("memfd_secret", ...), for the message. */
extern const char *sm_sandbox_refused;

/* At start-up: a filter inherited through exec (/proc/self/status, Seccomp: 2). */
void sm_sandbox_init(void);
/* Whether a filter program (a struct sock_fprog; NULL: strict mode) lets through
 * every call that mapping a chunk makes; if not, *refused names the first one it
 * would kill or trap. Untrusted: a program the checker cannot run counts as
 * refusing. */
bool sm_sandbox_allows_chunks(const void *fprog, const char **refused);
/* Runs a filter program over one call (number nr, up to 6 arguments): the
 * filter's return value (SECCOMP_RET_*), SECCOMP_RET_KILL_PROCESS if it cannot be
 * run. For the tests. */
unsigned sm_sandbox_run(const void *fprog, int nr, const unsigned long args[6]);
/* A filter was installed: chunks_ok is what sm_sandbox_allows_chunks said. */
void sm_sandbox_installed(bool chunks_ok, const char *refused);

/* The preload's hooks of prctl and syscall (seccomp_hooks.c): their next
 * definitions, looked up at start-up. */
void sm_seccomp_hooks_init(void);

#endif
