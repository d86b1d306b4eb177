/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the option table (src/options.c), linked directly: sm_option_parse
 * on valid values (checking every parsed field) and on invalid ones (checking that
 * each is refused with a message and leaves the field alone), the documentation
 * rows against docs/contract.md, and sm_options_read in forked children (a bad variable
 * ends the process with status 78 and one line on stderr). TAP output; exits 1 if
 * any test failed.
 */
#include "config.h"
#include "log.h"
#include "options.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

static int streq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Options as sm_opt starts: the documented defaults. */
static struct sm_options fresh(void)
{
	struct sm_options o;
	memset(&o, 0, sizeof(o));
	o.mode = SM_MODE_EXCLUSIVE;
	o.fallback = SM_FALLBACK_NONE;
	o.fork = SM_FORK_COPY;
	o.log_level = SM_LOG_WARN;
	return o;
}

/* Parses one value into fresh options; err is the message (NULL: valid). */
static const char *parse(const char *name, const char *value, struct sm_options *o)
{
	*o = fresh();
	return sm_option_parse(name, value, o);
}

/* ---- valid values ---- */

static void test_words(void)
{
	struct sm_options o;
	static const struct { const char *v; enum sm_mode m; } modes[] = {
		{ "exclusive", SM_MODE_EXCLUSIVE }, { "uncached", SM_MODE_UNCACHED }, { "off", SM_MODE_OFF },
	};
	for (size_t i = 0; i < 3; i++) {
		o = fresh();
		o.mode = (enum sm_mode)99;
		const char *e = sm_option_parse("SECRETMEM_MODE", modes[i].v, &o);
		ok(!e && o.mode == modes[i].m, "SECRETMEM_MODE=%s", modes[i].v);
	}
	static const struct { const char *v; enum sm_fallback f; } fbs[] = {
		{ "none", SM_FALLBACK_NONE }, { "exclusive", SM_FALLBACK_EXCLUSIVE },
		{ "mlock", SM_FALLBACK_MLOCK },
	};
	for (size_t i = 0; i < 3; i++) {
		o = fresh();
		o.fallback = (enum sm_fallback)99;
		const char *e = sm_option_parse("SECRETMEM_FALLBACK", fbs[i].v, &o);
		ok(!e && o.fallback == fbs[i].f, "SECRETMEM_FALLBACK=%s", fbs[i].v);
	}
	const char *e = parse("SECRETMEM_FORK", "drop", &o);
	ok(!e && o.fork == SM_FORK_DROP, "SECRETMEM_FORK=drop");
	o.fork = SM_FORK_DROP;
	e = sm_option_parse("SECRETMEM_FORK", "copy", &o);
	ok(!e && o.fork == SM_FORK_COPY, "SECRETMEM_FORK=copy");

	static const struct { const char *v; int l; } logs[] = {
		{ "error", SM_LOG_ERROR }, { "warn", SM_LOG_WARN }, { "info", SM_LOG_INFO },
		{ "debug", SM_LOG_DEBUG },
	};
	for (size_t i = 0; i < 4; i++) {
		o = fresh();
		o.log_level = 99;
		e = sm_option_parse("SECRETMEM_LOG", logs[i].v, &o);
		ok(!e && o.log_level == logs[i].l, "SECRETMEM_LOG=%s", logs[i].v);
	}
}

