/* SPDX-License-Identifier: MIT */
/*
 * The option table. Each row: the variable's name, its parser, and the words the
 * documentation shows (the man page's ENVIRONMENT section and `secretmem-run --help`
 * are checked against these rows by the tests, so they cannot drift).
 *
 * Parsing is strict: exact lowercase words, decimal numbers checked for range and
 * overflow, sizes with an optional K, M or G (powers of 1024), lists with no empty
 * entries. An empty value is an error, not "unset": a user who sets a variable
 * meant something by it, and silence would protect nothing.
 */
#include "config.h"
#include "options.h"
#include "log.h"
#include "meta.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

union sm_options_ro sm_options_ro SM_RO = { .v = {
	.mode = SM_MODE_EXCLUSIVE,
	.fallback = SM_FALLBACK_NONE,
	.fork = SM_FORK_COPY,
	.log_level = SM_LOG_WARN,
} };

typedef const char *(*parser_fn)(const char *value, struct sm_options *o);

static const char *word(const char *value, const char *const *words, int *out)
{
	for (int i = 0; words[i]; i++) {
		if (strcmp(value, words[i]) == 0) {
			*out = i;
			return NULL;
		}
	}
	return "";
}

static const char *parse_mode(const char *v, struct sm_options *o)
{
	static const char *const w[] = { SM_MODE_WORDS, NULL };
	int i;
	if (word(v, w, &i))
		return "expected exclusive, uncached or off";
	o->mode = (enum sm_mode)i;
	return NULL;
}

static const char *parse_fallback(const char *v, struct sm_options *o)
{
	static const char *const w[] = { "none", "exclusive", "mlock", NULL };
	int i;
	if (word(v, w, &i))
		return "expected none, exclusive or mlock";
	o->fallback = (enum sm_fallback)i;
	return NULL;
}

static const char *parse_fork(const char *v, struct sm_options *o)
{
	static const char *const w[] = { "copy", "drop", NULL };
	int i;
	if (word(v, w, &i))
		return "expected copy or drop";
	o->fork = (enum sm_fork)i;
	return NULL;
}

static const char *parse_log(const char *v, struct sm_options *o)
{
	static const char *const w[] = { "error", "warn", "info", "debug", NULL };
	int i;
	if (word(v, w, &i))
		return "expected error, warn, info or debug";
	o->log_level = i;
	return NULL;
}

static const char *parse_depth(const char *v, struct sm_options *o)
{
	if (!isdigit((unsigned char)v[0]))
		return "expected a whole number from 0 to 32";
	errno = 0;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || n > SM_MAX_DEPTH)
		return "expected a whole number from 0 to 32";
	o->depth = (unsigned)n;
	return NULL;
}

static const char *parse_max(const char *v, struct sm_options *o)
{
	static const char msg[] =
		"expected a size in bytes with an optional K, M or G, at least 4K (e.g. 64M)";
	if (!isdigit((unsigned char)v[0]))
		return msg;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno)
		return msg;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	default: return msg;
	}
	if (*end || n > (SIZE_MAX >> shift) || (n << shift) < 4096)
		return msg;
	o->max = (size_t)(n << shift);
	return NULL;
}

static const char *parse_stats(const char *v, struct sm_options *o)
{
	if (strcmp(v, "1") == 0) {
		o->stats = SM_STATS_STDERR;
	} else if (strcmp(v, "0") == 0) {
		o->stats = SM_STATS_OFF;
	} else {
		o->stats = SM_STATS_FILE;
		o->stats_path = sm_meta_strndup(v, strlen(v));
		if (!o->stats_path)
			return "out of memory";
	}
	return NULL;
}

static const char *parse_stats_if(const char *v, struct sm_options *o)
{
	static const char *const w[] = { "always", "secret", NULL };
	int i;
	if (word(v, w, &i))
		return "expected always or secret";
	o->stats_if_secret = i == 1;
	return NULL;
}

/* An absolute directory short enough for DIR/exit.sock to fit a socket address. */
static const char *parse_audit(const char *v, struct sm_options *o)
{
	if (v[0] != '/' || strlen(v) > 90)
		return "expected an absolute directory path of at most 90 characters (secretmem-audit sets it)";
	o->audit_dir = sm_meta_strndup(v, strlen(v));
	if (!o->audit_dir)
		return "out of memory";
	return NULL;
}

