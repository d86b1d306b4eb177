#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Faults: the shim sits under every allocation of someone's program, so it must
# never be the reason that program crashes, deadlocks, corrupts data or leaks a
# secret. fork() while threads allocate, fork chains, dlopen/dlclose from several
# threads, allocation in signal handlers, a program that closes every fd, a
# secure-execution start, the SECRETMEM_MAX cap under several threads, and bad
# input (huge values, 10,000-entry lists, duplicate and contradictory rules).
#
# The subject is tests/faults_prog.c (its header lists the cases), with
# tests/faults_lib.c built twice as the dlopened libraries and tests/faults_options.c
# for 1 MiB values; all built by make (Makefile.am). Every run is guarded by `timeout`:
# a deadlock fails the test instead of hanging make check.
#
# What this file does not repeat (tests/arena.bats has it): core dumps, the basic
# fork copy/drop semantics, RLIMIT_MEMLOCK exhaustion as nobody, seccomp ENOSYS,
# uncached mode, misuse aborts, wiping, SECRETMEM_MAX with one thread.

load helpers
load routing-helpers

# Seconds any single run may take before it counts as a deadlock.
FT_TIMEOUT=${FT_TIMEOUT:-60}
SITES=SECRETMEM_SITES=fp_secret_alloc
FT_IGNORED='this is a set-user-ID, set-group-ID or file-capability program: every SECRETMEM_* variable is ignored and no rule makes anything secret; only secretmem.h annotations in its code do'