static void test_depth(void)
{
	static const struct { const char *v; unsigned d; } good[] = {
		{ "0", 0 }, { "1", 1 }, { "7", 7 }, { "31", 31 }, { "32", 32 }, { "032", 32 }, { "00", 0 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct sm_options o = fresh();
		o.depth = 99;
		const char *e = sm_option_parse("SECRETMEM_DEPTH", good[i].v, &o);
		ok(!e && o.depth == good[i].d, "SECRETMEM_DEPTH=%s is %u", good[i].v, good[i].d);
	}
}

static void test_max(void)
{
	static const struct { const char *v; size_t n; } good[] = {
		{ "4K", 4096 },
		{ "4096", 4096 },
		{ "4097", 4097 },
		{ "64M", (size_t)64 << 20 },
		{ "1M", (size_t)1 << 20 },
		{ "1G", (size_t)1 << 30 },
		{ "3G", (size_t)3 << 30 },
		{ "8388608", 8388608 },
		{ "004K", 4096 },
		{ "16777215M", (size_t)16777215 << 20 },
		{ "17179869183G", (size_t)17179869183 << 30 },
		{ "18446744073709551615", SIZE_MAX },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct sm_options o;
		const char *e = parse("SECRETMEM_MAX", good[i].v, &o);
		ok(!e && o.max == good[i].n, "SECRETMEM_MAX=%s is %zu bytes", good[i].v, good[i].n);
	}
}

static void test_stats(void)
{
	struct sm_options o;
	const char *e = parse("SECRETMEM_STATS", "1", &o);
	ok(!e && o.stats == SM_STATS_STDERR, "SECRETMEM_STATS=1 reports on stderr");
	o.stats = SM_STATS_STDERR;
	e = sm_option_parse("SECRETMEM_STATS", "0", &o);
	ok(!e && o.stats == SM_STATS_OFF, "SECRETMEM_STATS=0 is off");
	e = parse("SECRETMEM_STATS", "/tmp/stats.%p.txt", &o);
	ok(!e && o.stats == SM_STATS_FILE && streq(o.stats_path, "/tmp/stats.%p.txt"),
	   "SECRETMEM_STATS=/tmp/stats.%%p.txt is a file, %%p kept");
	e = parse("SECRETMEM_STATS", "report", &o);
	ok(!e && o.stats == SM_STATS_FILE && streq(o.stats_path, "report"),
	   "SECRETMEM_STATS=report is a relative file");
	e = parse("SECRETMEM_STATS_IF", "secret", &o);
	ok(!e && o.stats_if_secret, "SECRETMEM_STATS_IF=secret: only processes with secrets report");
	e = sm_option_parse("SECRETMEM_STATS_IF", "always", &o);
	ok(!e && !o.stats_if_secret, "SECRETMEM_STATS_IF=always: every process reports");
	e = parse("SECRETMEM_AUDIT", "/tmp/smaudit.x1", &o);
	ok(!e && streq(o.audit_dir, "/tmp/smaudit.x1"), "SECRETMEM_AUDIT=/tmp/smaudit.x1 is the directory");
}

static void test_libs(void)
{
	struct sm_options o;
	const char *e = parse("SECRETMEM_LIBS", "libcrypto*", &o);
	ok(!e && o.nlibs == 1 && streq(o.libs[0], "libcrypto*"), "SECRETMEM_LIBS=libcrypto*");
	e = parse("SECRETMEM_LIBS", "*", &o);
	ok(!e && o.nlibs == 1 && streq(o.libs[0], "*"), "SECRETMEM_LIBS=*");
	e = parse("SECRETMEM_LIBS", "a:b,c", &o);
	ok(!e && o.nlibs == 3 && streq(o.libs[0], "a") && streq(o.libs[1], "b") && streq(o.libs[2], "c"),
	   "SECRETMEM_LIBS=a:b,c splits on ':' and ','");
	e = parse("SECRETMEM_LIBS", "/usr/lib/*/libssl.so.3,libgcrypt.so.*:my prog", &o);
	ok(!e && o.nlibs == 3 && streq(o.libs[0], "/usr/lib/*/libssl.so.3") &&
		   streq(o.libs[1], "libgcrypt.so.*") && streq(o.libs[2], "my prog"),
	   "SECRETMEM_LIBS with a full path, a version glob and a space");
	ok(!sm_options_have_rules(&(struct sm_options){ 0 }), "no LIBS and no SITES: no rules");
	ok(sm_options_have_rules(&o), "LIBS set: rules");
}

static void test_sites(void)
{
	struct sm_options o;
	const char *e = parse("SECRETMEM_SITES", "derive_key", &o);
	ok(!e && o.nsites == 1 && o.sites[0].lib == NULL && streq(o.sites[0].func, "derive_key"),
	   "SECRETMEM_SITES=derive_key: any object");
	e = parse("SECRETMEM_SITES", "libssl.so*:SSL_new", &o);
	ok(!e && o.nsites == 1 && streq(o.sites[0].lib, "libssl.so*") && streq(o.sites[0].func, "SSL_new"),
	   "SECRETMEM_SITES=libssl.so*:SSL_new");
	e = parse("SECRETMEM_SITES", "a:b,c,lib*:_x.y$z", &o);
	ok(!e && o.nsites == 3 && streq(o.sites[0].lib, "a") && streq(o.sites[0].func, "b") &&
		   o.sites[1].lib == NULL && streq(o.sites[1].func, "c") && streq(o.sites[2].lib, "lib*") &&
		   streq(o.sites[2].func, "_x.y$z"),
	   "SECRETMEM_SITES=a:b,c,lib*:_x.y$z splits on ',' only");
	ok(sm_options_have_rules(&o), "SITES set: rules");
	e = parse("SECRETMEM_SITES", "KeyStore::load,libkeys.so:crypto::KeyStore::load", &o);
	ok(!e && o.nsites == 2 && !o.sites[0].lib && streq(o.sites[0].func, "KeyStore::load") &&
		   streq(o.sites[1].lib, "libkeys.so") && streq(o.sites[1].func, "crypto::KeyStore::load"),
	   "SECRETMEM_SITES with C++ names: '::' is no LIBGLOB separator");
	e = parse("SECRETMEM_SITES", "KeyStore::load(char const*, int),make_key_vector", &o);
	ok(!e && o.nsites == 2 && !o.sites[0].lib && streq(o.sites[0].func, "KeyStore::load(char const*, int)") &&
		   streq(o.sites[1].func, "make_key_vector"),
	   "SECRETMEM_SITES: a comma inside a signature does not split");
	e = parse("SECRETMEM_SITES", "lib*.so:f<int, std::pair<int, long> >(int) const,g", &o);
	ok(!e && o.nsites == 2 && streq(o.sites[0].lib, "lib*.so") &&
		   streq(o.sites[0].func, "f<int, std::pair<int, long> >(int) const") && streq(o.sites[1].func, "g"),
	   "SECRETMEM_SITES: templates, nested, and a qualifier after the signature");
	e = parse("SECRETMEM_SITES", "f()", &o);
	ok(!e && o.nsites == 1 && streq(o.sites[0].func, "f()"), "SECRETMEM_SITES=f(): the overload without parameters");
	e = parse("SECRETMEM_SITES", "ns::Key::~Key", &o);
	ok(!e && o.nsites == 1 && streq(o.sites[0].func, "ns::Key::~Key"), "SECRETMEM_SITES: a destructor");

	e = parse("SECRETMEM_WRAPPERS", "xmalloc,g_malloc", &o);
	ok(!e && o.nwrappers == 2 && !o.wrappers[0].lib && streq(o.wrappers[0].func, "xmalloc") &&
		   !o.wrappers[1].lib && streq(o.wrappers[1].func, "g_malloc"),
	   "SECRETMEM_WRAPPERS=xmalloc,g_malloc");
	e = parse("SECRETMEM_WRAPPERS", "libglib-2.0.so*:g_malloc0", &o);
	ok(!e && o.nwrappers == 1 && streq(o.wrappers[0].lib, "libglib-2.0.so*") &&
		   streq(o.wrappers[0].func, "g_malloc0"),
	   "SECRETMEM_WRAPPERS=libglib-2.0.so*:g_malloc0");
	ok(!sm_options_have_rules(&o), "WRAPPERS alone are no rule");
}

/* ---- invalid values ---- */

struct bad {
	const char *name, *value;
};

static const struct bad bads[] = {
	/* empty, for every variable */
	{ "SECRETMEM_MODE", "" }, { "SECRETMEM_LIBS", "" }, { "SECRETMEM_SITES", "" },
	{ "SECRETMEM_WRAPPERS", "" }, { "SECRETMEM_DEPTH", "" }, { "SECRETMEM_FALLBACK", "" },
	{ "SECRETMEM_FORK", "" }, { "SECRETMEM_MAX", "" }, { "SECRETMEM_STATS", "" },
	{ "SECRETMEM_STATS_IF", "" }, { "SECRETMEM_STATS_IF", "Secret" },
	{ "SECRETMEM_STATS_IF", "held" }, { "SECRETMEM_LOG", "" },
	/* SECRETMEM_AUDIT: absolute, and short enough for DIR/exit.sock */
	{ "SECRETMEM_AUDIT", "" }, { "SECRETMEM_AUDIT", "relative/dir" },
	{ "SECRETMEM_AUDIT", "/a-directory-name-far-too-long-for-a-unix-socket-address-with-exit.sock-after-it-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	/* words: exact and lowercase */
	{ "SECRETMEM_MODE", "Exclusive" }, { "SECRETMEM_MODE", "OFF" }, { "SECRETMEM_MODE", "off " },
	{ "SECRETMEM_MODE", " off" }, { "SECRETMEM_MODE", "of" }, { "SECRETMEM_MODE", "offf" },
	{ "SECRETMEM_MODE", "exclusive,off" }, { "SECRETMEM_MODE", "off\n" },
	{ "SECRETMEM_FALLBACK", "None" }, { "SECRETMEM_FALLBACK", "MLOCK" },
	{ "SECRETMEM_FALLBACK", "mlock2" }, { "SECRETMEM_FALLBACK", "none\t" },
	{ "SECRETMEM_FORK", "Copy" }, { "SECRETMEM_FORK", "keep" }, { "SECRETMEM_FORK", "drop\r" },
	{ "SECRETMEM_LOG", "Debug" }, { "SECRETMEM_LOG", "warning" }, { "SECRETMEM_LOG", "3" },
	{ "SECRETMEM_LOG", "debug\n" },
	/* depth */
	{ "SECRETMEM_DEPTH", "33" }, { "SECRETMEM_DEPTH", "-1" }, { "SECRETMEM_DEPTH", "1x" },
	{ "SECRETMEM_DEPTH", " 1" }, { "SECRETMEM_DEPTH", "1 " }, { "SECRETMEM_DEPTH", "+1" },
	{ "SECRETMEM_DEPTH", "0x10" }, { "SECRETMEM_DEPTH", "3.5" },
	{ "SECRETMEM_DEPTH", "4294967328" }, /* 2^32 + 32: must not wrap to 32 */
	{ "SECRETMEM_DEPTH", "18446744073709551616" }, { "SECRETMEM_DEPTH", "1\n" },
	/* sizes */
	{ "SECRETMEM_MAX", "0" }, { "SECRETMEM_MAX", "0K" }, { "SECRETMEM_MAX", "4095" },
	{ "SECRETMEM_MAX", "1T" }, { "SECRETMEM_MAX", "1k" }, { "SECRETMEM_MAX", "4KB" },
	{ "SECRETMEM_MAX", " 4K" }, { "SECRETMEM_MAX", "4K " }, { "SECRETMEM_MAX", "-4K" },
	{ "SECRETMEM_MAX", "+4K" }, { "SECRETMEM_MAX", "4.5M" }, { "SECRETMEM_MAX", "M" },
	{ "SECRETMEM_MAX", "0x1000" }, { "SECRETMEM_MAX", "99999999999999999999G" },
	{ "SECRETMEM_MAX", "99999999999999999999" }, { "SECRETMEM_MAX", "17179869184G" },
	{ "SECRETMEM_MAX", "18446744073709551616" }, { "SECRETMEM_MAX", "64M\n" },
	/* lists */
	{ "SECRETMEM_LIBS", "a,,b" }, { "SECRETMEM_LIBS", ",a" }, { "SECRETMEM_LIBS", "a," },
	{ "SECRETMEM_LIBS", "a:" }, { "SECRETMEM_LIBS", ":" }, { "SECRETMEM_LIBS", "a::b" },
	{ "SECRETMEM_SITES", "a,,b" }, { "SECRETMEM_SITES", ",a" }, { "SECRETMEM_SITES", "a," },
	{ "SECRETMEM_SITES", "lib:" }, { "SECRETMEM_SITES", ":func" }, { "SECRETMEM_SITES", "fu nc" },
	{ "SECRETMEM_SITES", "1abc" }, { "SECRETMEM_SITES", "lib:1abc" },
	{ "SECRETMEM_SITES", "a:b:c" }, { "SECRETMEM_SITES", "f(" }, { "SECRETMEM_SITES", "func\n" },
	{ "SECRETMEM_SITES", "f(int" }, { "SECRETMEM_SITES", "a::" }, { "SECRETMEM_SITES", "::a" },
	{ "SECRETMEM_SITES", "f<int" }, { "SECRETMEM_SITES", "f<a:b>" }, { "SECRETMEM_SITES", "f)(" }, { "SECRETMEM_SITES", "ns::1f" },
	{ "SECRETMEM_SITES", "f() g" }, { "SECRETMEM_SITES", "a:::b" }, { "SECRETMEM_SITES", "(int)" },
	{ "SECRETMEM_SITES", "ns::(int)" }, { "SECRETMEM_SITES", "f(int)(int)" },
	{ "SECRETMEM_WRAPPERS", "a,,b" }, { "SECRETMEM_WRAPPERS", "lib:" },
	{ "SECRETMEM_WRAPPERS", ":g_malloc" }, { "SECRETMEM_WRAPPERS", "x malloc" },
	{ "SECRETMEM_WRAPPERS", "9malloc" },
	/* unknown names */
	{ "SECRETMEM_MODES", "off" }, { "secretmem_mode", "off" }, { "", "off" },
};

/* A rejected value leaves the parsed fields as they were. */
static int untouched(const struct sm_options *o)
{
	struct sm_options f = fresh();
	return o->mode == f.mode && o->nlibs == 0 && o->nsites == 0 && o->nwrappers == 0 &&
	       o->depth == 0 && o->fallback == f.fallback && o->fork == f.fork && o->max == 0 &&
	       o->stats == SM_STATS_OFF && o->log_level == f.log_level;
}

static void show(char *buf, size_t size, const char *v)
{
	size_t n = 0;
	for (; *v && n + 5 < size; v++) {
		if ((unsigned char)*v < 0x20)
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", (unsigned char)*v);
		else
			buf[n++] = *v;
	}
	buf[n] = '\0';
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct sm_options o;
		char v[80];
		show(v, sizeof(v), bads[i].value);
		const char *e = parse(bads[i].name, bads[i].value, &o);
		/* Lists may be half-filled before the bad entry; scalars must not change. */
		int scalars_ok = strstr("SECRETMEM_LIBS SECRETMEM_SITES SECRETMEM_WRAPPERS", bads[i].name) ||
				 !*bads[i].name || untouched(&o);
		ok(e && *e && !strchr(e, '\n') && scalars_ok, "%s=\"%s\" is refused%s%s", bads[i].name, v,
		   e ? ": " : "", e ? e : " (accepted)");
	}
}

/* Control characters in a value that is otherwise free text: a glob, a library
 * glob, a file name. */
static void test_control_chars(void)
{
	static const struct bad ctl[] = {
		{ "SECRETMEM_LIBS", "libcrypto*\n" }, { "SECRETMEM_LIBS", "lib\tfoo" },
		{ "SECRETMEM_SITES", "li\nb:func" }, { "SECRETMEM_WRAPPERS", "lib\r:xmalloc" },
		{ "SECRETMEM_STATS", "1\n" }, { "SECRETMEM_STATS", "/tmp/s\x1b[2J" },
	};
	for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
		struct sm_options o;
		char v[80];
		show(v, sizeof(v), ctl[i].value);
		const char *e = parse(ctl[i].name, ctl[i].value, &o);
		ok(e != NULL, "%s=\"%s\" (a control character) is refused", ctl[i].name, v);
	}
}

