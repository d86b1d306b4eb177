#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The shim's own state (the next allocator's functions, the options, the arena's
# keys and class tables) is read-only once start-up is over (src/ro.h): a write to
# it through the shim's addresses faults, and its pages show r-- in /proc/PID/maps. The control writes a variable of
# the shim that stays writable, to show the probe can write.

load helpers

setup() {
	sm_setup
	PROBE=$TESTS_BIN/ro_probe
	sm_need_programs "$PROBE"
}

# The offset of the shim's symbol NAME (its own .symtab: the library is not stripped).
sym() {
	nm "$SHIM" | awk -v n="$1" '$3 == n { print $1; exit }'
}

probe_all() {
	local opt next ctl
	opt=$(sym sm_options_ro)
	next=$(sym next)
	ctl=$(sym sm_route_tag)
	[[ -n $opt && -n $next && -n $ctl ]] || fail "symbols not found in $SHIM: '$opt' '$next' '$ctl'"
	run -0 env LD_PRELOAD="$SHIM" "$@" "$PROBE" "$opt" "$next" "$ctl"
	assert_line "$opt r--p SIGSEGV"
	assert_line "$next r--p SIGSEGV"
	assert_line "$ctl rw-p written"
}

@test "the options and the next allocator's functions are read-only after start-up" {
	probe_all
}

@test "read-only with rules set (routing on) too" {
	probe_all SECRETMEM_LIBS='*'
}

@test "read-only with SECRETMEM_MODE=off too" {
	probe_all SECRETMEM_MODE=off
}

@test "the arena's keys and class tables are read-only once the arena is up (rules set); the control stays writable" {
	local ro ctl
	ro=$(sym arena_ro)
	ctl=$(sym sm_route_tag)
	[[ -n $ro && -n $ctl ]] || fail "symbols not found in $SHIM: '$ro' '$ctl'"
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS='*' "$PROBE" "$ro" "$ctl"
	assert_line "$ro r--p SIGSEGV"
	assert_line "$ctl rw-p written"
}

@test "SECRETMEM_LOG=debug says how much is read-only" {
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LOG=debug "$PROBE"
	[[ $stderr == *"${SM_PREFIX}its own state is read-only: "*" bytes at 0x"* ]] || fail "$stderr"
}
