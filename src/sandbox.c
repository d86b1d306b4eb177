/* SPDX-License-Identifier: MIT */
/*
 * Seccomp filters: a program may sandbox itself after start-up (OpenSSH's sshd
 * does in its pre-authentication child: an allow-list, every other call fatal),
 * or start under a filter (systemd's SystemCallFilter=). A call the filter kills
 * ends the process with SIGSYS and no word from the library. So:
 *
 * - Under any filter (sm_sandboxed) the arena makes none of the calls it can do
 *   without: no mincore (a freed block is wiped over its whole extent instead of
 *   its resident pages, a fork copy copies whole spans), no re-read of
 *   RLIMIT_MEMLOCK and the capabilities when it maps a chunk (the budget of the
 *   last read stands). Neither is in systemd's @system-service group or sshd's
 *   list.
 * - A filter the program installs through prctl(PR_SET_SECCOMP) or
 *   syscall(SYS_seccomp) (the shim's hooks, seccomp_hooks.c) is run here, before
 *   it is installed, over each call that mapping a chunk makes, with the
 *   arguments the arena passes. If one would kill or trap, the arena first maps
 *   a reserve (sm_arena_sandbox_reserve) and from then on maps no chunk and gives
 *   none back (sm_sandbox_no_chunks): an allocation beyond what is mapped fails
 *   with a warning naming the call, instead of the process dying in silence.
 *
 * The filter is the program's own memory, read through process_vm_readv (a bad
 * pointer is the kernel's EFAULT, not a crash here), and untrusted: an
 * instruction the checker does not know, a load out of range or a jump past the
 * end counts as killing.
 */
#include "config.h"
#include "sandbox.h"
#include "arena-internal.h"
#include "log.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_RET_ACTION_FULL
#define SECCOMP_RET_ACTION_FULL 0xffff0000U
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG 0x7ffc0000U
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

#if defined(__x86_64__)
#define SM_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

bool sm_sandboxed;
bool sm_sandbox_no_chunks;
const char *sm_sandbox_refused;

/* ---- start-up: a filter inherited through exec ---- */

void sm_sandbox_init(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	const char *s = strstr(buf, "\nSeccomp:");
	if (!s)
		return;
	s += 9;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '1' || *s == '2') { /* strict or filter mode */
		sm_sandboxed = true;
		sm_debug("a seccomp filter applies since start-up: no mincore, no re-read of "
			 "RLIMIT_MEMLOCK");
	}
}

/* ---- running a filter ---- */

/* The filter's answer for one call (classic BPF as the kernel's seccomp checker
 * accepts it), SECCOMP_RET_KILL_PROCESS where it cannot be run. */
static uint32_t run(const struct sock_filter *f, unsigned len, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	for (unsigned pc = 0; pc < len; pc++) {
		const struct sock_filter *i = &f[pc];
		uint32_t k = i->k, v;
		switch (i->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if ((k & 3) || k > sizeof(*d) - 4)
				return SECCOMP_RET_KILL_PROCESS;
			memcpy(&a, (const char *)d + k, 4);
			continue;
		case BPF_LD | BPF_W | BPF_LEN:
			a = sizeof(*d);
			continue;
		case BPF_LDX | BPF_W | BPF_LEN:
			x = sizeof(*d);
			continue;
		case BPF_LD | BPF_IMM:
			a = k;
			continue;
		case BPF_LDX | BPF_IMM:
			x = k;
			continue;
		case BPF_LD | BPF_MEM:
		case BPF_LDX | BPF_MEM:
		case BPF_ST:
		case BPF_STX:
			if (k >= BPF_MEMWORDS)
				return SECCOMP_RET_KILL_PROCESS;
			if (i->code == (BPF_LD | BPF_MEM))
				a = mem[k];
			else if (i->code == (BPF_LDX | BPF_MEM))
				x = mem[k];
			else
				mem[k] = i->code == BPF_ST ? a : x;
			continue;
		case BPF_MISC | BPF_TAX:
			x = a;
			continue;
		case BPF_MISC | BPF_TXA:
			a = x;
			continue;
		case BPF_RET | BPF_K:
			return k;
		case BPF_RET | BPF_A:
			return a;
		case BPF_JMP | BPF_JA:
			if (k >= len - pc - 1)
				return SECCOMP_RET_KILL_PROCESS;
			pc += k;
			continue;
		case BPF_ALU | BPF_NEG:
			a = -a;
			continue;
		default:
			break;
		}
		v = BPF_SRC(i->code) == BPF_X ? x : k;
		if (BPF_CLASS(i->code) == BPF_ALU) {
			switch (BPF_OP(i->code)) {
			case BPF_ADD: a += v; continue;
			case BPF_SUB: a -= v; continue;
			case BPF_MUL: a *= v; continue;
			case BPF_DIV: if (!v) return 0; a /= v; continue;
			case BPF_MOD: if (!v) return 0; a %= v; continue;
			case BPF_AND: a &= v; continue;
			case BPF_OR: a |= v; continue;
			case BPF_XOR: a ^= v; continue;
			case BPF_LSH: a = v < 32 ? a << v : 0; continue;
			case BPF_RSH: a = v < 32 ? a >> v : 0; continue;
			}
			return SECCOMP_RET_KILL_PROCESS;
		}
		if (BPF_CLASS(i->code) == BPF_JMP) {
			bool t;
			switch (BPF_OP(i->code)) {
			case BPF_JEQ: t = a == v; break;
			case BPF_JGT: t = a > v; break;
			case BPF_JGE: t = a >= v; break;
			case BPF_JSET: t = (a & v) != 0; break;
			default: return SECCOMP_RET_KILL_PROCESS;
			}
			unsigned off = t ? i->jt : i->jf;
			if (off >= len - pc - 1)
				return SECCOMP_RET_KILL_PROCESS;
			pc += off;
			continue;
		}
		return SECCOMP_RET_KILL_PROCESS;
	}
	return SECCOMP_RET_KILL_PROCESS; /* the checker refuses a program that ends so */
}

