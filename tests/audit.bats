#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# secretmem-audit (tools/secretmem-audit.in): on probes with a known answer (a key
# copied by akey_load() into a block of its own, in libaudit_key.so), built as
# distributions build (gcc -O2 -g; clang -O2 -g; gcc -O3 -flto -fno-plt), it must
# name that function as the call site, print a rule that reaches it, and --verify
# must find no readable copy from outside; the controls (the key wiped, a copy on
# the stack) must report no copy, and a failed verification. Then real programs:
# openssl s_server, stunnel4 and wget, where the tool must find on its own a rule
# that verifies.

load helpers

setup_file() {
	BIN=$BATS_FILE_TMPDIR/bin
	mkdir -p "$BIN"
	local src=$abs_top_srcdir/tests v cc flags
	for v in gcc clang lto; do
		case $v in
		gcc) cc=gcc flags='-O2 -g' ;;
		clang) cc=clang flags='-O2 -g' ;;
		lto) cc=gcc flags='-O3 -flto -fno-plt -g' ;;
		esac
		command -v "$cc" >/dev/null || continue
		mkdir -p "$BIN/$v"
		$cc $flags -fPIC -shared -o "$BIN/$v/libaudit_key.so" "$src/audit_key.c" \
			-Wl,-soname,libaudit_key.so || return 1
		$cc $flags -o "$BIN/$v/audit_probe" "$src/audit_probe.c" -L"$BIN/$v" -laudit_key \
			-Wl,-rpath,"$BIN/$v" || return 1
	done
	head -c 32 /dev/urandom >"$BATS_FILE_TMPDIR/key.bin"
	KEYHEX=$(xxd -p -c 64 "$BATS_FILE_TMPDIR/key.bin")
	export BIN KEYHEX
}

setup() {
	sm_setup
	AUDIT=$abs_top_builddir/tools/secretmem-audit
	KEY=$BATS_FILE_TMPDIR/key.bin
	AUDIT_PID=
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	if [[ -n ${AUDIT_PID:-} ]]; then
		kill "$AUDIT_PID" 2>/dev/null || true
		wait "$AUDIT_PID" 2>/dev/null || true
	fi
}

# The key's block is found at exit, akey_load is its call site, the rule names
# the library, and it verifies.
probe_case() {
	local v=$1
	[[ -x $BIN/$v/audit_probe ]] || skip "no $v build"
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" --verify -- "$BIN/$v/audit_probe" "$KEY"
	assert_line --regexp '^copy 1: process [0-9]+ \(audit_probe\), live block 0x[0-9a-f]+, 64 bytes, ordinary memory \(\[heap\]\), at exit$'
	refute_line --regexp '^copy 2:'
	assert_line --regexp '^    akey_load\+0x[0-9a-f]+ \(.*/libaudit_key\.so\)  <- call site$'
	assert_line 'verify: OK: no readable copy in 1 process(es); 524288 bytes of secret memory unreadable from outside' ||
		assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libaudit_key.so*' --"
	# the program's own output and status go through
	assert_line --regexp '^probe: [0-9a-f]{2}$'
	[[ $stderr == *"secretmem-audit: audit: scanned process "*" (audit_probe) at exit"* ]] ||
		fail "no progress on stderr: $stderr"
}

@test "audit: gcc -O2 -g probe: akey_load is the call site, the rule verifies" {
	probe_case gcc
}

@test "audit: clang -O2 -g probe: akey_load is the call site, the rule verifies" {
	probe_case clang
}

@test "audit: gcc -O3 -flto -fno-plt probe: akey_load is the call site, the rule verifies" {
	probe_case lto
}

