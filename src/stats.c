/* SPDX-License-Identifier: MIT */
/*
 * Statistics: a fixed table of call sites (code address, allocations, bytes)
 * updated with relaxed atomics, claimed slot by slot with compare-and-swap, and a
 * report at exit built with the log module's formatter into a static buffer.
 * Call sites are named at report time from their objects' symbol tables (elfsym.c),
 * dladdr when those do not name them: statistics depend on the ELF reader, never on
 * routing (route.c counts into them, one way). Never calls malloc.
 */
#include "config.h"
#include "stats.h"
#include "arena.h"
#include "compiler.h"
#include "log.h"
#include "elfsym.h"
#include "options.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool sm_stats_on;
uint64_t sm_stats_decisions, sm_stats_walks;

__attribute__((visibility("default"))) struct sm_live secretmem_impl_live;
/* The backend name and the counter addresses, once the arena exists. */
static void publish(void)
{
	struct sm_live *l = &secretmem_impl_live;
	struct sm_arena_stats st = { 0 };
	struct sm_arena_counter_addrs a = { 0 };
	if (sm_arena_span) {
		sm_arena_get_stats(&st);
		sm_arena_counter_addrs(&a);
	}
	sm_format(l->backend, sizeof(l->backend), "%s", st.backend ? st.backend : "none");
	l->addr_live = (uintptr_t)a.live;
	l->addr_peak = (uintptr_t)a.peak;
	l->addr_touched = (uintptr_t)a.touched;
	l->addr_mapped = (uintptr_t)a.mapped;
	l->addr_chunks = (uintptr_t)a.chunks;
	l->addr_enomem = (uintptr_t)a.enomem;
	l->addr_limit = (uintptr_t)a.limit;
}

void sm_stats_free(void)
{
	__atomic_fetch_add(&secretmem_impl_live.frees, 1, __ATOMIC_RELAXED);
}

#define SITES_BITS 10
#define SITES (1u << SITES_BITS)
#define TOP 10

struct site {
	uintptr_t pc;
	uint64_t count, bytes;
};

static struct site sites[SITES];

void sm_stats_site(const void *ra, size_t size)
{
	uintptr_t pc = (uintptr_t)ra;
	unsigned i = sm_hash(pc, SITES_BITS);
	for (unsigned k = 0; k < 16; k++, i = (i + 1) % SITES) {
		uintptr_t cur = __atomic_load_n(&sites[i].pc, __ATOMIC_RELAXED);
		if (cur != pc) {
			if (cur)
				continue;
			uintptr_t zero = 0;
			if (!__atomic_compare_exchange_n(&sites[i].pc, &zero, pc, false,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
			    zero != pc)
				continue;
		}
		__atomic_fetch_add(&sites[i].count, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&sites[i].bytes, size, __ATOMIC_RELAXED);
		break;
	}
	__atomic_fetch_add(&secretmem_impl_live.allocs, 1, __ATOMIC_RELAXED);
}

/* ---- the report ---- */

struct buf {
	char data[16384];
	size_t len;
};

static void add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	b->len += sm_vformat(b->data + b->len, sizeof(b->data) - b->len, fmt, ap);
	va_end(ap);
}

