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
	# The probes are built by automake (Makefile.am: tests/audit/VARIANT/): gcc
	# -O2 -g, gcc -O3 -flto -fno-plt -g, and clang -O2 -g where configure found it;
	# each with its library beside it ($ORIGIN). Copied here so the test owns them.
	local v
	for v in gcc lto clang; do
		[[ -x $abs_top_builddir/tests/audit/$v/audit_probe ]] || {
			[[ $v == clang ]] && continue
			echo "tests/audit/$v/audit_probe is missing: build the test programs first (make check)" >&2
			return 1
		}
		cp -a "$abs_top_builddir/tests/audit/$v" "$BIN/$v"
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

@test "audit: both runs start the command bound at start-up, as secretmem-run does (LD_BIND_NOW=1); an inherited LD_BIND_NOW is kept" {
	# the command records what it was given (the shell ends before a scan, so the
	# verify run reports that nothing could be scanned: exit status 1)
	local cmd='echo "bind=${LD_BIND_NOW-unset}" >>"$0"' log=$BATS_TEST_TMPDIR/bind
	run --separate-stderr -1 "$AUDIT" --quiet --hex "$KEYHEX" --verify -- sh -c "$cmd" "$log"
	run cat "$log"
	assert_output $'bind=1\nbind=1'
	rm -f "$log"
	run --separate-stderr -1 env LD_BIND_NOW=0 "$AUDIT" --quiet --hex "$KEYHEX" --verify -- sh -c "$cmd" "$log"
	run cat "$log"
	assert_output $'bind=0\nbind=0'
}

