#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A tagged object's function that ends in a tail call into allocating code the
# shim looks through (`return ::operator new(n);`, `return wcsdup(s);`): at -O2 it
# is a jump, and the allocator returns into the untagged caller. The shim points
# the tagged object's references to those functions at wrappers that run them in
# the thread's secret scope (src/tailout.c), ended also when operator new throws.
#
# The probes (tests/tailout_lib.cc, tailout_clib.c, tailout_prog.c) are built by
# make as distributions build: -O2 -g, -fno-plt, -Wl,-z,now, -O3 -flto, clang.
# Each block is checked from outside: its /proc/PID/maps line (/secretmem), and
# that /proc/PID/mem and process_vm_readv cannot read it; the control (no rule
# naming the libraries) reads back in full.

load helpers
load routing-helpers

VARIANTS=(o2 noplt bindnow lto clang)
CXX_CASES=(new newarr newal newnt newalnt allocstd)
C_CASES=(wcsdup strdup_ strndup_ vasprintf getline cwd getcwd getdelim asprintf scandir wcsdup_nt)
TAGS=SECRETMEM_LIBS=libtailout.so,libtailoutc.so

setup_file() {
	rt_build memread
	[[ -n ${CLANGXX:-} ]] || { echo "clang++ is needed (apt-get install clang)" >&2; return 1; }
	local v t=$abs_top_builddir/tests/tailout
	for v in "${VARIANTS[@]}"; do
		mkdir -p "$RT_BIN/$v"
		cp -p "$t/$v/libtailout.so" "$t/$v/libtailoutc.so" "$t/$v/tailout_prog" \
			"$t/$v/tailout_prog_dl" "$RT_BIN/$v/" ||
			{ echo "cannot find $v (make check)" >&2; return 1; }
	done
}

setup() {
	sm_setup
	# cwd: get_current_dir_name's block must hold the tag
	mkdir -p "$BATS_TEST_TMPDIR/a-directory-with-a-name-long-enough"
	cd "$BATS_TEST_TMPDIR/a-directory-with-a-name-long-enough"
}

teardown() {
	stop_paused
}

next_run() {
	stop_paused
	rm -f "$BATS_TEST_TMPDIR/paused.out" "$BATS_TEST_TMPDIR/paused.err"
}

@test "tailout: the probes end in tail calls (the premise)" {
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/o2/libtailout.so"
	assert_output --regexp '<to_new>:'$'\n''[^'$'\n'']*jmp +[0-9a-f]+ <_Znwm@plt>'
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/noplt/libtailout.so"
	assert_output --regexp '<to_new>:'$'\n''[^'$'\n'']*jmp +\*0x[0-9a-f]+\(%rip\)'
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/o2/libtailoutc.so"
	assert_output --regexp '<to_wcsdup>:'$'\n''[^'$'\n'']*jmp +[0-9a-f]+ <wcsdup@plt>'
	run -0 readelf -d "$RT_BIN/bindnow/libtailout.so"
	assert_output --partial 'BIND_NOW'
}

@test "tailout: a tagged C++ library's tail calls into operator new (plain, [], aligned, nothrow, aligned nothrow [], std::allocator) are secret (every build variant)" {
	local v c
	for v in "${VARIANTS[@]}"; do
		next_run
		start_paused "$TAGS" "$RT_BIN/$v/tailout_prog" pause "${CXX_CASES[@]}" plain
		for c in "${CXX_CASES[@]}"; do
			assert_lives_secret "$c"
		done
		assert_lives_ordinary plain
	done
}

@test "tailout: a tagged C library's tail calls into wcsdup, __strdup, __strndup, vasprintf, getline, get_current_dir_name, getcwd, getdelim, asprintf, scandir are secret (every build variant)" {
	local v c
	for v in "${VARIANTS[@]}"; do
		next_run
		start_paused "$TAGS" "$RT_BIN/$v/tailout_prog" pause "${C_CASES[@]}" plain
		for c in "${C_CASES[@]}"; do
			assert_lives_secret "$c"
		done
		assert_lives_ordinary plain
	done
}

@test "tailout: the same libraries untagged: every block is ordinary (control)" {
	local v c
	for v in o2 clang; do
		next_run
		start_paused SECRETMEM_LIBS=libother.so "$RT_BIN/$v/tailout_prog" pause \
			"${CXX_CASES[@]}" "${C_CASES[@]}"
		for c in "${CXX_CASES[@]}" "${C_CASES[@]}"; do
			assert_lives_ordinary "$c"
		done
	done
}

@test "tailout: a tagged C++ plugin dlopened (RTLD_LAZY, RTLD_LOCAL) by a C program: libstdc++ comes later, in the plugin's scope only; its tail calls are secret" {
	local v c
	for v in o2 noplt lto clang; do
		next_run
		start_paused "$TAGS" "$RT_BIN/$v/tailout_prog_dl" pause open "${CXX_CASES[@]}" plain
		for c in "${CXX_CASES[@]}"; do
			assert_lives_secret "$c"
		done
		assert_lives_ordinary plain
	done
	# the C program has no libstdc++ until the plugin: the shim does not need it
	next_run
	start_paused "$TAGS" "$RT_BIN/o2/tailout_prog_dl" pause wcsdup plain
	assert_lives_secret wcsdup
	assert_lives_ordinary plain
	! grep -q 'libstdc++' "/proc/$RT_PID/maps" || fail "libstdc++ is loaded"
}

@test "tailout: bad_alloc thrown by operator new through the shim's wrapper is caught, and the scope it ran in has ended: the program's next allocation is ordinary" {
	local v
	for v in "${VARIANTS[@]}"; do
		next_run
		start_paused "$TAGS" "$RT_BIN/$v/tailout_prog" pause throw new nothrow newnt plain
		assert_line "throw caught=1"
		assert_line "nothrow null=1"
		assert_lives_ordinary after_throw
		assert_lives_ordinary after_nothrow
		assert_lives_secret new
		assert_lives_secret newnt
		assert_lives_ordinary plain
	done
	# the same in the dlopened plugin (wrappers bound at the first call)
	next_run
	start_paused "$TAGS" "$RT_BIN/o2/tailout_prog_dl" pause open throw new plain
	assert_line "throw caught=1"
	assert_lives_ordinary after_throw
	assert_lives_secret new
	assert_lives_ordinary plain
}

@test "tailout: a tagged library that gets malloc, realloc and free from dlsym (RTLD_DEFAULT with a tail call through the pointer, RTLD_NEXT: glibc's): its blocks are secret, and its free frees both kinds" {
	local v c
	for v in "${VARIANTS[@]}"; do
		next_run
		start_paused "$TAGS" "$RT_BIN/$v/tailout_prog" pause dsym_default dsym_next dsym_realloc dsym_free plain
		for c in dsym_default dsym_next dsym_realloc; do
			assert_lives_secret "$c"
		done
		assert_line "dsym_free done"
		assert_lives_ordinary plain
	done
	# control: untagged, dlsym gives what it always gave
	next_run
	start_paused SECRETMEM_LIBS=libother.so "$RT_BIN/o2/tailout_prog" pause dsym_default dsym_next dsym_realloc dsym_free
	for c in dsym_default dsym_next dsym_realloc; do
		assert_lives_ordinary "$c"
	done
	assert_line "dsym_free done"
}
