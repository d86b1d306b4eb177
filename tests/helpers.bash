# SPDX-License-Identifier: MIT
# Common set-up of the Bats tests. tests/bats-env.sh (made by configure) exports
#   SHIM              the built libsecretmem-preload.so
#   abs_top_builddir  where the C test programs were built (tests/...)
#   abs_top_srcdir    the source tree
# Each .bats file does `load helpers` and calls sm_setup from its setup().

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# run -N and run --separate-stderr
bats_require_minimum_version 1.5.0

# Exit status of a program stopped before main by a bad variable (EX_CONFIG).
SM_EXIT_CONFIG=78
SM_PREFIX='libsecretmem-preload: '
JEMALLOC=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}

sm_setup() {
	[[ -n ${SHIM:-} ]] ||
		fail "SHIM is not set: run the tests through tests/bats-env.sh (make check)"
	[[ -f $SHIM ]] ||
		fail "SHIM=$SHIM does not exist: build the library first (make)"
	[[ -n ${abs_top_builddir:-} ]] ||
		fail "abs_top_builddir is not set: run the tests through tests/bats-env.sh"
	# shellcheck disable=SC2034 # used by the .bats files
	TESTS_BIN=$abs_top_builddir/tests
	ALLFUNCS=$TESTS_BIN/allfuncs
	CXXPROG=$TESTS_BIN/cxxprog
	THREADS=$TESTS_BIN/threads
	# The tests set what they mean to; nothing from the caller's environment.
	local v
	for v in "${!SECRETMEM_@}"; do
		unset "$v"
	done
	unset LD_PRELOAD MALLOC_CONF
	export LC_ALL=C
}

# Fails unless the named test programs were built.
sm_need_programs() {
	local p
	for p in "$@"; do
		[[ -x $p ]] || fail "$p is missing: build the test programs first (make check)"
	done
}

sm_need_jemalloc() {
	[[ -f $JEMALLOC ]] || fail "$JEMALLOC is missing: install libjemalloc2"
}

# The preload list for a run with the shim in front of BASE (another allocator or
# nothing).
sm_preload() {
	echo "$SHIM${1:+ $1}"
}

# assert_shim_loaded [--base LIB] [VAR=VALUE...] CMD...: proves that LD_PRELOAD really puts the shim
# into CMD's process (a preload that the loader skips, with only a warning, would make
# every comparison pass): with a bad SECRETMEM_LOG the program must stop before main
# with the shim's message.
assert_shim_loaded() {
	local base='' vars=()
	while (($#)); do
		case $1 in
		--base) base=$2; shift 2 ;;
		*=*) vars+=("$1"); shift ;;
		*) break ;;
		esac
	done
	# SECRETMEM_LOG is the last variable read, so the VAR=VALUE settings (which
	# must be valid) are read first.
	run --separate-stderr env LD_PRELOAD="$(sm_preload "$base")" "${vars[@]}" \
		SECRETMEM_LOG=bogus "$@"
	if ((status != SM_EXIT_CONFIG)) || [[ $stderr != "${SM_PREFIX}SECRETMEM_LOG="* ]]; then
		fail "the shim is not loaded into '$*': a bad SECRETMEM_LOG gave status $status," \
			"stderr: $stderr"
	fi
}

# assert_transparent [--base LIB] [--ignore-stderr] [VAR=VALUE...] [--] CMD...
# Runs CMD (in an environment with the VAR=VALUE settings) without the shim
# (LD_PRELOAD=LIB, or nothing) and then with it
# (LD_PRELOAD="$SHIM LIB"), and asserts the same stdout, the same exit status and,
# unless --ignore-stderr, the same stderr. Also asserts that the shim was really
# loaded. Afterwards $status, $output and $stderr are those of the run with the shim,
# and $base_status, $base_output and $base_stderr those of the run without.
assert_transparent() {
	local base='' cmp_stderr=1 vars=()
	while (($#)); do
		case $1 in
		--base) base=$2; shift 2 ;;
		--ignore-stderr) cmp_stderr=0; shift ;;
		--) shift; break ;;
		*=*) vars+=("$1"); shift ;;
		*) break ;;
		esac
	done
	assert_shim_loaded --base "$base" "${vars[@]}" "$@"

	run --separate-stderr env LD_PRELOAD="$base" "${vars[@]}" "$@"
	base_status=$status base_output=$output base_stderr=$stderr
	run --separate-stderr env LD_PRELOAD="$(sm_preload "$base")" "${vars[@]}" "$@"

	if [[ $stderr == *"cannot be preloaded"* ]]; then
		fail "the loader refused the preload: $stderr"
	fi
	if [[ $output != "$base_output" ]]; then
		batslib_print_kv_single_or_multi 8 \
			"command" "$*" \
			"without shim" "$base_output" \
			"with shim" "$output" |
			batslib_decorate "stdout differs with the shim" | fail
	fi
	if ((cmp_stderr)) && [[ $stderr != "$base_stderr" ]]; then
		batslib_print_kv_single_or_multi 8 \
			"command" "$*" \
			"without shim" "$base_stderr" \
			"with shim" "$stderr" |
			batslib_decorate "stderr differs with the shim" | fail
	fi
	if ((status != base_status)); then
		batslib_print_kv_single_or_multi 8 \
			"command" "$*" \
			"without shim" "$base_status" \
			"with shim" "$status" \
			"stderr" "$stderr" |
			batslib_decorate "exit status differs with the shim" | fail
	fi
}

