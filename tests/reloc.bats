#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A tagged object's own calls into the allocation API are secret however they got
# there: a tail call (`jmp malloc@plt`, what -O2 makes of `return malloc(n)`), a
# call through the GOT (-fno-plt), after -O3 -flto or clang, through a pointer the
# object took, lazily bound or bound at load, and under RTLD_DEEPBIND, where the
# loader binds the object's malloc and free to glibc's directly. The shim points
# the object's own relocations at its secret entry points (src/reloc.c).
#
# Every probe is built by make (Makefile.am) as distributions build (-O2 -g, tail calls allowed). Each
# block is checked from outside: its /proc/PID/maps line (/secretmem), and that
# /proc/PID/mem and process_vm_readv cannot read it, while the control (the same
# library untagged) reads back in full.

load helpers
load routing-helpers

# The library built in each way a distribution might build it, each as
# $RT_BIN/VARIANT/libreloc.so (one soname: the linked program finds it by
# LD_LIBRARY_PATH).
VARIANTS=(o2 noplt lto clang bindnow)

setup_file() {
	rt_build memread
	[[ -n ${CLANG:-} ]] || { echo "clang is needed (apt-get install clang)" >&2; return 1; }
	# built by make (Makefile.am): o2 -O2 -g, noplt -O2 -g -fno-plt, lto -O3 -flto -g,
	# clang -O2 -g, bindnow -O2 -g -Wl,-z,now, ann and ann_clang -O2 -g -DANNOTATED
	local v t=$abs_top_builddir/tests/reloc
	for v in o2 noplt lto clang bindnow ann ann_clang; do
		mkdir -p "$RT_BIN/$v"
		cp -p "$t/$v/libreloc.so" "$RT_BIN/$v/" || { echo "cannot find $v (make check)" >&2; return 1; }
	done
	cp -p "$t/reloc_prog" "$t/reloc_prog_dl" "$t/reloc_prog_ssl" "$t/ossl_host" "$t/libosslplugin.so" \
		"$RT_BIN/" || return 1
}

setup() {
	sm_setup
	PROG=$RT_BIN/reloc_prog
	DLPROG=$RT_BIN/reloc_prog_dl
}

teardown() {
	stop_paused
}

# Between two paused runs in one test: the next run must not find the last one's
# READY in the output file.
next_run() {
	stop_paused
	rm -f "$BATS_TEST_TMPDIR/paused.out" "$BATS_TEST_TMPDIR/paused.err"
}

CASES=(alloc calloc realloc strdup strndup aligned ptr table)

@test "reloc: the probes are what the compiler makes of them (tail calls, GOT calls)" {
	# the premise: at -O2 lib_alloc is a jump to malloc's PLT stub, with -fno-plt
	# an indirect jump through the GOT; the return address is the caller's
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/o2/libreloc.so"
	assert_output --regexp '<lib_alloc>:'$'\n''[^'$'\n'']*jmp +[0-9a-f]+ <malloc@plt>'
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/noplt/libreloc.so"
	assert_output --regexp '<lib_alloc>:'$'\n''[^'$'\n'']*jmp +\*0x[0-9a-f]+\(%rip\)'
	run -0 readelf -d "$RT_BIN/bindnow/libreloc.so"
	assert_output --partial 'BIND_NOW'
	# the table of pointers: an absolute relocation against malloc
	run -0 readelf -rW "$RT_BIN/o2/libreloc.so"
	assert_output --regexp 'R_X86_64_64 +0+ malloc'
}

@test "reloc: a tagged library at start-up: its tail calls are secret (every build variant)" {
	local v
	for v in "${VARIANTS[@]}"; do
		start_paused LD_LIBRARY_PATH="$RT_BIN/$v" SECRETMEM_LIBS=libreloc.so "$PROG" pause "${CASES[@]}" plain
		local c
		for c in "${CASES[@]}"; do
			echo "variant $v, case $c"
			assert_lives_secret "$c"
		done
		assert_lives_ordinary plain
		next_run
	done
}

@test "reloc: the same library untagged: its blocks are ordinary (control)" {
	local v
	for v in o2 noplt; do
		# a rule is set (routing runs) but names something else
		start_paused LD_LIBRARY_PATH="$RT_BIN/$v" SECRETMEM_LIBS=libother.so "$PROG" pause "${CASES[@]}" plain
		local c
		for c in alloc calloc aligned ptr table plain; do
			echo "variant $v, case $c"
			assert_lives_ordinary "$c"
		done
		assert_block realloc 0
		assert_block strdup 0
		next_run
	done
}