setup_file() {
	rt_build cxx_plugin
	rt_copy faults_prog libfaulttag.so libfaultplain.so libscopector.so faults_options
	# Secure-execution runs need a directory nobody can reach (the Bats temporary
	# directories are private to root), a program that links the shim (the loader
	# ignores an LD_PRELOAD path in secure-execution mode), and setuid and
	# file-capability copies of it. faults_linked is linked here, not by make:
	# in secure-execution mode the loader ignores $ORIGIN and LD_LIBRARY_PATH, so
	# its RUNPATH must be this directory, known only now.
	FT_DIR=$(mktemp -d /tmp/secretmem-faults.XXXXXX)
	chmod 755 "$FT_DIR"
	cp "$SHIM" "$FT_DIR/libsecretmem-preload.so"
	cp "$RT_BIN/faults_prog" "$FT_DIR/faults_prog"
	"${CC:-gcc}" "${RT_CFLAGS[@]}" "$RT_SRC/faults_prog.c" -o "$FT_DIR/faults_linked" \
		-pthread -ldl -Wl,--no-as-needed "$FT_DIR/libsecretmem-preload.so" \
		-Wl,-rpath,"$FT_DIR"
	chmod 755 "$FT_DIR"/*
	cp "$FT_DIR/faults_linked" "$FT_DIR/faults_setuid"
	chmod 4755 "$FT_DIR/faults_setuid"
	cp "$FT_DIR/faults_prog" "$FT_DIR/faults_prog_setuid"
	chmod 4755 "$FT_DIR/faults_prog_setuid"
	if command -v setcap >/dev/null; then
		cp "$FT_DIR/faults_linked" "$FT_DIR/faults_cap"
		setcap cap_ipc_lock+ep "$FT_DIR/faults_cap" || rm -f "$FT_DIR/faults_cap"
	fi
	export FT_DIR
}

teardown_file() {
	[[ -n ${FT_DIR:-} && $FT_DIR == /tmp/secretmem-faults.* ]] && rm -rf "$FT_DIR"
	return 0
}

setup() {
	sm_setup
	FP=$RT_BIN/faults_prog
}

# ft [VAR=VALUE...] ARGS...: faults_prog under the shim, with a deadline.
ft() {
	local vars=()
	while [[ ${1:-} == *=* ]]; do
		vars+=("$1")
		shift
	done
	timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$SHIM" "${vars[@]}" "$FP" "$@"
}

# Fails on a timeout (124/137: deadlock) or a signal, with what the program said.
refute_hang_or_crash() {
	if ((status == 124 || status == 137)); then
		fail "no progress within ${FT_TIMEOUT}s (deadlock?): $output $stderr"
	fi
	if ((status > 128)); then
		fail "killed by signal $((status - 128)): $output $stderr"
	fi
}

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups env "$@"
}

# ---- fork ----

@test "fork: 200 forks while two threads allocate and free secret and ordinary memory (copy)" {
	run --separate-stderr ft "$SITES" fork 200 2
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^fork ok forks=200 worker_ops=[0-9]+ failures=0$'
}

@test "fork: 200 forks while two threads allocate (SECRETMEM_FORK=drop)" {
	run --separate-stderr ft "$SITES" SECRETMEM_FORK=drop fork 200 2
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^fork ok forks=200 .* failures=0$'
}

@test "fork: 100 forks while two threads allocate, every allocation secret (SECRETMEM_LIBS='*')" {
	run --separate-stderr ft SECRETMEM_LIBS='*' fork 100 2
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^fork ok forks=100 .* failures=0$'
}

@test "fork from a child of a child, five generations, threads allocating at each (copy, drop, '*')" {
	local mode
	for mode in "SECRETMEM_FORK=copy" "SECRETMEM_FORK=drop"; do
		run --separate-stderr ft "$SITES" "$mode" chain 5
		refute_hang_or_crash
		assert_success
		assert_output 'chain ok depth=5 failures=0'
	done
	run --separate-stderr ft SECRETMEM_LIBS='*' chain 5
	refute_hang_or_crash
	assert_success
	assert_output 'chain ok depth=5 failures=0'
}

# ---- dlopen ----

@test "dlopen/dlclose of a tagged and a plain library, 4 threads x 300: the tagged one's blocks are secret every time" {
	run --separate-stderr ft SECRETMEM_LIBS=libfaulttag.so \
		dlopen 4 300 "$RT_BIN/libfaulttag.so" "$RT_BIN/libfaultplain.so"
	refute_hang_or_crash
	assert_success
	# every block of fl_alloc, and the constructor's block (allocated under the
	# loader's lock), was checked in every iteration
	assert_output 'dlopen ok secret_blocks=1200 plain_blocks=1200 failures=0'
}

@test "dlopen/dlclose from 4 threads with SECRETMEM_STATS (every decision on the slow path)" {
	run --separate-stderr ft SECRETMEM_LIBS=libfaulttag.so SECRETMEM_STATS="$BATS_TEST_TMPDIR/s.json" \
		dlopen 4 200 "$RT_BIN/libfaulttag.so" "$RT_BIN/libfaultplain.so"
	refute_hang_or_crash
	assert_success
	assert_output 'dlopen ok secret_blocks=800 plain_blocks=800 failures=0'
	# 800 blocks of fl_alloc, plus the constructor's (when a dlopen really loaded it)
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["allocs"] > 800 and d["frees"] == d["allocs"] and d["live_bytes"] == 0, d' \
		"$BATS_TEST_TMPDIR/s.json"
}

# ---- signal handlers ----
# Supported (the shim's part is async-signal-safe): a handler allocating secret
# memory while the interrupted code allocates ordinary memory, and the reverse; and,
# with no rule, whatever the next allocator supports (the pass-through path adds no
# lock and no state). Not supported, as malloc is not async-signal-safe (POSIX): a
# handler allocating the same kind of memory as the code it interrupted.

@test "signal: SIGALRM every 100 us allocating secret memory while the main loop allocates ordinary memory" {
	run --separate-stderr ft "$SITES" signal plain secret 500
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^signal ok main=plain handler=secret .* failures=0$'
}

@test "signal: SIGALRM handler allocating ordinary memory while the main loop allocates secret memory" {
	run --separate-stderr ft "$SITES" signal secret plain 500
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^signal ok main=secret handler=plain .* failures=0$'
}

@test "signal: no rule, handler and main loop in different glibc tcache bins: as without the shim" {
	run --separate-stderr timeout "$FT_TIMEOUT" "$FP" signal tcache tcache 300
	assert_success
	run --separate-stderr ft signal tcache tcache 300
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^signal ok main=tcache handler=tcache .* failures=0$'
	# rules set, both sides ordinary: the cached decision adds no lock either
	run --separate-stderr ft "$SITES" signal tcache tcache 300
	refute_hang_or_crash
	assert_success
}

@test "signal: a tagged allocation in a handler that interrupted the shim's slow path is still secret" {
	# SECRETMEM_DEPTH=1 sends every allocation of the main loop through the routing
	# code (stack walk), where the handler finds the re-entry guard set.
	run --separate-stderr ft "$SITES" SECRETMEM_DEPTH=1 signal plain secret 500
	refute_hang_or_crash
	assert_success
}

# ---- file descriptors ----

@test "a program that closes every fd from 3 on (close_range) then allocates secret memory and forks" {
	run --separate-stderr ft "$SITES" closefds 3
	refute_hang_or_crash
	assert_success
	assert_output 'closefds ok first=3 failures=0'
}

@test "a program that closes every fd, 0-2 too, then allocates secret memory, forks, writes stats" {
	local stats="$BATS_TEST_TMPDIR/closed.json"
	run --separate-stderr ft "$SITES" SECRETMEM_STATS="$stats" closefds 0
	refute_hang_or_crash
	assert_success
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["allocs"] == 600 and d["live_bytes"] == 0, d' \
		"$stats"
}

# ---- secure execution (AT_SECURE) ----

@test "secure execution: the control runs (no setuid) read the SECRETMEM_* variables" {
	run -0 as_nobody "$SITES" "$FT_DIR/faults_linked" secure
	assert_output 'at_secure=0 active=1 secret=1'
	run -"$SM_EXIT_CONFIG" as_nobody SECRETMEM_LOG=bogus "$FT_DIR/faults_linked" secure
}

@test "secure execution (setuid root, run by nobody): every SECRETMEM_* variable is ignored" {
	[[ -u $FT_DIR/faults_setuid ]] || skip "cannot make a setuid program in $FT_DIR"
	run -0 --separate-stderr as_nobody "$SITES" "$FT_DIR/faults_setuid" secure
	assert_output 'at_secure=1 active=1 secret=0'
	# bad values would stop the program before main: ignored, so it runs
	run -0 --separate-stderr as_nobody SECRETMEM_LOG=bogus SECRETMEM_MODE=bogus SECRETMEM_MAX=1 \
		SECRETMEM_LIBS='*' SECRETMEM_STATS=1 "$FT_DIR/faults_setuid" secure
	assert_output 'at_secure=1 active=1 secret=0'
	# and it says so, once, rather than look protected
	assert_equal "$stderr" "${SM_PREFIX}$FT_IGNORED"
}

@test "secure execution (file capability cap_ipc_lock, run by nobody): every SECRETMEM_* variable is ignored" {
	[[ -x $FT_DIR/faults_cap ]] || skip "setcap (libcap2-bin) is not available"
	run -0 --separate-stderr as_nobody "$SITES" SECRETMEM_LOG=bogus "$FT_DIR/faults_cap" secure
	assert_output 'at_secure=1 active=1 secret=0'
	assert_equal "$stderr" "${SM_PREFIX}$FT_IGNORED"
	# no SECRETMEM_* variable: nothing to say
	run -0 --separate-stderr as_nobody "$FT_DIR/faults_cap" secure
	assert_equal "$stderr" ""
}

@test "secure execution: LD_PRELOAD of the shim into a setuid program is ignored by the loader" {
	[[ -u $FT_DIR/faults_prog_setuid ]] || skip "cannot make a setuid program in $FT_DIR"
	run -0 --separate-stderr as_nobody LD_PRELOAD="$FT_DIR/libsecretmem-preload.so" "$SITES" \
		SECRETMEM_LOG=bogus "$FT_DIR/faults_prog_setuid" secure
	assert_output 'at_secure=1 active=0 secret=0'
}

# ---- the cap ----

@test "SECRETMEM_MAX reached by three threads at once while a fourth works: ENOMEM only, data intact, recovers" {
	run --separate-stderr ft "$SITES" SECRETMEM_MAX=1M maxthreads 3
	refute_hang_or_crash
	assert_success
	assert_output --regexp '^maxthreads ok got=[0-9]+ refused=[1-9][0-9]* starved_rounds=[0-9]+ failures=0$'
	# one warning, however many refusals
	assert_equal "$stderr" "${SM_PREFIX}out of secret memory: the limit is 1048576 bytes (SECRETMEM_MAX); raise it with SECRETMEM_MAX"
}

# ---- bad input ----

@test "every variable at 128 KiB (the most execve passes): one line and exit 78, or it runs" {
	local v big
	big=$(head -c 131000 /dev/zero | tr '\0' a)
	for v in MODE LIBS SITES WRAPPERS DEPTH FALLBACK FORK MAX STATS LOG; do
		run --separate-stderr ft "SECRETMEM_$v=$big" blocks
		refute_hang_or_crash
		case $v in
		LIBS | SITES) # a rule that matches nothing: one warning (cut to the line's size)
			assert_success
			[[ $stderr == "${SM_PREFIX}SECRETMEM_$v "* && $stderr != *$'\n'* ]] ||
				fail "SECRETMEM_$v: $stderr"
			;;
		WRAPPERS)
			assert_success
			assert_equal "$stderr" ""
			;;
		STATS) # a file name too long to create: one warning at exit
			assert_success
			[[ $stderr == "${SM_PREFIX}SECRETMEM_STATS: cannot write aaaa"* ]] || fail "$stderr"
			((${#stderr} < 2048)) || fail "SECRETMEM_STATS warning of ${#stderr} bytes"
			;;
		*)
			assert_equal "$status" "$SM_EXIT_CONFIG"
			# shortened to 60 characters
			assert_equal "${stderr%%\" is not valid*}" "${SM_PREFIX}SECRETMEM_$v=\"$(printf 'a%.0s' {1..60})..."
			;;
		esac
	done
	# and all of them at once, those the shim accepts
	run --separate-stderr ft "SECRETMEM_LIBS=$big" "SECRETMEM_SITES=$big" "SECRETMEM_WRAPPERS=$big" blocks
	refute_hang_or_crash
	assert_success
}

@test "1 MiB values of five kinds for every variable: the parser returns fast, every rejection says why" {
	run timeout "$FT_TIMEOUT" "$RT_BIN/faults_options"
	assert_success
	refute_output --partial FAIL
	assert_line --regexp '^ok SECRETMEM_LIBS list [0-9.]+ ms: accepted$'
}

@test "rule lists of 10,000 entries: start-up stays fast, the one real entry still works" {
	local libs sites t0
	libs=$(seq -f 'x%g' 1 10000 | paste -sd:)
	sites=$(seq -f 'f%g' 1 10000 | paste -sd,)
	t0=$SECONDS
	run --separate-stderr ft SECRETMEM_LIBS="$libs:faults_prog" blocks
	assert_success
	assert_output 'direct=1 plain=1 wrapper_from_tagged=1 wrapper_from_plain=1'
	run --separate-stderr ft SECRETMEM_SITES="$sites,fp_secret_alloc" SECRETMEM_WRAPPERS="$sites" blocks
	assert_success
	assert_output 'direct=1 plain=0 wrapper_from_tagged=0 wrapper_from_plain=0'
	# at info, one line per entry that matches nothing
	run --separate-stderr ft SECRETMEM_LIBS="$libs" SECRETMEM_SITES="$sites,fp_secret_alloc" \
		SECRETMEM_LOG=info blocks
	assert_success
	assert_equal "$(grep -c 'matches no' <<<"$stderr")" 20000
	((SECONDS - t0 < 20)) || fail "three runs took $((SECONDS - t0)) s"
}

@test "duplicate rules: the same library or function twice works as once" {
	run -0 ft SECRETMEM_LIBS=faults_prog:faults_prog,faults_prog blocks
	assert_output 'direct=1 plain=1 wrapper_from_tagged=1 wrapper_from_plain=1'
	run -0 ft SECRETMEM_SITES=fp_secret_alloc,fp_secret_alloc,faults_prog:fp_secret_alloc blocks
	assert_output 'direct=1 plain=0 wrapper_from_tagged=0 wrapper_from_plain=0'
	run -0 ft SECRETMEM_SITES=fp_secret_alloc,fp_caller_tagged SECRETMEM_WRAPPERS=fp_wrapper,fp_wrapper blocks
	assert_output 'direct=1 plain=0 wrapper_from_tagged=1 wrapper_from_plain=0'
}

@test "contradictory rules: a function both in SECRETMEM_SITES and SECRETMEM_WRAPPERS is a wrapper" {
	# as a site alone, everything it allocates is secret
	run -0 ft SECRETMEM_SITES=fp_wrapper blocks
	assert_output 'direct=0 plain=0 wrapper_from_tagged=1 wrapper_from_plain=1'
	# named in both: looked through, so its caller decides (either order)
	run -0 ft SECRETMEM_SITES=fp_wrapper,fp_caller_tagged SECRETMEM_WRAPPERS=fp_wrapper blocks
	assert_output 'direct=0 plain=0 wrapper_from_tagged=1 wrapper_from_plain=0'
	run -0 ft SECRETMEM_SITES=fp_caller_tagged,fp_wrapper SECRETMEM_WRAPPERS=fp_wrapper blocks
	assert_output 'direct=0 plain=0 wrapper_from_tagged=1 wrapper_from_plain=0'
}

@test "a library glob that matches nothing: a warning line, silence at SECRETMEM_LOG=error, never an error" {
	run -0 --separate-stderr ft SECRETMEM_LIBS='libnothing-here*.so' SECRETMEM_LOG=info blocks
	assert_output 'direct=0 plain=0 wrapper_from_tagged=0 wrapper_from_plain=0'
	[[ $stderr == *"${SM_PREFIX}SECRETMEM_LIBS pattern libnothing-here*.so matches no object loaded now"* ]] ||
		fail "no info line: $stderr"
	run -0 --separate-stderr ft SECRETMEM_LIBS='libnothing-here*.so' blocks
	assert_equal "$stderr" "${SM_PREFIX}SECRETMEM_LIBS pattern libnothing-here*.so matches no object loaded now; it protects nothing unless an object loaded later matches it (program: ${FP##*/})"
	run -0 --separate-stderr ft SECRETMEM_LIBS='libnothing-here*.so' SECRETMEM_LOG=error blocks
	assert_equal "$stderr" ""
}

