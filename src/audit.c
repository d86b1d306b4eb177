/* SPDX-License-Identifier: MIT */
/*
 * Audit (see audit.h): the allocation log of SECRETMEM_AUDIT.
 *
 * Only the slow path of the API calls in here, and only while the state is
 * auditing: the default path does not test anything more than before. Never
 * allocates (paths are formatted into static buffers, the log is a file mapping),
 * never takes a lock; the unwinder is frames.c's, which reads only unwind tables
 * and stack slots. What it cannot record (the log is full, the file cannot be
 * made) is said once on stderr and in the header, which the tool reports.
 */
#include "config.h"
#include "audit.h"
#include "frames.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static struct sm_audit_hdr *hdr; /* NULL: not auditing */
static const char *audit_dir;
static char log_name[64];
static uint64_t capacity;        /* records */

static struct sm_audit_rec *recs(void)
{
	/* hdr is page-aligned (mmap) and SM_AUDIT_HDR a multiple of the record's
	 * alignment: through void *, as the cast is aligned. */
	_Static_assert(SM_AUDIT_HDR % _Alignof(struct sm_audit_rec) == 0, "records are aligned");
	return (struct sm_audit_rec *)(void *)((char *)hdr + SM_AUDIT_HDR);
}

/* The tool's patterns: DIR/patterns mapped, not copied, so that the tool's scan
 * (which skips DIR's mappings) does not find them here. */
static struct {
	const unsigned char *p;
	uint32_t len;
} pats[SM_AUDIT_PATTERNS_MAX];
static unsigned npats;

static void read_patterns(void)
{
	char path[4096];
	sm_format(path, sizeof(path), "%s/patterns", audit_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	const unsigned char *buf = MAP_FAILED;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size <= SM_AUDIT_PATTERN_BYTES)
		buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (buf == MAP_FAILED)
		return;
	size_t have = (size_t)st.st_size;
	for (size_t at = 0; at + 4 <= have && npats < SM_AUDIT_PATTERNS_MAX;) {
		uint32_t len;
		memcpy(&len, buf + at, 4);
		if (!len || len > have - at - 4)
			break; /* malformed or cut: what came before stands */
		pats[npats].p = buf + at + 4;
		pats[npats].len = len;
		npats++;
		at += 4 + (size_t)len;
	}
}

/* A new log DIR/PID.N (N: the first free), mapped; the parent's name and count
 * when a fork child starts its own. */
static bool open_log(const char *parent, uint64_t parent_count)
{
	char path[4096];
	pid_t pid = getpid();
	int fd = -1;
	for (unsigned n = 0; n < 1000 && fd < 0; n++) {
		sm_format(log_name, sizeof(log_name), "%d.%u", (int)pid, n);
		sm_format(path, sizeof(path), "%s/%s", audit_dir, log_name);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		sm_warn("SECRETMEM_AUDIT: cannot create a log in %s (%s): this process is not audited",
			audit_dir, strerror(errno));
		return false;
	}
	void *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)SM_AUDIT_CAP) == 0)
		m = mmap(NULL, SM_AUDIT_CAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		sm_warn("SECRETMEM_AUDIT: cannot map the log %s: this process is not audited", path);
		return false;
	}
	hdr = m;
	hdr->rec_size = sizeof(struct sm_audit_rec);
	hdr->pid = (uint64_t)pid;
	hdr->parent_count = parent_count;
	if (parent)
		sm_format(hdr->parent, sizeof(hdr->parent), "%s", parent);
	capacity = (SM_AUDIT_CAP - SM_AUDIT_HDR) / sizeof(struct sm_audit_rec);
	__atomic_store_n(&hdr->magic, SM_AUDIT_MAGIC, __ATOMIC_RELEASE);
	return true;
}

/* The child of a fork: its heap is the parent's as it was, then its own. */
void sm_audit_fork_child(void)
{
	if (!hdr)
		return;
	char parent[64];
	memcpy(parent, log_name, sizeof(parent));
	uint64_t count = __atomic_load_n(&hdr->count, __ATOMIC_ACQUIRE);
	munmap(hdr, SM_AUDIT_CAP);
	hdr = NULL;
	open_log(parent, count);
}

