/* SPDX-License-Identifier: MIT */
/* exec.c: following a program that runs itself again, or starts a set-ID one. */
#ifndef SM_EXEC_H
#define SM_EXEC_H

#include <stdbool.h>

#pragma GCC visibility push(hidden)

/* At start-up, the environment still as it came: keeps what a program that runs
 * itself again needs put back. rules: a rule is set (the shim protects
 * something). */
void sm_exec_init(bool rules);

#pragma GCC visibility pop

#endif
