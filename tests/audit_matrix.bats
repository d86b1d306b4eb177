#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# secretmem-audit on the rows of the README's "Rules for real programs" table that
# tests/audit.bats does not cover (nginx master and workers, haproxy, python3 ssl,
# curl client key, gpg-agent): the tool runs the real Debian-packaged program, the
# test drives real requests through it (or signs through the agent), the tool
# scans on SIGUSR2 and stops it; then --verify runs it again under the rule found,
# driven the same way. The tool must find, on its own, the table's rule (its last
# line), and --verify must find no readable copy. The audited run is the control:
# it must report copies of the key in ordinary memory.

load helpers
load routing-helpers
load servers-helpers

setup_file() {
	KEYS=$BATS_FILE_TMPDIR/keys
	mkdir -p "$KEYS"
	srv_key "$KEYS/rsa.pem" rsa
	srv_key "$KEYS/ec.pem" ec
	srv_key "$KEYS/client.pem" rsa matrix-client
	rt_build memscan
	srv_gpg_keys "$KEYS" || return 1 # gpg: RSA and Ed25519, as agents.bats makes them
	export KEYS
}

setup() {
	sm_setup
	AUDIT=$abs_top_builddir/tools/secretmem-audit
	AUDIT_PID=
	SRV_PIDS=()
	GPGHOME=
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	if [[ -n ${AUDIT_PID:-} ]]; then
		kill "$AUDIT_PID" 2>/dev/null || true
		wait "$AUDIT_PID" 2>/dev/null || true
	fi
	srv_teardown
	[[ -n ${GPGHOME:-} && $GPGHOME == /tmp/mx-agent.* ]] && rm -rf "$GPGHOME"
	return 0
}

# mx_drive N REQUESTS: waits until $PORT accepts (the command started under the
# tool), runs the function REQUESTS (real requests), has the tool scan (SIGUSR2),
# waits until it has printed N "on SIGUSR2" lines, then stops the command (SIGTERM).
mx_drive() {
	local n=$1 requests=$2 i
	for ((i = 0; i < 300; i++)); do
		[[ -n $PORT ]] || break # no port: REQUESTS waits for the program itself
		timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && break
		kill -0 "$AUDIT_PID" 2>/dev/null || fail "the tool ended early: $(cat out.txt err.txt)"
		sleep 0.1
	done
	"$requests"
	kill -USR2 "$AUDIT_PID"
	for ((i = 0; i < 600; i++)); do
		(($(grep -c 'on SIGUSR2' err.txt) >= n)) && break
		sleep 0.1
	done
	(($(grep -c 'on SIGUSR2' err.txt) >= n)) || fail "no scan on SIGUSR2: $(cat err.txt)"
	kill -TERM "$AUDIT_PID"
}

# mx_audit REQUESTS AUDIT-OPTIONS... -- COMMAND...: secretmem-audit --verify on
# COMMAND, both runs driven by mx_drive; then $output and $lines are the report.
mx_audit() {
	local requests=$1
	shift
	"$AUDIT" --verify "$@" >out.txt 2>err.txt 3>&- </dev/null &
	AUDIT_PID=$!
	mx_drive 1 "$requests"
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q 'verifying: running' err.txt && break
		kill -0 "$AUDIT_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q 'verifying: running' err.txt || fail "no verify run: $(cat out.txt err.txt)"
	mx_drive 2 "$requests"
	local st=0
	wait "$AUDIT_PID" || st=$?
	AUDIT_PID=
	output=$(cat out.txt)
	mapfile -t lines <out.txt
	((st == 0)) || fail "secretmem-audit exited $st: $(cat out.txt err.txt)"
}

# https_get EXPECTED: a few HTTPS requests (each a full handshake) that verify the
# server's certificate and must answer EXPECTED.
https_get() {
	local i
	for ((i = 0; i < 3; i++)); do
		run -0 timeout 10 curl -sS --cacert "$KEYS/rsa.pem.crt" \
			--resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/"
		assert_output --partial "$EXPECTED"
	done
}

