/* SPDX-License-Identifier: MIT */
/*
 * exec: a program under the shim that starts a program the shim cannot follow.
 *
 * - It runs itself again with an environment of its own making, without the
 *   shim: nginx's binary upgrade (SIGUSR2, what Debian's package upgrade sends)
 *   passes only TZ and its `env` lines; haproxy's `resetenv` clears the
 *   environment before its reload re-executes it. The new program would hold the
 *   same keys unprotected, silently. So LD_PRELOAD (with the shim) and the
 *   SECRETMEM_* variables the process started with are put back where the new
 *   environment lacks them (one a program set itself is kept), and an info line
 *   says so.
 * - It starts a set-user-ID or set-group-ID program (or one with file
 *   capabilities) that changes its credentials: the loader ignores LD_PRELOAD for
 *   it (secure execution), so it runs unprotected: a warning names it.
 *
 * Only when the shim came through LD_PRELOAD (not /etc/ld.so.preload, which the
 * loader applies to every program anyway) and a rule is set. execve, execv,
 * execvp, execvpe, execl, execle, execlp, fexecve, execveat, posix_spawn and
 * posix_spawnp are interposed (glibc's execl family and fexecve call its own
 * execve, past the shim, so they are written here over the ones that are);
 * system and popen are not (they start the shell). The exec functions may run in a vfork child, so nothing here
 * allocates or takes a lock: the new environment is built on the stack, and so
 * is the argument vector of an execl call.
 */
#include "config.h"

#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "compiler.h"
#include "exec.h"
#include "log.h"
#include "meta.h"

#define SM_EXPORT __attribute__((visibility("default")))

extern char **environ;

/* At most this many variables are put back (SECRETMEM_* has a dozen names). */
#define MAX_SAVED 32
/* A new environment of at most this many entries is completed on the stack (an
 * exec may run in a vfork child, or on a small signal stack); a larger one is
 * passed on as it is, with a warning. */
#define MAX_ENV 256

static struct {
	bool on;		   /* preloaded through LD_PRELOAD, a rule set */
	const char *self_name;	   /* the shim's file name, as LD_PRELOAD has it */
	const char *preload;	   /* "LD_PRELOAD=..." as the process started */
	const char *saved[MAX_SAVED]; /* "SECRETMEM_...=..." as the process started */
	size_t nsaved;
	char exe[PATH_MAX];	   /* the program's file, /proc/self/exe */
	dev_t dev;		   /* and the file it runs (replaced or not) */
	ino_t ino;
} ex;

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Whether LD_PRELOAD's value v names the shim (by file name: entries are
 * separated by spaces or colons). */
static bool preload_has_self(const char *v)
{
	size_t n = strlen(ex.self_name);
	for (const char *p = v; *p;) {
		size_t len = strcspn(p, " :");
		const char *e = p + len, *b = p;
		for (const char *q = p; q < e; q++)
			if (*q == '/')
				b = q + 1;
		if ((size_t)(e - b) == n && memcmp(b, ex.self_name, n) == 0)
			return true;
		p = *e ? e + 1 : e;
	}
	return false;
}

/* "LD_PRELOAD=" and v, with an entry naming the shim by a relative path made
 * absolute (as the loader resolved it, from the directory the process started
 * in): a program that changes directory and runs itself again would have the
 * loader look for it from there, and run unprotected. */
static char *preload_absolute(const char *v)
{
	size_t cap = strlen("LD_PRELOAD=") + strlen(v) + 1, n = 0;
	for (const char *p = v; *p; p++)
		cap += *p == ':' || *p == ' ' ? PATH_MAX : 0;
	cap += PATH_MAX;
	char *out = sm_meta_alloc(cap);
	if (!out)
		return NULL;
	n = (size_t)sm_format(out, cap, "LD_PRELOAD=");
	for (const char *p = v;;) {
		size_t len = strcspn(p, " :");
		char entry[PATH_MAX], abs[PATH_MAX];
		const char *put = p;
		size_t plen = len;
		if (len && len < sizeof(entry) && *p != '/') {
			memcpy(entry, p, len);
			entry[len] = '\0';
			if (strcmp(base_name(entry), ex.self_name) == 0 && realpath(entry, abs)) {
				put = abs;
				plen = strlen(abs);
			}
		}
		if (n + plen + 2 > cap)
			return NULL;
		memcpy(out + n, put, plen);
		n += plen;
		if (!p[len])
			break;
		out[n++] = p[len]; /* the separator as it was */
		p += len + 1;
	}
	out[n] = '\0';
	return out;
}