@test "reloc: a tagged library preloaded after the shim, or dlopened: its tail calls are secret" {
	start_paused LD_PRELOAD="$SHIM $RT_BIN/lto/libreloc.so" SECRETMEM_LIBS=libreloc.so "$DLPROG" pause "${CASES[@]}" plain
	assert_lives_secret alloc
	assert_lives_secret ptr
	assert_lives_ordinary plain
	next_run
	local m
	for m in now lazy; do
		start_paused SECRETMEM_LIBS=libreloc.so "$DLPROG" pause open "$RT_BIN/clang/libreloc.so" $m "${CASES[@]}" plain
		assert_lives_secret alloc
		assert_lives_secret strdup
		assert_lives_secret ptr
		assert_lives_ordinary plain
		next_run
	done
}

@test "reloc: threads allocating through a library while its slots are rewritten" {
	local m
	for m in lazy now deeplazy; do
		run -0 with_shim SECRETMEM_LIBS=libreloc.so "$DLPROG" open "$RT_BIN/o2/libreloc.so" $m threads alloc
		assert_line 'threads done 1'
		assert_block alloc 1
	done
}

@test "reloc: RTLD_DEEPBIND, tagged: its blocks are secret and it frees secret blocks" {
	local m v
	for m in deep deeplazy; do
		for v in o2 noplt; do
			start_paused SECRETMEM_LIBS=libreloc.so "$DLPROG" pause open "$RT_BIN/$v/libreloc.so" $m \
				alloc calloc strdup ptr freesecret plain
			assert_lives_secret alloc
			assert_lives_secret calloc
			assert_lives_secret strdup
			assert_lives_secret ptr
			assert_lives_ordinary plain
			assert_line 'freesecret_block secret=1'
			assert_line 'freesecret done'
			next_run
		done
	done
}

@test "reloc: dlopen and dlclose of a tagged library again and again while another thread allocates (its rescans hold the scan lock at any moment): each load is patched, RTLD_DEEPBIND too" {
	local m v
	for m in now deep; do
		for v in o2 noplt; do
			# before: a load at the old address passed for the old object, its GOT
			# unpatched (lib_strdup's tail call ordinary; under DEEPBIND glibc's
			# free got a secret block: "free(): invalid pointer", SIGABRT)
			run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libreloc.so \
				"$DLPROG" reopen 400 "$RT_BIN/$v/libreloc.so" $m
			assert_line "reopen 400 missed 0 done"
		done
	done
}

@test "reloc: RTLD_DEEPBIND, untagged: its blocks are ordinary and it frees and reallocates secret blocks" {
	local m
	for m in deep deeplazy; do
		run -0 with_shim SECRETMEM_LIBS=libother.so "$DLPROG" open "$RT_BIN/o2/libreloc.so" $m \
			alloc freesecret reallocsecret strdup plain
		assert_block alloc 0
		assert_block strdup 0
		assert_line 'freesecret_block secret=1'
		assert_line 'freesecret done'
		assert_line 'reallocsecret secret=1 same=1'
	done
}

@test "reloc: Debian's libcrypto: OPENSSL_malloc from the program and from libssl is secret" {
	# the premise: CRYPTO_malloc hands the call on with a jump, not a call
	local lib
	lib=$(ldd "$RT_BIN/reloc_prog_ssl" | awk '$1 ~ /^libcrypto\.so/ { print $3 }')
	[[ -f $lib ]] || fail "no libcrypto in ldd $RT_BIN/reloc_prog_ssl"
	run -0 gdb -batch -ex 'disassemble CRYPTO_malloc' "$lib"
	assert_output --regexp 'jmp +(\*|0x[0-9a-f]+ <malloc@plt>)'
	start_paused SECRETMEM_LIBS='libcrypto.so*' "$RT_BIN/reloc_prog_ssl" pause ossl sslbuf sslctx plain
	assert_lives_secret ossl
	assert_lives_secret sslbuf
	assert_lives_secret sslctx
	assert_lives_ordinary plain
	next_run
	# control: libssl tagged instead: the program's OPENSSL_malloc is ordinary
	start_paused SECRETMEM_LIBS='libssl.so*' "$RT_BIN/reloc_prog_ssl" pause ossl plain
	assert_lives_ordinary ossl
	assert_lives_ordinary plain
}

