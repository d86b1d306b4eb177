/* SPDX-License-Identifier: MIT */
/*
 * seccomp_exec: runs a program on a kernel that (as far as it can tell) has no
 * memfd_secret(2). A seccomp filter makes that one system call fail with ENOSYS,
 * or with the errno named by -e, and lets every other through; the filter is
 * inherited across execve by the program and its children.
 *
 *   seccomp_exec [-e ERRNO] PROGRAM [ARGS...]     ERRNO: a number or ENOSYS, EPERM...
 *
 * A raw BPF filter, so the tests need no libseccomp. Before the exec it checks that
 * the filter works (memfd_secret fails with the chosen errno) and exits 125 if not,
 * 126/127 if the exec fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define ARCH AUDIT_ARCH_RISCV64
#else
#error "seccomp_exec: unsupported architecture"
#endif

static int parse_errno(const char *s)
{
	static const struct { const char *name; int value; } names[] = {
		{ "ENOSYS", ENOSYS }, { "EPERM", EPERM }, { "EINVAL", EINVAL },
		{ "ENOMEM", ENOMEM }, { "EMFILE", EMFILE }, { "EACCES", EACCES },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].value;
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end && v > 0 && v < 4096)
		return (int)v;
	fprintf(stderr, "seccomp_exec: bad errno %s\n", s);
	exit(2);
}

int main(int argc, char **argv)
{
	int err = ENOSYS, i = 1;
	if (i + 1 < argc && !strcmp(argv[i], "-e")) {
		err = parse_errno(argv[i + 1]);
		i += 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: seccomp_exec [-e ERRNO] PROGRAM [ARGS...]\n");
		return 2;
	}

	struct sock_filter filter[] = {
		/* Another architecture's calls (x32, i386 on x86_64) pass untouched. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_secret, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(filter) / sizeof(filter[0]), filter };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("seccomp_exec: installing the filter");
		return 125;
	}
	errno = 0;
	long fd = syscall(SYS_memfd_secret, 0);
	if (fd >= 0 || errno != err) {
		fprintf(stderr, "seccomp_exec: the filter does not work: memfd_secret gave %ld, errno %d\n",
			fd, errno);
		return 125;
	}
	execvp(argv[i], argv + i);
	fprintf(stderr, "seccomp_exec: %s: %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