static void exec_resolve(void);

void sm_exec_init(bool rules)
{
	Dl_info di;
	exec_resolve();
	const char *pre = getenv("LD_PRELOAD");
	if (!rules || !pre || !dladdr((void *)sm_exec_init, &di) || !di.dli_fname)
		return;
	ex.self_name = sm_meta_strndup(base_name(di.dli_fname), strlen(base_name(di.dli_fname)));
	if (!ex.self_name || !preload_has_self(pre))
		return;
	ex.preload = preload_absolute(pre);
	for (char **e = environ; e && *e && ex.nsaved < MAX_SAVED; e++)
		if (strncmp(*e, "SECRETMEM_", 10) == 0 && strchr(*e, '='))
			ex.saved[ex.nsaved++] = sm_meta_strndup(*e, strlen(*e));
	ssize_t n = readlink("/proc/self/exe", ex.exe, sizeof(ex.exe) - 1);
	ex.exe[n > 0 ? n : 0] = '\0';
	/* the program's file replaced under it (a package upgrade) */
	size_t len = strlen(ex.exe), d = strlen(" (deleted)");
	if (len > d && strcmp(ex.exe + len - d, " (deleted)") == 0)
		ex.exe[len - d] = '\0';
	struct stat st;
	if (stat("/proc/self/exe", &st) == 0) {
		ex.dev = st.st_dev;
		ex.ino = st.st_ino;
	}
	ex.on = ex.preload && ex.exe[0];
}

/* file as execvp would find it on PATH, into buf; NULL: not found. */
static const char *search_path(const char *file, char *buf, size_t size)
{
	if (strchr(file, '/'))
		return file;
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	for (const char *p = path;;) {
		size_t len = strcspn(p, ":");
		if (len + 1 + strlen(file) < size) {
			memcpy(buf, len ? p : ".", len ? len : 1);
			size_t at = len ? len : 1;
			buf[at] = '/';
			strcpy(buf + at + 1, file);
			struct stat st; /* as glibc's execvp: a directory is passed over */
			if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
				return buf;
		}
		if (!p[len])
			return NULL;
		p += len + 1;
	}
}

/* The value of variable name=... in env, or NULL; of the last one if there are
 * several, as the loader reads them. */
static const char *env_get(char *const env[], const char *name, size_t n)
{
	const char *v = NULL;
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			v = env[i] + n + 1;
	return v;
}

/* A set-ID program that changes this process's credentials, or one with file
 * capabilities: the loader runs it in secure-execution mode, without LD_PRELOAD. */
static bool secure_exec(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	/* the kernel's test: the new effective ID is not the real one */
	uid_t euid = (st.st_mode & S_ISUID) ? st.st_uid : geteuid();
	gid_t egid = (st.st_mode & S_ISGID) ? st.st_gid : getegid();
	if (euid != getuid() || egid != getgid())
		return true;
	/* file capabilities raise a non-root caller's */
	return geteuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0;
}

/* Whether path is this program's own file: the one it runs (/proc/self/exe too,
 * even deleted), or the one now at its path (a package upgrade replaced it). */
static bool is_self(const char *path)
{
	struct stat st, now;
	if (stat(path, &st) != 0)
		return false;
	if (st.st_dev == ex.dev && st.st_ino == ex.ino)
		return true;
	return stat(ex.exe, &now) == 0 && st.st_dev == now.st_dev && st.st_ino == now.st_ino;
}

struct newenv {
	char *v[MAX_ENV + MAX_SAVED + 2];
	char preload[2048];
};

