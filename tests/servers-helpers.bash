# SPDX-License-Identifier: MIT
# Helpers of the real-program matrix (servers.bats, clients.bats, agents.bats,
# audit_matrix.bats; loaded after helpers.bash and routing-helpers.bash): make
# keys, turn a key into the byte
# strings root would look for, start a Debian-packaged program on 127.0.0.1 with a
# timeout on every wait, scan its processes through /proc/PID/mem and check that the
# shim was really in them.
#
# A scan is judged by what memscan read: "found" lines are copies root can read; the
# summary line says how many bytes of /secretmem mappings it met (and could not read).

SRV_RUN="$abs_top_builddir/tools/secretmem-run"

# srv_key FILE rsa|ec|ed25519 [CN]: a fresh private key (PEM, PKCS#8) and FILE.crt,
# a self-signed certificate for localhost (subject CN, localhost by default).
srv_key() {
	local file=$1 kind=$2 cn=${3:-localhost}
	case $kind in
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$file" ;;
	ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$file" ;;
	ed25519) openssl genpkey -algorithm ed25519 -out "$file" ;;
	esac 2>/dev/null || { echo "cannot make a $kind key" >&2; return 1; }
	openssl req -new -x509 -key "$file" -subj "/CN=$cn" -days 1 \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -out "$file.crt" 2>/dev/null ||
		{ echo "cannot make a certificate for $file" >&2; return 1; }
}

# srv_field KEYFILE NAME: the hex digits of one field of `openssl pkey -text`
# (prime1, prime2, priv), big-endian.
srv_field() {
	openssl pkey -in "$1" -noout -text |
		awk -v want="$2:" '
			$1 == want { on = 1; next }
			on && /^[^ \t]/ { on = 0 }
			on { gsub(/[: \t]/, ""); printf "%s", $0 }'
}

srv_reverse() {
	fold -w2 <<<"$1" | tac | tr -d '\n'
}