# ---- a missing unwinder ----

# Runs ARGS with libgcc_s.so.1 (the unwinder of the look-through walks) hidden:
# /dev/null bind-mounted over it in a private mount namespace, as on a machine
# where it is not installed. Nothing else in the run needs it.
unwind_file() {
	local lib
	lib=$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ { print $NF; exit }')
	[[ -n $lib ]] || fail "ldconfig does not know libgcc_s.so.1"
	readlink -f "$lib"
}

without_unwinder() {
	unshare -m true 2>/dev/null || skip "unshare -m needs root"
	timeout -k 5 "$FT_TIMEOUT" unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' \
		sh "$(unwind_file)" "$@"
}

@test "unwinder missing, no rule: the program runs (the shim loads it only when routing starts)" {
	run --separate-stderr without_unwinder env LD_PRELOAD="$SHIM" "$FP" blocks
	assert_success
	[[ -z $stderr ]] || fail "stderr: $stderr"
	# the proof can fail: in there the file is empty
	run without_unwinder test -s "$(unwind_file)"
	assert_failure
}

@test "unwinder missing, a rule set: one line naming it, exit before main" {
	run --separate-stderr without_unwinder env LD_PRELOAD="$SHIM" "$SITES" "$FP" blocks
	assert_failure
	[[ -z $output ]] || fail "main ran: $output"
	[[ $stderr == *"cannot load libgcc_s.so.1, which finds the callers of allocations"*"apt-get install libgcc-s1"* ]] ||
		fail "stderr: $stderr"
	(($(wc -l <<<"$stderr") == 1)) || fail "more than one line: $stderr"
}

