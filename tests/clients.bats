#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The matrix, clients: curl (OpenSSL) and wget (GnuTLS) authenticate with a client
# certificate and its private key against a local HTTPS server that requires one
# (tests/tls_hold_server.py). The server holds each client after the handshake,
# with its request read, so the client is alive, having signed with its key, while
# root scans it through /proc/PID/mem for the key's material (RSA p, q and d, EC
# private scalar, both byte orders). Then the server answers and the client must
# print the name from its certificate. Without the shim the scan must find the key
# (the control); through secretmem-run with the README's rule it must find nothing.

load helpers
load routing-helpers
load servers-helpers

# wget's GnuTLS decodes the key with libtasn1, whose blocks keep p, q and d
# big-endian; GMP holds the numbers (GnuTLS' own buffers are libgnutls'). The rule
# without libtasn1* leaves them readable (a test below).
WGET_RULE=(--lib 'libgnutls*' --lib 'libnettle*' --lib 'libhogweed*' --lib 'libgmp*' --lib 'libtasn1*')

setup_file() {
	rt_build memscan
	KEYS=$BATS_FILE_TMPDIR/keys
	mkdir -p "$KEYS"
	srv_key "$KEYS/server.pem" ec
	srv_key "$KEYS/client-rsa.pem" rsa matrix-client-rsa
	srv_key "$KEYS/client-ec.pem" ec matrix-client-ec
	cat "$KEYS"/client-*.pem.crt >"$KEYS/client-ca.pem"
	export KEYS
}

setup() {
	sm_setup
	SRV_PIDS=()
	local d=$BATS_TEST_TMPDIR/hold
	mkdir -p "$d"
	python3 "$abs_top_srcdir/tests/tls_hold_server.py" "$d/port" "$KEYS/server.pem.crt" \
		"$KEYS/server.pem" "$KEYS/client-ca.pem" "$d" </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/hold_server.err" 3>&- &
	srv_track $!
	srv_wait_file "$d/port"
	PORT=$(cat "$d/port")
	HOLD=$d
}

teardown() {
	srv_teardown
}

# client_case curl|wget KIND control|protected|leaks [RULE...]: runs the client with
# KIND's key (through secretmem-run with RULE, unless control), scans it while the
# server holds it, then lets the server answer and checks the answer.
client_case() {
	local prog=$1 kind=$2 how=$3
	shift 3
	command -v "$prog" >/dev/null || fail "$prog is not installed (apt-get install $prog)"
	local args
	case $prog in
	curl)
		args=(curl -sS --cert "$KEYS/client-$kind.pem.crt" --key "$KEYS/client-$kind.pem"
			--cacert "$KEYS/server.pem.crt" --resolve "localhost:$PORT:127.0.0.1"
			"https://localhost:$PORT/")
		;;
	wget)
		args=(wget -q -O- --certificate="$KEYS/client-$kind.pem.crt"
			--private-key="$KEYS/client-$kind.pem" --ca-certificate="$KEYS/server.pem.crt"
			"https://localhost:$PORT/")
		;;
	esac
	srv_patterns "$KEYS/client-$kind.pem"
	[[ $how == control ]] || args=("$SRV_RUN" "$@" -- "${args[@]}")
	"${args[@]}" </dev/null >"$BATS_TEST_TMPDIR/client.out" 2>"$BATS_TEST_TMPDIR/client.err" 3>&- &
	local pid=$!
	srv_track "$pid"
	srv_wait_file "$HOLD/held"
	case $how in
	control) srv_assert_found "$pid" ;;
	protected) srv_assert_protected "$pid" ;;
	leaks)
		srv_assert_shim "$pid"
		srv_assert_leaks "$pid"
		;;
	esac
	touch "$HOLD/go"
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && fail "$prog has not ended 10 s after the answer: $(srv_logs)"
	local status=0
	wait "$pid" || status=$?
	((status == 0)) || fail "$prog failed (status $status): $(srv_logs)"
	[[ $(cat "$BATS_TEST_TMPDIR/client.out") == "client matrix-client-$kind" ]] ||
		fail "unexpected answer: $(cat "$BATS_TEST_TMPDIR/client.out") $(srv_logs)"
}

@test "curl RSA client key: without the shim root reads p, q or d (control)" {
	client_case curl rsa control
}

@test "curl RSA client key: --lib 'libcrypto.so*' protects it" {
	client_case curl rsa protected --lib 'libcrypto.so*'
}

@test "curl EC client key: without the shim root reads the private scalar (control)" {
	client_case curl ec control
}

@test "curl EC client key: --lib 'libcrypto.so*' protects it" {
	client_case curl ec protected --lib 'libcrypto.so*'
}

@test "wget RSA client key: without the shim root reads p, q or d (control)" {
	client_case wget rsa control
}

@test "wget RSA client key: GnuTLS' libraries without libtasn1* leave p, q or d readable" {
	client_case wget rsa leaks --lib 'libgnutls*' --lib 'libnettle*' --lib 'libhogweed*' --lib 'libgmp*'
}

@test "wget RSA client key: GnuTLS' libraries and libtasn1* protect it" {
	client_case wget rsa protected "${WGET_RULE[@]}"
}

@test "wget RSA client key: the smallest rule that protects it is --lib 'libgmp*' --lib 'libtasn1*'" {
	client_case wget rsa protected --lib 'libgmp*' --lib 'libtasn1*'
}

@test "wget RSA client key: the rule secretmem-audit finds (tests/audit.bats), --lib 'libgmp.so*' --lib 'libgnutls.so*' --lib 'libtasn1.so*', protects it" {
	client_case wget rsa protected --lib 'libgmp.so*' --lib 'libgnutls.so*' --lib 'libtasn1.so*'
}

@test "wget EC client key: without the shim root reads the private scalar (control)" {
	client_case wget ec control
}

@test "wget EC client key: GnuTLS' libraries and libtasn1* protect it" {
	client_case wget ec protected "${WGET_RULE[@]}"
}

@test "wget EC client key: the rule secretmem-audit finds, --lib 'libgmp.so*' --lib 'libgnutls.so*' --lib 'libtasn1.so*', protects it" {
	client_case wget ec protected --lib 'libgmp.so*' --lib 'libgnutls.so*' --lib 'libtasn1.so*'
}