@test "reloc: a program that gives OpenSSL counting allocation functions (CRYPTO_set_mem_functions, as stunnel): what libcrypto allocates through them is secret under a rule for libcrypto alone" {
	start_paused SECRETMEM_LIBS='libcrypto.so*' "$RT_BIN/reloc_prog_ssl" pause hooks plain
	assert_lives_secret hooks # OPENSSL_strdup: libcrypto's CRYPTO_strdup, then the hook
	assert_line "hook_bytes 1" # the program's functions did allocate it
	assert_lives_ordinary plain
	[[ ! -s $RT_ERR ]] || fail "unexpected messages: $(cat "$RT_ERR")"
	next_run
	# a hook that is a site itself stays one (not looked through to the program)
	start_paused SECRETMEM_SITES=hook_malloc "$RT_BIN/reloc_prog_ssl" pause hooks plain
	assert_lives_secret hooks
	assert_lives_ordinary plain
	next_run
	# control: no rule for libcrypto, the hook's block is ordinary
	start_paused SECRETMEM_LIBS='libssl.so*' "$RT_BIN/reloc_prog_ssl" pause hooks plain
	assert_lives_ordinary hooks
}

@test "reloc: a plugin opened RTLD_LOCAL that links libcrypto gives it allocation functions (a tail call, from a host without libcrypto): OpenSSL takes them" {
	run -0 objdump -d --no-show-raw-insn "$RT_BIN/libosslplugin.so"
	assert_output --regexp 'jmp +[0-9a-f]+ <CRYPTO_set_mem_functions@plt>' # the premise
	run -0 "$RT_BIN/ossl_host" "$RT_BIN/libosslplugin.so" # control
	assert_output "set 1"
	run -0 env LD_PRELOAD="$SHIM" "$RT_BIN/ossl_host" "$RT_BIN/libosslplugin.so"
	assert_output "set 1"
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIBS='libcrypto.so*' \
		"$RT_BIN/ossl_host" "$RT_BIN/libosslplugin.so"
	assert_output "set 1"
}

@test "reloc: an annotated dlopened library: its constructor's allocations are secret, no rule set" {
	local v
	for v in ann ann_clang; do
		start_paused "$DLPROG" pause open "$RT_BIN/$v/libreloc.so" now early alloc ptr plain
		assert_lives_secret early
		assert_lives_secret alloc
		assert_lives_secret ptr
		assert_lives_ordinary plain
		next_run
	done
	# control: the same code without the annotation
	start_paused "$DLPROG" pause open "$RT_BIN/o2/libreloc.so" now alloc plain
	assert_lives_ordinary alloc
	assert_lives_ordinary plain
}

@test "reloc: an annotated library linked at start-up: its constructor's allocations are secret" {
	start_paused LD_LIBRARY_PATH="$RT_BIN/ann" "$PROG" pause early alloc plain
	assert_lives_secret early
	assert_lives_secret alloc
	assert_lives_ordinary plain
}

@test "reloc: SECRETMEM_LOG=debug says what was redirected" {
	run -0 --separate-stderr with_shim SECRETMEM_LOG=debug SECRETMEM_LIBS=libreloc.so \
		"$DLPROG" open "$RT_BIN/o2/libreloc.so" deep alloc
	assert_block alloc 1
	[[ $stderr == *"references to the allocation API bound past the shim (RTLD_DEEPBIND) now go to it"* ]] ||
		fail "no deep-bind line: $stderr"
	[[ $stderr == *"references to the allocation API go to secret entry points"* ]] ||
		fail "no secret-entry line: $stderr"
}

# ---- where redirecting would be wrong (found in review) ----

@test "reloc: a tagged non-PIE executable that takes malloc's address leaves untagged libraries ordinary" {
	local d=$BATS_TEST_TMPDIR
	# built by make: libedge.so -O2 -g -fno-plt, canon -O2 -g -no-pie -fno-pic
	cp -p "$abs_top_builddir/tests/reloc/canon/libedge.so" "$abs_top_builddir/tests/reloc/canon/canon" "$d/"
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=canon "$d/canon"
	assert_output "exe secret=1 lib secret=0"
	# the control: the library tagged instead
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libedge.so "$d/canon"
	assert_output "exe secret=0 lib secret=1"
}

@test "reloc: a program with its own malloc: a tagged library's lazy slots still bind to it" {
	local d=$BATS_TEST_TMPDIR
	# built by make: libedge.so and ownalloc -O2 -g
	cp -p "$abs_top_builddir/tests/reloc/ownalloc/libedge.so" "$abs_top_builddir/tests/reloc/ownalloc/ownalloc" "$d/"
	run -0 "$d/ownalloc"
	assert_output "ok secret=0"
	# lazy binding (the default) and bind-now: no abort, the program's allocator serves
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libedge.so "$d/ownalloc"
	assert_output "ok secret=0"
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libedge.so LD_BIND_NOW=1 "$d/ownalloc"
	assert_output "ok secret=0"
}
