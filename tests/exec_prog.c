/* SPDX-License-Identifier: MIT */
/*
 * A program that runs itself again, as servers do for a binary upgrade or a
 * reload, with an environment of its own making (nginx passes only TZ; haproxy's
 * resetenv clears it), or that starts another program. Each generation allocates
 * a block of its own (SECRETMEM_LIBS names the program) and prints whether it is
 * secret, and whether its maps line says /secretmem.
 *
 *   exec_prog MODE [GEN]
 *   MODE: execve (only TZ), execvp (clearenv, then the PATH search), spawn
 *   (posix_spawn, an empty environment), modeoff (TZ and SECRETMEM_MODE=off: the
 *   program's own word is kept), other PROGRAM (execve of another program, only
 *   TZ: its environment is left as it is), run PROGRAM (execv of PROGRAM print,
 *   the environment as it is), print (print, nothing more), delself (deletes
 *   its own file, then runs itself again through /proc/self/exe with only TZ),
 *   smallstack (a thread of PTHREAD_STACK_MIN bytes of stack runs true with
 *   posix_spawnp), execl, execle, execlp, fexecve (the same as execve: only TZ;
 *   execl and execlp after clearenv, execle and fexecve with it as their
 *   environment; fexecve of the program's file, opened), execveat (its file's
 *   name in its directory, opened), execveatfd (its file, opened, AT_EMPTY_PATH).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secretmem.h"

extern char **environ;

/* Whether the mapping holding p is named /secretmem. */
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

static void *spawn_true(void *arg)
{
	char *av[] = { "true", NULL };
	pid_t pid;
	int st;
	*(int *)arg = posix_spawnp(&pid, "true", NULL, NULL, av, environ) == 0 &&
		      waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	int gen = argc > 2 && strcmp(mode, "other") && strcmp(mode, "run") ? atoi(argv[2]) : 0;
	char *k = malloc(64);
	if (!k)
		return 3;
	strcpy(k, "a key of generation n");
	printf("gen %d secret %d maps %d preload %s\n", gen, secretmem_is_secret(k), in_secretmem(k),
	       getenv("LD_PRELOAD") ? "set" : "unset");
	fflush(stdout);
	if (gen > 0 || strcmp(mode, "print") == 0)
		return 0;
	char *next[] = { argv[0], argv[1], "1", NULL };
	char *tz[] = { "TZ=UTC", NULL }, *off[] = { "TZ=UTC", "SECRETMEM_MODE=off", NULL };
	if (strcmp(mode, "execve") == 0) {
		execve(argv[0], next, tz);
	} else if (strcmp(mode, "execvp") == 0) {
		clearenv();
		setenv("PATH", "/usr/bin:/bin", 1);
		execvp(argv[0], next);
	} else if (strcmp(mode, "execl") == 0 || strcmp(mode, "execlp") == 0) {
		clearenv();
		setenv("TZ", "UTC", 1);
		if (mode[5] == 'p')
			execlp(argv[0], argv[0], mode, "1", (char *)NULL);
		else
			execl(argv[0], argv[0], mode, "1", (char *)NULL);
	} else if (strcmp(mode, "execle") == 0) {
		execle(argv[0], argv[0], mode, "1", (char *)NULL, tz);
	} else if (strcmp(mode, "fexecve") == 0) {
		int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 8;
		fexecve(fd, next, tz);
	} else if (strncmp(mode, "execveat", 8) == 0) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", argv[0]);
		char *slash = strrchr(dir, '/');
		if (!slash)
			return 9;
		*slash = '\0';
		int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int ffd = open(argv[0], O_RDONLY | O_CLOEXEC);
		if (dfd < 0 || ffd < 0)
			return 8;
		if (strcmp(mode, "execveatfd") == 0)
			execveat(ffd, "", next, tz, AT_EMPTY_PATH);
		else
			execveat(dfd, slash + 1, next, tz, 0);
	} else if (strcmp(mode, "chdir") == 0) {
		if (chdir("/") != 0)
			return 6;
		execve("/proc/self/exe", next, tz);
	} else if (strcmp(mode, "delself") == 0) {
		if (unlink(argv[0]) != 0)
			return 6;
		execve("/proc/self/exe", next, tz);
	} else if (strcmp(mode, "smallstack") == 0) {
		pthread_attr_t a;
		pthread_t t;
		int ok = 0;
		if (pthread_attr_init(&a) || pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN) ||
		    pthread_create(&t, &a, spawn_true, &ok) || pthread_join(t, NULL))
			return 7;
		printf("smallstack spawned %d\n", ok);
		return 0;
	} else if (strcmp(mode, "modeoff") == 0) {
		execve(argv[0], next, off);
	} else if (strcmp(mode, "spawn") == 0) {
		char *none[] = { NULL };
		pid_t pid;
		int st;
		if (posix_spawn(&pid, argv[0], NULL, NULL, next, none) != 0 ||
		    waitpid(pid, &st, 0) != pid)
			return 4;
		return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
	} else if (strcmp(mode, "other") == 0 && argc > 2) {
		char *av[] = { argv[2], NULL };
		execve(argv[2], av, tz);
	} else if (strcmp(mode, "run") == 0 && argc > 2) {
		char *av[] = { argv[2], "print", NULL };
		execv(argv[2], av);
	}
	perror("exec");
	return 1;
}