# the audited run's copies were ordinary, in libcrypto's blocks
assert_libcrypto_copies() {
	assert_line --regexp '^copy 1: process [0-9]+ \([^)]+\), .*block.* 0x[0-9a-f]+, [0-9]+ bytes, ordinary memory'
	assert_line --regexp '^  holds: .*\<(p|q|d|private key \(EC scalar[^)]*\)), '
	assert_line --regexp '^    [^ ]+ \(.*/libcrypto\.so\.3\)  <- call site$'
}

# ---- nginx: the master reads the key and forks 2 workers, which do the handshakes ----

# requests until both workers have answered one (at most 100)
nginx_requests() {
	local i seen=" "
	for ((i = 0; i < 100; i++)); do
		run -0 timeout 10 curl -sS --cacert "$KEYS/$KIND.pem.crt" "https://localhost:$PORT/" \
			--resolve "localhost:$PORT:127.0.0.1"
		[[ $output =~ ^worker\ ([0-9]+)$ ]] || fail "unexpected answer: $output"
		[[ $seen == *" ${BASH_REMATCH[1]} "* ]] || seen+="${BASH_REMATCH[1]} "
		(($(wc -w <<<"$seen") == 2)) && return 0
	done
	fail "2 workers did not both answer in 100 requests (seen:$seen)"
}

nginx_case() {
	KIND=$1
	command -v nginx >/dev/null || fail "nginx is not installed"
	PORT=$(srv_port)
	srv_nginx_conf "$BATS_TEST_TMPDIR/nginx" "$KEYS/$KIND.pem"
	local d=$BATS_TEST_TMPDIR/nginx
	mx_audit nginx_requests --key "$KEYS/$KIND.pem" -- nginx -p "$d" -c "$d/nginx.conf" \
		-e "$BATS_TEST_TMPDIR/nginx.log"
	assert_line --regexp '^secretmem-audit: nginx: exit status [-0-9]+; scanned 3 process\(es\)'
	assert_libcrypto_copies
	assert_line --regexp '^verify: OK: no readable copy in 3 process\(es\); [1-9][0-9]* bytes of secret memory'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

@test "audit matrix: nginx RSA, master and 2 workers: the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	nginx_case rsa
}

@test "audit matrix: nginx EC, master and 2 workers: the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	nginx_case ec
}

# ---- haproxy -db: one process terminating TLS ----

# haproxy_case -db|-W: MODE -W: a master and its worker
haproxy_case() {
	local mode=$1
	command -v haproxy >/dev/null || fail "haproxy is not installed"
	PORT=$(srv_port)
	local d=$BATS_TEST_TMPDIR/haproxy
	mkdir -p "$d"
	cat "$KEYS/rsa.pem.crt" "$KEYS/rsa.pem" >"$d/site.pem"
	cat >"$d/haproxy.cfg" <<CONF
global
	maxconn 64
defaults
	mode http
	timeout connect 5s
	timeout client 5s
	timeout server 5s
frontend fe
	bind 127.0.0.1:$PORT ssl crt $d/site.pem
	http-request return status 200 content-type text/plain string "haproxy ok"
CONF
	EXPECTED="haproxy ok"
	# the table's key: site.pem holds the certificate first, then the key
	mx_audit https_get --key "$KEYS/rsa.pem" -- haproxy "$mode" -f "$d/haproxy.cfg"
	local n=1
	[[ $mode == -W ]] && n=2
	assert_line --regexp "^secretmem-audit: haproxy: exit status [-0-9]+; scanned $n process\\(es\\)"
	assert_libcrypto_copies
	assert_line --regexp "^verify: OK: no readable copy in $n process\\(es\\); [1-9][0-9]* bytes of secret memory"
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

@test "audit matrix: haproxy -db RSA: the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	haproxy_case -db
}

@test "audit matrix: haproxy -W RSA (master and worker): the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	haproxy_case -W
}

# ---- python3's ssl module (http.server) ----

@test "audit matrix: python3 ssl RSA (http.server): the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 is missing"
	PORT=$(srv_port)
	cat >srv.py <<'PY'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"python ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
	EXPECTED="python ok"
	mx_audit https_get --key "$KEYS/rsa.pem" -- /usr/bin/python3 srv.py "$PORT" \
		"$KEYS/rsa.pem.crt" "$KEYS/rsa.pem"
	assert_line --regexp '^secretmem-audit: /usr/bin/python3: exit status [-0-9]+; scanned 1 process\(es\)'
	assert_libcrypto_copies
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\); [1-9][0-9]* bytes of secret memory'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