@test "audit: a statically linked command gets a warning that nothing of it can be recorded or protected; a dynamic one none" {
	printf 'int main(void){return 0;}\n' >"$BATS_TEST_TMPDIR/p.c"
	gcc -O2 -static -o "$BATS_TEST_TMPDIR/st" "$BATS_TEST_TMPDIR/p.c" ||
		skip "no static libc (libc6-dev's libc.a)"
	run --separate-stderr -0 "$AUDIT" --quiet --hex "$KEYHEX" -- "$BATS_TEST_TMPDIR/st"
	[[ $stderr == *"secretmem-audit: warning: $BATS_TEST_TMPDIR/st is statically linked: no dynamic loader runs in it, so libsecretmem-preload cannot record or protect its allocations"* ]] ||
		fail "no warning: $stderr"
	run --separate-stderr -0 "$AUDIT" --quiet --hex "$KEYHEX" -- "$BIN/gcc/audit_probe" "$KEY" wipe
	[[ $stderr != *"statically linked"* ]] || fail "dynamic: $stderr"
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

@test "audit: a program started by a shell (fork and exec) is audited and verified" {
	run --separate-stderr -0 "$AUDIT" --hex "$KEYHEX" --verify -- sh -c "'$BIN/gcc/audit_probe' '$KEY'; echo shell-done"
	assert_line 'shell-done'
	assert_line --regexp '^copy 1: process [0-9]+ \(audit_probe\), live block 0x[0-9a-f]+, 64 bytes'
	refute_line --regexp '^copy 2:'
	# dash leaves with _exit (no exit handshake): the probe is what was scanned
	assert_line --regexp '^secretmem-audit: sh: exit status 0; scanned 1 process\(es\): [0-9]+ \(audit_probe\)$'
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
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
	# up to 30 s each: a loaded machine (CI) is slow to start the probe and scan
	for ((i = 0; i < 600; i++)); do
		pgrep -P "$AUDIT_PID" audit_probe >/dev/null && grep -q "/tmp/smaudit" /proc/$(pgrep -P "$AUDIT_PID" audit_probe)/maps 2>/dev/null && break
		sleep 0.05
	done
	kill -USR2 "$AUDIT_PID"
	for ((i = 0; i < 600; i++)); do
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
assert r["rule"] == {"libs": ["libaudit_key.so*"], "sites": [], "wrappers": [], "depth": 0}, r["rule"]
assert r["secret_allocations"] == 1, r
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

# ---- real programs: the tool must find, on its own, a rule that verifies ----

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

make_keys() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -subj /CN=localhost \
		-days 1 2>/dev/null
}

# drive N: waits until the server on $PORT answers (the audited command started
# under the tool), completes TLS handshakes, then has the tool scan (SIGUSR2) and
# stop the command (SIGTERM); N: how many "on SIGUSR2" lines the tool has printed
# once this scan is done.
drive() {
	local n=$1 i
	for ((i = 0; i < 600; i++)); do
		timeout 5 openssl s_client -connect "127.0.0.1:$PORT" </dev/null >/dev/null 2>&1 && break
		kill -0 "$AUDIT_PID" 2>/dev/null || fail "the tool ended early: $(cat out.txt err.txt)"
		sleep 0.1
	done
	# more handshakes (stunnel closes each one at once: its backend is not there,
	# which s_client may report as a failure)
	for i in 1 2; do
		timeout 10 openssl s_client -connect "127.0.0.1:$PORT" </dev/null >/dev/null 2>&1 || true
	done
	kill -USR2 "$AUDIT_PID"
	for ((i = 0; i < 600; i++)); do
		(($(grep -c 'on SIGUSR2' err.txt) >= n)) && break
		sleep 0.1
	done
	(($(grep -c 'on SIGUSR2' err.txt) >= n)) || fail "no scan on SIGUSR2: $(cat err.txt)"
	kill -TERM "$AUDIT_PID"
}

# audit_server: runs the tool with --verify on the server command in "$@", drives
# the audited run and the verify run; then $output is the report.
audit_server() {
	"$AUDIT" --key key.pem --verify -- "$@" >out.txt 2>err.txt 3>&- &
	AUDIT_PID=$!
	drive 1
	local i
	for ((i = 0; i < 1200; i++)); do
		grep -q 'verifying: running' err.txt && break
		kill -0 "$AUDIT_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q 'verifying: running' err.txt || fail "no verify run: $(cat out.txt err.txt)"
	drive 2
	local st=0
	wait "$AUDIT_PID" || st=$?
	AUDIT_PID=
	output=$(cat out.txt)
	mapfile -t lines <out.txt
	((st == 0)) || fail "secretmem-audit exited $st: $(cat out.txt err.txt)"
}

@test "audit: openssl s_server (RSA): the rule found is --lib 'libcrypto.so*', and it verifies" {
	make_keys
	PORT=$(free_port)
	audit_server openssl s_server -quiet -accept "127.0.0.1:$PORT" -key key.pem -cert cert.pem -www
	# the control: the audited run found the primes in ordinary blocks of libcrypto
	assert_line --regexp '^  holds: p, little-endian'
	assert_line --regexp '^  holds: q, little-endian'
	assert_line --regexp '^    CRYPTO_zalloc\+0x[0-9a-f]+ \(.*/libcrypto\.so\.3\)  <- call site$'
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\); [1-9][0-9]* bytes of secret memory'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

@test "audit: stunnel4 (its own OpenSSL memory functions): the rule found verifies" {
	command -v stunnel4 >/dev/null || fail "stunnel4 is not installed"
	make_keys
	PORT=$(free_port)
	cat >st.conf <<CONF
foreground = yes
pid =
[t]
accept = 127.0.0.1:$PORT
connect = 127.0.0.1:9
cert = $PWD/cert.pem
key = $PWD/key.pem
CONF
	audit_server stunnel4 st.conf
	# the copies' blocks come from stunnel's allocator functions, called by libcrypto
	assert_line --regexp '^    0x[0-9a-f]+ \(/usr/bin/stunnel4\)  <- call site$'
	assert_line --regexp '^    CRYPTO_zalloc\+0x[0-9a-f]+ \(.*/libcrypto\.so\.3\)$'
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --lib stunnel4 --"
}

@test "audit: wget (GnuTLS) client key: the rule found verifies" {
	command -v wget >/dev/null || fail "wget is not installed"
	make_keys
	openssl req -x509 -newkey rsa:2048 -nodes -keyout client.pem -out client.crt -subj /CN=client \
		-days 1 2>/dev/null
	PORT=$(free_port)
	openssl s_server -quiet -accept "127.0.0.1:$PORT" -key key.pem -cert cert.pem -www \
		-Verify 1 -CAfile client.crt >/dev/null 2>&1 </dev/null 3>&- &
	AUDIT_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		timeout 5 openssl s_client -connect "127.0.0.1:$PORT" </dev/null >/dev/null 2>&1 && break
		sleep 0.1
	done
	run --separate-stderr -0 "$AUDIT" --key client.pem --verify -- wget -q -O got.html \
		--no-check-certificate --certificate=client.crt --private-key=client.pem \
		"https://127.0.0.1:$PORT/"
	grep -q 's_server' got.html || fail "wget did not fetch the page"
	# the control: GnuTLS, nettle/GMP and libtasn1 copies in ordinary blocks
	assert_line --regexp '^copy [0-9]+: process [0-9]+ \(wget\), live block'
	assert_line --regexp '^    0x[0-9a-f]+ \(.*/libtasn1\.so\.6[.0-9]*\)  <- call site$'
	assert_line --regexp '^    gnutls_x509_privkey_import2\+0x[0-9a-f]+ \(.*/libgnutls\.so\.30[.0-9]*\)$'
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libgmp.so*' --lib 'libgnutls.so*' --lib 'libtasn1.so*' --"
}

@test "audit: ssh-agent's shielded keys: no plaintext copy, so no rule (what the tool cannot see)" {
	# OpenSSH shields a loaded key: encrypted in memory with a key derived from a
	# 16 KiB prekey, both ordinary allocations of ssh-agent; the plaintext exists
	# only while it signs, and OpenSSH wipes it. The tool looks for the key's own
	# bytes, so it finds none and proposes nothing: secretmem-audit(1) says so.
	command -v ssh-agent >/dev/null || fail "openssh-client is not installed"
	ssh-keygen -q -t ed25519 -N '' -C audit -f id_test
	cp "$(command -v ssh-agent)" ./agent # without its set-group-ID bit
	"$AUDIT" --key id_test -- ./agent -D -a "$PWD/agent.sock" >out.txt 2>err.txt 3>&- &
	AUDIT_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -S agent.sock ]] && break
		sleep 0.1
	done
	SSH_AUTH_SOCK=$PWD/agent.sock run -0 ssh-add id_test
	SSH_AUTH_SOCK=$PWD/agent.sock run -0 ssh-add -T id_test.pub
	kill -USR2 "$AUDIT_PID"
	for ((i = 0; i < 300; i++)); do
		grep -q 'on SIGUSR2' err.txt && break
		sleep 0.1
	done
	kill -TERM "$AUDIT_PID"
	wait "$AUDIT_PID"
	AUDIT_PID=
	run cat out.txt
	assert_line --regexp '^secretmem-audit: \./agent: exit status [-0-9]+; scanned 1 process\(es\)'
	assert_line 'no copy of the key found'
	assert_equal "${lines[-1]}" 'rule: secretmem-run --'
}