/* Kill or trap (SIGSYS, which a program rarely handles): the call must not be
 * made. An error return, a log line, a tracer or a supervisor leave the process
 * alive, and the arena handles a failed call. */
static bool fatal(uint32_t ret)
{
	uint32_t act = ret & SECCOMP_RET_ACTION_FULL;
	return !(act == SECCOMP_RET_ALLOW || act == SECCOMP_RET_LOG || act == SECCOMP_RET_ERRNO ||
		 act == SECCOMP_RET_TRACE || act == SECCOMP_RET_USER_NOTIF);
}

unsigned sm_sandbox_run(const void *fprog, int nr, const unsigned long args[6])
{
#ifndef SM_AUDIT_ARCH
	(void)fprog, (void)nr, (void)args;
	return SECCOMP_RET_KILL_PROCESS; /* the architecture's code is not known here */
#else
	const struct sock_fprog *p = fprog;
	struct seccomp_data d = { .nr = nr, .arch = SM_AUDIT_ARCH };
	for (int i = 0; i < 6; i++)
		d.args[i] = args[i];
	if (!p || !p->filter || !p->len || p->len > BPF_MAXINSNS)
		return SECCOMP_RET_KILL_PROCESS;
	return run(p->filter, p->len, &d);
#endif
}

/* The calls mapping a chunk makes (pages.c), with the arguments it passes. */
struct call {
	const char *name;
	int nr;
	unsigned long args[6];
};

bool sm_sandbox_allows_chunks(const void *fprog, const char **refused)
{
	unsigned long at = sm_arena_base ? (unsigned long)sm_arena_base : 0x7f0000000000ul;
	unsigned long len = 1ul << 20, fd = 3;
	const struct call secret[] = {
		{ "memfd_secret", SM_SYS_MEMFD_SECRET,
		  { (backend == SM_BACKEND_SECRET_UNCACHED ? SM_SECRETMEM_UNCACHED : 0) | O_CLOEXEC } },
		{ "ftruncate", SYS_ftruncate, { fd, len } },
		{ "mmap", SYS_mmap, { at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0 } },
		{ "close", SYS_close, { fd } },
		{ "mprotect", SYS_mprotect, { at, 4096, PROT_READ | PROT_WRITE } },
		{ "madvise", SYS_madvise, { at, len, MADV_DONTFORK } },
	};
	const struct call locked[] = {
		{ "mmap", SYS_mmap,
		  { at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		    (unsigned long)-1, 0 } },
		{ "mlock2", SYS_mlock2, { at, len, MLOCK_ONFAULT } },
		{ "madvise", SYS_madvise, { at, len, MADV_DONTDUMP } },
		{ "mprotect", SYS_mprotect, { at, 4096, PROT_READ | PROT_WRITE } },
	};
	bool mlocked = backend == SM_BACKEND_MLOCK;
	const struct call *c = mlocked ? locked : secret;
	size_t n = mlocked ? sizeof(locked) / sizeof(*locked) : sizeof(secret) / sizeof(*secret);
	if (!mlocked && sm_opt.fork != SM_FORK_DROP)
		n--; /* MADV_DONTFORK only for drop */
	for (size_t i = 0; i < n; i++) {
		if (!fprog || fatal(sm_sandbox_run(fprog, c[i].nr, c[i].args))) {
			*refused = fprog ? c[i].name : "everything but read, write and exit (strict mode)";
			return false;
		}
	}
	return true;
}

void sm_sandbox_installed(bool chunks_ok, const char *refused)
{
	__atomic_store_n(&sm_sandboxed, true, __ATOMIC_RELAXED);
	if (chunks_ok)
		return;
	sm_sandbox_refused = refused;
	__atomic_store_n(&sm_sandbox_no_chunks, true, __ATOMIC_RELEASE);
	sm_info("a seccomp filter the program installs would kill the process at %s: no more "
		"secret memory is mapped from now on (%zu bytes mapped); allocations beyond it "
		"fail",
		refused, (size_t)LOAD(g_mapped));
}