# ---- curl with a client key (OpenSSL), against s_server asking for it ----

@test "audit matrix: curl RSA client key: the rule found is the table's --lib 'libcrypto.so*', and it verifies" {
	command -v curl >/dev/null || fail "curl is not installed"
	PORT=$(srv_port)
	openssl s_server -quiet -accept "127.0.0.1:$PORT" -key "$KEYS/rsa.pem" -cert "$KEYS/rsa.pem.crt" \
		-www -Verify 1 -CAfile "$KEYS/client.pem.crt" >/dev/null 2>s_server.err </dev/null 3>&- &
	srv_track $!
	srv_wait_port "$PORT" $!
	run --separate-stderr -0 "$AUDIT" --key "$KEYS/client.pem" --verify -- curl -sS -o got.html \
		--cert "$KEYS/client.pem.crt" --key "$KEYS/client.pem" --cacert "$KEYS/rsa.pem.crt" \
		--resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/"
	grep -q 's_server' got.html || fail "curl did not fetch the page: $stderr"
	assert_line --regexp '^secretmem-audit: curl: exit status 0; scanned 1 process\(es\)'
	assert_libcrypto_copies
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\); [1-9][0-9]* bytes of secret memory'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

# ---- gpg-agent (libgcrypt): a key imported through it, then a signature ----
# The key is an OpenPGP export, which --key does not read: its secret numbers
# (tests/key_secrets.py: RSA d, p and q; the Ed25519 seed) go in as --hex, big-endian
# and byte-reversed.

# gpg_requests: waits for the agent on $GPGHOME, imports $KIND's key through it,
# signs with it and checks the signature.
gpg_requests() {
	local h=$GPGHOME i
	for ((i = 0; i < 100; i++)); do
		# gpg-connect-agent exits 0 when no agent runs: look for its answer
		[[ $(timeout 5 gpg-connect-agent --homedir "$h" --no-autostart 'getinfo pid' /bye 2>/dev/null) == D\ [0-9]* ]] &&
			break
		[[ -z ${AUDIT_PID:-} ]] || kill -0 "$AUDIT_PID" 2>/dev/null ||
			fail "the tool ended early: $(cat out.txt err.txt)"
		sleep 0.1
	done
	((i < 100)) || fail "no gpg-agent answers after 100 tries: $(cat err.txt 2>/dev/null) $(srv_logs)"
	run timeout 30 gpg --homedir "$h" --no-autostart --batch --import "$KEYS/$KIND.gpg"
	((status == 0)) || fail "gpg --import failed ($status): $output"
	assert_output --partial "secret keys imported: 1"
	run -0 timeout 30 bash -c "echo matrix | gpg --homedir '$h' --no-autostart --batch \
		--pinentry-mode loopback --passphrase '' -u matrix-$KIND --sign >'$h/msg.gpg'"
	run -0 timeout 30 gpg --homedir "$h" --no-autostart --batch --verify "$h/msg.gpg"
	assert_output --partial "Good signature from \"matrix-$KIND <matrix@localhost>\""
}

