/* SPDX-License-Identifier: MIT */
/*
 * run_docprog: the programs the README's and the man pages' examples run, so that
 * tests/run.bats can run every example as written. One source, built as
 *   vault   (vault unlock: read_password reads a line with getline)
 *   agent   (load_key, and unwrap from libkeys.so)
 *   server  (load_private_key, its block three calls down; libcrypto reads key.pem)
 *   libkeys.so (-DLIBKEYS: unwrap)
 * from two translation units (-DPART_MAIN for main), so that the named functions
 * keep their frames the way a real program's functions in other files do, at -O2.
 * Each block is reported as "NAME secret=0|1", 1 when /proc/self/maps puts its
 * address in a /secretmem mapping. With DOCPROG_PAUSE set it then prints READY and
 * waits for a signal, its blocks still live.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *read_password(void);
char *load_key(void);
char *unwrap(const char *wrapped);
char *load_private_key(void);

#if defined(LIBKEYS)
char *unwrap(const char *wrapped)
{
	size_t n = strlen(wrapped) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, wrapped, n);
	return p;
}
#elif defined(PART_MAIN)
#include <openssl/pem.h>

/* 1 if P lies in a mapping whose path starts with /secretmem. */
static int in_secretmem(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	uintptr_t a = (uintptr_t)p;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char path[256] = "";
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &lo, &hi, path) >= 2 &&
		    a >= lo && a < hi) {
			found = strncmp(path, "/secretmem", 10) == 0;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static void show(const char *name, const char *p)
{
	printf("%s secret=%d\n", name, p ? in_secretmem(p) : -1);
}

int main(int argc, char **argv)
{
	const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char *a = NULL, *b = NULL;
	EVP_PKEY *k = NULL;
	if (strcmp(me, "vault") == 0) {
		if (argc < 2 || strcmp(argv[1], "unlock") != 0)
			return 2;
		show("password", a = read_password());
	} else if (strcmp(me, "agent") == 0) {
		show("key", a = load_key());
		show("unwrapped", b = unwrap("wrapped-key-material-of-the-agent"));
	} else if (strcmp(me, "server") == 0) {
		FILE *f = fopen("key.pem", "r");
		if (f) {
			k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
			fclose(f);
		}
		printf("pem %s\n", k ? "read" : "none");
		show("private_key", a = load_private_key());
	} else {
		return 2;
	}
	fflush(stdout);
	if (getenv("DOCPROG_PAUSE")) {
		printf("READY\n");
		fflush(stdout);
		pause();
	}
	EVP_PKEY_free(k);
	free(a);
	free(b);
	return 0;
}
#else
char *read_password(void)
{
	char *line = NULL;
	size_t cap = 0;
	if (getline(&line, &cap, stdin) < 0) {
		free(line);
		return NULL;
	}
	return line;
}

char *load_key(void)
{
	char *k = malloc(64);
	if (k)
		snprintf(k, 64, "the agent's own key");
	return k;
}

/* load_private_key -> parse_pem -> decode_der -> store_key: the block is
 * allocated three calls below the function the rule names. */
static char *store_key(const char *der)
{
	char *p = malloc(128);
	if (p)
		snprintf(p, 128, "stored:%s", der);
	__asm__ volatile("" ::: "memory");
	return p;
}

static char *decode_der(const char *b64)
{
	char *p = store_key(b64);
	__asm__ volatile("" ::: "memory");
	return p;
}

static char *parse_pem(const char *pem)
{
	char *p = decode_der(pem + 1);
	__asm__ volatile("" ::: "memory");
	return p;
}

char *load_private_key(void)
{
	char *p = parse_pem("-MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
	__asm__ volatile("" ::: "memory");
	return p;
}
#endif