/* ---- the documentation table ---- */

static void test_doc(void)
{
	static const char *const names[] = {
		"SECRETMEM_MODE", "SECRETMEM_LIBS", "SECRETMEM_SITES", "SECRETMEM_WRAPPERS",
		"SECRETMEM_DEPTH", "SECRETMEM_FALLBACK", "SECRETMEM_FORK", "SECRETMEM_MAX",
		"SECRETMEM_STATS", "SECRETMEM_STATS_IF", "SECRETMEM_LOG", "SECRETMEM_AUDIT",
	};
	/* The defaults column of docs/contract.md. */
	static const char *const defaults[] = {
		"exclusive", "none", "none", "none", "0", "none", "copy", "RLIMIT_MEMLOCK", "unset",
		"always", "warn", "unset",
	};
	size_t n = 0;
	while (sm_option_doc(n))
		n++;
	size_t rows = sizeof(names) / sizeof(names[0]);
	ok(n == rows, "sm_option_doc lists %zu variables (it lists %zu)", rows, n);
	for (size_t i = 0; i < rows; i++) {
		const struct sm_option_doc *d = sm_option_doc(i);
		ok(d && streq(d->name, names[i]) && d->values && *d->values && d->meaning && *d->meaning,
		   "row %zu is %s, with values and meaning", i, names[i]);
		ok(d && streq(d->defval, defaults[i]), "%s defaults to %s", names[i], defaults[i]);
		/* Every documented name is one the parser knows. */
		struct sm_options o = fresh();
		ok(d && !streq(sm_option_parse(d->name, "", &o), "is not a known variable"),
		   "%s is known to sm_option_parse", names[i]);
	}
	ok(sm_option_doc(rows) == NULL && sm_option_doc(SIZE_MAX) == NULL, "no row past the end");
}

