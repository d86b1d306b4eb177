/* SPDX-License-Identifier: MIT */
/*
 * Probe for tests/limits.bats: what a process can do with its secret-memory budget
 * after a privilege drop, when nothing is live, and under an address-space limit.
 * Run under the shim with SECRETMEM_LIBS=limits_prog (every allocation made by this
 * program's own code is secret). Prints one `key value` line per fact.
 *
 *   drop KIB1 KIB2   (as root) set RLIMIT_MEMLOCK to 2 MiB, become nobody (which
 *                    clears CAP_IPC_LOCK), then allocate KIB1 and KIB2 KiB
 *   idle             secret mappings while blocks are live, after the last free,
 *                    and after the next allocation
 *   readable         bytes of readable mappings (what a root scan of the process
 *                    reads), with one secret block live
 *   frag             (as root) the drop's limit and user; 16 KiB blocks until one
 *                    fails, every other one freed, then one of 160 KiB: whether it
 *                    is secret, lies in secret mappings only, and the live blocks
 *                    kept their contents
 *   sandbox          a block allocated and freed (the memory given back), then a
 *                    seccomp filter that fails memfd_secret with EPERM, as a
 *                    program that sandboxes itself after start-up, then a block
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secretmem.h"

/* Keeps the compiler from pairing or dropping an allocation and its free. */
#define LAUNDER(p) __asm__ volatile("" : "+r"(p) :: "memory")

/* /proc/self/maps, read with read(2) into a static buffer: a FILE would be a
 * secret block itself (fopen is looked through to this program's code) and keep a
 * chunk mapped. */
static char *read_maps(void)
{
	static char buf[1 << 20];
	size_t n = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY);
	while (fd >= 0 && n + 1 < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	if (fd >= 0)
		close(fd);
	buf[n] = '\0';
	return buf;
}

/* The mappings whose line contains word (NULL: all), and the readable bytes
 * among them. */
static unsigned mappings(const char *word, unsigned long *readable)
{
	char *buf = read_maps();
	unsigned count = 0;
	if (readable)
		*readable = 0;
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		unsigned long lo, hi;
		char perms[8];
		if (!word || strstr(line, word)) {
			count++;
			if (readable && sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
			    perms[0] == 'r' && !strstr(line, "[vsyscall]") && !strstr(line, "[vvar]"))
				*readable += hi - lo;
		}
	}
	return count;
}

static char *alloc(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 0x5a, n);
	LAUNDER(p);
	return p;
}

static int drop(void)
{
	struct rlimit rl = { 2 << 20, 2 << 20 };
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || setgroups(0, NULL) != 0 ||
	    setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) {
		perror("drop");
		return 2;
	}
	return 0;
}

static int cmd_drop(size_t kib1, size_t kib2)
{
	if (drop())
		return 2;
	char *a = alloc(kib1 << 10), *b = alloc(kib2 << 10);
	printf("uid %d\n", (int)getuid());
	printf("first %s secret %d\n", a ? "ok" : "null", a && secretmem_is_secret(a));
	printf("second %s secret %d\n", b ? "ok" : "null", b && secretmem_is_secret(b));
	free(b);
	free(a);
	return 0;
}

static int cmd_idle(void)
{
	char *small = alloc(200), *big = alloc(100000);
	printf("live %u\n", mappings(" /secretmem", NULL));
	printf("secret %d %d\n", secretmem_is_secret(small), secretmem_is_secret(big));
	free(big);
	printf("one_live %u\n", mappings(" /secretmem", NULL));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	free(small);
	printf("none_live %u\n", mappings(" /secretmem", NULL));
	char *again = alloc(64);
	printf("again %u secret %d\n", mappings(" /secretmem", NULL), secretmem_is_secret(again));
	/* freed at once, within 50 ms of the release: kept for the next allocation
	 * (unless this process was descheduled for as long) */
	free(again);
	unsigned held = mappings(" /secretmem", NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("held %s\n", held ? "1" : ms >= 50 ? "late" : "0");
	/* Needed again at once, the hold doubled (100 ms): past it, the next idle
	 * moment gives it back. */
	usleep(110 * 1000);
	again = alloc(64);
	LAUNDER(again);
	free(again);
	printf("end %u\n", mappings(" /secretmem", NULL));
	return 0;
}

static void *thread_run(void *arg)
{
	char *p = alloc(300); /* the thread's own block: the program's, secret */
	*(int *)arg = p && secretmem_is_secret(p);
	free(p);
	return NULL;
}

/* Threads started and joined by a tagged program: what glibc allocates to start
 * them must not keep a secret block live once the program's own blocks are freed. */
static int cmd_thread(void)
{
	char *p = alloc(200);
	printf("secret %d\n", secretmem_is_secret(p));
	int secret[4] = { 0 };
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, thread_run, &secret[i]) != 0)
			return 2;
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("threads secret %d %d %d %d\n", secret[0], secret[1], secret[2], secret[3]);
	printf("live %u\n", mappings(" /secretmem", NULL));
	free(p);
	printf("freed %u\n", mappings(" /secretmem", NULL));
	/* Needed again within a second of that release, the hold doubles (100 ms):
	 * freed past it, given back again. */
	usleep(110 * 1000);
	p = alloc(64);
	LAUNDER(p);
	free(p);
	printf("end %u\n", mappings(" /secretmem", NULL));
	return 0;
}

