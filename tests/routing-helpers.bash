# SPDX-License-Identifier: MIT
# Helpers of routing.bats and tls_keyscan.bats (loaded after helpers.bash): give a
# test file the C test programs and libraries it needs, run them under the shim, and
# check where a block really lives (its /proc/PID/maps line and what another process
# can read of it), not only what the program says.
#
# The probes rt_build names are built by automake (Makefile.am, "Probe programs
# and libraries of the Bats tests"; tests/README.md) with configure's compiler and
# flags; rt_build copies them into $BATS_FILE_TMPDIR/bin, where the tests expect
# them.

: "${abs_top_srcdir:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
RT_SRC="$abs_top_srcdir/tests"

# The flags of Makefile.am's PROBE_CFLAGS, for the one program a test must link
# itself (faults.bats's faults_linked; tests/README.md says why).
RT_CFLAGS=(-O2 -g -fno-optimize-sibling-calls "-I$abs_top_srcdir/include")

# Copies built probes into $RT_BIN (-p: the copy keeps the build's time stamps).
rt_copy() {
	local f
	for f in "$@"; do
		[[ -f $abs_top_builddir/tests/$f ]] ||
			{ echo "tests/$f is missing: build the test programs first (make check)" >&2; return 1; }
		cp -p "$abs_top_builddir/tests/$f" "$RT_BIN/$f" || return 1
	done
}

# rt_probe_variants PROG DIR: the flag variants of a probe make check built
# (tests/PROG.o2, .lto, and .clang where configure found clang; Makefile.am, "Flag
# variants of a probe") as DIR/VARIANT/PROG, each under the program's own name
# for the rules that name it; exports VARIANTS_LIST (read it back in setup).
rt_probe_variants() {
	local prog=$1 dir=$2 v
	local variants=(o2 lto)
	[[ -n ${CLANG:-} ]] && variants+=(clang)
	for v in "${variants[@]}"; do
		mkdir -p "$dir/$v"
		cp -p "$abs_top_builddir/tests/$prog.$v" "$dir/$v/$prog" ||
			{ echo "tests/$prog.$v is missing: build the test programs first (make check)" >&2; return 1; }
	done
	export VARIANTS_LIST="${variants[*]}"
}

# Puts what a test file needs into $BATS_FILE_TMPDIR/bin (call from setup_file).
rt_build() {
	RT_BIN="$BATS_FILE_TMPDIR/bin"
	export RT_BIN
	mkdir -p "$RT_BIN"
	local t
	for t in "$@"; do
		case $t in
		libs) rt_copy libroutetest.so libplain.so libannotated.so ;;
		route_prog | annotated_prog | header_prog | header_prog_nopic | memread | memscan | \
			cxx_route | cxx_replace | arena_prog | seccomp_exec | secret_holder | \
			route_prog_rdynamic | inspect_target)
			rt_copy "$t"
			;;
		route_prog_linked) rt_copy libroutetest.so libannotated.so route_prog_linked ;;
		cxx_plugin) rt_copy libcxxplugin.so cxx_host ;;
		cxx_replace_linked) rt_copy libcxxrepl.so cxx_replace_linked ;;
		*)
			echo "rt_build: unknown target $t" >&2
			return 1
			;;
		esac
	done
}

# with_shim [VAR=VALUE...] PROGRAM [ARGS...]
with_shim() {
	env LD_PRELOAD="$SHIM" "$@"
}

# The block line of NAME in $output must say secret=$2.
assert_block() {
	assert_line --regexp "^$1 secret=$2 addr=0x[0-9a-f]+\$"
}

# ---- a paused program, inspected from outside ----

# start_paused [VAR=VALUE...] PROGRAM pause CASES...: runs it under the shim in the
# background and waits until it has printed its blocks; sets RT_PID (the program),
# RT_OUT (its stdout) and RT_JOB (what teardown must kill).
start_paused() {
	start_paused_under -- "$@"
}

