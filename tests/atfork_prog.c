/* SPDX-License-Identifier: MIT */
/*
 * atfork_prog MODE (tests/atfork.bats): fork handlers registered before the shim's.
 *   lib:   a secret block of site mk_key ('P'); libatfork's child handler (its
 *          constructor registered it) writes 'C' into it in the child.
 *   main:  main registers a child handler first, then makes a secret block in a
 *          scope (no rule); the handler writes 'C' into it in the child.
 *   alloc: 20 blocks of libatfork ('Q'); its child handler allocates one ('X').
 *   _Fork: a secret block of mk_key ('P'), then _Fork() (no fork handlers): the
 *          child reads the block (a copy), writes 'C' into it and makes 20 more;
 *          the parent's block stays 'P' and its next blocks are sound.
 *   _Fork-signal: a secret block of mk_key ('P'); a SIGALRM handler calls _Fork()
 *          while main allocates and frees large secret blocks (mk_big), so that
 *          some calls come while main holds the arena's locks. The child, in the
 *          handler, makes only async-signal-safe calls: it finds the parent's
 *          block in /proc/self/maps or not (a copy, or an empty arena: the locks
 *          were busy), reads it where mapped, writes 'C' into it and exits. Prints
 *          how many children had a copy, how many none, how many went wrong, and
 *          whether the parent's block and arena are intact.
 * Prints what the child saw and what the parent's block holds afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secretmem.h"

extern pid_t _Fork(void);
extern char *volatile atl_target;
extern volatile int atl_alloc;
extern char *volatile atl_kept;
char *atl_block(size_t n);

static char *volatile main_target;

static void main_child(void)
{
	if (main_target)
		memset(main_target, 'C', 16);
}

static int in_secretmem(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)p >= lo &&
		    (unsigned long)p < hi)
			found = strstr(line, " /secretmem") != NULL;
	}
	if (f)
		fclose(f);
	return found;
}

__attribute__((noinline)) char *mk_key(size_t n)
{
	char *p = malloc(n);
	if (p)
		memset(p, 'P', n);
	return p;
}

__attribute__((noinline)) static char *mk_scoped(size_t n)
{
	secretmem_scope_begin();
	char *p = malloc(n);
	secretmem_scope_end();
	if (p)
		memset(p, 'P', n);
	return p;
}

/* Whether p lies in a /secretmem mapping, with async-signal-safe calls only (a
 * child of _Fork in a signal handler). */
static int maps_secret_raw(const void *p)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = 0;
	for (char *line = buf; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		char *dash;
		unsigned long lo = strtoul(line, &dash, 16), hi = strtoul(dash + 1, NULL, 16);
		if ((unsigned long)p >= lo && (unsigned long)p < hi)
			return strstr(line, " /secretmem") != NULL;
		if (!end)
			break;
		line = end + 1;
	}
	return 0;
}

__attribute__((noinline)) void *mk_big(size_t n)
{
	return malloc(n);
}

static char *volatile sig_key;
static volatile int sig_copy, sig_drop, sig_bad, sig_changed, sig_armed;

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	pid_t c = _Fork();
	if (c == 0) {
		int mapped = maps_secret_raw(sig_key);
		int ok = mapped >= 0;
		if (mapped > 0) {
			for (int i = 0; i < 64; i++)
				ok &= sig_key[i] == 'P';
			sig_key[0] = 'C';
		}
		_exit(!ok ? 1 : mapped ? 10 : 20);
	}
	if (c > 0) {
		int st;
		while (waitpid(c, &st, 0) < 0 && errno == EINTR)
			;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (code == 10)
			sig_copy++;
		else if (code == 20)
			sig_drop++;
		else
			sig_bad++;
		for (int i = 0; i < 64; i++)
			sig_changed += sig_key[i] != 'P';
	}
	sig_armed = 0;
	errno = saved;
}

