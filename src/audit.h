/* SPDX-License-Identifier: MIT */
/*
 * Audit: the allocation log that secretmem-audit(1) reads (SECRETMEM_AUDIT=DIR,
 * set by that tool). Every allocation, ordinary (nothing is secret while auditing),
 * is recorded with its size and raw return addresses, and every free, into a
 * shared file mapping DIR/PID.N; a forked child starts its own log that names its
 * parent's and where the parent was at the fork; an exec starts a new one. At exit
 * the process tells the tool (DIR/exit.sock) and waits until it has been scanned.
 * With a rule set as well, nothing is recorded: the rules apply, and only the exit
 * handshake remains (the tool's --verify run).
 *
 * The file layout is the tool's input: struct sm_audit_hdr, then fixed-size
 * records. Never allocates, never takes a lock: a record slot is claimed with one
 * atomic add and its head word is stored last.
 */
#ifndef SM_AUDIT_H
#define SM_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

#define SM_AUDIT_MAGIC 0x3154494455414d53ull /* "SMAUDIT1" */
#define SM_AUDIT_FRAMES 21
#define SM_AUDIT_HDR 4096
#define SM_AUDIT_CAP (1ull << 30) /* bytes of file; sparse */

/* SM_AUDIT_HELD: the block at addr held patterns pcs[0..n) when it was freed
 * (size: the offset of the first); a SM_AUDIT_FREE of it follows. */
enum sm_audit_kind { SM_AUDIT_ALLOC = 1, SM_AUDIT_FREE = 2, SM_AUDIT_HELD = 3 };

/* DIR/patterns, written by the tool: records of a 32-bit length and the bytes. */
#define SM_AUDIT_PATTERNS_MAX 256
#define SM_AUDIT_PATTERN_BYTES (64 * 1024)

struct sm_audit_hdr {
	uint64_t magic;
	uint64_t rec_size;        /* sizeof(struct sm_audit_rec) */
	uint64_t pid;
	uint64_t count;           /* record slots claimed */
	uint64_t full;            /* records were dropped: the log is incomplete */
	uint64_t parent_count;    /* a fork child: the parent's count at the fork */
	char parent[64];          /* a fork child: the parent's log file name, else "" */
};

struct sm_audit_rec {
	uint64_t head;            /* kind | nframes << 8; 0 while being written */
	uint64_t addr;
	uint64_t size;
	uint64_t pcs[SM_AUDIT_FRAMES]; /* innermost first, from the caller of the API */
};

/* Opens the log; returns false (with a warning) when it cannot. */
bool sm_audit_init(const char *dir);

/* With rules (secretmem-audit --verify): nothing is recorded, the rules work as
 * always, and only the exit handshake is kept. */
void sm_audit_exit_only(const char *dir);

/* The fork child handler (atfork.c): the child writes a log of its own. */
void sm_audit_fork_child(void);

/* Records a block the next allocator returned for a call whose caller returns to
 * ra; returns p. */
void *sm_audit_alloc(void *p, size_t size, void *ra);
/* Records the free of p (size usable bytes): whether it held key material (the
 * tool's patterns, DIR/patterns), then wipes it, so that what a scan finds in
 * freed memory later has no owner but the one on record. */
void sm_audit_free(void *p, size_t size);

#pragma GCC visibility pop

#endif