# start_paused_under PREFIX... -- [VAR=VALUE...] PROGRAM ...: the same, with a command
# in front of the shim (a seccomp filter, prlimit, setpriv).
start_paused_under() {
	local pre=()
	while [[ $1 != -- ]]; do
		pre+=("$1")
		shift
	done
	shift
	RT_OUT="$BATS_TEST_TMPDIR/paused.out"
	RT_ERR="$BATS_TEST_TMPDIR/paused.err"
	# Emptied here, not by the background job's redirection: a second start in one
	# test must not see the first program's READY and PID.
	: >"$RT_OUT"
	: >"$RT_ERR"
	timeout 60 "${pre[@]}" env LD_PRELOAD="$SHIM" "$@" >"$RT_OUT" 2>"$RT_ERR" </dev/null 3>&- &
	RT_JOB=$!
	# A deadline, not a count of polls: a loaded machine runs fewer polls.
	local deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		grep -q '^READY$' "$RT_OUT" 2>/dev/null && break
		if ! kill -0 "$RT_JOB" 2>/dev/null; then
			echo "the program ended before READY:" >&2
			cat "$RT_OUT" "$RT_ERR" >&2
			return 1
		fi
		sleep 0.05
	done
	grep -q '^READY$' "$RT_OUT" || { echo "no READY within 30 s" >&2; cat "$RT_OUT" "$RT_ERR" >&2; return 1; }
	RT_PID=$(awk '$1 == "PID" { print $2 }' "$RT_OUT")
	[[ -n $RT_PID ]]
	rt_output
}

# $output and $lines (what the assert_* functions read) from the paused program.
rt_output() {
	output=$(cat "$RT_OUT")
	# shellcheck disable=SC2034 # read by bats-assert's assert_line
	mapfile -t lines <"$RT_OUT"
}

stop_paused() {
	if [[ -n ${RT_JOB:-} ]]; then
		kill "$RT_JOB" 2>/dev/null || true
		wait "$RT_JOB" 2>/dev/null || true
		RT_JOB=
	fi
}

block_addr() {
	awk -v n="$1" '$1 == n { sub("addr=", "", $3); print $3 }' "$RT_OUT"
}

# The /proc/PID/maps line of the mapping that holds ADDR (empty if none).
maps_line_of() {
	local pid=$1 addr=$(($2)) range rest lo hi
	while read -r range rest; do
		lo=$((16#${range%-*}))
		hi=$((16#${range#*-}))
		if ((lo <= addr && addr < hi)); then
			echo "$range $rest"
			return 0
		fi
	done <"/proc/$pid/maps"
}

# The block NAME of the paused program lives in secret memory: the program says so,
# its mapping is /secretmem, and neither /proc/PID/mem nor process_vm_readv reads it.
assert_lives_secret() {
	local name=$1 addr line
	assert_block "$name" 1
	addr=$(block_addr "$name")
	line=$(maps_line_of "$RT_PID" "$addr")
	[[ $line == *" /secretmem (deleted)" ]] ||
		fail "$name at $addr is not in a /secretmem mapping: ${line:-no mapping}"
	run -0 "$RT_BIN/memread" mem "$RT_PID" "$addr" 32
	[[ $output == EIO ]] || fail "$name at $addr: /proc/$RT_PID/mem read gave: $output (expected EIO)"
	run -0 "$RT_BIN/memread" vm "$RT_PID" "$addr" 32
	[[ $output != OK* ]] || fail "$name at $addr: process_vm_readv read it: $output"
	rt_output
}

# The block NAME is ordinary memory, readable from outside with its content
# (CONTENT, default blk:NAME).
assert_lives_ordinary() {
	local name=$1 want=${2:-blk:$1} addr line
	assert_block "$name" 0
	addr=$(block_addr "$name")
	line=$(maps_line_of "$RT_PID" "$addr")
	[[ -n $line && $line != *" /secretmem (deleted)" ]] ||
		fail "$name at $addr: unexpected mapping: ${line:-no mapping}"
	run -0 "$RT_BIN/memread" mem "$RT_PID" "$addr" 64
	[[ $output == "OK $want"* ]] || fail "$name at $addr: /proc/$RT_PID/mem read gave: $output (expected OK $want)"
	run -0 "$RT_BIN/memread" vm "$RT_PID" "$addr" 64
	[[ $output == "OK $want"* ]] || fail "$name at $addr: process_vm_readv gave: $output"
	rt_output
}

# The paused program holds at least one /secretmem mapping (or, with "none", none).
assert_has_secretmem() {
	if [[ ${1:-} == none ]]; then
		! grep -q ' /secretmem (deleted)$' "/proc/$RT_PID/maps" ||
			fail "$RT_PID has /secretmem mappings: $(grep ' /secretmem (deleted)$' "/proc/$RT_PID/maps")"
	else
		grep -q ' /secretmem (deleted)$' "/proc/$RT_PID/maps" ||
			fail "$RT_PID has no /secretmem mapping"
	fi
}