# srv_fixed HEX DIGITS: HEX without a sign byte, left-padded with zeros to DIGITS.
srv_fixed() {
	local h=$1 n=$2
	while ((${#h} > n)) && [[ $h == 00* ]]; do h=${h:2}; done
	while ((${#h} < n)); do h=0$h; done
	echo "$h"
}

# srv_patterns KEYFILE: sets PATTERNS (hex strings for memscan) and NFULL (the first
# NFULL are whole secrets; the rest are their first and last 32 bytes). RSA: p and q,
# big-endian (DER, libtasn1, GnuTLS' mpz export) and byte-reversed (OpenSSL's and
# GMP's little-endian limbs on x86_64), and the private exponent d the same two
# ways. EC: the private scalar, both orders.
# Ed25519: the 32-byte seed.
srv_patterns() {
	local key=$1 text
	text=$(openssl pkey -in "$key" -noout -text 2>/dev/null) || fail "cannot read $key"
	PATTERNS=()
	case $text in
	*"RSA Private-Key"* | "Private-Key: ("*" bit, 2 primes)"*)
		local p q d s
		p=$(srv_fixed "$(srv_field "$key" prime1)" 256)
		q=$(srv_fixed "$(srv_field "$key" prime2)" 256)
		# d has no fixed length: without its sign byte, as a BIGNUM or INTEGER holds it
		d=$(srv_fixed "$(srv_field "$key" privateExponent)" 0)
		((${#p} == 256 && ${#q} == 256 && ${#d} >= 480)) ||
			fail "cannot read p, q and d of the 2048-bit key $key"
		PATTERNS=("$p" "$q" "$(srv_reverse "$p")" "$(srv_reverse "$q")" "$d" "$(srv_reverse "$d")")
		NFULL=6
		for s in "${PATTERNS[@]:0:6}"; do
			PATTERNS+=("${s:0:64}" "${s: -64}")
		done
		;;
	"ED25519 Private-Key"*)
		local d
		d=$(srv_fixed "$(srv_field "$key" priv)" 64)
		PATTERNS=("$d")
		NFULL=1
		;;
	*)
		local d
		d=$(srv_fixed "$(srv_field "$key" priv)" 64)
		[[ $d != 0000000000000000* ]] || fail "cannot read the private scalar of $key"
		PATTERNS=("$d" "$(srv_reverse "$d")")
		NFULL=2
		;;
	esac
}

# srv_port: a TCP port on 127.0.0.1 that was free a moment ago.
srv_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# srv_wait_port PORT [PID]: waits (at most 10 s) until 127.0.0.1:PORT accepts; fails
# at once if PID ends.
srv_wait_port() {
	local port=$1 pid=${2:-} end=$((SECONDS + 10))
	while ((SECONDS < end)); do
		if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			fail "the program ended before listening on $port: $(srv_logs)"
		fi
		sleep 0.05
	done
	fail "nothing listens on 127.0.0.1:$port after 10 s: $(srv_logs)"
}

# srv_wait_file FILE: waits (at most 10 s) until FILE exists and is not empty.
srv_wait_file() {
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $1 ]] && return 0
		sleep 0.05
	done
	fail "$1 did not appear after 10 s: $(srv_logs)"
}

# What the programs of the test wrote on stderr (or into their logs), for a failure.
srv_logs() {
	local f
	for f in "$BATS_TEST_TMPDIR"/*.err "$BATS_TEST_TMPDIR"/*.log; do
		[[ -s $f ]] && printf '\n== %s:\n%s' "${f##*/}" "$(tail -n 20 "$f")"
	done
	return 0
}

# Processes started by a test, killed in teardown whatever happened.
SRV_PIDS=()
srv_track() {
	SRV_PIDS+=("$@")
}

# srv_teardown: sends every tracked process SIGTERM, and SIGKILL to those still
# there 2 s later.
srv_teardown() {
	local pid i alive
	for pid in "${SRV_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 40; i++)); do
		alive=0
		for pid in "${SRV_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.05
	done
	for pid in "${SRV_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SRV_PIDS=()
}

# srv_children PID: the pids of PID's children.
srv_children() {
	local t
	for t in /proc/"$1"/task/*/children; do
		cat "$t" 2>/dev/null
	done | tr ' ' '\n' | grep -v '^$' || true
}

# srv_wait_children PID N: waits (at most 10 s) until PID has N children; sets
# CHILDREN.
srv_wait_children() {
	local i
	for ((i = 0; i < 200; i++)); do
		CHILDREN=$(srv_children "$1")
		(($(wc -w <<<"$CHILDREN") >= $2)) && return 0
		kill -0 "$1" 2>/dev/null || fail "process $1 ended: $(srv_logs)"
		sleep 0.05
	done
	fail "process $1 has not $2 children after 10 s (it has: $CHILDREN): $(srv_logs)"
}

# srv_assert_shim PID...: each process has the shim's secret mapping, so the shim
# was loaded into it and made something secret.
srv_assert_shim() {
	local pid
	for pid in "$@"; do
		grep -q ' /secretmem (deleted)$' "/proc/$pid/maps" ||
			fail "process $pid ($(cat "/proc/$pid/comm")) has no ' /secretmem (deleted)' mapping: the shim is not in it or made nothing secret"
	done
}

# srv_scan PID...: scans each process for PATTERNS; sets SCAN (every line, each
# prefixed with "PID: ") and FOUND (the "found" lines).
srv_scan() {
	local pid out
	SCAN=
	for pid in "$@"; do
		kill -0 "$pid" 2>/dev/null || fail "process $pid is gone before the scan: $(srv_logs)"
		out=$("$RT_BIN/memscan" "$pid" "${PATTERNS[@]}") || fail "memscan $pid failed: $out"
		SCAN+=$(sed "s/^/$pid: /" <<<"$out")$'\n' # each line, not just the first
	done
	FOUND=$(grep ': found ' <<<"$SCAN" || true)
}

# srv_assert_leaks PID...: some process holds a whole secret that root can read.
srv_assert_leaks() {
	srv_scan "$@"
	grep -Eq ": found [0-$((NFULL - 1))] " <<<"$FOUND" ||
		fail "the scan found no whole secret.
$SCAN"
}

# srv_assert_found PID...: the control. Some process holds a whole secret that root
# can read (else the scan proves nothing), and none maps secret memory.
srv_assert_found() {
	srv_assert_leaks "$@"
	local pid
	for pid in "$@"; do
		! grep -q ' /secretmem' "/proc/$pid/maps" || fail "process $pid of the control maps /secretmem"
	done
}

# srv_explain: for each hit in FOUND, which part of which pattern it is (whole,
# or the first or last 32 bytes of a whole one: key_patterns' and srv_patterns'
# order), the mapping that holds it, and the signals its process catches and has
# pending (a signal frame on a stack holds the vector registers).
srv_explain() {
	local pid n addr rest what line
	while read -r pid _ n addr rest; do
		pid=${pid%:}
		if ((n < NFULL)); then
			what="whole pattern $n"
		else
			what="the $( (((n - NFULL) % 2 == 0)) && echo first || echo last) 32 bytes of whole pattern $(((n - NFULL) / 2))"
		fi
		line=
		local range m
		while read -r range m; do
			if ((16#${range%-*} <= addr && addr < 16#${range#*-})); then
				line="$range $m"
				break
			fi
		done <"/proc/$pid/maps"
		echo "  $pid $addr: $what, in: ${line:-?}"
	done <<<"$FOUND"
	for pid in $(awk '{ print $1 }' <<<"$FOUND" | tr -d : | sort -u); do
		echo "  $pid: $(grep -E '^Sig(Cgt|Pnd)|^ShdPnd' "/proc/$pid/status" 2>/dev/null | tr '\n' ' ')"
	done
}

# srv_assert_protected PID...: each process has the shim's secret mapping (so the
# shim was loaded and allocated), the scan met secret pages it could not read, and
# no copy, whole or in part, is readable in any of them.
srv_assert_protected() {
	srv_assert_shim "$@"
	srv_scan "$@"
	[[ -z $FOUND ]] || fail "key material readable under the shim:
$FOUND
$(srv_explain)"
	local line
	while IFS= read -r line; do
		[[ $line =~ ([0-9]+)\ bytes\ unreadable,\ ([0-9]+)\ bytes\ in\ /secretmem ]] || continue
		((BASH_REMATCH[2] > 0)) || fail "a scan met no /secretmem bytes: $line"
		((BASH_REMATCH[1] >= BASH_REMATCH[2])) || fail "some /secretmem pages were readable: $line"
	done <<<"$SCAN"
}

# srv_gpg_keys DIR: DIR/rsa2048.gpg and DIR/ed25519.gpg, secret keys each made by a
# throw-away agent and exported without a passphrase.
srv_gpg_keys() {
	local dir=$1 g kind st
	for kind in rsa2048 ed25519; do
		g=$(mktemp -d /tmp/matrix-gpg.XXXXXX)
		chmod 700 "$g"
		timeout 60 gpg --homedir "$g" --batch --passphrase '' \
			--quick-gen-key "matrix-$kind <matrix@localhost>" "$kind" sign never 2>/dev/null &&
			timeout 30 gpg --homedir "$g" --batch --pinentry-mode loopback --passphrase '' \
				--export-secret-keys >"$dir/$kind.gpg"
		st=$?
		gpgconf --homedir "$g" --kill gpg-agent 2>/dev/null
		rm -rf "$g"
		((st == 0)) || { echo "cannot make a gpg $kind key" >&2; return 1; }
	done
}

# srv_nginx_conf DIR KEY: DIR/nginx.conf for nginx with a master and 2 workers
# serving TLS on 127.0.0.1:$PORT with KEY (its certificate KEY.crt); every path in DIR.
srv_nginx_conf() {
	local d=$1 key=$2
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $d/nginx.pid;
error_log $BATS_TEST_TMPDIR/nginx.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $d/tmp;
	proxy_temp_path $d/tmp;
	fastcgi_temp_path $d/tmp;
	uwsgi_temp_path $d/tmp;
	scgi_temp_path $d/tmp;
	server {
		# one socket a worker, the kernel spreading connections by address hash:
		# each worker gets some of the requests, however loaded the machine
		listen 127.0.0.1:$PORT ssl reuseport;
		ssl_certificate $key.crt;
		ssl_certificate_key $key;
		location / { return 200 "worker \$pid\n"; }
	}
}
CONF
}

# key_patterns openssh|openpgp FILE...: PATTERNS and NFULL from the secret numbers
# of the key files, each in both byte orders, whole, then by their first and last 32
# bytes.
key_patterns() {
	local format=$1 f s
	shift
	local whole=()
	for f in "$@"; do
		run -0 python3 "$abs_top_srcdir/tests/key_secrets.py" "$format" "$f"
		for s in "${lines[@]}"; do
			whole+=("$s" "$(srv_reverse "$s")")
		done
	done
	((${#whole[@]} > 0)) || fail "no secret numbers in $*"
	PATTERNS=("${whole[@]}")
	NFULL=${#whole[@]}
	for s in "${whole[@]}"; do
		((${#s} > 64)) && PATTERNS+=("${s:0:64}" "${s: -64}")
	done
	((${#PATTERNS[@]} <= 64)) || fail "too many patterns for memscan"
}

# unshield PID: the shielding attack (tests/ssh_agent_scan.py) on an OpenSSH
# process (ssh-agent, sshd), whose keys are encrypted under a hash of a 16 KiB
# prekey in its own memory; sets UNSHIELD and UNSHIELDED (the number of keys
# decrypted).
unshield() {
	run -0 python3 "$abs_top_srcdir/tests/ssh_agent_scan.py" "$1" "${PATTERNS[@]:0:$NFULL}"
	UNSHIELD=$output
	[[ ${lines[-1]} =~ ^candidates\ [0-9]+,\ unshielded\ ([0-9]+)$ ]] || fail "$output"
	UNSHIELDED=${BASH_REMATCH[1]}
}