static bool is_sep(char c, const char *seps)
{
	return strchr(seps, c) != NULL && c != '\0';
}

/* Splits v at any of seps; calls each(entry, len) for every entry. */
static const char *split(const char *v, const char *seps,
			 const char *(*each)(const char *, size_t, struct sm_options *),
			 struct sm_options *o)
{
	const char *p = v;
	for (;;) {
		const char *q = p;
		while (*q && !is_sep(*q, seps))
			q++;
		if (q == p)
			return "an entry of the list is empty";
		const char *err = each(p, (size_t)(q - p), o);
		if (err)
			return err;
		if (!*q)
			return NULL;
		p = q + 1;
	}
}

static size_t count_entries(const char *v, const char *seps)
{
	size_t n = 1;
	for (; *v; v++)
		n += is_sep(*v, seps);
	return n;
}

static const char *add_lib(const char *s, size_t n, struct sm_options *o)
{
	char *g = sm_meta_strndup(s, n);
	if (!g)
		return "out of memory";
	o->libs[o->nlibs++] = g;
	return NULL;
}

static bool is_symbol_char(char c, bool first)
{
	return c == '_' || isalpha((unsigned char)c) ||
	       (!first && (isdigit((unsigned char)c) || c == '.' || c == '$'));
}

/* What may follow a parameter list: const, volatile, &, &&, noexcept, spaced. */
static bool qualifiers(const char *f, size_t n)
{
	static const char *const words[] = { "const", "volatile", "&&", "&", "noexcept" };
	size_t i = 0;
	while (i < n) {
		if (f[i] == ' ') {
			i++;
			continue;
		}
		size_t k = 0;
		for (; k < sizeof(words) / sizeof(words[0]); k++) {
			size_t w = strlen(words[k]);
			if (w <= n - i && memcmp(f + i, words[k], w) == 0 &&
			    (i + w == n || f[i + w] == ' ' || f[i + w] == '&' || words[k][0] == '&')) {
				i += w;
				break;
			}
		}
		if (k == sizeof(words) / sizeof(words[0]))
			return false;
	}
	return true;
}

/* A C++ name as c++filt prints it: identifiers joined by "::", template arguments
 * in <>, a parameter list in () and qualifiers after it (const, &). Brackets must
 * balance; spaces only inside them or after the parameter list. */
static bool is_cxx_name(const char *f, size_t n)
{
	int angle = 0, paren = 0;
	bool word_start = true;
	for (size_t i = 0; i < n; i++) {
		char c = f[i];
		bool inside = angle > 0 || paren > 0;
		if (c == ':') {
			if (i + 1 >= n || f[i + 1] != ':' || i == 0)
				return false;
			i++;
			word_start = !inside;
			continue;
		}
		if (c == '(' && !inside && i >= 8 && strncmp(f + i - 8, "operator", 8) == 0 &&
		    (i == 8 || f[i - 9] == ':') && i + 1 < n && f[i + 1] == ')') {
			i++; /* operator(): the name, not a parameter list */
			continue;
		}
		if (c == '<' || c == '(') {
			if (!inside && (i == 0 || word_start))
				return false;
			if (c == '<')
				angle++;
			else
				paren++;
			continue;
		}
		if (c == '>' || c == ')') {
			if ((c == '>' && --angle < 0) || (c == ')' && --paren < 0))
				return false;
			if (c == ')' && paren == 0 && angle == 0)
				return qualifiers(f + i + 1, n - i - 1);
			continue;
		}
		if (!inside) {
			if (!is_symbol_char(c, word_start) && c != '~')
				return false;
			word_start = false;
			continue;
		}
		/* inside brackets */
		if (!is_symbol_char(c, false) && !strchr(" ,*&[]~", c))
			return false;
	}
	return angle == 0 && paren == 0 && !word_start;
}

/* The ':' between LIBGLOB and FUNCTION: the first one that is not half of a
 * "::" and comes before any template argument, parameter list or ABI tag. */
static const char *lib_colon(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '(' || s[i] == '<' || s[i] == '[')
			return NULL;
		if (s[i] == ':') {
			if (i + 1 < n && s[i + 1] == ':') {
				i++;
				continue;
			}
			return s + i;
		}
	}
	return NULL;
}