/* ---- sm_options_read, in a child ---- */

struct child {
	int status;
	char err[512];
};

/* Runs sm_options_read in a child with the given variables set; then the child
 * checks sm_opt against expect (if any) and exits 0 if it matches, 3 if not. */
static struct child read_in_child(const char *const *env, int (*expect)(void))
{
	struct child c = { -1, "" };
	int fd[2];
	if (pipe(fd) != 0)
		return c;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 2);
		close(fd[0]);
		for (const char *const *e = env; *e; e += 2)
			setenv(e[0], e[1], 1);
		sm_options_read();
		_exit(expect && !expect() ? 3 : 0);
	}
	close(fd[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < sizeof(c.err) && (r = read(fd[0], c.err + n, sizeof(c.err) - 1 - n)) > 0)
		n += (size_t)r;
	c.err[n] = '\0';
	close(fd[0]);
	int st;
	if (waitpid(pid, &st, 0) == pid)
		c.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return c;
}

static int expect_all(void)
{
	return sm_opt.mode == SM_MODE_UNCACHED && sm_opt.nlibs == 2 && streq(sm_opt.libs[1], "b*") &&
	       sm_opt.nsites == 1 && streq(sm_opt.sites[0].func, "f") && sm_opt.depth == 5 &&
	       sm_opt.fallback == SM_FALLBACK_MLOCK && sm_opt.fork == SM_FORK_DROP &&
	       sm_opt.max == ((size_t)64 << 20) && sm_opt.stats == SM_STATS_STDERR &&
	       sm_opt.log_level == SM_LOG_DEBUG && sm_log_level == SM_LOG_DEBUG;
}

