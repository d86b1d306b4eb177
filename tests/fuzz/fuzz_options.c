/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the option parser, sm_option_parse(name, value, &opts), with
 * arbitrary bytes as a variable's value. The first byte picks the variable (a row of
 * the table; 0xff: every row in turn), the rest, up to its first NUL, is the value.
 * Must hold: no crash, no hang, no sanitizer report; every rejection is a non-empty
 * message; an accepted value leaves the option in its documented range. Linked
 * with fuzz_meta.c instead of src/meta.c, so that ASan sees the parser's metadata.
 *
 *   ./configure --enable-fuzzing CC=clang && make tests/fuzz/fuzz_options
 *   tests/fuzz/fuzz_options -max_total_time=60 tests/fuzz/corpus/options
 */
#include "config.h"
#include "options.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_meta_reset(void); /* fuzz_meta.c */

static size_t nrows(void)
{
	size_t n = 0;
	while (sm_option_doc(n))
		n++;
	return n;
}

static void one(const char *name, const char *value)
{
	struct sm_options o;
	memset(&o, 0, sizeof(o));
	o.depth = 1000; /* out of range: shows whether a rejected parse wrote it */
	const char *err = sm_option_parse(name, value, &o);
	if (err) {
		if (!*err) {
			fprintf(stderr, "%s: rejected with an empty message\n", name);
			abort();
		}
		return;
	}
	if (!*value)
		abort(); /* an empty value is never accepted */
	if (strcmp(name, "SECRETMEM_DEPTH") == 0 && o.depth > SM_MAX_DEPTH)
		abort();
	if (strcmp(name, "SECRETMEM_MAX") == 0 && o.max < 4096)
		abort();
	if (strcmp(name, "SECRETMEM_LIBS") == 0) {
		if (!o.nlibs)
			abort();
		for (size_t i = 0; i < o.nlibs; i++)
			if (!o.libs[i][0] || strpbrk(o.libs[i], ":,"))
				abort(); /* entries are non-empty and split at every separator */
	}
	if (strcmp(name, "SECRETMEM_SITES") == 0 || strcmp(name, "SECRETMEM_WRAPPERS") == 0) {
		struct sm_site *s = name[10] == 'S' ? o.sites : o.wrappers;
		size_t n = name[10] == 'S' ? o.nsites : o.nwrappers;
		if (!n)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (!s[i].func[0] || (s[i].lib && !s[i].lib[0]))
				abort();
			/* a ':' in FUNCTION only as half of a C++ "::" */
			for (const char *c = s[i].func; (c = strchr(c, ':')) != NULL; c += 2)
				if (c[1] != ':')
					abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t rows = nrows();
	char *value = malloc(size);
	if (!value)
		return 0;
	memcpy(value, data + 1, size - 1);
	value[size - 1] = '\0';
	if (data[0] == 0xff) {
		for (size_t i = 0; i < rows; i++)
			one(sm_option_doc(i)->name, value);
	} else {
		one(sm_option_doc(data[0] % rows)->name, value);
	}
	free(value);
	fuzz_meta_reset();
	return 0;
}
