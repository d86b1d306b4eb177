/* SPDX-License-Identifier: MIT */
/*
 * The SECRETMEM_STATS report of a process stopped by a signal (SIGTERM, SIGINT,
 * SIGHUP), the usual end of a server, without a change the program could see.
 *
 * Only while SECRETMEM_STATS is set, and only for a signal whose disposition is
 * SIG_DFL, the shim's handler stands in for the default action: it writes the
 * report from lock-free counters (the signal may have interrupted any lock; see
 * sm_stats_write_fatal), restores SIG_DFL and raises the signal again, so the
 * process ends by that signal, with the status a parent sees without the shim.
 * sigaction() and signal() are interposed so that the program is told what it
 * would be told without the shim: SIG_DFL with the flags it set. Setting any
 * other disposition (a handler, SIG_IGN) takes the shim's handler away at once;
 * setting SIG_DFL again brings it back. A program that blocks the signal and
 * takes it with sigwait or signalfd never runs the handler. Without
 * SECRETMEM_STATS both functions only pass the call on.
 *
 * Never calls malloc; everything here is async-signal-safe.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "options.h"
#include "stats.h"

#define SM_EXPORT __attribute__((visibility("default")))

/* glibc's own entry points, which our sigaction and signal do not shadow. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
extern __sighandler_t bsd_signal(int sig, __sighandler_t handler);

SM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old);
SM_EXPORT __sighandler_t signal(int sig, __sighandler_t handler);

static const int fatal[] = { SIGTERM, SIGINT, SIGHUP };
#define NFATAL (sizeof(fatal) / sizeof(fatal[0]))

static bool enabled;              /* SECRETMEM_STATS is set */
static bool armed[NFATAL];        /* the shim's handler is installed */
static struct sigaction shown[NFATAL]; /* what the program is told while armed */

static int slot(int sig)
{
	for (size_t i = 0; i < NFATAL; i++)
		if (fatal[i] == sig)
			return (int)i;
	return -1;
}

static void on_fatal(int sig)
{
	int saved = errno;
	int i = slot(sig);
	sm_stats_write_fatal(sig);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	__sigaction(sig, &dfl, NULL);
	if (i >= 0)
		__atomic_store_n(&armed[i], false, __ATOMIC_RELEASE);
	/* Blocked while this handler runs: delivered, with its default action, as
	 * soon as it returns. */
	raise(sig);
	errno = saved;
}

static int arm(size_t i)
{
	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_handler = on_fatal;
	a.sa_flags = SA_RESTART;
	sigemptyset(&a.sa_mask);
	if (__sigaction(fatal[i], &a, NULL) != 0)
		return -1;
	__atomic_store_n(&armed[i], true, __ATOMIC_RELEASE);
	return 0;
}

void sm_signals_init(void)
{
	enabled = sm_stats_on;
	if (!enabled)
		return;
	for (size_t i = 0; i < NFATAL; i++) {
		struct sigaction cur;
		if (__sigaction(fatal[i], NULL, &cur) == 0 && cur.sa_handler == SIG_DFL) {
			shown[i] = cur;
			arm(i);
		}
	}
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int i = enabled ? slot(sig) : -1;
	if (i < 0)
		return __sigaction(sig, act, old);
	struct sigaction want, prev;
	if (act)
		want = *act; /* act and old may be the same object */
	if (__atomic_load_n(&armed[i], __ATOMIC_ACQUIRE))
		prev = shown[i];
	else if (__sigaction(sig, NULL, &prev) != 0)
		return -1;
	if (act) {
		if (want.sa_handler == SIG_DFL) {
			shown[i] = want;
			if (!__atomic_load_n(&armed[i], __ATOMIC_ACQUIRE) && arm((size_t)i) != 0)
				return __sigaction(sig, &want, old);
		} else {
			if (__sigaction(sig, &want, NULL) != 0)
				return -1;
			__atomic_store_n(&armed[i], false, __ATOMIC_RELEASE);
		}
	}
	if (old)
		*old = prev;
	return 0;
}

/* glibc's signal(): BSD semantics (SA_RESTART, the signal blocked in its handler). */
__sighandler_t signal(int sig, __sighandler_t handler)
{
	if (!enabled || slot(sig) < 0)
		return bsd_signal(sig, handler);
	struct sigaction a, o;
	memset(&a, 0, sizeof(a));
	a.sa_handler = handler;
	a.sa_flags = SA_RESTART;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, sig);
	if (sigaction(sig, &a, &o) != 0)
		return SIG_ERR;
	return o.sa_handler;
}