static int fork_signal(void)
{
	sig_key = mk_key(64);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	/* Until both paths were taken a few times, for at most 20 s; one signal at a
	 * time, 20 to 270 us after the last (the handler's fork takes longer than
	 * that: a repeating timer would leave main no time between handlers). */
	time_t until = time(NULL) + 20;
	for (unsigned n = 0; (sig_copy < 5 || sig_drop < 5) && time(NULL) < until && !sig_bad; n++) {
		if (!sig_armed) {
			sig_armed = 1;
			struct itimerval it = { { 0, 0 }, { 0, 20 + (long)(n * 37 % 251) } };
			setitimer(ITIMER_REAL, &it, NULL);
		}
		void *b[4];
		for (int i = 0; i < 4; i++)
			b[i] = mk_big((size_t)(96 + 32 * i) << 10);
		for (int i = 0; i < 4; i++)
			free(b[i]);
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	int bad = 0;
	for (int i = 0; i < 30; i++) {
		char *q = mk_key(64);
		bad += !q || !secretmem_is_secret(q) || !maps_secret_raw(q);
	}
	printf("copy %d drop %d bad %d parent changed %d new bad %d\n", sig_copy >= 5,
	       sig_drop >= 5, sig_bad, sig_changed, bad);
	fprintf(stderr, "children: %d with a copy, %d with none\n", sig_copy, sig_drop);
	return 0;
}

static int count_not(const char *p, size_t n, char c)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += p[i] != c;
	return bad;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "lib";
	int st;
	if (!strcmp(mode, "alloc")) {
		char *b[20];
		for (int i = 0; i < 20; i++)
			b[i] = atl_block(64);
		atl_alloc = 1;
		pid_t c = fork();
		if (c == 0) {
			int ok = atl_kept && atl_kept[0] == 'X' && secretmem_is_secret(atl_kept);
			char *q = atl_block(64);
			ok &= q && q[0] == 'Q';
			for (int i = 0; i < 20; i++)
				ok &= !count_not(b[i], 64, 'Q');
			_exit(ok ? 0 : 1);
		}
		waitpid(c, &st, 0);
		int bad = 0;
		for (int i = 0; i < 20; i++)
			bad += count_not(b[i], 64, 'Q');
		char *n = atl_block(64);
		printf("secret %d maps %d child ok %d parent changed %d new %c\n",
		       secretmem_is_secret(b[0]), in_secretmem(b[0]),
		       WIFEXITED(st) && WEXITSTATUS(st) == 0, bad, n ? n[0] : '-');
		return 0;
	}
	if (!strcmp(mode, "_Fork-signal"))
		return fork_signal();
	if (!strcmp(mode, "_Fork")) {
		char *k = mk_key(64);
		pid_t c = _Fork();
		if (c == 0) {
			int ok = !count_not(k, 64, 'P') && secretmem_is_secret(k);
			memset(k, 'C', 16);
			for (int i = 0; i < 20; i++) {
				char *q = mk_key(64);
				ok &= q && secretmem_is_secret(q) && !count_not(q, 64, 'P');
				memset(q, 'c', 64);
			}
			_exit(ok ? 0 : 1);
		}
		waitpid(c, &st, 0);
		int bad = 0;
		for (int i = 0; i < 30; i++) {
			char *q = mk_key(64);
			bad += !q || !secretmem_is_secret(q);
		}
		printf("secret %d maps %d child ok %d parent changed %d new bad %d\n",
		       secretmem_is_secret(k), in_secretmem(k), WIFEXITED(st) && WEXITSTATUS(st) == 0,
		       count_not(k, 64, 'P'), bad);
		return 0;
	}
	char *k;
	if (!strcmp(mode, "main")) {
		pthread_atfork(NULL, NULL, main_child);
		k = mk_scoped(64);
		main_target = k;
	} else {
		k = mk_key(64);
		atl_target = k;
	}
	pid_t c = fork();
	if (c == 0)
		_exit(count_not(k, 16, 'C') == 0 && count_not(k + 16, 48, 'P') == 0 ? 0 : 1);
	waitpid(c, &st, 0);
	printf("secret %d maps %d child wrote %d parent changed %d\n", secretmem_is_secret(k),
	       in_secretmem(k), WIFEXITED(st) && WEXITSTATUS(st) == 0, count_not(k, 64, 'P'));
	return 0;
}
