/* SPDX-License-Identifier: MIT */
/*
 * dlopen, dlmopen and dlsym: the routing tables must hear of every load (see
 * docs/attribution-loader.md), and must know a loaded object before the program
 * calls into it through what dlsym returned, so the shim defines all three. Each runs a pre-hook
 * (sm_dlopen_prehook in preload.c, which returns the real function) and then
 * jumps to the real one with the caller's arguments and return address untouched:
 * glibc takes the caller's namespace, RUNPATH and $ORIGIN from dlopen's return
 * address, and RTLD_NEXT's meaning from dlsym's, which a C wrapper calling the
 * real function would make the shim's. dlsym's pre-hook may instead give the
 * answer itself (a tagged object asking for the allocation API): then the stub
 * returns it.
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

/* dlsym: the pre-hook (sm_dlsym_prehook) sees the handle, the name and the
 * caller's return address; it returns the real dlsym to jump to, or NULL with
 * the answer stored in the slot it was given (a tagged caller's allocation API). */
.macro DLSYM_HOOK name
	.globl \name
	.type \name, @function
\name:
	.cfi_startproc
	endbr64
	push %rdi
	.cfi_adjust_cfa_offset 8
	push %rsi
	.cfi_adjust_cfa_offset 8
	sub $8, %rsp /* the answer's slot; the stack is 16-byte aligned for the call */
	.cfi_adjust_cfa_offset 8
	mov 24(%rsp), %rdx
	mov %rsp, %rcx
	call sm_dlsym_prehook
	test %rax, %rax
	jz 1f
	.cfi_remember_state
	add $8, %rsp
	.cfi_adjust_cfa_offset -8
	pop %rsi
	.cfi_adjust_cfa_offset -8
	pop %rdi
	.cfi_adjust_cfa_offset -8
	jmp *%rax
1:
	.cfi_restore_state
	mov (%rsp), %rax
	add $24, %rsp
	.cfi_adjust_cfa_offset -24
	ret
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

.macro DLSYM_HOOK name
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
	mov x2, x30
	add x3, sp, #32
	bl sm_dlsym_prehook
	mov x16, x0
	ldp x0, x1, [sp, #16]
	cbz x16, 1f
	.cfi_remember_state
	ldp x29, x30, [sp], #48
	.cfi_def_cfa_offset 0
	.cfi_restore 29
	.cfi_restore 30
	br x16
1:
	.cfi_restore_state
	ldr x0, [sp, #32]
	ldp x29, x30, [sp], #48
	.cfi_def_cfa_offset 0
	.cfi_restore 29
	.cfi_restore 30
	ret
	.cfi_endproc
	.size \name, . - \name
.endm

#else
#error "the dlopen hooks are written for x86_64 and aarch64"
#endif

	.text
	.hidden sm_dlopen_prehook
	.hidden sm_dlsym_prehook
HOOK dlopen, 0
HOOK dlmopen, 1
DLSYM_HOOK dlsym

	.section .note.GNU-stack, "", %progbits