static const char *parse_site(const char *s, size_t n, struct sm_site *site)
{
	const char *colon = lib_colon(s, n);
	const char *func = colon ? colon + 1 : s;
	size_t flen = n - (size_t)(func - s);

	if (colon && colon == s)
		return "LIBGLOB:FUNCTION has an empty LIBGLOB";
	if (colon && colon[-1] == ':')
		return "LIBGLOB:FUNCTION with ':::' is ambiguous: a FUNCTION symbol name cannot start with ':'";
	if (flen == 0)
		return "a FUNCTION name is empty";
	bool symbol = true;
	for (size_t i = 0; i < flen && symbol; i++)
		symbol = is_symbol_char(func[i], i == 0);
	if (!symbol)
		symbol = is_cxx_name(func, flen);
	if (!symbol) {
		/* c++filt's ABI tags and anonymous namespaces: checked without them,
		 * as matching ignores them (symmatch.c) */
		static const char anon[] = "(anonymous namespace)::";
		char norm[512];
		size_t nlen = 0;
		bool cut = false;
		for (size_t i = 0; i < flen && nlen + 1 < sizeof(norm);) {
			const char *e = flen - i > 5 && strncmp(func + i, "[abi:", 5) == 0
						? memchr(func + i, ']', flen - i)
						: NULL;
			if (e) {
				i = (size_t)(e - func) + 1;
				cut = true;
			} else if (flen - i >= sizeof(anon) - 1 &&
				   strncmp(func + i, anon, sizeof(anon) - 1) == 0) {
				i += sizeof(anon) - 1;
				cut = true;
			} else {
				norm[nlen++] = func[i++];
			}
		}
		symbol = cut && nlen > 0 && flen < sizeof(norm) && is_cxx_name(norm, nlen);
	}
	if (!symbol)
		return "a FUNCTION must be a symbol name (letters, digits, _ . $) or a C++ name "
		       "as c++filt prints it (ns::Class::f, f(int))";
	site->lib = colon ? sm_meta_strndup(s, (size_t)(colon - s)) : NULL;
	site->func = sm_meta_strndup(func, flen);
	if (!site->func || (colon && !site->lib))
		return "out of memory";
	return NULL;
}

/* Splits a SITES/WRAPPERS list at the commas outside () and <> (a signature's
 * parameters are separated by commas too). */
static const char *split_sites(const char *v, const char *(*each)(const char *, size_t, struct sm_options *),
			       struct sm_options *o)
{
	const char *p = v;
	for (;;) {
		const char *q = p;
		int depth = 0;
		while (*q && (*q != ',' || depth > 0)) {
			depth += (*q == '(' || *q == '<') - (*q == ')' || *q == '>');
			q++;
		}
		if (q == p)
			return "an entry of the list is empty";
		const char *err = each(p, (size_t)(q - p), o);
		if (err)
			return err;
		if (!*q)
			return NULL;
		p = q + 1;
	}
}

static const char *add_site(const char *s, size_t n, struct sm_options *o)
{
	return parse_site(s, n, &o->sites[o->nsites++]);
}

static const char *add_wrapper(const char *s, size_t n, struct sm_options *o)
{
	return parse_site(s, n, &o->wrappers[o->nwrappers++]);
}

static const char *parse_libs(const char *v, struct sm_options *o)
{
	o->libs = sm_meta_alloc(count_entries(v, ":,") * sizeof(*o->libs));
	o->nlibs = 0;
	if (!o->libs)
		return "out of memory";
	return split(v, ":,", add_lib, o);
}

static const char *parse_sites(const char *v, struct sm_options *o)
{
	o->sites = sm_meta_alloc(count_entries(v, ",") * sizeof(*o->sites));
	o->nsites = 0;
	if (!o->sites)
		return "out of memory";
	return split_sites(v, add_site, o);
}

static const char *parse_wrappers(const char *v, struct sm_options *o)
{
	o->wrappers = sm_meta_alloc(count_entries(v, ",") * sizeof(*o->wrappers));
	o->nwrappers = 0;
	if (!o->wrappers)
		return "out of memory";
	return split_sites(v, add_wrapper, o);
}

struct row {
	struct sm_option_doc doc;
	parser_fn parse;
};

