#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The shim is never the reason a program hangs or crashes, and never loses track of
# what the loader did: fork while another thread is inside the loader, dlopen and
# dlclose racing from several threads, glibc's own unloads of iconv modules, a
# library that dlopens its neighbour through its RUNPATH, thread exit with secret
# per-thread buffers, and an interior free of freed secret memory.
#
# The probes (tests/crash_prog.c, crash_lib.c, crash_opener.c, crash_walk.c) are
# built by make (Makefile.am) the way distributions build: -O2 -g, tail calls, inlining and ICF
# allowed; the RUNPATH and walk cases also with -fno-plt, -O3 -flto and clang (and
# the walk with frame pointers and -O0).

load helpers

setup_file() {
	: "${abs_top_srcdir:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
	CR=$BATS_FILE_TMPDIR/bin
	export CR
	mkdir -p "$CR/op/sub"
	# built by make (Makefile.am), copied into the layouts the cases need
	local t=$abs_top_builddir/tests f v
	for f in crash_prog libcrashT.so libcrashU.so libcrashneighbour.so; do
		[[ -f $t/$f ]] || { echo "tests/$f is missing: build the test programs first (make check)" >&2; return 1; }
	done
	cp -p "$t/crash_prog" "$t/libcrashT.so" "$t/libcrashU.so" "$CR/" &&
		cp -p "$t/libcrashneighbour.so" "$CR/op/sub/" || return 1
	for v in o2 fp o0 lto noplt clang; do
		[[ $v != clang || -n ${CLANG:-} ]] || continue
		cp -p "$t/crash_walk.$v" "$CR/walk-$v" || return 1
	done
	for v in o2 noplt lto clang; do
		[[ $v != clang || -n ${CLANG:-} ]] || continue
		mkdir -p "$CR/op/$v"
		ln -sf ../sub "$CR/op/$v/sub"
		cp -p "$t/crash/$v/libcrashopener.so" "$CR/op/$v/" || return 1
	done
}

setup() {
	sm_setup
	cd "$CR" || fail "no $CR"
}

# crash [VAR=VALUE...] ARGS...: the probe under the shim, bounded in time.
crash() {
	local vars=()
	while [[ $1 == *=* ]]; do
		vars+=("$1")
		shift
	done
	timeout -k 5 120 env LD_PRELOAD="$SHIM" "${vars[@]}" ./crash_prog "$@"
}

# field NAME: the value of NAME=... in $output.
field() {
	sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$output" | tail -1
}

# ---- fork while another thread is inside the loader ----

# A thread dlopens, calls and dlcloses the tagged plugin in a loop while the main
# thread forks; each child asprintfs (malloc from libc: a look-through walk) and
# exits. A child blocked on a lock the fork left held is killed after 2 s.
fork_storm() {
	run -0 crash "$@" fork ./libcrashT.so 40
	[[ $output == *"children=40 "* ]] || fail "probe: $output"
	assert_equal "$(field hung)" 0
	assert_equal "$(field failed)" 0
}

@test "fork storm: no child hangs (walks to the call site through libc)" {
	fork_storm SECRETMEM_LIBS=libcrashT.so
}

@test "fork storm: no child hangs with every call walked (SECRETMEM_DEPTH)" {
	fork_storm SECRETMEM_LIBS=libcrashT.so SECRETMEM_DEPTH=4
}

@test "fork storm: the children's asprintf is secret through libc when the program is tagged" {
	fork_storm SECRETMEM_LIBS=libcrashT.so:crash_prog CRASH_EXPECT=secret
	# the control: untagged, the same check fails in every child
	run -0 crash SECRETMEM_LIBS=libcrashT.so CRASH_EXPECT=secret fork ./libcrashT.so 5
	assert_equal "$(field failed)" 5
}

# ---- dlopen and dlclose racing ----

@test "tagged and untagged copies of one library loaded and unloaded by 3 threads: each block where its copy says" {
	run -0 crash SECRETMEM_LIBS=libcrashT.so copies ./libcrashT.so ./libcrashU.so 3 20000
	local tagged untagged
	tagged=$(field tagged) untagged=$(field untagged)
	((tagged > 100000 && untagged > 100000)) || fail "too few blocks: $output"
	assert_equal "$(field wrong_tagged)" 0
	assert_equal "$(field wrong_untagged)" 0
	# the control: with no rule the tagged copy's blocks are all wrong
	run -0 crash copies ./libcrashT.so ./libcrashU.so 1 200
	(($(field wrong_tagged) == $(field tagged))) || fail "control: $output"
}

@test "glibc unloads iconv modules on its own; a tagged library later at the same address gets secret memory" {
	run -0 crash SECRETMEM_LIBS=libcrashT.so gconv ./libcrashT.so 20
	(($(field reused) > 0)) || skip "the tagged library never landed where a gconv module was: $output"
	assert_equal "$(field wrong)" 0
	# the control: untagged, the same check fails every round
	run -0 crash SECRETMEM_LIBS=libnothing.so gconv ./libcrashT.so 3
	assert_equal "$(field wrong)" 3
}

# ---- dlopen's caller is still the caller ----