static int expect_defaults(void)
{
	return sm_opt.mode == SM_MODE_EXCLUSIVE && sm_opt.nlibs == 0 && sm_opt.nsites == 0 &&
	       sm_opt.nwrappers == 0 && sm_opt.depth == 0 && sm_opt.fallback == SM_FALLBACK_NONE &&
	       sm_opt.fork == SM_FORK_COPY && sm_opt.max == 0 && sm_opt.stats == SM_STATS_OFF &&
	       sm_opt.log_level == SM_LOG_WARN;
}

static int one_line(const char *s)
{
	const char *nl = strchr(s, '\n');
	return nl && nl[1] == '\0';
}

static void test_read(void)
{
	static const char *const none[] = { NULL };
	struct child c = read_in_child(none, expect_defaults);
	ok(c.status == 0 && !*c.err, "sm_options_read with no variable keeps the defaults");

	static const char *const all[] = {
		"SECRETMEM_MODE", "uncached", "SECRETMEM_LIBS", "a,b*", "SECRETMEM_SITES", "f",
		"SECRETMEM_DEPTH", "5", "SECRETMEM_FALLBACK", "mlock", "SECRETMEM_FORK", "drop",
		"SECRETMEM_MAX", "64M", "SECRETMEM_STATS", "1", "SECRETMEM_LOG", "debug", NULL,
	};
	c = read_in_child(all, expect_all);
	ok(c.status == 0, "sm_options_read reads every variable into sm_opt (status %d)", c.status);

	static const char *const bad[] = { "SECRETMEM_DEPTH", "33", NULL };
	c = read_in_child(bad, NULL);
	ok(c.status == SM_EXIT_CONFIG, "a bad SECRETMEM_DEPTH ends the process with 78 (got %d)",
	   c.status);
	ok(one_line(c.err) && strncmp(c.err, "libsecretmem-preload: ", 22) == 0 &&
		   strstr(c.err, "SECRETMEM_DEPTH"),
	   "... with one line naming SECRETMEM_DEPTH");

	static const char *const empty[] = { "SECRETMEM_LOG", "", NULL };
	c = read_in_child(empty, NULL);
	ok(c.status == SM_EXIT_CONFIG && one_line(c.err) && strstr(c.err, "SECRETMEM_LOG") &&
		   strstr(c.err, "empty"),
	   "an empty SECRETMEM_LOG ends the process with one line saying it is empty");

	static const char *const ctl[] = { "SECRETMEM_MODE", "of\nf", NULL };
	c = read_in_child(ctl, NULL);
	ok(c.status == SM_EXIT_CONFIG && one_line(c.err) && strstr(c.err, "SECRETMEM_MODE"),
	   "a newline in the value does not split the message");

	static const char *const two[] = { "SECRETMEM_MODE", "x", "SECRETMEM_LOG", "y", NULL };
	c = read_in_child(two, NULL);
	ok(c.status == SM_EXIT_CONFIG && one_line(c.err), "two bad variables: one line");
}

int main(void)
{
	/* The children must not inherit variables from whoever runs the test. */
	for (size_t i = 0; sm_option_doc(i); i++)
		unsetenv(sm_option_doc(i)->name);

	test_words();
	test_depth();
	test_max();
	test_stats();
	test_libs();
	test_sites();
	test_bad();
	test_control_chars();
	test_doc();
	test_read();
	return tap_done();
}