/* Whether every page of [p, p + n) lies in a mapping named /secretmem. */
static int in_secret_maps(const char *p, size_t n)
{
	const char *buf = read_maps();
	for (size_t off = 0; off < n; off += 4096) {
		unsigned long a = (unsigned long)p + off, lo, hi;
		int found = 0;
		for (const char *line = buf; *line && !found; line = strchr(line, '\n') + 1) {
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
				const char *nl = strchr(line, '\n');
				found = nl && memmem(line, (size_t)(nl - line), " /secretmem", 11) ? 1 : -1;
			}
			if (!strchr(line, '\n'))
				break;
		}
		if (found != 1)
			return 0;
	}
	return 1;
}

static int cmd_frag(void)
{
	enum { BLK = 16 << 10, MAXN = 256, BIG = 160 << 10 };
	if (drop())
		return 2;
	static char *b[MAXN];
	char *pin = alloc(16);
	size_t n = 0;
	while (n < MAXN && (b[n] = malloc(BLK))) {
		memset(b[n], (int)(n + 1), BLK);
		n++;
	}
	for (size_t i = 0; i < n; i += 2)
		free(b[i]);
	char *big = alloc(BIG);
	int kept = 1;
	for (size_t i = 1; i < n; i += 2)
		for (size_t k = 0; k < BLK; k++)
			kept &= b[i][k] == (char)(i + 1);
	printf("blocks %zu\n", n);
	printf("big %s secret %d maps %d\n", big ? "ok" : "null", big && secretmem_is_secret(big),
	       big && in_secret_maps(big, BIG));
	printf("kept %d\n", kept);
	free(big);
	for (size_t i = 1; i < n; i += 2)
		free(b[i]);
	free(pin);
	return 0;
}

static int cmd_readable(void)
{
	char *p = alloc(100);
	unsigned long r;
	mappings(NULL, &r);
	printf("secret %d\n", p && secretmem_is_secret(p));
	printf("readable %lu\n", r);
	free(p);
	return 0;
}

static int cmd_sandbox(void)
{
	char *p = alloc(64);
	printf("before %d\n", p && secretmem_is_secret(p));
	free(p); /* nothing live: every chunk given back */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_secret, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1 /* EPERM */),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 3;
	p = alloc(64);
	printf("after %s\n", p ? "block" : "null");
	return 0;
}

/* forkcheck KIB [drop]: KIB of secret blocks of 16 to 80 KiB, each filled with
 * bytes of its own, then (with drop, after the blocks are made, so no chunk is
 * mapped after it) the privilege drop to nobody under a 2 MiB memlock limit;
 * then a fork whose child checks every byte of every block. */
static int cmd_forkcheck(size_t kib, bool after_drop)
{
	enum { MAXN = 256 };
	static unsigned char *b[MAXN];
	static size_t len[MAXN];
	size_t n = 0, total = 0;
	while (n < MAXN && total < kib << 10) {
		len[n] = ((size_t)16 << 10) + (n * 7919) % (64 << 10);
		if (!(b[n] = malloc(len[n])))
			break;
		for (size_t k = 0; k < len[n]; k++)
			b[n][k] = (unsigned char)(n * 31 + k * 7 + 1);
		LAUNDER(b[n]);
		total += len[n++];
	}
	printf("blocks %zu secret %d\n", n, n && secretmem_is_secret(b[0]) && secretmem_is_secret(b[n - 1]));
	if (after_drop && drop())
		return 2;
	pid_t pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < len[i]; k++)
				if (b[i][k] != (unsigned char)(i * 31 + k * 7 + 1))
					_exit(3);
		_exit(0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 4;
	printf("child %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "bad");
	for (size_t i = 0; i < n; i++)
		free(b[i]);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 2 && !strcmp(argv[1], "sandbox"))
		return cmd_sandbox();
	if (argc == 4 && !strcmp(argv[1], "drop"))
		return cmd_drop(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
	if (argc == 2 && !strcmp(argv[1], "idle"))
		return cmd_idle();
	if (argc == 2 && !strcmp(argv[1], "thread"))
		return cmd_thread();
	if (argc == 2 && !strcmp(argv[1], "readable"))
		return cmd_readable();
	if (argc == 2 && !strcmp(argv[1], "frag"))
		return cmd_frag();
	if ((argc == 3 || (argc == 4 && !strcmp(argv[3], "drop"))) && !strcmp(argv[1], "forkcheck"))
		return cmd_forkcheck(strtoul(argv[2], NULL, 10), argc == 4);
	fprintf(stderr, "usage: limits_prog drop KIB1 KIB2 | idle | thread | readable | frag | sandbox | "
			"forkcheck KIB [drop]\n");
	return 64;
}
