/* SPDX-License-Identifier: MIT */
/*
 * A program that sandboxes itself after start-up as OpenSSH's sshd does in its
 * pre-authentication child: a seccomp allow-list (sshd 9.2's memory and I/O
 * calls), every other call fatal, then it goes on using secrets. Or one that runs
 * another under a filter killing only mincore, which systemd's
 * SystemCallFilter=@system-service plus memfd_secret does not allow either.
 * SECRETMEM_LIBS names the program, so its own allocations are secret.
 *
 *   sandbox_prog self KILL|TRAP prctl|syscall   the allow-list through prctl, or
 *                         syscall(SYS_seccomp) as libseccomp does; KILL kills the
 *                         process (sshd), TRAP sends SIGSYS, which prints the call
 *   sandbox_prog allowall           a filter that allows every call (prctl)
 *   sandbox_prog exec PROGRAM ARGS  PROGRAM under a filter that kills mincore
 *   sandbox_prog work               blocks of 64 B to 2 MiB, freed, a fork copy
 *
 * It prints "block SIZE secret S" for each block (S: secretmem_is_secret), "big
 * NULL" or "big ok" for a 64 MiB one, and "done"; with write(2) only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "secretmem.h"

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "sandbox_prog: unsupported architecture"
#endif

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char m[160];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (n > 0)
		write(1, m, (size_t)n < sizeof(m) ? (size_t)n : sizeof(m) - 1);
}

static void on_sys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	say("REFUSED syscall %d\n", si->si_syscall);
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#else
	uc->uc_mcontext.regs[0] = (unsigned long)-ENOSYS;
#endif
	(void)sig;
}

static const int allow[] = {
	SYS_read, SYS_write, SYS_writev, SYS_close, SYS_exit, SYS_exit_group, SYS_brk, SYS_mmap,
	SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_futex, SYS_getpid, SYS_gettid,
	SYS_getrandom, SYS_clock_gettime, SYS_gettimeofday, SYS_nanosleep, SYS_clock_nanosleep,
	SYS_ppoll, SYS_pselect6, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_shutdown, SYS_getuid,
	SYS_geteuid,
};
static const int deny[] = { SYS_mincore };

/* An allow-list (list of n calls allowed, then dflt) or a deny-list (the n calls
 * get dflt, everything else allowed). */
static struct sock_fprog filter(const int *list, int n, bool allowing, unsigned dflt)
{
	static struct sock_filter f[4 + 2 * 64 + 1];
	int i = 0;
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
	for (int j = 0; j < n; j++) {
		f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, list[j], 0, 1);
		f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      allowing ? SECCOMP_RET_ALLOW : dflt);
	}
	f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, allowing ? dflt : SECCOMP_RET_ALLOW);
	return (struct sock_fprog){ (unsigned short)i, f };
}

static void *volatile sink;

/* Blocks of 64 B to 2 MiB, each written to its last byte and freed, three times
 * with pauses (the idle release), then one of 64 MiB. */
static void work(void)
{
	static const size_t sz[] = { 64, 9130, 32768, 70000, 300000, 2 << 20 };
	for (unsigned r = 0; r < 3; r++) {
		for (unsigned j = 0; j < sizeof(sz) / sizeof(sz[0]); j++) {
			char *k = malloc(sz[j]);
			if (!k) {
				say("block %zu NULL\n", sz[j]);
				continue;
			}
			memset(k, 0x5a, sz[j]);
			sink = k;
			if (r == 0)
				say("block %zu secret %d\n", sz[j], secretmem_is_secret(k));
			free(k);
		}
		usleep(150 * 1000);
	}
	char *big = malloc(64 << 20);
	sink = big; /* kept: clang may elide an allocation that is only freed */
	say("big %s\n", big ? "ok" : "NULL");
	free(sink);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	char *key = malloc(100); /* held across the sandbox, as sshd's host keys are */
	if (!key)
		return 3;
	memset(key, 0x33, 100);
	if (strcmp(mode, "work") == 0) {
		work();
		pid_t pid = fork(); /* SECRETMEM_FORK=copy: the copy skips mincore too */
		if (pid == 0)
			_exit(key[99] == 0x33 ? 0 : 1);
		int st;
		say("fork %s\n", pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
					 WEXITSTATUS(st) == 0 ? "ok" : "FAILED");
		say("done\n");
		return 0;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return 4;
	if (strcmp(mode, "exec") == 0 && argc > 2) {
		struct sock_fprog p = filter(deny, 1, false, SECCOMP_RET_KILL_PROCESS);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p) != 0)
			return 5;
		execv(argv[2], argv + 2);
		return 127;
	}
	int rc;
	if (strcmp(mode, "allowall") == 0) {
		struct sock_fprog p = filter(NULL, 0, true, SECCOMP_RET_ALLOW);
		rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p);
	} else if (strcmp(mode, "self") == 0 && argc > 3) {
		bool trap = strcmp(argv[2], "TRAP") == 0;
		if (trap) {
			struct sigaction sa = { .sa_sigaction = on_sys, .sa_flags = SA_SIGINFO };
			sigaction(SIGSYS, &sa, NULL);
		}
		struct sock_fprog p = filter(allow, sizeof(allow) / sizeof(allow[0]), true,
					     trap ? SECCOMP_RET_TRAP : SECCOMP_RET_KILL_PROCESS);
		rc = strcmp(argv[3], "syscall") == 0
			     ? (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p)
			     : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p);
	} else {
		return 2;
	}
	if (rc != 0)
		return 6;
	work();
	say("key %s\n", key[0] == 0x33 && key[99] == 0x33 ? "intact" : "LOST");
	free(key);
	say("done\n");
	return 0;
}
