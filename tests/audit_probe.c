/* SPDX-License-Identifier: MIT */
/*
 * audit_probe KEYFILE [wipe|sleep|fork|stdio]: loads a 32-byte key with akey_load()
 * (tests/audit_key.c) among ordinary allocations of its own, then:
 *   (nothing)  exits with the key in its block (found at exit);
 *   wipe       wipes the key first (the control: no copy);
 *   sleep      waits (found after --after, or on SIGUSR2);
 *   fork       the key is loaded, then a child is forked that exits holding it; the
 *              parent wipes its own copy (the child's block is in the parent's log);
 *   stack      the key is read into main's stack frame too (no rule reaches it);
 *   stdio      also reads the key file through stdio (a copy in stdin's buffer,
 *              which a rule reaches through fread's caller, main).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

unsigned char *akey_load(const char *path);

int main(int argc, char **argv)
{
	char *noise[100];
	for (int i = 0; i < 100; i++)
		noise[i] = strdup("ordinary data");
	const char *what = argc > 2 ? argv[2] : "";
	unsigned char *k = akey_load(argv[1]);
	if (!strcmp(what, "fork")) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			printf("child: %02x\n", k[0] ^ k[1]);
			exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
		explicit_bzero(k, 32);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	if (!strcmp(what, "stack")) {
		unsigned char onstack[32];
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0 || read(fd, onstack, 32) != 32)
			return 3;
		explicit_bzero(k, 32);
		__asm__ volatile("" : : "r"(onstack) : "memory");
		exit(0); /* main's frame stays below exit's */
	}
	if (!strcmp(what, "wipe"))
		explicit_bzero(k, 32);
	if (!strcmp(what, "stdio")) {
		FILE *f = fopen(argv[1], "r");
		char buf[8];
		if (!f || fread(buf, 1, sizeof(buf), f) != sizeof(buf))
			return 3;
		explicit_bzero(buf, sizeof(buf));
		/* not closed: the buffer stays as it was */
	}
	if (!strcmp(what, "sleep"))
		sleep(60);
	printf("probe: %02x\n", k[0] ^ k[1]);
	return noise[5][0] == 'o' ? 0 : 1;
}