runpath_case() {
	[[ -f op/$1/libcrashopener.so ]] || skip "no $1 build (clang missing?)"
	run -0 crash "${@:2}" runpath "$CR/op/$1/libcrashopener.so"
	assert_output --partial "opener_dlopen=1 opener_dlmopen=1"
	# the control: from the program, which has no RUNPATH, the bare name fails
	assert_output --partial "main_dlopen=0"
	# and the library's dlopen and dlmopen were the shim's
	run -0 env LD_DEBUG=bindings LD_PRELOAD="$SHIM" ./crash_prog runpath "$CR/op/$1/libcrashopener.so"
	local b
	for b in dlopen dlmopen; do
		grep -q "binding file .*op/$1/libcrashopener.so .* to .*libsecretmem-preload.so .*symbol \`$b'" <<<"$output" ||
			fail "$b of the opener is not the shim's"
	done
}

@test "a library with RUNPATH=\$ORIGIN/sub dlopens and dlmopens its neighbour by bare name (-O2)" {
	runpath_case o2 SECRETMEM_LIBS=libcrashT.so
	runpath_case o2
}

@test "a library with RUNPATH=\$ORIGIN/sub dlopens its neighbour by bare name (-fno-plt)" {
	runpath_case noplt SECRETMEM_LIBS=libcrashT.so
}

@test "a library with RUNPATH=\$ORIGIN/sub dlopens its neighbour by bare name (-O3 -flto)" {
	runpath_case lto SECRETMEM_LIBS=libcrashT.so
}

@test "a library with RUNPATH=\$ORIGIN/sub dlopens its neighbour by bare name (clang)" {
	runpath_case clang SECRETMEM_LIBS=libcrashT.so
}

@test "dlmopen of a tagged library into a new namespace: its blocks are ordinary there, and a warning says so; LM_ID_BASE gets none" {
	run -0 --separate-stderr crash SECRETMEM_LIBS=libcrashT.so newns ./libcrashT.so
	assert_output "newns_secret=0"
	[[ $stderr == *"dlmopen(./libcrashT.so) into a namespace of its own: the library and what it loads there use that namespace's C library, which the shim does not serve; nothing they allocate is secret"* ]] ||
		fail "no warning: $stderr"
	run -0 --separate-stderr crash SECRETMEM_LIBS=libcrashT.so runpath "$CR/op/o2/libcrashopener.so"
	[[ $stderr != *"namespace of its own"* ]] || fail "LM_ID_BASE warned: $stderr"
}

# ---- the look-through walk through frames of every kind ----

@test "look-through walk: asprintf in a named function is secret, however the program was built" {
	local w n=0
	for w in walk-*; do
		n=$((n + 1))
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=key_site "./$w" plain
		[[ $output == secret=1 ]] || fail "$w plain: $output"
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=key_site "./$w" alloca
		[[ $output == secret=1 ]] || fail "$w below an alloca frame: $output"
		# the control: named nothing, the same block is ordinary
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=nothing_here SECRETMEM_LOG=error "./$w" plain
		[[ $output == secret=0 ]] || fail "$w control: $output"
	done
	((n >= 5)) || fail "only $n builds"
}

@test "look-through walk through a signal frame (SECRETMEM_DEPTH reaches the function that raised it)" {
	local w
	for w in walk-*; do
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=key_site SECRETMEM_DEPTH=4 "./$w" signal
		[[ $output == secret=1 ]] || fail "$w: $output"
		# the control: without the depth the handler alone is the call site
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_SITES=key_site "./$w" signal
		[[ $output == secret=0 ]] || fail "$w control: $output"
	done
}

# ---- thread exit ----

@test "workers with secret strsignal/strerror buffers exit: no crash, no hang at exit, report written" {
	run -0 --separate-stderr crash SECRETMEM_LIBS='*' SECRETMEM_STATS=1 threadexit 50 8
	assert_equal "$(field bad)" 0
	# the case is exercised: both per-thread buffers of every worker were secret
	assert_equal "$(field secret_buffers)" 800
	[[ $stderr == *"${SM_PREFIX}statistics of process"* ]] || fail "no report: $stderr"
}

# ---- misuse ----

@test "free inside an already freed large block: SIGABRT naming it" {
	run -134 --separate-stderr crash SECRETMEM_LIBS='*' interior 4096
	assert_output "secret=1"
	[[ $stderr == *"${SM_PREFIX}free(): invalid pointer 0x"*" (inside freed secret memory: an address inside a freed block, or a block freed twice)"* ]] ||
		fail "stderr: $stderr"
	# its start, freed again, is a double free
	run -134 --separate-stderr crash SECRETMEM_LIBS='*' interior 0
	[[ $stderr == *"${SM_PREFIX}free(): double free of secret block 0x"* ]] || fail "stderr: $stderr"
}

# ---- dlsym ----

@test "dlsym through the shim's hook: RTLD_NEXT still means 'after the caller'" {
	cp -p "$abs_top_builddir/tests/dlsym_next" "$BATS_TEST_TMPDIR/dlsym_next"
	run -0 "$BATS_TEST_TMPDIR/dlsym_next"
	assert_line "malloc from libc.so.6"
	assert_line "puts from libc.so.6"
	run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=libz.so.1 "$BATS_TEST_TMPDIR/dlsym_next"
	# from the program, the next malloc is the shim's (first in LD_PRELOAD), the next
	# puts libc's: what glibc says for the program, not for the shim
	assert_line "malloc from libsecretmem-preload.so"
	assert_line "puts from libc.so.6"
	assert_line "zlibVersion found"
}