# The rule secretmem-audit finds for gpg-agent: the table's, libgcrypt (a rule on
# the program with --depth 8 reaches the copies too and makes fewer allocations
# secret, but the tool takes the least depth first; see secretmem-audit(1)).
GPG_AUDIT_RULE=(--lib 'libgcrypt.so*')
@test "audit matrix: gpg-agent RSA (libgcrypt), imported and signing: the tool finds the table's --lib 'libgcrypt.so*', and it verifies" {
	command -v gpg-agent >/dev/null || fail "gpg-agent is not installed"
	KIND=rsa2048
	local hex=() s
	run -0 python3 "$abs_top_srcdir/tests/key_secrets.py" openpgp "$KEYS/$KIND.gpg"
	for s in "${lines[@]}"; do
		hex+=(--hex "$s" --hex "$(srv_reverse "$s")")
	done
	# a fresh home directory for each run (a short path: it holds the sockets)
	GPGHOME=$(mktemp -d /tmp/mx-agent.XXXXXX)
	cat >agent.sh <<SH
#!/bin/sh
rm -rf '$GPGHOME'
mkdir -m 700 '$GPGHOME'
exec gpg-agent --homedir '$GPGHOME' --daemon
SH
	chmod +x agent.sh
	# no TCP port: gpg_requests waits for the agent's socket
	PORT=
	mx_audit gpg_requests "${hex[@]}" -- ./agent.sh
	# agent.sh's rm and mkdir are scanned too, at their exit
	assert_line --regexp '^secretmem-audit: \./agent\.sh: exit status 0; scanned [0-9]+ process\(es\): .*[0-9]+ \(gpg-agent\)$'
	assert_line --regexp '^copy 1: process [0-9]+ \(gpg-agent\), .*block.* 0x[0-9a-f]+, [0-9]+ bytes, ordinary memory'
	# every copy's call site is in libgcrypt: the table's rule reaches them all too
	assert_line --regexp '^    [^ ]+ \(.*/libgcrypt\.so\.20[.0-9]*\)  <- call site$'
	local other
	other=$(grep -- '<- call site$' out.txt | grep -v '/libgcrypt\.so\.20[.0-9]*)  <- call site$' || true)
	[[ -z $other ]] || fail "call sites outside libgcrypt: $other"
	assert_line --regexp '^verify: OK: no readable copy in [0-9]+ process\(es\); [1-9][0-9]* bytes of secret memory'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libgcrypt.so*' --"
}

# The matrix's own check (tests/agents.bats: root scans the agent through
# /proc/PID/mem after an import and a signature) applied to the tool's rule.
# key_patterns as in agents.bats: the secret numbers, both byte orders, whole and by
# their first and last 32 bytes.
mx_key_patterns() {
	local whole=() s
	run -0 python3 "$abs_top_srcdir/tests/key_secrets.py" openpgp "$1"
	for s in "${lines[@]}"; do
		whole+=("$s" "$(srv_reverse "$s")")
	done
	PATTERNS=("${whole[@]}")
	NFULL=${#whole[@]}
	for s in "${whole[@]}"; do
		((${#s} > 64)) && PATTERNS+=("${s:0:64}" "${s: -64}")
	done
	return 0
}

# gpg_matrix KIND [RUNNER...]: gpg-agent started (through RUNNER), KIND's key
# imported and used to sign; sets AGENT_PID.
gpg_matrix() {
	KIND=$1
	shift
	mx_key_patterns "$KEYS/$KIND.gpg"
	GPGHOME=$(mktemp -d /tmp/mx-agent.XXXXXX)
	chmod 700 "$GPGHOME"
	timeout 30 "$@" gpg-agent --homedir "$GPGHOME" --daemon </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/gpg-agent.err" 3>&- || fail "gpg-agent did not start: $(srv_logs)"
	run -0 timeout 10 gpg-connect-agent --homedir "$GPGHOME" --no-autostart 'getinfo pid' /bye
	[[ ${lines[0]} =~ ^D\ ([0-9]+)$ ]] || fail "no pid from the agent: $output"
	AGENT_PID=${BASH_REMATCH[1]}
	srv_track "$AGENT_PID"
	gpg_requests
}

@test "audit matrix: gpg-agent RSA: the tool's rule, --lib 'libgcrypt.so*', protects it under the matrix scan" {
	gpg_matrix rsa2048 "$SRV_RUN" "${GPG_AUDIT_RULE[@]}" --
	srv_assert_protected "$AGENT_PID"
}

@test "audit matrix: gpg-agent Ed25519: the tool's rule found with RSA, --lib 'libgcrypt.so*', protects it under the matrix scan" {
	gpg_matrix ed25519 "$SRV_RUN" "${GPG_AUDIT_RULE[@]}" --
	srv_assert_protected "$AGENT_PID"
}

@test "audit matrix: gpg-agent RSA: control: without the shim the matrix scan finds d, p or q" {
	gpg_matrix rsa2048
	srv_assert_found "$AGENT_PID"
}

@test "audit matrix: gpg-agent RSA: control: --lib gpg-agent without --depth leaves d, p or q readable" {
	gpg_matrix rsa2048 "$SRV_RUN" --lib gpg-agent --
	srv_assert_leaks "$AGENT_PID"
}
