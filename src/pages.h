/* SPDX-License-Identifier: MIT */
/*
 * Where secret pages come from: the kernel interface under the arena.
 * memfd_secret(2) (exclusive, or the uncached flag of the original proposal),
 * or locked, undumpable anonymous memory when SECRETMEM_FALLBACK=mlock allows it.
 *
 * Every function here is a thin, policy-free wrapper: it reports failures as a
 * negative errno and leaves the decisions (die, warn, ENOMEM) to the arena.
 * Invariants: a failed chunk mapping leaves the PROT_NONE reservation in place, so
 * the arena's address range never gains a hole another mmap could land in; no
 * secretmem fd outlives the call that needed it except the fork copies, which the
 * caller closes. Never calls malloc; never reads a page it was not asked to (a read
 * faults a secret page in, which costs ~25 us and memlock).
 */
#ifndef SM_PAGES_H
#define SM_PAGES_H

#include <stdbool.h>
#include <stddef.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* The flag bit of the 2020 proposal's SECRETMEM_UNCACHED; mainline answers EINVAL. */
#define SM_SECRETMEM_UNCACHED 0x2u

enum sm_backend {
	SM_BACKEND_SECRET,          /* memfd_secret, exclusive */
	SM_BACKEND_SECRET_UNCACHED, /* memfd_secret with the uncached flag */
	SM_BACKEND_MLOCK,           /* anonymous, mlock'ed, MADV_DONTDUMP */
};

/* The system's page size (AT_PAGESZ; sysconf failing that), read once: the one
 * definition of the page size in the library. Linux pages are 4 KiB or larger
 * (aarch64 kernels use 4, 16 or 64 KiB). */
size_t sm_pages_size(void);

/* memfd_secret(flags | O_CLOEXEC): the fd, or -errno. sm_pages_new_file and
 * sm_pages_map_chunk answer -EPERM without a call once a filter the program
 * installed would kill one (sandbox.h). */
int sm_pages_secret_fd(unsigned flags);

/* Reserves an inaccessible range (PROT_NONE, MAP_NORESERVE: no memory, no memlock)
 * of *len bytes, halving *len down to min when the address space is short.
 * Returns the base, or NULL. */
void *sm_pages_reserve(size_t *len, size_t min);

/* Puts an inaccessible reservation back over [addr, addr+len). 0 or -errno. */
int sm_pages_unmap_to_reserved(void *addr, size_t len);

/* Maps a fresh chunk of len bytes (all zero, nothing faulted in) at addr, which
 * lies in a reservation: one secretmem fd per chunk (its size can be set only
 * once), closed again once mapped; or anonymous locked memory for the mlock
 * backend. dontfork: the child of fork() gets no mapping. 0 or -errno (EAGAIN:
 * over RLIMIT_MEMLOCK); on failure the reservation is back in place. */
int sm_pages_map_chunk(enum sm_backend b, void *addr, size_t len, bool dontfork);

/* For fork: a new secret file of len bytes (fd or -errno), filled by
 * sm_pages_copy_in, then mapped over the old chunks with sm_pages_map_fd. */
int sm_pages_new_file(enum sm_backend b, size_t len);
/* Copies the pages of [src, src+len) that are resident (faulted in) into the file
 * at offset off, through a temporary mapping of the window (sm_pages_copy_window
 * bytes, aligned to its size) they fall in, kept for the next call (charged to
 * RLIMIT_MEMLOCK while it exists) until sm_pages_copy_end. src, off and len are
 * page-aligned. Untouched pages are neither read (that would fault them in) nor
 * written (the file reads as zero there anyway). 0 or -errno. */
int sm_pages_copy_in(int fd, size_t off, const void *src, size_t len);
/* Unmaps the window sm_pages_copy_in kept (call before the file's fd is closed
 * or another file is copied into). */
void sm_pages_copy_end(void);
/* The window's size: a power of two from the system's page size to
 * SM_PAGES_COPY_WINDOW_MAX (larger windows, fewer mmap and munmap calls: a 16 MiB
 * copy took 256 pairs with 64 KiB); set between copies (chunk.c sizes it to the
 * memlock budget). Returns the size in force. */
size_t sm_pages_copy_window(size_t want);
#define SM_PAGES_COPY_WINDOW_MAX ((size_t)1 << 20)
/* mmap(addr, len, MAP_SHARED|MAP_FIXED, fd, off). 0 or -errno. */
int sm_pages_map_fd(void *addr, size_t len, int fd, size_t off);

/* Locks [addr, addr+len) again (after fork, which does not inherit mlock), only
 * as pages fault in. 0 or -errno. */
int sm_pages_relock(void *addr, size_t len);

/* mincore(2): vec[i] bit 0 says whether page i of [addr, addr+len) is resident
 * (works on secretmem mappings: it asks the file's page cache). 0 or -errno;
 * -ENOSYS without the call under a seccomp filter (sandbox.h). */
int sm_pages_resident(const void *addr, size_t len, unsigned char *vec);

/* Whether CAP_IPC_LOCK is in the effective set and the process is in the initial
 * user namespace (then the kernel does not enforce RLIMIT_MEMLOCK). Raw capget
 * and a read of /proc/self/uid_map, no libcap. */
bool sm_pages_cap_ipc_lock(void);

#pragma GCC visibility pop

#endif
