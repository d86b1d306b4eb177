/* SPDX-License-Identifier: MIT */
/*
 * Run under the shim: for each OFFSET (hex, from the shim's load address, as nm
 * gives the shim's own symbols), prints "OFFSET PERMS RESULT": the permissions of
 * the mapping that holds the address (/proc/self/maps) and what a write of the
 * value already there did, in a child: "written" or "SIGSEGV" (or another end).
 * The write stores the same value, so a write that succeeds changes nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void perms_of(uintptr_t a, char *out)
{
	strcpy(out, "none");
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	unsigned long lo, hi;
	char p[8];
	while (fscanf(f, "%lx-%lx %7s%*[^\n]", &lo, &hi, p) == 3)
		if (lo <= a && a < hi) {
			strcpy(out, p);
			break;
		}
	fclose(f);
}

int main(int argc, char **argv)
{
	void *f = dlsym(RTLD_DEFAULT, "secretmem_impl_active");
	Dl_info di;
	if (!f || !dladdr(f, &di)) {
		puts("no shim");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		uintptr_t a = (uintptr_t)di.dli_fbase + strtoull(argv[i], NULL, 16);
		char perms[8];
		perms_of(a, perms);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			volatile uint64_t *p = (volatile uint64_t *)a;
			*p = *p;
			_exit(0);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		printf("%s %s %s\n", argv[i], perms,
		       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "written"
		       : WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV ? "SIGSEGV"
								       : "other");
	}
	return 0;
}
