#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The SECRETMEM_* variables: every bad value stops the program before main with
# exit status 78 and exactly one line on stderr, "libsecretmem-preload: ...", naming
# the variable (and, for the fixed words and numbers, what it accepts); every valid
# value is accepted and the program runs.

load helpers

setup() {
	sm_setup
}

# run_shim VAR=VALUE...: /bin/echo MAINRAN under the shim with these settings. Sets
# $status, $output and $stderr_raw (stderr byte for byte, final newline included).
run_shim() {
	local out=$BATS_TEST_TMPDIR/stdout err=$BATS_TEST_TMPDIR/stderr
	status=0
	env LD_PRELOAD="$SHIM" "$@" /bin/echo MAINRAN >"$out" 2>"$err" </dev/null || status=$?
	output=$(cat "$out")
	stderr_raw=$(cat "$err"; printf x)
	stderr_raw=${stderr_raw%x}
}

# The value as the failure messages show it (control characters visible).
shown() {
	printf '%q' "$1"
}

# rejects VAR HINT VALUE...: each VALUE of VAR stops the program before main with one
# line on stderr naming VAR; the line contains HINT (an extended regex: what the
# variable accepts), except for the empty value, whose line says it is empty.
rejects() {
	local var=$1 hint=$2 value body want
	shift 2
	for value in "$@"; do
		run_shim "$var=$value"
		local what="$var=$(shown "$value")"
		((status == SM_EXIT_CONFIG)) ||
			fail "$what: exit status $status, expected $SM_EXIT_CONFIG; stderr: $(shown "$stderr_raw")"
		[[ $output != *MAINRAN* ]] || fail "$what: main ran (stdout: $output)"
		[[ $stderr_raw == *$'\n' ]] ||
			fail "$what: stderr does not end with a newline: $(shown "$stderr_raw")"
		body=${stderr_raw%$'\n'}
		[[ $body != *$'\n'* ]] || fail "$what: stderr has more than one line: $(shown "$stderr_raw")"
		[[ $body != *[[:cntrl:]]* ]] ||
			fail "$what: stderr has a control character: $(shown "$stderr_raw")"
		[[ $body == "$SM_PREFIX"* ]] || fail "$what: stderr does not start with '$SM_PREFIX': $body"
		[[ $body =~ (^|[^A-Z_])${var}([^A-Z_]|$) ]] || fail "$what: the message does not name $var: $body"
		if [[ -z $value ]]; then
			want=empty
		else
			want=$hint
		fi
		[[ $body =~ $want ]] || fail "$what: the message does not say /$want/: $body"
	done
}

