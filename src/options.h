/* SPDX-License-Identifier: MIT */
/*
 * Options: every SECRETMEM_* environment variable is one row of the table in
 * options.c (name, default, parser, meaning). They are read once, at start-up,
 * with secure_getenv (a secure-execution program sees none of them), and parsed
 * strictly: a bad value stops the program before main with one line naming the
 * variable and what it accepts. Never calls malloc.
 */
#ifndef SM_OPTIONS_H
#define SM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "ro.h"

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

enum sm_mode { SM_MODE_EXCLUSIVE, SM_MODE_UNCACHED, SM_MODE_OFF };
/* The words of SECRETMEM_MODE, in enum sm_mode order: what the parser accepts, the
 * reports print and secretmem-inspect shows of a live process (struct sm_live). */
#define SM_MODE_WORDS "exclusive", "uncached", "off"
#define SM_MODE_COUNT 3
/* The word of mode m ("?" for a value no enum sm_mode has). */
static inline const char *sm_mode_name(unsigned long long m)
{
	static const char *const w[SM_MODE_COUNT] = { SM_MODE_WORDS };
	return m < SM_MODE_COUNT ? w[m] : "?";
}
/* Ordered: each level allows the downgrades of the ones before it. */
enum sm_fallback { SM_FALLBACK_NONE, SM_FALLBACK_EXCLUSIVE, SM_FALLBACK_MLOCK };
enum sm_fork { SM_FORK_COPY, SM_FORK_DROP };
enum sm_stats { SM_STATS_OFF, SM_STATS_STDERR, SM_STATS_FILE };

/* FUNCTION or LIBGLOB:FUNCTION (lib is NULL when any object matches). */
struct sm_site {
	const char *lib;
	const char *func;
};

struct sm_options {
	enum sm_mode mode;
	const char **libs;          /* glob patterns */
	size_t nlibs;
	struct sm_site *sites;
	size_t nsites;
	struct sm_site *wrappers;
	size_t nwrappers;
	unsigned depth;
	enum sm_fallback fallback;
	enum sm_fork fork;
	size_t max;                 /* 0: the default (RLIMIT_MEMLOCK) */
	enum sm_stats stats;
	const char *stats_path;     /* SM_STATS_FILE: the pattern, %p not expanded */
	bool stats_if_secret;       /* report only after a secret allocation */
	int log_level;
	const char *audit_dir;       /* SECRETMEM_AUDIT: secretmem-audit's directory */
};

/* The options in effect, in the read-only section (ro.h) once start-up is over. */
union sm_options_ro {
	struct sm_options v;
	unsigned char pages_[(sizeof(struct sm_options) + SM_RO_PAGE - 1) / SM_RO_PAGE * SM_RO_PAGE];
};
extern union sm_options_ro sm_options_ro;
#define sm_opt (sm_options_ro.v)

/* Reads and checks every variable into sm_opt; dies (before main) on a bad one. */
void sm_options_read(void);

/* Parses one variable's value into o; returns NULL when valid, else a static
 * message saying what is wrong (for the fuzzer and the unit tests). */
const char *sm_option_parse(const char *name, const char *value, struct sm_options *o);

/* Whether any routing rule was given in the environment. */
bool sm_options_have_rules(const struct sm_options *o);

/* The table, for documentation and tests. */
struct sm_option_doc {
	const char *name, *values, *defval, *meaning;
};
/* Row i of the table, NULL past the end. */
const struct sm_option_doc *sm_option_doc(size_t i);

#define SM_MAX_DEPTH 32

#pragma GCC visibility pop

#endif