void sm_audit_exit_only(const char *dir)
{
	audit_dir = dir;
	memcpy(log_name, "-", 2);
}

bool sm_audit_init(const char *dir)
{
	audit_dir = dir;
	if (!open_log(NULL, 0))
		return false;
	read_patterns();
	return true;
}

static struct sm_audit_rec *claim(void)
{
	uint64_t i = __atomic_fetch_add(&hdr->count, 1, __ATOMIC_RELAXED);
	if (i < capacity)
		return &recs()[i];
	if (!__atomic_exchange_n(&hdr->full, 1, __ATOMIC_RELAXED))
		sm_warn("SECRETMEM_AUDIT: the log %s/%s is full: later allocations are not recorded",
			audit_dir, log_name);
	return NULL;
}

struct stack {
	uintptr_t ra;
	bool seen;
	unsigned n;
	uint64_t *pcs;
};

static bool keep_pc(uintptr_t pc, void *arg)
{
	struct stack *s = arg;
	if (!s->seen) {
		if (pc != s->ra)
			return true; /* the shim's own frames */
		s->seen = true;
	}
	s->pcs[s->n++] = pc;
	return s->n < SM_AUDIT_FRAMES;
}

void *sm_audit_alloc(void *p, size_t size, void *ra)
{
	if (!p || !hdr)
		return p;
	struct sm_audit_rec *r = claim();
	if (!r)
		return p;
	struct stack s = { .ra = (uintptr_t)ra, .pcs = r->pcs };
	sm_frames_walk(keep_pc, &s, SM_AUDIT_FRAMES + 8, true);
	if (!s.seen) { /* lost before the caller: the caller alone */
		r->pcs[0] = (uintptr_t)ra;
		s.n = 1;
	}
	r->addr = (uintptr_t)p;
	r->size = size;
	__atomic_store_n(&r->head, SM_AUDIT_ALLOC | (uint64_t)s.n << 8, __ATOMIC_RELEASE);
	return p;
}

void sm_audit_free(void *p, size_t size)
{
	if (!p || !hdr)
		return;
	unsigned n = 0;
	uint64_t first = 0, found[SM_AUDIT_FRAMES];
	for (unsigned i = 0; i < npats && n < SM_AUDIT_FRAMES; i++) {
		const unsigned char *at = memmem(p, size, pats[i].p, pats[i].len);
		if (at) {
			if (!n || (uint64_t)(at - (unsigned char *)p) < first)
				first = (uint64_t)(at - (unsigned char *)p);
			found[n++] = i;
		}
	}
	if (n) {
		struct sm_audit_rec *r = claim();
		if (r) {
			memcpy(r->pcs, found, n * sizeof(found[0]));
			r->addr = (uintptr_t)p;
			r->size = first;
			__atomic_store_n(&r->head, SM_AUDIT_HELD | (uint64_t)n << 8, __ATOMIC_RELEASE);
		}
	}
	explicit_bzero(p, size);
	struct sm_audit_rec *r = claim();
	if (!r)
		return;
	r->addr = (uintptr_t)p;
	__atomic_store_n(&r->head, SM_AUDIT_FREE, __ATOMIC_RELEASE);
}

/* At exit, after every other destructor (the shim is loaded first, so its run
 * last): the tool scans this process while its memory is still there, and answers
 * when it is done. No tool listening: nothing to wait for. */
__attribute__((destructor)) static void audit_exit(void)
{
	if (!audit_dir)
		return;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (sm_format(a.sun_path, sizeof(a.sun_path), "%s/exit.sock", audit_dir) >=
	    sizeof(a.sun_path) - 1)
		return;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		char line[64];
		size_t n = sm_format(line, sizeof(line), "%d %s\n", (int)getpid(), log_name);
		if (write(fd, line, n) == (ssize_t)n) {
			char c;
			while (read(fd, &c, 1) < 0 && errno == EINTR)
				;
		}
	}
	close(fd);
}