static const struct row table[] = {
	{ { "SECRETMEM_MODE", "exclusive, uncached, off", "exclusive",
	    "kind of secret memory; off disables the shim" }, parse_mode },
	{ { "SECRETMEM_LIBS", "GLOB[:GLOB...]", "none",
	    "objects whose allocations are secret; * matches all code" }, parse_libs },
	{ { "SECRETMEM_SITES", "[LIBGLOB:]FUNCTION[,...]", "none",
	    "functions whose allocations are secret" }, parse_sites },
	{ { "SECRETMEM_WRAPPERS", "[LIBGLOB:]FUNCTION[,...]", "none",
	    "allocation wrappers to look through when finding the call site" }, parse_wrappers },
	{ { "SECRETMEM_DEPTH", "0-32", "0",
	    "also match rules against this many frames above the call site" }, parse_depth },
	{ { "SECRETMEM_FALLBACK", "none, exclusive, mlock", "none",
	    "what to use when the kernel cannot give the requested mode" }, parse_fallback },
	{ { "SECRETMEM_FORK", "copy, drop", "copy",
	    "whether a forked child gets a private copy of the secret blocks" }, parse_fork },
	{ { "SECRETMEM_MAX", "SIZE[K|M|G]", "RLIMIT_MEMLOCK",
	    "cap on mapped secret memory" }, parse_max },
	{ { "SECRETMEM_STATS", "1, 0, FILE", "unset",
	    "report at exit on stderr (1) or into FILE (%p = pid)" }, parse_stats },
	{ { "SECRETMEM_STATS_IF", "always, secret", "always",
	    "which processes report: all, or those that made a secret allocation" }, parse_stats_if },
	{ { "SECRETMEM_LOG", "error, warn, info, debug", "warn",
	    "how much the library says on stderr" }, parse_log },
	{ { "SECRETMEM_AUDIT", "DIR", "unset",
	    "secretmem-audit's log directory: record every allocation, make nothing secret" }, parse_audit },
};

#define NROWS (sizeof(table) / sizeof(table[0]))

const struct sm_option_doc *sm_option_doc(size_t i)
{
	return i < NROWS ? &table[i].doc : NULL;
}

const char *sm_option_parse(const char *name, const char *value, struct sm_options *o)
{
	for (size_t i = 0; i < NROWS; i++) {
		if (strcmp(table[i].doc.name, name) == 0) {
			if (!*value)
				return "is set but empty; unset it or give a value";
			const char *err = table[i].parse(value, o);
			/* Words and numbers refuse control characters by themselves, with
			 * the message that says what they accept; free text (globs, names,
			 * paths) gets this check. */
			for (const char *c = value; !err && *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					err = "contains a control character";
			return err;
		}
	}
	return "is not a known variable";
}

/* The value as it can be shown on one line: at most 60 characters, controls as '?'. */
static const char *shown(const char *v, char *buf, size_t size)
{
	size_t n = 0;
	for (; *v && n + 4 < size && n < 60; v++)
		buf[n++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
	if (*v) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* What the options in o mean, one word or list per variable, as the library will
 * act on them (sizes in bytes, lists with their canonical separators): the debug
 * line "options in effect", so that a value that parses but is not taken shows. */
static void describe(const struct sm_options *o, char *buf, size_t size)
{
	static const char *const fallbacks[] = { "none", "exclusive", "mlock" };
	static const char *const forks[] = { "copy", "drop" };
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	size_t n = sm_format(buf, size, "SECRETMEM_MODE=%s SECRETMEM_LIBS=", sm_mode_name(o->mode));
	for (size_t i = 0; i < o->nlibs; i++)
		n += sm_format(buf + n, size - n, "%s%s", i ? ":" : "", o->libs[i]);
	if (!o->nlibs)
		n += sm_format(buf + n, size - n, "none");
	const struct sm_site *lists[2] = { o->sites, o->wrappers };
	size_t counts[2] = { o->nsites, o->nwrappers };
	for (int l = 0; l < 2; l++) {
		n += sm_format(buf + n, size - n, l ? " SECRETMEM_WRAPPERS=" : " SECRETMEM_SITES=");
		for (size_t i = 0; i < counts[l]; i++)
			n += sm_format(buf + n, size - n, "%s%s%s%s", i ? "," : "",
				       lists[l][i].lib ? lists[l][i].lib : "",
				       lists[l][i].lib ? ":" : "", lists[l][i].func);
		if (!counts[l])
			n += sm_format(buf + n, size - n, "none");
	}
	n += sm_format(buf + n, size - n, " SECRETMEM_DEPTH=%u SECRETMEM_FALLBACK=%s SECRETMEM_FORK=%s",
		       o->depth, fallbacks[o->fallback], forks[o->fork]);
	if (o->max)
		n += sm_format(buf + n, size - n, " SECRETMEM_MAX=%zu", o->max);
	else
		n += sm_format(buf + n, size - n, " SECRETMEM_MAX=RLIMIT_MEMLOCK");
	n += sm_format(buf + n, size - n, " SECRETMEM_STATS=%s SECRETMEM_STATS_IF=%s",
		       o->stats == SM_STATS_OFF ? "off" : o->stats == SM_STATS_STDERR ? "stderr" : o->stats_path,
		       o->stats_if_secret ? "secret" : "always");
	n += sm_format(buf + n, size - n, " SECRETMEM_LOG=%s", levels[o->log_level]);
	if (o->audit_dir)
		sm_format(buf + n, size - n, " SECRETMEM_AUDIT=%s", o->audit_dir);
}

/* In secure-execution mode (set-user-ID, set-group-ID, file capabilities) no
 * variable is read: the user who starts a privileged program must not steer it
 * (SECRETMEM_STATS would write a file with its rights). A user who set rules
 * there expects protection they do not get: say so, once. */
static void warn_if_ignored(void)
{
	extern char **environ;
	if (!getauxval(AT_SECURE) || !environ)
		return;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "SECRETMEM_", 10) == 0) {
			sm_warn("this is a set-user-ID, set-group-ID or file-capability program: "
				"every SECRETMEM_* variable is ignored and no rule makes anything "
				"secret; only secretmem.h annotations in its code do");
			return;
		}
	}
}

