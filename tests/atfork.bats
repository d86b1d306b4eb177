#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Fork handlers registered before the shim's: glibc runs child handlers in
# registration order, so a handler a library constructor (which the loader runs
# before the shim's) or main registered first used to run in the child while it
# still shared the parent's secret pages and arena: its write reached the parent's
# block, its allocation corrupted the parent's free lists. The shim's handlers now
# come first whoever registers when. _Fork, which runs no handlers, does what
# fork() does when the locks are free, and when one is busy (a signal handler
# interrupted its holder) gives the child an empty arena rather than wait. The
# probe (tests/atfork_prog.c with tests/libatfork.c) is built -O2 -g, -O3 -flto,
# and with clang where installed.

load helpers
load routing-helpers

setup_file() {
	rt_build
	local v
	VARIANTS=()
	for v in o2 lto clang; do
		[[ $v != clang || -n ${CLANG:-} ]] || continue
		mkdir -p "$RT_BIN/atfork/$v"
		rt_copy "atfork/$v/libatfork.so" "atfork/$v/atfork_prog"
		mv "$RT_BIN/atfork/$v" "$RT_BIN/$v"
		VARIANTS+=("$v")
	done
	export VARIANTS_LIST="${VARIANTS[*]}"
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
}

@test "control: without the shim the child handler's write reaches the block (nothing is secret, the child shares nothing)" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 "$RT_BIN/$v/atfork_prog" lib
		assert_output "secret 0 maps 0 child wrote 1 parent changed 0"
	done
}

@test "a library constructor's fork child handler writes into a secret block: the child's copy has the write, the parent's block is intact" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 with_shim SECRETMEM_SITES=mk_key "$RT_BIN/$v/atfork_prog" lib
		assert_output "secret 1 maps 1 child wrote 1 parent changed 0"
	done
}

@test "main registers a fork child handler before its first secret (a scope, no rule): the parent's block is intact" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 with_shim "$RT_BIN/$v/atfork_prog" main
		assert_output "secret 1 maps 1 child wrote 1 parent changed 0"
	done
}

@test "a tagged library's fork child handler allocates a secret block: the child has it, the parent's blocks and free lists are intact (no abort)" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr with_shim SECRETMEM_LIBS=libatfork.so "$RT_BIN/$v/atfork_prog" alloc
		assert_output "secret 1 maps 1 child ok 1 parent changed 0 new Q"
		[[ -z $stderr ]] || fail "$v: $stderr"
	done
}

@test "_Fork (no fork handlers): the child reads the parent's block (its own copy), writes it and allocates; the parent's block and arena are intact" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr with_shim SECRETMEM_SITES=mk_key "$RT_BIN/$v/atfork_prog" _Fork
		assert_output "secret 1 maps 1 child ok 1 parent changed 0 new bad 0"
		[[ -z $stderr ]] || fail "$v: $stderr"
	done
}

@test "control: _Fork without the shim: nothing is secret, the child shares nothing" {
	run -0 "$RT_BIN/o2/atfork_prog" _Fork
	assert_output "secret 0 maps 0 child ok 0 parent changed 0 new bad 30"
}

@test "_Fork from a signal handler that interrupted main inside the arena: no deadlock; a child has its own copy when the locks were free, an empty arena when one was busy; the parent's block and arena are intact" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr timeout 60 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=mk_key,mk_big \
			"$RT_BIN/$v/atfork_prog" _Fork-signal
		assert_output "copy 1 drop 1 bad 0 parent changed 0 new bad 0"
	done
}

@test "control: _Fork from a signal handler without the shim: nothing is secret" {
	run -0 --separate-stderr timeout 60 "$RT_BIN/o2/atfork_prog" _Fork-signal
	assert_output "copy 0 drop 1 bad 0 parent changed 0 new bad 30"
}