# accepts VAR VALUE... [-- VAR2=VALUE2...]: the program runs (exit 0, MAINRAN) with
# each VALUE of VAR, plus the settings after --, and the shim says nothing; and the
# value takes effect: with SECRETMEM_LOG=debug the shim's "options in effect" line
# shows VAR as the library will act on it. That is VALUE itself, or CANON where
# the value is written VALUE=>CANON (sizes in bytes, lists with their canonical
# separators). A value that parsed but was silently dropped fails here.
accepts() {
	local var=$1 arg value canon args=() extra=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		args+=("$1")
		shift
	done
	(($#)) && shift
	extra=("$@")
	for arg in "${args[@]}"; do
		value=${arg%%=>*}
		canon=${arg#*=>}
		run_shim "${extra[@]}" "$var=$value"
		local what="${extra[*]} $var=$(shown "$value")"
		((status == 0)) || fail "$what: exit status $status; stderr: $(shown "$stderr_raw")"
		[[ $output == MAINRAN ]] || fail "$what: main did not run (stdout: $output)"
		[[ -z $stderr_raw || $var == SECRETMEM_LOG || $var == SECRETMEM_STATS ]] ||
			fail "$what: unexpected stderr: $(shown "$stderr_raw")"
		# SECRETMEM_LOG below debug hides the line; its levels are checked by the
		# messages each one lets through (tests/faults.bats, tools.bats).
		[[ $var == SECRETMEM_LOG && $value != debug ]] && continue
		run_shim "${extra[@]}" SECRETMEM_LOG=debug "$var=$value"
		local line
		line=$(grep -F "${SM_PREFIX}options in effect: " <<<"$stderr_raw") ||
			fail "$what: no 'options in effect' line at SECRETMEM_LOG=debug: $(shown "$stderr_raw")"
		[[ " ${line#*options in effect: } " == *" $var=$canon "* ]] ||
			fail "$what: not in effect: expected $var=$canon in: $line"
	done
}

# ---- SECRETMEM_MODE ----

@test "SECRETMEM_MODE: empty, unknown, mixed-case and padded values are rejected" {
	rejects SECRETMEM_MODE 'exclusive, uncached or off' \
		"" Exclusive EXCLUSIVE Off UNCACHED "exclusive " " off" of offf on 1 0 none \
		exclusive,off "exclusive:off" "off=1"
}

@test "SECRETMEM_MODE: values with control characters are rejected" {
	rejects SECRETMEM_MODE 'exclusive, uncached or off' \
		$'off\n' $'off\r' $'\toff' $'of\x1bf' $'exclusive\x7f' $'\n'
}

@test "SECRETMEM_MODE: exclusive, uncached and off are accepted" {
	accepts SECRETMEM_MODE exclusive uncached off
}

# ---- SECRETMEM_LIBS ----

@test "SECRETMEM_LIBS: empty values and empty list entries are rejected" {
	rejects SECRETMEM_LIBS 'empty' \
		"" "a,,b" ",a" "a," "a:" ":a" "a::b" "a:,b" ":" "," "libssl*,"
}

@test "SECRETMEM_LIBS: values with control characters are rejected" {
	rejects SECRETMEM_LIBS 'control|character|not valid' \
		$'libcrypto*\n' $'libcrypto*\r' $'lib\tfoo' $'\x1b[31m'
}

@test "SECRETMEM_LIBS: valid patterns are accepted (read even when SECRETMEM_MODE=off)" {
	accepts SECRETMEM_LIBS 'libcrypto*' '*' 'a:b,c=>a:b:c' '/usr/lib/*/libssl.so.3' 'lib?.so.[0-9]' \
		'echo' -- SECRETMEM_MODE=off
}

@test "SECRETMEM_LIBS: valid patterns route and the program runs" {
	# (a glob that matches nothing is a warning: tests/sites.bats)
	accepts SECRETMEM_LIBS 'libsm-no-such-lib.so' 'libcrypto*:libssl*' 'libcrypto*,libssl*=>libcrypto*:libssl*' '*' 'echo' \
		-- SECRETMEM_LOG=error
}

# ---- SECRETMEM_SITES and SECRETMEM_WRAPPERS ----

BAD_SITES=("" "a,,b" ",a" "a," "lib:" ":func" "fu nc" "1abc" "lib:1abc" "a:b:c" "func("
	"f(int" "a::" "::a" "f<int" "ns::1f" "f() g" "a:::b"
	"f-g" "lib*:" "*" "f,1g" " f" "f ")

@test "SECRETMEM_SITES: empty entries and bad site names are rejected" {
	rejects SECRETMEM_SITES 'empty|symbol' "${BAD_SITES[@]}"
}

@test "SECRETMEM_SITES: values with control characters are rejected" {
	rejects SECRETMEM_SITES 'empty|symbol|control|character|not valid' \
		$'func\n' $'func\r' $'fu\tnc' $'li\nb:func' $'lib\x1b:func'
}

@test "SECRETMEM_SITES: valid sites are accepted (read even when SECRETMEM_MODE=off)" {
	accepts SECRETMEM_SITES func 'lib*:func' 'a,b' '_x.y$z' 'libssl.so.3:SSL_new' \
		'libc.so.6:getline,main,_ZN3foo3barEv' 'KeyStore::load' 'lib*:ns::KeyStore::load(char const*, int) const,f()' \
		-- SECRETMEM_MODE=off
}

@test "SECRETMEM_SITES: valid sites route and the program runs" {
	# (an entry that matches nothing is a warning: tests/sites.bats)
	accepts SECRETMEM_SITES sm_no_such_function 'lib*:func,main' 'echo:main' -- SECRETMEM_LOG=error
}

@test "SECRETMEM_WRAPPERS: empty entries and bad function names are rejected" {
	rejects SECRETMEM_WRAPPERS 'empty|symbol' "${BAD_SITES[@]}"
}

@test "SECRETMEM_WRAPPERS: values with control characters are rejected" {
	rejects SECRETMEM_WRAPPERS 'empty|symbol|control|character|not valid' \
		$'xmalloc\n' $'xmalloc\r' $'x\tmalloc' $'libglib*\n:g_malloc'
}

@test "SECRETMEM_WRAPPERS: valid wrapper lists are accepted" {
	accepts SECRETMEM_WRAPPERS xmalloc 'xmalloc,g_malloc' 'libglib-2.0.so*:g_malloc,xstrdup' '_a$.b'
}

# ---- SECRETMEM_DEPTH ----

@test "SECRETMEM_DEPTH: empty, malformed and out-of-range values are rejected" {
	rejects SECRETMEM_DEPTH '32' \
		"" 33 -1 1x " 1" "1 " +1 0x10 1e1 abc 3.5 100 4294967296 4294967297 \
		99999999999999999999999 18446744073709551616 "1,2"
}

@test "SECRETMEM_DEPTH: values with control characters are rejected" {
	rejects SECRETMEM_DEPTH '32' $'1\n' $'\t1' $'3\r'
}

@test "SECRETMEM_DEPTH: 0 to 32 are accepted" {
	accepts SECRETMEM_DEPTH 0 1 7 31 32 '00=>0' '032=>32'
}

# ---- SECRETMEM_FALLBACK ----

@test "SECRETMEM_FALLBACK: empty, unknown and mixed-case values are rejected" {
	rejects SECRETMEM_FALLBACK 'none, exclusive or mlock' \
		"" None NONE Exclusive MLOCK mlock2 "none " lock off "exclusive,mlock"
}

@test "SECRETMEM_FALLBACK: values with control characters are rejected" {
	rejects SECRETMEM_FALLBACK 'none, exclusive or mlock' $'none\n' $'mlock\r' $'\x01none'
}

@test "SECRETMEM_FALLBACK: none, exclusive and mlock are accepted" {
	accepts SECRETMEM_FALLBACK none exclusive mlock
}

# ---- SECRETMEM_FORK ----

@test "SECRETMEM_FORK: empty, unknown and mixed-case values are rejected" {
	rejects SECRETMEM_FORK 'copy or drop' "" Copy DROP copyy keep " copy" "copy,drop"
}

@test "SECRETMEM_FORK: values with control characters are rejected" {
	rejects SECRETMEM_FORK 'copy or drop' $'copy\t' $'drop\n' $'\x1bcopy'
}

@test "SECRETMEM_FORK: copy and drop are accepted" {
	accepts SECRETMEM_FORK copy drop
}

# ---- SECRETMEM_MAX ----

@test "SECRETMEM_MAX: empty, malformed, too small and too large sizes are rejected" {
	rejects SECRETMEM_MAX 'K.*M.*G' \
		"" 0 0K 4095 1T 1k 4m 4KB 4KK " 4K" "4K " -4K +4K 4.5M M K 0x1000 1e6 4096B \
		99999999999999999999G 99999999999999999999 17179869184G 18014398509481984M \
		18446744073709551616 "64M,1G"
}

@test "SECRETMEM_MAX: values with control characters are rejected" {
	rejects SECRETMEM_MAX 'K.*M.*G' $'64M\n' $'\t64M' $'4K\r'
}

@test "SECRETMEM_MAX: sizes from 4K up are accepted" {
	accepts SECRETMEM_MAX '64M=>67108864' '4K=>4096' 4096 4097 '1G=>1073741824' '1M=>1048576' 8388608 \
		'17179869183G=>18446744072635809792' '16777215M=>17592184995840' '004K=>4096'
}

# ---- SECRETMEM_STATS ----

@test "SECRETMEM_STATS: an empty value is rejected" {
	rejects SECRETMEM_STATS 'empty' ""
}

@test "SECRETMEM_STATS: values with control characters are rejected" {
	rejects SECRETMEM_STATS 'control|character|not valid' \
		$'1\n' $'/tmp/stats\n.%p' $'stats\r' $'\x1b]0;title\x07'
}

@test "SECRETMEM_STATS: 1, 0 and a file path are accepted" {
	accepts SECRETMEM_STATS '1=>stderr' '0=>off' "$BATS_TEST_TMPDIR/stats.%p"
}

# ---- SECRETMEM_LOG ----

@test "SECRETMEM_LOG: empty, unknown and mixed-case values are rejected" {
	rejects SECRETMEM_LOG 'error, warn, info or debug' \
		"" Debug DEBUG Warn warning trace 0 3 "debug " "info,debug" none
}

@test "SECRETMEM_LOG: values with control characters are rejected" {
	rejects SECRETMEM_LOG 'error, warn, info or debug' $'debug\n' $'\rwarn' $'in\x7ffo'
}

@test "SECRETMEM_LOG: error, warn, info and debug are accepted" {
	accepts SECRETMEM_LOG error warn info debug
}

# ---- several variables ----

@test "several bad variables still give exactly one line" {
	run_shim SECRETMEM_MODE=bogus SECRETMEM_DEPTH=99 SECRETMEM_LOG=loud SECRETMEM_MAX=1
	((status == SM_EXIT_CONFIG)) || fail "exit status $status"
	assert_equal "$output" ""
	assert_equal "${stderr_raw//[^$'\n']/}" $'\n'
	[[ $stderr_raw == "$SM_PREFIX"SECRETMEM_* ]] || fail "stderr: $stderr_raw"
}

@test "a long bad value is shortened to keep the message on one short line" {
	local long
	long=$(printf 'x%.0s' {1..5000})
	rejects SECRETMEM_MODE 'exclusive, uncached or off' "$long" "$long"$'\n'"$long"
	((${#stderr_raw} < 300)) || fail "the message is ${#stderr_raw} bytes long"
}

@test "a bad value of one variable is reported even when the others are valid" {
	run_shim SECRETMEM_MODE=off SECRETMEM_LOG=debug SECRETMEM_MAX=64M SECRETMEM_DEPTH=3 \
		SECRETMEM_FORK=drop SECRETMEM_FALLBACK=mlock SECRETMEM_WRAPPERS=xmalloc SECRETMEM_STATS=0 \
		SECRETMEM_SITES=a,1b
	((status == SM_EXIT_CONFIG)) || fail "exit status $status"
	refute [ -n "$output" ]
	[[ $stderr_raw == "${SM_PREFIX}SECRETMEM_SITES="* ]] || fail "stderr: $stderr_raw"
}

@test "every variable valid at once: the program runs" {
	run_shim SECRETMEM_MODE=off SECRETMEM_LIBS='libcrypto*:libssl*' SECRETMEM_SITES=main \
		SECRETMEM_WRAPPERS=xmalloc,g_malloc SECRETMEM_DEPTH=32 SECRETMEM_FALLBACK=mlock \
		SECRETMEM_FORK=drop SECRETMEM_MAX=64M SECRETMEM_STATS=0 SECRETMEM_LOG=error
	assert_equal "$status" 0
	assert_equal "$output" MAINRAN
	assert_equal "$stderr_raw" ""
}

@test "the program's own exit status and output pass through with valid options" {
	run env LD_PRELOAD="$SHIM" SECRETMEM_MAX=4K SECRETMEM_DEPTH=0 SECRETMEM_LOG=debug \
		sh -c 'echo out; echo err >&2; exit 7'
	assert_failure 7
	assert_line out
	assert_line err
}
