#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# secretmem-run sets LD_BIND_NOW=1: the first call of a lazily bound function goes
# through the dynamic loader's resolver, which saves the vector registers on the
# stack, where they stay readable after it returns; a key the program has just
# copied (libc's memcpy copies through vector registers) is among them. The
# probe (tests/lazybind_prog.c, built -O2 -g and linked -z lazy, as a distribution
# may link) reads a 64-byte key straight into a secret block, copies it into
# another, and calls getppid for the first time. Root scans its memory
# (tests/memscan.c) for each 16-byte quarter of the key: without secretmem-run, or
# with --lazy-bind (the controls), a quarter is on the stack in at least one of
# N runs (in every run, measured); under secretmem-run in none.

load helpers
load routing-helpers

N=6

setup_file() {
	rt_build memscan
	# built by make (Makefile.am): the rule names the program, so each keeps its name
	rt_copy lazybind_prog.o2
	mv "$RT_BIN/lazybind_prog.o2" "$RT_BIN/lazybind_prog"
	if [[ -n ${CLANG:-} ]]; then
		rt_copy lazybind_prog.clang
		mv "$RT_BIN/lazybind_prog.clang" "$RT_BIN/lazybind_prog_clang"
	fi
}

setup() {
	sm_setup
	RUN=$abs_top_builddir/tools/secretmem-run
	head -c 64 /dev/urandom >"$BATS_TEST_TMPDIR/key"
	KEY=$(od -An -tx1 -v "$BATS_TEST_TMPDIR/key" | tr -d ' \n')
}

# scans PROG CMD...: runs CMD... PROG KEYFILE N times, each time until it says
# READY, and scans it; FOUND: how many of the runs showed a piece of the key.
scans() {
	local prog=$1 i pid err=$BATS_TEST_TMPDIR/err
	shift
	FOUND=0
	for ((i = 0; i < N; i++)); do
		rm -f "$err"
		"$@" "$prog" "$BATS_TEST_TMPDIR/key" 2>"$err" 3>&- &
		pid=$!
		local deadline=$((SECONDS + 30))
		until grep -q '^READY$' "$err" 2>/dev/null; do
			kill -0 "$pid" 2>/dev/null || { fail "the probe ended: $(cat "$err")"; return 1; }
			((SECONDS < deadline)) || { kill "$pid"; fail "no READY within 30 s"; return 1; }
			sleep 0.02
		done
		local out
		out=$("$RT_BIN/memscan" "$pid" "${KEY:0:32}" "${KEY:32:32}" "${KEY:64:32}" "${KEY:96:32}")
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		# the key itself is in secret memory, which the scan saw and could not read
		[[ $out =~ [1-9][0-9]*\ bytes\ in\ /secretmem ]] || { fail "no secret mapping: $out"; return 1; }
		if grep -q '^found ' <<<"$out"; then FOUND=$((FOUND + 1)); fi
	done
}

@test "lazy binding: the first call's saved vector registers hold the key (controls), not under secretmem-run" {
	scans "$RT_BIN/lazybind_prog" env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=lazybind_prog
	((FOUND >= 1)) || fail "control without secretmem-run: no copy on the stack in $N runs"
	scans "$RT_BIN/lazybind_prog" "$RUN" --lazy-bind --lib lazybind_prog --
	((FOUND >= 1)) || fail "control with --lazy-bind: no copy on the stack in $N runs"
	scans "$RT_BIN/lazybind_prog" "$RUN" --lib lazybind_prog --
	((FOUND == 0)) || fail "under secretmem-run: a copy on the stack in $FOUND of $N runs"
}

@test "lazy binding: the same with the probe built by clang" {
	[[ -x $RT_BIN/lazybind_prog_clang ]] || skip "clang is not installed"
	scans "$RT_BIN/lazybind_prog_clang" "$RUN" --lazy-bind --lib lazybind_prog_clang --
	((FOUND >= 1)) || fail "control with --lazy-bind: no copy on the stack in $N runs"
	scans "$RT_BIN/lazybind_prog_clang" "$RUN" --lib lazybind_prog_clang --
	((FOUND == 0)) || fail "under secretmem-run: a copy on the stack in $FOUND of $N runs"
}

@test "secretmem-run: LD_BIND_NOW=1 unless --lazy-bind; an inherited value is kept, --lazy-bind removes it" {
	run --separate-stderr -0 "$RUN" --site f env
	assert_line LD_BIND_NOW=1
	run --separate-stderr -0 "$RUN" --lazy-bind --site f env
	refute_line --regexp '^LD_BIND_NOW='
	run --separate-stderr -0 "$RUN" --lazy-bind --print-env
	refute_line --regexp '^LD_BIND_NOW='
	run --separate-stderr -0 env LD_BIND_NOW=yes "$RUN" --site f env
	assert_line LD_BIND_NOW=yes
	run --separate-stderr -0 env LD_BIND_NOW=yes "$RUN" --print-env
	assert_line LD_BIND_NOW=yes
	run --separate-stderr -0 env LD_BIND_NOW=1 "$RUN" --lazy-bind --site f env
	refute_line --regexp '^LD_BIND_NOW='
}
