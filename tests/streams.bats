#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The standard streams' buffers: with any rule set, once the process holds secret
# memory, stdin's and stdout's buffers are secret too, so a password a tagged
# library reads from stdin, or a token it prints to stdout, has no copy in
# ordinary memory even though main used both streams first (glibc allocates a
# stream's buffer at its first use, from main, and had read the password ahead
# into it). When no secret block is live the buffers go back to ordinary memory,
# so that no secret mapping is left. Root scans the paused program through
# /proc/PID/mem (tests/memscan.c). Controls: the same program without the shim,
# and with the shim but SECRETMEM_FORK=drop (which keeps glibc's own buffers),
# must both show the copy.
#
# The probe (tests/stdio_prog.c with tests/libpw.c) is built as distributions
# build: -O2 -g, and -O3 -flto, and with clang where it is installed.

load helpers
load routing-helpers

PW=correct-horse-battery-staple-42

setup_file() {
	rt_build memscan
	local v
	VARIANTS=()
	# built by make (Makefile.am), one directory per variant
	for v in o2 lto clang; do
		[[ $v != clang || -n ${CLANG:-} ]] || continue
		mkdir -p "$RT_BIN/streams/$v"
		rt_copy "streams/$v/libpw.so" "streams/$v/stdio_prog"
		mv "$RT_BIN/streams/$v" "$RT_BIN/$v"
		VARIANTS+=("$v")
	done
	export VARIANTS_LIST="${VARIANTS[*]}"
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
	PROG_PID=
	printf 'first line, read by main\n%s\nthird line, read by main\n' "$PW" >"$BATS_TEST_TMPDIR/input"
}

stop() {
	if [[ -n $PROG_PID ]]; then
		kill "$PROG_PID" 2>/dev/null || true
		wait "$PROG_JOB" 2>/dev/null || true
	fi
	PROG_PID= PROG_JOB=
}

teardown() {
	stop
}

# start VARIANT MODE [VAR=VALUE...]: runs stdio_prog MODE (under the shim if a
# variable is given, or "noshim" first for none) with the three lines on stdin
# (from INPUT_CMD's pipe if set, else the file) and stdout into a file, until it
# says READY.
start() {
	local v=$1 mode=$2 env=(env)
	shift 2
	if [[ ${1:-} == noshim ]]; then
		shift
	else
		# LD_BIND_NOW=1, as secretmem-run sets it: stdio_prog is linked lazily,
		# and the resolver's save of the vector registers at a first call would
		# leave the line getline just scanned on the stack (a limit the man page
		# names, tested by lazybind.bats; measured on AVX-512 machines)
		env+=(LD_BIND_NOW=1 LD_PRELOAD="$SHIM" "$@")
	fi
	local err=$BATS_TEST_TMPDIR/err
	rm -f "$err"
	if [[ -n ${INPUT_CMD:-} ]]; then
		$INPUT_CMD <"$BATS_TEST_TMPDIR/input" 2>/dev/null 3>&- |
			"${env[@]}" "$RT_BIN/$v/stdio_prog" "$mode" >"$BATS_TEST_TMPDIR/out" 2>"$err" 3>&- &
	else
		"${env[@]}" "$RT_BIN/$v/stdio_prog" "$mode" <"$BATS_TEST_TMPDIR/input" \
			>"$BATS_TEST_TMPDIR/out" 2>"$err" 3>&- &
	fi
	PROG_JOB=$!
	local deadline=$((SECONDS + 30))
	until grep -q '^READY$' "$err" 2>/dev/null; do
		kill -0 "$PROG_JOB" 2>/dev/null || { fail "stdio_prog ended: $(cat "$err")"; return 1; }
		((SECONDS < deadline)) || { fail "no READY within 30 s: $(cat "$err")"; return 1; }
		sleep 0.05
	done
	PROG_PID=$(awk '$1 == "PID" { print $2 }' "$err")
}

hex() {
	printf '%s' "$1" | od -An -tx1 | tr -d ' \n'
}

# scan PATTERN: memscan's output for the paused program.
scan() {
	run -0 "$RT_BIN/memscan" "$PROG_PID" "$(hex "$1")"
}

@test "control: without the shim the password read from stdin is in ordinary memory" {
	for v in "${VARIANTS[@]}"; do
		start "$v" read noshim
		scan "$PW"
		assert_output --partial "found 0 "
		stop
	done
}

