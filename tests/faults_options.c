/* SPDX-License-Identifier: MIT */
/*
 * faults_options: the option parser (src/options.c, linked in directly) given
 * values of 1 MiB, which no environment can pass (execve refuses a string over
 * 128 KiB) but a parser must still survive: for every variable of the table and
 * several kinds of value, sm_option_parse must return within a second, and every
 * rejection must say why (a non-empty message). One line per case; exit 1 if any
 * case failed.
 */
#include "config.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024 * 1024)

static char *value(const char *kind)
{
	char *v = malloc(MIB + 1);
	if (!v)
		exit(2);
	for (size_t i = 0; i < MIB; i++) {
		if (strcmp(kind, "letters") == 0)
			v[i] = 'a';
		else if (strcmp(kind, "digits") == 0)
			v[i] = '9';
		else if (strcmp(kind, "list") == 0) /* 512 Ki entries "a:a,a:..." */
			v[i] = (i & 1) ? (i & 2 ? ':' : ',') : 'a';
		else if (strcmp(kind, "control") == 0)
			v[i] = (char)(1 + i % 31);
		else /* high: bytes 0x80-0xff */
			v[i] = (char)(0x80 | (i & 0x7f));
	}
	v[MIB] = '\0';
	if (strcmp(kind, "list") == 0)
		v[MIB - 1] = 'a';
	return v;
}

int main(void)
{
	static const char *const kinds[] = { "letters", "digits", "list", "control", "high" };
	int bad = 0;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char *v = value(kinds[k]);
		const struct sm_option_doc *d;
		for (size_t i = 0; (d = sm_option_doc(i)); i++) {
			struct sm_options o = { 0 };
			struct timespec a, b;
			clock_gettime(CLOCK_MONOTONIC, &a);
			const char *err = sm_option_parse(d->name, v, &o);
			clock_gettime(CLOCK_MONOTONIC, &b);
			double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
			bool ok = (!err || *err) && ms < 1000;
			printf("%s %s %s %.1f ms%s%s\n", ok ? "ok" : "FAIL", d->name, kinds[k], ms,
			       err ? ": rejected: " : ": accepted", err ? err : "");
			bad += !ok;
		}
		free(v);
	}
	return bad ? 1 : 0;
}
