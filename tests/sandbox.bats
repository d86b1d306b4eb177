#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A program that sandboxes itself with seccomp after start-up, as sshd's
# pre-authentication child does (an allow-list, every other call fatal), and one
# started under a filter that kills mincore (systemd's @system-service with
# memfd_secret added): the library makes no call the filter kills. It maps a
# reserve before a filter that would kill the calls that map secret memory, and
# past the reserve an allocation fails with a warning instead of the process
# dying in silence. The probe (tests/sandbox_prog.c) is built as distributions
# build: -O2 -g, -O3 -flto -fno-plt, and with clang where it is installed.

load helpers
load routing-helpers

setup_file() {
	rt_build
	rt_probe_variants sandbox_prog "$RT_BIN"
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
}

sb_run() { # VARIANT ARGS...: the probe under the shim, its own allocations secret
	local v=$1
	shift
	env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=sandbox_prog "$RT_BIN/$v/sandbox_prog" "$@"
}

assert_blocks_secret() {
	local s
	for s in 64 9130 32768 70000 300000 2097152; do
		assert_line "block $s secret 1"
	done
}

@test "sshd's sandbox after start-up (allow-list, everything else kills), through prctl and syscall(SYS_seccomp): the process lives, its blocks up to 2 MiB are secret, a 64 MiB one fails with a warning" {
	local v how
	for v in "${VARIANTS[@]}"; do
		for how in prctl syscall; do
			run --separate-stderr sb_run "$v" self KILL "$how"
			((status == 0)) || fail "$v $how: status $status (159: killed by the filter): $output $stderr"
			assert_blocks_secret
			assert_line "big NULL"
			assert_line "key intact"
			assert_line "done"
			[[ $stderr == *"the seccomp filter the program installed (a sandbox) would kill the process at memfd_secret, so no more secret memory is mapped"* ]] ||
				fail "$v $how: no warning: $stderr"
		done
	done
}

@test "the same sandbox trapping instead of killing: the library makes no call it refuses (no SIGSYS at all)" {
	run --separate-stderr -0 sb_run o2 self TRAP prctl
	refute_line --partial "REFUSED"
	assert_blocks_secret
	assert_line "done"
}

@test "control: without the shim the same sandbox refuses nothing of the program's own" {
	run --separate-stderr -0 "$RT_BIN/o2/sandbox_prog" self TRAP prctl
	refute_line --partial "REFUSED"
	assert_line "block 64 secret 0"
	assert_line "big ok"
}

@test "a filter that allows everything: nothing changes, a 64 MiB secret block is mapped after it" {
	run --separate-stderr -0 sb_run o2 allowall
	assert_blocks_secret
	assert_line "big ok"
	[[ $stderr != *"seccomp"* ]] || fail "$stderr"
}

@test "started under a filter that kills mincore (systemd's @system-service plus memfd_secret): blocks are freed, chunks mapped and a fork copied without a mincore call" {
	local v
	for v in "${VARIANTS[@]}"; do
		run --separate-stderr sb_run "$v" exec "$RT_BIN/$v/sandbox_prog" work
		((status == 0)) || fail "$v: status $status (159: killed by the filter): $output $stderr"
		assert_blocks_secret
		assert_line "big ok"
		assert_line "fork ok"
	done
}