/* JSON string contents: quotes, backslashes and controls escaped. */
static void add_json_str(struct buf *b, const char *s)
{
	for (; s && *s && b->len + 8 < sizeof(b->data); s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			add(b, "\\%c", c);
		else if (c < 0x20)
			add(b, "\\u00%c%c", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
		else
			add(b, "%c", c);
	}
}

static const char *mode_name(void)
{
	return sm_mode_name(sm_opt.mode);
}

/* The sites sorted by bytes, largest first (a selection of the TOP largest). */
static size_t top_sites(struct site *out)
{
	size_t n = 0;
	for (unsigned i = 0; i < SITES; i++) {
		struct site s = sites[i];
		if (!s.pc)
			continue;
		size_t j = n < TOP ? n++ : TOP;
		if (j == TOP && s.bytes <= out[TOP - 1].bytes)
			continue;
		if (j == TOP)
			j = TOP - 1;
		while (j > 0 && out[j - 1].bytes < s.bytes) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = s;
	}
	return n;
}

/* The function of a call site, from the object's symbols (the return address
 * minus one is the call itself); dladdr when they do not name it. */
static void site_name(const struct site *s, char *func, size_t size, char *obj, size_t osize,
		      uintptr_t *off)
{
	if (sm_elf_name(s->pc - 1, func, size, obj, osize, off)) {
		(*off)++;
		return;
	}
	Dl_info info;
	if (dladdr((void *)(s->pc - 1), &info) && info.dli_sname) {
		sm_format(func, size, "%s", info.dli_sname);
		sm_format(obj, osize, "%s", info.dli_fname ? info.dli_fname : "?");
		*off = s->pc - (uintptr_t)info.dli_saddr;
		return;
	}
	sm_format(func, size, "?");
}

void sm_stats_write(int fd, bool json)
{
	static struct buf b;
	struct sm_arena_stats st = { 0 };
	if (sm_arena_span)
		sm_arena_get_stats(&st);
	struct site top[TOP];
	size_t ntop = top_sites(top);

	b.len = 0;
	if (json) {
		add(&b, "{\"pid\": %d, \"mode\": \"%s\", \"backend\": \"%s\", ", (int)getpid(), mode_name(),
		    st.backend ? st.backend : "none");
		add(&b, "\"allocs\": %llu, \"frees\": %llu, \"live_bytes\": %llu, \"peak_bytes\": %llu, ",
		    (unsigned long long)st.allocs, (unsigned long long)st.frees,
		    (unsigned long long)st.live_bytes, (unsigned long long)st.peak_bytes);
		add(&b, "\"touched_bytes\": %llu, \"mapped_bytes\": %llu, \"chunks\": %llu, "
			"\"enomem\": %llu, \"limit\": %llu, \"routed\": %llu, \"stack_walks\": %llu, \"sites\": [",
		    (unsigned long long)st.touched_bytes, (unsigned long long)st.mapped_bytes,
		    (unsigned long long)st.chunks, (unsigned long long)st.enomem,
		    (unsigned long long)st.limit, (unsigned long long)sm_stats_decisions,
		    (unsigned long long)sm_stats_walks);
		for (size_t i = 0; i < ntop; i++) {
			char func[256];
			char obj[1024];
			uintptr_t off;
			site_name(&top[i], func, sizeof(func), obj, sizeof(obj), &off);
			add(&b, "%s{\"function\": \"", i ? ", " : "");
			add_json_str(&b, func);
			add(&b, "\", \"offset\": %lu, \"object\": \"", (unsigned long)off);
			add_json_str(&b, obj);
			add(&b, "\", \"allocs\": %llu, \"bytes\": %llu}", (unsigned long long)top[i].count,
			    (unsigned long long)top[i].bytes);
		}
		add(&b, "]}\n");
	} else {
		add(&b, "libsecretmem-preload: statistics of process %d\n", (int)getpid());
		add(&b, "  mode %s, backend %s\n", mode_name(), st.backend ? st.backend : "none (no secret memory used)");
		add(&b, "  secret allocations %llu, frees %llu\n", (unsigned long long)st.allocs,
		    (unsigned long long)st.frees);
		add(&b, "  live %llu bytes, peak %llu bytes\n", (unsigned long long)st.live_bytes,
		    (unsigned long long)st.peak_bytes);
		add(&b, "  pages touched %llu bytes, mapped %llu bytes in %llu chunks, limit %llu bytes\n",
		    (unsigned long long)st.touched_bytes, (unsigned long long)st.mapped_bytes,
		    (unsigned long long)st.chunks, (unsigned long long)st.limit);
		add(&b, "  allocations refused for lack of secret memory (ENOMEM): %llu\n",
		    (unsigned long long)st.enomem);
		add(&b, "  allocations routed %llu, of which needed a stack walk: %llu\n",
		    (unsigned long long)sm_stats_decisions, (unsigned long long)sm_stats_walks);
		if (ntop)
			add(&b, "  top call sites by secret bytes:\n");
		for (size_t i = 0; i < ntop; i++) {
			char func[256];
			char obj[1024];
			uintptr_t off;
			site_name(&top[i], func, sizeof(func), obj, sizeof(obj), &off);
			add(&b, "    %10llu bytes %8llu allocs  %s+0x%lx (%s)\n",
			    (unsigned long long)top[i].bytes, (unsigned long long)top[i].count,
			    func, (unsigned long)off, obj);
		}
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* The file name with %p replaced by the process ID. */
static void expand(const char *pattern, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = pattern; *p && n + 24 < size; p++) {
		if (p[0] == '%' && p[1] == 'p') {
			n += sm_format(out + n, size - n, "%d", (int)getpid());
			p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The standard error the program started with: many programs close theirs at exit
 * (coreutils' close_stdout does, in an atexit handler that runs before this
 * destructor), so a copy is kept from start-up, far above the descriptors programs
 * use. The copy is used only while it still is that file: a program that has put
 * something else at its number gets no report written into it. */
static int stderr_copy = -1;
static struct stat stderr_st;

static void keep_stderr(void)
{
	stderr_copy = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 1000);
	if (stderr_copy >= 0 && fstat(stderr_copy, &stderr_st) != 0) {
		close(stderr_copy);
		stderr_copy = -1;
	}
}

static int report_stderr(void)
{
	struct stat st;
	if (stderr_copy >= 0 && fstat(stderr_copy, &st) == 0 && st.st_dev == stderr_st.st_dev &&
	    st.st_ino == stderr_st.st_ino)
		return stderr_copy;
	return STDERR_FILENO;
}

/* Set by the first report, at exit or at a fatal signal: one per process. */
static int reported;

/* The report's file: stderr's copy, or the file (%p expanded); -1 with a warning. */
static int open_report(bool *json)
{
	*json = false;
	if (sm_opt.stats == SM_STATS_STDERR)
		return report_stderr();
	char path[4096];
	expand(sm_opt.stats_path, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		sm_warn("SECRETMEM_STATS: cannot write %s: %s", path, strerror(errno));
	*json = ends_with(path, ".json");
	return fd;
}

static uint64_t counter(uint64_t addr)
{
	return addr ? __atomic_load_n((const uint64_t *)(uintptr_t)addr, __ATOMIC_RELAXED) : 0;
}

void sm_stats_write_fatal(int sig)
{
	static struct buf b;
	const struct sm_live *l = &secretmem_impl_live;
	if (!sm_stats_on || __atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL))
		return;
	uint64_t allocs = __atomic_load_n(&l->allocs, __ATOMIC_RELAXED);
	if (sm_opt.stats_if_secret && !allocs)
		return;
	bool json;
	int fd = open_report(&json);
	if (fd < 0)
		return;
	uint64_t frees = __atomic_load_n(&l->frees, __ATOMIC_RELAXED);
	struct site top[TOP];
	size_t ntop = top_sites(top);
	b.len = 0;
	if (json) {
		add(&b, "{\"pid\": %d, \"signal\": %d, \"mode\": \"%s\", \"backend\": \"", (int)getpid(), sig,
		    mode_name());
		add_json_str(&b, l->backend);
		add(&b, "\", \"allocs\": %llu, \"frees\": %llu, \"peak_bytes\": %llu, \"touched_bytes\": %llu, "
			"\"mapped_bytes\": %llu, \"chunks\": %llu, \"enomem\": %llu, \"limit\": %llu, "
			"\"routed\": %llu, \"stack_walks\": %llu, \"sites\": [",
		    (unsigned long long)allocs, (unsigned long long)frees,
		    (unsigned long long)counter(l->addr_peak), (unsigned long long)counter(l->addr_touched),
		    (unsigned long long)counter(l->addr_mapped), (unsigned long long)counter(l->addr_chunks),
		    (unsigned long long)counter(l->addr_enomem), (unsigned long long)counter(l->addr_limit),
		    (unsigned long long)sm_stats_decisions, (unsigned long long)sm_stats_walks);
		for (size_t i = 0; i < ntop; i++)
			add(&b, "%s{\"pc\": %lu, \"allocs\": %llu, \"bytes\": %llu}", i ? ", " : "",
			    (unsigned long)top[i].pc, (unsigned long long)top[i].count,
			    (unsigned long long)top[i].bytes);
		add(&b, "]}\n");
	} else {
		add(&b, "libsecretmem-preload: statistics of process %d, ended by signal %d\n", (int)getpid(), sig);
		add(&b, "  mode %s, backend %s\n", mode_name(), l->backend[0] ? l->backend : "none");
		add(&b, "  secret allocations %llu, frees %llu\n", (unsigned long long)allocs,
		    (unsigned long long)frees);
		add(&b, "  peak %llu bytes\n", (unsigned long long)counter(l->addr_peak));
		add(&b, "  pages touched %llu bytes, mapped %llu bytes in %llu chunks, limit %llu bytes\n",
		    (unsigned long long)counter(l->addr_touched), (unsigned long long)counter(l->addr_mapped),
		    (unsigned long long)counter(l->addr_chunks), (unsigned long long)counter(l->addr_limit));
		add(&b, "  allocations refused for lack of secret memory (ENOMEM): %llu\n",
		    (unsigned long long)counter(l->addr_enomem));
		add(&b, "  allocations routed %llu, of which needed a stack walk: %llu\n",
		    (unsigned long long)sm_stats_decisions, (unsigned long long)sm_stats_walks);
		if (ntop)
			add(&b, "  top call sites by secret bytes (return addresses: no names in a signal handler):\n");
		for (size_t i = 0; i < ntop; i++)
			add(&b, "    %10llu bytes %8llu allocs  0x%lx\n", (unsigned long long)top[i].bytes,
			    (unsigned long long)top[i].count, (unsigned long)top[i].pc);
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(fd, b.data + off, b.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (fd != STDERR_FILENO && sm_opt.stats != SM_STATS_STDERR)
		close(fd);
}

__attribute__((destructor)) static void report(void)
{
	if (!sm_stats_on || __atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL))
		return;
	/* In a chain of wrappers (a shell, a version manager's shim) only the process
	 * that held secrets has something to say. */
	if (sm_opt.stats_if_secret && !__atomic_load_n(&secretmem_impl_live.allocs, __ATOMIC_RELAXED))
		return;
	if (sm_opt.stats == SM_STATS_STDERR) {
		sm_stats_write(report_stderr(), false);
		return;
	}
	char path[4096];
	expand(sm_opt.stats_path, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		/* strerror may allocate (translations); the name of the error never does. */
		const char *e = strerrorname_np(errno);
		sm_warn("SECRETMEM_STATS: cannot write %s: %s", path, e ? e : "unexpected error");
		return;
	}
	sm_stats_write(fd, ends_with(path, ".json"));
	close(fd);
}

void sm_stats_init(void)
{
	sm_stats_on = sm_opt.stats != SM_STATS_OFF && sm_opt.mode != SM_MODE_OFF;
	if (!sm_stats_on)
		return;
	struct sm_live *l = &secretmem_impl_live;
	if (sm_opt.stats == SM_STATS_STDERR)
		keep_stderr();
	memcpy(l->magic, SM_LIVE_MAGIC, sizeof(SM_LIVE_MAGIC));
	l->mode = (uint64_t)sm_opt.mode;
	publish();
	sm_signals_init();
}

void sm_stats_refresh(void)
{
	if (sm_stats_on)
		publish();
}
