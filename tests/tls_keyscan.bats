#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The main job, for real: an `openssl s_server` with an RSA-2048 key, run under the
# shim with SECRETMEM_LIBS='libcrypto.so*', completes TLS handshakes; then root scans
# every readable mapping of the server through /proc/PID/mem for the key's prime
# factors p and q, big-endian (as in the DER key) and as OpenSSL's BIGNUMs hold them
# (little-endian 64-bit limbs: on x86_64 the byte-reversed big-endian string), whole
# and by their first and last 32 bytes. With the shim none of them may be found; the
# control, the same server and scanner without the shim, must find them (else the
# scan proves nothing).

load helpers
load routing-helpers

HANDSHAKES=3

setup_file() {
	rt_build memscan
	KEYDIR=$BATS_FILE_TMPDIR/key
	mkdir -p "$KEYDIR"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEYDIR/key.pem" 2>/dev/null
	openssl req -new -x509 -key "$KEYDIR/key.pem" -subj /CN=localhost -days 1 \
		-out "$KEYDIR/cert.pem" 2>/dev/null
	export KEYDIR
}

setup() {
	sm_setup
	command -v openssl >/dev/null || fail "openssl is not installed"
	SERVER_PID=
}

teardown() {
	if [[ -n ${SERVER_PID:-} ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}

# The hex digits of prime1 or prime2 of the key, big-endian, without the sign byte.
prime_hex() {
	openssl pkey -in "$KEYDIR/key.pem" -noout -text |
		awk -v want="$1:" '
			$1 == want { on = 1; next }
			on && /^[^ \t]/ { on = 0 }
			on { gsub(/[: \t]/, ""); printf "%s", $0 }' |
		sed 's/^00//'
}

reverse_bytes() {
	fold -w2 <<<"$1" | tac | tr -d '\n'
}

# Sets PATTERNS (hex strings for memscan) and NFULL (the first NFULL are whole primes).
make_patterns() {
	local p q
	p=$(prime_hex prime1)
	q=$(prime_hex prime2)
	((${#p} == 256 && ${#q} == 256)) ||
		fail "could not read the 1024-bit primes of the key (got ${#p} and ${#q} hex digits)"
	local pl ql
	pl=$(reverse_bytes "$p")
	ql=$(reverse_bytes "$q")
	PATTERNS=("$p" "$q" "$pl" "$ql")
	NFULL=4
	local s
	for s in "$p" "$q" "$pl" "$ql"; do
		PATTERNS+=("${s:0:64}" "${s: -64}")
	done
}

# start_server [VAR=VALUE...]: s_server on 127.0.0.1, a port the kernel picks; sets
# SERVER_PID (the openssl process itself: env execs it) and PORT.
start_server() {
	local out=$BATS_TEST_TMPDIR/server.out err=$BATS_TEST_TMPDIR/server.err
	: >"$out"
	env "$@" openssl s_server -accept 127.0.0.1:0 -key "$KEYDIR/key.pem" -cert "$KEYDIR/cert.pem" \
		-www -naccept 100 >"$out" 2>"$err" </dev/null 3>&- &
	SERVER_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		PORT=$(awk -F: '/^ACCEPT / { print $NF }' "$out")
		[[ -n $PORT ]] && break
		kill -0 "$SERVER_PID" 2>/dev/null ||
			fail "s_server ended: $(cat "$out" "$err")"
		sleep 0.05
	done
	[[ -n $PORT ]] || fail "s_server did not start: $(cat "$out" "$err")"
}

# Completes HANDSHAKES TLS handshakes (each signs with the private key) and fetches
# the status page once per connection.
handshakes() {
	local i
	for ((i = 0; i < HANDSHAKES; i++)); do
		run timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
			-verify_quiet </dev/null
		assert_success
		assert_output --partial "Verify return code"
		assert_output --regexp "Cipher is (TLS_|ECDHE)"
	done
	run timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 </dev/null
	assert_success
	assert_output --partial "Protocol  : TLSv1.2"
}

scan_server() {
	run -0 "$RT_BIN/memscan" "$SERVER_PID" "${PATTERNS[@]}"
	SCAN=$output
}

@test "tls: without the shim the scanner finds the key's primes in the server (control)" {
	make_patterns
	start_server
	handshakes
	kill -0 "$SERVER_PID"
	scan_server
	# a whole prime, in either byte order
	[[ $SCAN =~ (^|$'\n')found\ [0-$((NFULL - 1))]\  ]] ||
		fail "the control scan found no whole prime: the scan proves nothing. $SCAN"
	assert_line --regexp '^scanned [0-9]+ bytes in [0-9]+ mappings, [0-9]+ bytes unreadable, 0 bytes in /secretmem mappings$'
}

@test "tls: under the shim with SECRETMEM_LIBS='libcrypto.so*' no trace of p or q is readable" {
	make_patterns
	start_server LD_PRELOAD="$SHIM" SECRETMEM_LIBS='libcrypto.so*'
	handshakes
	kill -0 "$SERVER_PID" || fail "the server under the shim died: $(cat "$BATS_TEST_TMPDIR/server.err")"
	# the server holds secret memory, and the scan met it (unreadable)
	grep -q '/secretmem' "/proc/$SERVER_PID/maps" || fail "the server has no /secretmem mapping"
	scan_server
	if grep -q '^found ' <<<"$SCAN"; then
		fail "key material readable under the shim:
$(grep '^found ' <<<"$SCAN")"
	fi
	[[ $SCAN =~ ([0-9]+)\ bytes\ unreadable,\ ([0-9]+)\ bytes\ in\ /secretmem ]] || fail "$SCAN"
	((BASH_REMATCH[2] > 0)) || fail "no /secretmem bytes seen by the scan: $SCAN"
	((BASH_REMATCH[1] >= BASH_REMATCH[2])) ||
		fail "some /secretmem pages were readable: $SCAN"
}

@test "tls: the server under the shim still serves a page over TLS" {
	start_server LD_PRELOAD="$SHIM" SECRETMEM_LIBS='libcrypto.so*'
	run timeout 10 sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$PORT -quiet 2>/dev/null"
	assert_success
	assert_output --partial "HTTP/1.0 200 ok"
	assert_output --partial "s_server"
}
