/* SPDX-License-Identifier: MIT */
/*
 * dlopen, dlmopen and dlsym: the routing tables must hear of every load (see
 * docs/attribution-loader.md), and must know a loaded object before the program
 * calls into it through what dlsym returned, so the shim defines all three. Each runs a pre-hook
 * (sm_dlopen_prehook in preload.c, which returns the real function) and then
 * jumps to the real one with the caller's arguments and return address untouched:
 * glibc takes the caller's namespace, RUNPATH and $ORIGIN from dlopen's return
 * address, and RTLD_NEXT's meaning from dlsym's, which a C wrapper calling the
 * real function would make the shim's.
 */
#include "config.h"

#if defined(__x86_64__)

/* which: 0 dlopen, 1 dlmopen, 2 dlsym; the pre-hook also gets the first two
 * arguments. The argument registers are kept across the call. */
.macro HOOK name, which
	.globl \name
	.type \name, @function
\name:
	.cfi_startproc
	endbr64
	push %rdi
	.cfi_adjust_cfa_offset 8
	push %rsi
	.cfi_adjust_cfa_offset 8
	push %rdx
	.cfi_adjust_cfa_offset 8
	mov %rsi, %rdx
	mov %rdi, %rsi
	mov $\which, %edi
	call sm_dlopen_prehook
	pop %rdx
	.cfi_adjust_cfa_offset -8
	pop %rsi
	.cfi_adjust_cfa_offset -8
	pop %rdi
	.cfi_adjust_cfa_offset -8
	jmp *%rax
	.cfi_endproc
	.size \name, . - \name
.endm

#elif defined(__aarch64__)

.macro HOOK name, which
	.globl \name
	.type \name, %function
\name:
	.cfi_startproc
	hint #34 /* bti c */
	stp x29, x30, [sp, #-48]!
	.cfi_def_cfa_offset 48
	.cfi_offset 29, -48
	.cfi_offset 30, -40
	mov x29, sp
	stp x0, x1, [sp, #16]
	str x2, [sp, #32]
	mov x2, x1
	mov x1, x0
	mov w0, #\which
	bl sm_dlopen_prehook
	mov x16, x0
	ldp x0, x1, [sp, #16]
	ldr x2, [sp, #32]
	ldp x29, x30, [sp], #48
	.cfi_def_cfa_offset 0
	.cfi_restore 29
	.cfi_restore 30
	br x16
	.cfi_endproc
	.size \name, . - \name
.endm

#else
#error "the dlopen hooks are written for x86_64 and aarch64"
#endif

	.text
	.hidden sm_dlopen_prehook
HOOK dlopen, 0
HOOK dlmopen, 1
HOOK dlsym, 2

	.section .note.GNU-stack, "", %progbits