/* The environment to start path with: env itself, or env completed in *ne. */
static char *const *check(const char *path, char *const env[], struct newenv *ne)
{
	if (!ex.on || !path)
		return env;
	int saved = errno;
	if (secure_exec(path)) {
		sm_warn("%s is set-user-ID, set-group-ID or has file capabilities: the loader "
			"ignores LD_PRELOAD for it, so it runs without the shim and its secrets "
			"are not protected",
			path);
		errno = saved;
		return env;
	}
	const char *pre = env_get(env, "LD_PRELOAD", 10);
	bool has_pre = pre && preload_has_self(pre);
	size_t missing = 0, n = 0;
	for (size_t i = 0; i < ex.nsaved; i++) {
		size_t k = strchr(ex.saved[i], '=') - ex.saved[i];
		missing += !env_get(env, ex.saved[i], k);
	}
	if ((has_pre && !missing) || !is_self(path)) {
		errno = saved;
		return env;
	}
	while (env && env[n])
		n++;
	if (n > MAX_ENV) {
		sm_warn("%s runs itself again without the shim in its environment, of more than "
			"%d variables: not put back, it runs unprotected",
			path, MAX_ENV);
		errno = saved;
		return env;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (!has_pre && strncmp(env[i], "LD_PRELOAD=", 11) == 0)
			continue; /* replaced below */
		ne->v[m++] = env[i];
	}
	if (!has_pre) {
		/* the shim first, then what the program asked for (if it all fits:
		 * else what the process started with) */
		size_t need = strlen(ex.preload) + 1 + (pre ? strlen(pre) : 0) + 1;
		if (pre && *pre && need <= sizeof(ne->preload)) {
			sm_format(ne->preload, sizeof(ne->preload), "%s:%s", ex.preload, pre);
			ne->v[m++] = ne->preload;
		} else {
			ne->v[m++] = (char *)ex.preload;
		}
	}
	for (size_t i = 0; i < ex.nsaved; i++) {
		size_t k = strchr(ex.saved[i], '=') - ex.saved[i];
		if (!env_get(env, ex.saved[i], k))
			ne->v[m++] = (char *)ex.saved[i];
	}
	ne->v[m] = NULL;
	sm_info("%s runs itself again with an environment without the shim: LD_PRELOAD and "
		"%zu SECRETMEM_ variable(s) put back",
		path, missing);
	errno = saved;
	return ne->v;
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			const posix_spawnattr_t *, char *const[], char *const[]);

/* The next definitions, looked up at start-up (sm_exec_init), so that no exec in
 * a vfork child calls dlsym; lazily only for an exec before the shim starts. */
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
static execve_fn real_execve, real_execvpe;
static fexecve_fn real_fexecve;
static execveat_fn real_execveat;
static spawn_fn real_spawn, real_spawnp;

static void *next_fn(void *const *slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!f && (f = dlsym(RTLD_NEXT, name)) != NULL)
		__atomic_store_n((void **)slot, f, __ATOMIC_RELEASE);
	return f;
}
#define NEXT(var, name) ((__typeof__(var))next_fn((void *const *)&(var), name))

static void exec_resolve(void)
{
	NEXT(real_execve, "execve");
	NEXT(real_execvpe, "execvpe");
	NEXT(real_fexecve, "fexecve");
	NEXT(real_execveat, "execveat");
	NEXT(real_spawn, "posix_spawn");
	NEXT(real_spawnp, "posix_spawnp");
}

/* The slow paths (a rule set, the shim preloaded): their buffers are on the
 * stack only there, so an exec with no rule costs a small frame (a signal
 * handler on an 8 KiB stack, a thread of PTHREAD_STACK_MIN). */
static __attribute__((noinline)) int execve_slow(execve_fn f, const char *path,
						  char *const argv[], char *const envp[])
{
	struct newenv ne;
	return f(path, argv, check(path, envp, &ne));
}

static __attribute__((noinline)) int execvpe_slow(execve_fn f, const char *file,
						   char *const argv[], char *const envp[])
{
	struct newenv ne;
	char buf[PATH_MAX];
	return f(file, argv, check(search_path(file, buf, sizeof(buf)), envp, &ne));
}