/* Edit distance between a and b (each at most 31 bytes; more counts as far). */
static unsigned distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 31 || lb > 31)
		return 99;
	unsigned d[32][32];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			unsigned sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			unsigned del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* A SECRETMEM_* variable the library does not know (SECRETMEM_LIB for
 * SECRETMEM_LIBS, as secretmem-run spells its flag --lib) would leave the user
 * believing in a rule that is not there: a warning names it, and the nearest
 * known name. */
static void warn_unknown(void)
{
	extern char **environ;
	if (!environ)
		return;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "SECRETMEM_", 10) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		char name[64];
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, *e, n);
		name[n] = '\0';
		const char *best = NULL;
		unsigned bd = 99;
		bool known = false;
		for (size_t i = 0; i < NROWS && !known; i++) {
			unsigned d = distance(name + 10, table[i].doc.name + 10);
			known = d == 0;
			if (d < bd) {
				bd = d;
				best = table[i].doc.name;
			}
		}
		if (known)
			continue;
		if (best && bd <= 2)
			sm_warn("%s is not a variable of the library and is ignored: did you mean %s?",
				name, best);
		else
			sm_warn("%s is not a variable of the library and is ignored (see "
				"libsecretmem-preload(7), ENVIRONMENT)",
				name);
	}
}

void sm_options_read(void)
{
	for (size_t i = 0; i < NROWS; i++) {
		const char *name = table[i].doc.name;
		const char *v = secure_getenv(name);
		if (!v)
			continue;
		const char *err = sm_option_parse(name, v, &sm_opt);
		if (err) {
			char buf[72];
			if (!*v)
				sm_die("%s %s", name, err);
			sm_die("%s=\"%s\" is not valid: %s", name, shown(v, buf, sizeof(buf)), err);
		}
	}
	sm_log_level = sm_opt.log_level;
	if (sm_log_level >= SM_LOG_DEBUG) {
		static char line[1024];
		describe(&sm_opt, line, sizeof(line));
		sm_debug("options in effect: %s", line);
	}
	if (getauxval(AT_SECURE))
		warn_if_ignored();
	else
		warn_unknown();
}

bool sm_options_have_rules(const struct sm_options *o)
{
	return o->nlibs || o->nsites;
}
