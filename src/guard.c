/* SPDX-License-Identifier: MIT */
/* The per-thread guard and scope depth (guard.h): initial-exec TLS, zero at thread
 * start, so reading it never allocates. */
#include "config.h"
#include "guard.h"

__thread union sm_thread sm_thread __attribute__((tls_model("initial-exec")));

__thread unsigned sm_thread_starting __attribute__((tls_model("initial-exec")));