@test "audit: the rule it prints protects the probe, as root sees it (a scan from outside)" {
	# what the rule does, checked without the tool: the block is secret
	local rule
	run --separate-stderr -0 "$AUDIT" --quiet --hex "$KEYHEX" -- "$BIN/gcc/audit_probe" "$KEY"
	rule=${lines[-1]#rule: secretmem-run }
	rule=${rule% --}
	[[ $rule == "--lib 'libaudit_key.so*'" ]] || fail "rule: $rule"
	"$abs_top_builddir/tools/secretmem-run" --lib 'libaudit_key.so*' -- "$BIN/gcc/audit_probe" "$KEY" sleep >/dev/null &
	AUDIT_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '/secretmem' "/proc/$AUDIT_PID/maps" 2>/dev/null && break
		sleep 0.05
	done
	sleep 0.2
	run -0 python3 - "$AUDIT_PID" "$KEYHEX" <<'PY'
import sys, re
pid, key = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
found = secret = 0
mem = open('/proc/%d/mem' % pid, 'rb', 0)
for line in open('/proc/%d/maps' % pid):
    f = line.split()
    lo, hi = (int(x, 16) for x in f[0].split('-'))
    if f[1][0] != 'r' or line.rstrip().endswith(('[vvar]', '[vsyscall]')):
        continue
    try:
        mem.seek(lo)
        data = mem.read(hi - lo)
    except OSError:
        secret += '/secretmem' in line
        continue
    found += key in data
print('found', found, 'secret-unreadable', secret)
PY
	assert_output 'found 0 secret-unreadable 1'
}

@test "audit: control: the key wiped before exit, no copy and an empty rule" {
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" -- "$BIN/gcc/audit_probe" "$KEY" wipe
	assert_line 'no copy of the key found'
	refute_line --regexp '^copy '
	assert_equal "${lines[-1]}" "rule: secretmem-run --"
}

@test "audit: control: a copy on the stack is unreachable and --verify fails" {
	run --separate-stderr -1 "$AUDIT" --hex "$KEYHEX" --verify -- "$BIN/gcc/audit_probe" "$KEY" stack
	assert_line --regexp '^copy 1: process [0-9]+ \(audit_probe\), stack at 0x[0-9a-f]+ \(\[stack\]\), at exit$'
	assert_line --regexp '^unreachable: process [0-9]+ stack at 0x[0-9a-f]+ \(\[stack\]\): no allocation holds it'
	assert_line --regexp '^verify: READABLE: process [0-9]+ \(audit_probe\) at 0x[0-9a-f]+ \(\[stack\]\): hex #1, at exit$'
	assert_line 'verify: FAILED: 1 readable copies under the rule'
}

@test "audit: a forked child's copy, in a block its parent allocated before the fork" {
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" --verify -- "$BIN/gcc/audit_probe" "$KEY" fork
	assert_line --regexp '^copy 1: process [0-9]+ \(audit_probe\), live block 0x[0-9a-f]+, 64 bytes, ordinary memory \(\[heap\]\), at exit$'
	refute_line --regexp '^copy 2:'
	assert_line --regexp '^    akey_load\+0x[0-9a-f]+ \(.*/libaudit_key\.so\)  <- call site$'
	assert_line --regexp '^secretmem-audit: .*: exit status 0; scanned 2 process\(es\)'
	assert_line --regexp '^verify: OK: no readable copy in 2 process\(es\)'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libaudit_key.so*' --"
}

@test "audit: a stdio buffer holding the key file is attributed to fread's caller" {
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" --verify -- "$BIN/gcc/audit_probe" "$KEY" stdio
	assert_line --regexp '^copy [12]: process [0-9]+ \(audit_probe\), stdio buffer 0x[0-9a-f]+, 4096 bytes'
	assert_line --regexp '^    main\+0x[0-9a-f]+ \(.*/audit_probe\)  <- call site$'
	assert_line --regexp '^verify: OK'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib audit_probe --lib 'libaudit_key.so*' --"
}

@test "audit: --after scans a running program, then stops it with SIGTERM" {
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" --after 1 -- "$BIN/gcc/audit_probe" "$KEY" sleep
	assert_line --regexp '^secretmem-audit: .*: exit status -15; scanned 1 process\(es\)'
	assert_line --regexp '^copy 1: process [0-9]+ \(audit_probe\), live block 0x[0-9a-f]+, 64 bytes, ordinary memory \(\[heap\]\), after 1s$'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libaudit_key.so*' --"
}

@test "audit: SIGUSR2 scans now; SIGTERM stops the program and reports" {
	"$AUDIT" --hex "$KEYHEX" --json -- "$BIN/gcc/audit_probe" "$KEY" sleep >out.json 2>err.txt &
	AUDIT_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$AUDIT_PID" audit_probe >/dev/null && grep -q "/tmp/smaudit" /proc/$(pgrep -P "$AUDIT_PID" audit_probe)/maps 2>/dev/null && break
		sleep 0.05
	done
	kill -USR2 "$AUDIT_PID"
	for ((i = 0; i < 100; i++)); do
		grep -q 'on SIGUSR2' err.txt && break
		sleep 0.05
	done
	kill -TERM "$AUDIT_PID"
	wait "$AUDIT_PID"
	AUDIT_PID=
	run -0 python3 -c '
import json, sys
r = json.load(open("out.json"))
c = r["copies"]
assert len(c) == 1, c
assert c[0]["when"] == ["on SIGUSR2"], c
assert c[0]["call_site"].startswith("akey_load+"), c
assert r["rule"] == {"libs": ["libaudit_key.so*"], "sites": [], "wrappers": [], "depth": 0, "secret_allocations": 1}, r["rule"]
assert r["unreachable"] == [], r
print("ok")'
}

@test "audit: bad usage is refused with a clear message" {
	run --separate-stderr -2 "$AUDIT" -- true
	assert_equal "$stderr" 'secretmem-audit: nothing to look for: give --key FILE or --hex HEX (see --help)'
	run --separate-stderr -2 "$AUDIT" --hex 12zz -- true
	[[ $stderr == 'secretmem-audit: --hex "12zz" is not valid'* ]] || fail "$stderr"
	run --separate-stderr -2 "$AUDIT" --key /nonexistent -- true
	[[ $stderr == 'secretmem-audit: cannot read --key /nonexistent: No such file or directory' ]] || fail "$stderr"
	run --separate-stderr -2 "$AUDIT" --key "$KEY" -- true
	[[ $stderr == "secretmem-audit: --key $KEY: openssl cannot read it as a private key"* ]] || fail "$stderr"
	run --separate-stderr -2 "$AUDIT" --hex "$KEYHEX" --after 0 -- true
	[[ $stderr == 'secretmem-audit: --after "0.0" is not valid'* ]] || fail "$stderr"
	run --separate-stderr -2 "$AUDIT" --hex "$KEYHEX"
	assert_equal "$stderr" 'secretmem-audit: no command to run (see --help)'
	run --separate-stderr -127 "$AUDIT" --hex "$KEYHEX" -- /nonexistent/prog
	[[ $stderr == *'secretmem-audit: cannot run /nonexistent/prog: No such file or directory'* ]] || fail "$stderr"
}