static __attribute__((noinline)) int spawn_slow(spawn_fn f, bool search, pid_t *pid,
						 const char *file,
						 const posix_spawn_file_actions_t *fa,
						 const posix_spawnattr_t *attr, char *const argv[],
						 char *const envp[])
{
	struct newenv ne;
	char buf[PATH_MAX];
	const char *path = search ? search_path(file, buf, sizeof(buf)) : file;
	return f(pid, file, fa, attr, argv, check(path, envp, &ne));
}

SM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	execve_fn f = NEXT(real_execve, "execve");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return likely(!ex.on) ? f(path, argv, envp) : execve_slow(f, path, argv, envp);
}

SM_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

SM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	execve_fn f = NEXT(real_execvpe, "execvpe");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return likely(!ex.on) ? f(file, argv, envp) : execvpe_slow(f, file, argv, envp);
}

SM_EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

static __attribute__((noinline)) int fexecve_slow(fexecve_fn f, int fd, char *const argv[],
						   char *const envp[])
{
	struct newenv ne;
	char path[32]; /* the file the descriptor names, for the checks */
	sm_format(path, sizeof(path), "/proc/self/fd/%d", fd);
	return f(fd, argv, check(path, envp, &ne));
}

SM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	fexecve_fn f = NEXT(real_fexecve, "fexecve");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return likely(!ex.on) ? f(fd, argv, envp) : fexecve_slow(f, fd, argv, envp);
}

static __attribute__((noinline)) int execveat_slow(execveat_fn f, int dirfd, const char *path,
						    char *const argv[], char *const envp[],
						    int flags)
{
	struct newenv ne;
	char buf[PATH_MAX]; /* the file path names, for the checks */
	const char *at = path;
	if (path && !*path && (flags & AT_EMPTY_PATH)) {
		sm_format(buf, sizeof(buf), "/proc/self/fd/%d", dirfd);
		at = buf;
	} else if (path && *path != '/' && dirfd != AT_FDCWD) {
		sm_format(buf, sizeof(buf), "/proc/self/fd/%d/%s", dirfd, path);
		at = buf;
	}
	return f(dirfd, path, argv, check(at, envp, &ne), flags);
}

SM_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	execveat_fn f = NEXT(real_execveat, "execveat");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	return likely(!ex.on) ? f(dirfd, path, argv, envp, flags)
			      : execveat_slow(f, dirfd, path, argv, envp, flags);
}

/* The execl family: the arguments counted, then gathered into a vector on the
 * stack, as long as glibc's own (a variable-length array there; alloca here, the
 * build forbids those) and passed to execve, execvpe above. */
#define ARGV_FROM_LIST(arg, ap, envp_out)                                              \
	size_t argc_ = 1;                                                              \
	va_start(ap, arg);                                                             \
	while (va_arg(ap, char *) != NULL)                                             \
		argc_++;                                                               \
	va_end(ap);                                                                    \
	if (argc_ >= INT_MAX / sizeof(char *)) {                                       \
		errno = E2BIG;                                                         \
		return -1;                                                             \
	}                                                                              \
	char **argv_ = alloca((argc_ + 1) * sizeof(char *));                           \
	argv_[0] = (char *)(arg);                                                      \
	va_start(ap, arg);                                                             \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                         \
		argv_[i_] = va_arg(ap, char *);                                        \
	envp_out;                                                                      \
	va_end(ap)

SM_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_LIST(arg, ap, (void)0);
	return execve(path, argv_, environ);
}

SM_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char *const *envp;
	ARGV_FROM_LIST(arg, ap, envp = va_arg(ap, char *const *));
	return execve(path, argv_, envp);
}

SM_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_LIST(arg, ap, (void)0);
	return execvpe(file, argv_, environ);
}

SM_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	spawn_fn f = NEXT(real_spawn, "posix_spawn");
	if (!f)
		return ENOSYS;
	return likely(!ex.on) ? f(pid, path, fa, attr, argv, envp)
			      : spawn_slow(f, false, pid, path, fa, attr, argv, envp);
}

SM_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	spawn_fn f = NEXT(real_spawnp, "posix_spawnp");
	if (!f)
		return ENOSYS;
	return likely(!ex.on) ? f(pid, file, fa, attr, argv, envp)
			      : spawn_slow(f, true, pid, file, fa, attr, argv, envp);
}
