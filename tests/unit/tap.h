/* SPDX-License-Identifier: MIT */
/* The TAP output of the unit tests: ok() per case, tap_done() prints the plan and
 * gives main's exit status (1 if any case failed). One copy, included by each test. */
#ifndef SM_TAP_H
#define SM_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int ntests, nfailed;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ntests++;
	printf("%sok %d - ", cond ? "" : "not ", ntests);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	if (!cond)
		nfailed++;
	fflush(stdout);
}

static int tap_done(void) __attribute__((unused));
static int tap_done(void)
{
	printf("1..%d\n", ntests);
	return nfailed ? 1 : 0;
}

#endif
