#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The standard streams' buffers: with any rule set, stdin's and stdout's buffers
# are secret, so a password a tagged library reads from stdin, or a token it
# prints to stdout, has no copy in ordinary memory even though main used both
# streams first (glibc allocates a stream's buffer at its first use, from main).
# Root scans the paused program through /proc/PID/mem (tests/memscan.c). Controls:
# the same program without the shim, and with the shim but SECRETMEM_FORK=drop
# (which keeps glibc's own buffers), must both show the copy.
#
# The probe is built as distributions build: -O2 -g, nothing disabled.

load helpers
load routing-helpers

PW=correct-horse-battery-staple-42

setup_file() {
	rt_build memscan
	local bin=$BATS_FILE_TMPDIR/bin
	gcc -O2 -g -shared -fPIC "$abs_top_srcdir/tests/libpw.c" -o "$bin/libpw.so" -Wl,-soname,libpw.so
	gcc -O2 -g "$abs_top_srcdir/tests/stdio_prog.c" -o "$bin/stdio_prog" \
		-L"$bin" -lpw -Wl,-rpath,"$bin"
}

setup() {
	sm_setup
	PROG_PID=
	printf 'first line, read by main\n%s\n' "$PW" >"$BATS_TEST_TMPDIR/input"
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

# start MODE [VAR=VALUE...]: runs stdio_prog MODE (under the shim if a variable is
# given, or "noshim" first for none) with the two lines on stdin and stdout into a
# file, until it says READY.
start() {
	local mode=$1 env=(env)
	shift
	if [[ ${1:-} == noshim ]]; then
		shift
	else
		env+=(LD_PRELOAD="$SHIM" "$@")
	fi
	local err=$BATS_TEST_TMPDIR/err
	"${env[@]}" "$RT_BIN/stdio_prog" "$mode" <"$BATS_TEST_TMPDIR/input" \
		>"$BATS_TEST_TMPDIR/out" 2>"$err" 3>&- &
	PROG_JOB=$!
	local deadline=$((SECONDS + 30))
	until grep -q '^READY$' "$err" 2>/dev/null; do
		kill -0 "$PROG_JOB" 2>/dev/null || fail "stdio_prog ended: $(cat "$err")"
		((SECONDS < deadline)) || fail "no READY within 30 s: $(cat "$err")"
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
	start read noshim
	scan "$PW"
	assert_output --partial "found 0 "
}

@test "control: SECRETMEM_FORK=drop keeps glibc's stdin buffer, and the password is in it" {
	start read SECRETMEM_LIBS=libpw.so SECRETMEM_FORK=drop
	scan "$PW"
	assert_output --partial "found 0 "
}

@test "a password a tagged library reads from stdin after main read it first: no ordinary copy" {
	start read SECRETMEM_LIBS=libpw.so
	scan "$PW"
	refute_output --partial "found 0 "
	# the scan saw the secret mappings and could not read them
	[[ $output =~ [1-9][0-9]*\ bytes\ in\ /secretmem ]] || fail "no secret mapping seen: $output"
}

@test "a token a tagged library prints to stdout after main printed first: no ordinary copy" {
	start print SECRETMEM_LIBS=libpw.so
	scan "token=$PW"
	refute_output --partial "found 0 "
	stop
	start print noshim
	scan "token=$PW"
	assert_output --partial "found 0 "
}

@test "the program's I/O is unchanged: stdout reaches its file, a terminal stays line-buffered" {
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libpw.so SECRETMEM_LOG=debug \
		sh -c 'printf "a\nb\n" | head -n 1; echo done'
	assert_output --partial "a"
	assert_output --partial "done"
	# A pseudo-terminal on stdout (script(1)): glibc would line-buffer it; so do we.
	command -v script >/dev/null || skip "script(1) is not installed"
	run -0 script -qec "env LD_PRELOAD=$SHIM SECRETMEM_LIBS=libpw.so SECRETMEM_LOG=debug /bin/true" /dev/null
	assert_output --partial "stdout: a "
	assert_output --partial "(line-buffered)"
}