# ---- another allocator before the shim ----

@test "jemalloc before the shim in LD_PRELOAD with a rule: one line, exit before main" {
	sm_need_jemalloc
	run --separate-stderr timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$JEMALLOC:$SHIM" "$SITES" "$FP" blocks
	assert_failure "$SM_EXIT_CONFIG"
	[[ -z $output ]] || fail "main ran: $output"
	[[ $stderr == "${SM_PREFIX}malloc is served by $JEMALLOC, not the shim: nothing could be made secret;"* ]] ||
		fail "stderr: $stderr"
	# without a rule it runs, as it would without the shim
	run -0 --separate-stderr timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$JEMALLOC:$SHIM" "$FP" blocks
	# and in the right order, the rule works (the test can fail)
	run -0 --separate-stderr ft "$SITES" blocks
}

@test "jemalloc after the shim with a rule: operator new is jemalloc's, not through malloc, and a warning says so" {
	sm_need_jemalloc
	run -0 --separate-stderr timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$SHIM:$JEMALLOC" "$SITES" "$FP" blocks
	[[ $stderr == *"${SM_PREFIX}operator new is served by $JEMALLOC, the allocator after the shim, not through malloc: C++ allocations (new, std::string, containers) are not secret"* ]] ||
		fail "no warning: $stderr"
	# without a rule, or with the shim alone, no such warning
	run -0 --separate-stderr timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$SHIM:$JEMALLOC" "$FP" blocks
	[[ $stderr != *"operator new"* ]] || fail "no rule: $stderr"
	run -0 --separate-stderr ft "$SITES" blocks
	[[ $stderr != *"operator new"* ]] || fail "shim alone: $stderr"
}

# ---- the loader's lock ----

@test "dlopen of a library whose constructor waits for a thread that opens the first scope: no deadlock" {
	run -0 --separate-stderr timeout -k 5 "$FT_TIMEOUT" env LD_PRELOAD="$SHIM" \
		"$RT_BIN/cxx_host" "$RT_BIN/libscopector.so"
	refute_hang_or_crash
	assert_output "plugin: scope in a constructor's thread, block secret=1"
}