@test "control: SECRETMEM_FORK=drop keeps glibc's stdin buffer, and the password is in it" {
	start o2 read SECRETMEM_LIBS=libpw.so SECRETMEM_FORK=drop
	scan "$PW"
	assert_output --partial "found 0 "
}

@test "a password a tagged library reads from stdin after main read it first: no ordinary copy" {
	for v in "${VARIANTS[@]}"; do
		start "$v" read SECRETMEM_LIBS=libpw.so
		scan "$PW"
		refute_output --partial "found 0 "
		# the scan saw the secret mappings and could not read them
		[[ $output =~ [1-9][0-9]*\ bytes\ in\ /secretmem ]] || fail "$v: no secret mapping seen: $output"
		stop
	done
}

@test "the same with stdin a pipe (not seekable): no ordinary copy; the control finds it" {
	INPUT_CMD=cat
	start o2 read SECRETMEM_LIBS=libpw.so
	scan "$PW"
	refute_output --partial "found 0 "
	stop
	start o2 read noshim
	scan "$PW"
	assert_output --partial "found 0 "
}

@test "a token a tagged library prints to stdout after main printed first: no ordinary copy" {
	for v in "${VARIANTS[@]}"; do
		start "$v" print SECRETMEM_LIBS=libpw.so
		scan "token=$PW"
		refute_output --partial "found 0 "
		stop
		start "$v" print noshim
		scan "token=$PW"
		assert_output --partial "found 0 "
		stop
	done
}

@test "a rule, and no secret allocation: no secret mapping, the streams keep glibc's buffers" {
	for v in "${VARIANTS[@]}"; do
		start "$v" none SECRETMEM_LIBS=libpw.so SECRETMEM_LOG=debug
		grep -q '^secret mappings: 0$' "$BATS_TEST_TMPDIR/err" || fail "$v: $(cat "$BATS_TEST_TMPDIR/err")"
		grep -q 'buffer is in secret memory' "$BATS_TEST_TMPDIR/err" && fail "$v: $(cat "$BATS_TEST_TMPDIR/err")"
		stop
		# control: with the secret allocation, a mapping, and the buffers moved
		start "$v" read SECRETMEM_LIBS=libpw.so SECRETMEM_LOG=debug
		grep -q '^secret mappings: [1-9]' "$BATS_TEST_TMPDIR/err" || fail "$v: $(cat "$BATS_TEST_TMPDIR/err")"
		grep -q "^${SM_PREFIX}stdin: its 4096-byte buffer is in secret memory" "$BATS_TEST_TMPDIR/err" ||
			fail "$v: $(cat "$BATS_TEST_TMPDIR/err")"
		stop
	done
}

@test "nothing live: the buffers go back, no secret mapping is left, unread input and output intact" {
	local input
	for input in file pipe; do
		[[ $input == pipe ]] && INPUT_CMD=cat
		for v in "${VARIANTS[@]}"; do
			start "$v" idle SECRETMEM_LIBS=libpw.so
			grep -q '^secret mappings after the last free: 0$' "$BATS_TEST_TMPDIR/err" ||
				fail "$v $input: $(cat "$BATS_TEST_TMPDIR/err")"
			# main reads the third line (unread input moved to the ordinary buffer)
			# and prints it after the banner (pending output flushed first)
			run cat "$BATS_TEST_TMPDIR/out"
			assert_output $'hello from main\nthird: third line, read by main'
			# and the password is not in the ordinary buffer that took over
			scan "$PW"
			refute_output --partial "found 0 "
			stop
		done
	done
	# control: the probe's output is the same without the shim
	start o2 idle noshim
	run cat "$BATS_TEST_TMPDIR/out"
	assert_output $'hello from main\nthird: third line, read by main'
}

@test "the program's I/O is unchanged: stdout reaches its file, a terminal stays line-buffered" {
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS='*' SECRETMEM_LOG=debug \
		sh -c 'printf "a\nb\n" | head -n 1; echo done'
	assert_output --partial "a"
	assert_output --partial "done"
	# A pseudo-terminal on stdout (script(1)): glibc would line-buffer it; so do we.
	command -v script >/dev/null || skip "script(1) is not installed"
	run -0 script -qec "env LD_PRELOAD=$SHIM SECRETMEM_LIBS='*' python3 -c 'import sys; print(\"x\"); sys.stdout.flush()'" /dev/null
	assert_output --partial "x"
}
