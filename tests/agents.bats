#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The matrix, key agents: gpg-agent (libgcrypt) with an RSA or an Ed25519 key
# imported and then used to sign through it, and ssh-agent (a copy without
# Debian's set-group-ID bit, which would make the loader leave the shim out) holding
# an Ed25519 and an RSA key that ssh-keygen -Y sign uses through it. Root scans each agent through
# /proc/PID/mem for the keys' numbers (RSA d, p and q, the Ed25519 seed; both byte
# orders) and, for ssh-agent, whose keys are shielded (encrypted under a hash of a
# 16 KiB prekey in its own memory), also decrypts every shielded key it can find
# (tests/ssh_agent_scan.py). Without the shim the control must find or decrypt the
# keys; through secretmem-run with the README's rule nothing may be found.

load helpers
load routing-helpers
load servers-helpers

setup_file() {
	rt_build memscan
	KEYS=$BATS_FILE_TMPDIR/keys
	mkdir -p "$KEYS"
	srv_gpg_keys "$KEYS" || return 1 # gpg: RSA and Ed25519
	# ssh
	ssh-keygen -q -t ed25519 -N '' -C matrix -f "$KEYS/id_ed25519" &&
		ssh-keygen -q -t rsa -b 2048 -N '' -C matrix -f "$KEYS/id_rsa" ||
		{ echo "cannot make ssh keys" >&2; return 1; }
	cp /usr/bin/ssh-agent "$BATS_FILE_TMPDIR/ssh-agent" # cp drops the set-group-ID bit
	export KEYS
}

setup() {
	sm_setup
	SRV_PIDS=()
	# sockets need a short path (108 bytes)
	SOCKDIR=$(mktemp -d /tmp/matrix-agent.XXXXXX)
	chmod 700 "$SOCKDIR"
}

teardown() {
	srv_teardown
	[[ -n ${SOCKDIR:-} && $SOCKDIR == /tmp/matrix-agent.* ]] && rm -rf "$SOCKDIR"
	return 0
}

# ---- gpg-agent ----

# start_gpg_agent KIND [RUNNER...]: gpg-agent on a fresh home directory, KIND's
# secret key imported through it and a message signed with it (and the signature
# checked); sets AGENT_PID.
start_gpg_agent() {
	local kind=$1
	shift
	command -v gpg-agent >/dev/null || fail "gpg-agent is not installed (apt-get install gpg-agent)"
	local h=$SOCKDIR
	timeout 30 "$@" gpg-agent --homedir "$h" --daemon </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/gpg-agent.err" 3>&- ||
		fail "gpg-agent did not start: $(srv_logs)"
	run -0 timeout 10 gpg-connect-agent --homedir "$h" --no-autostart 'getinfo pid' /bye
	[[ ${lines[0]} =~ ^D\ ([0-9]+)$ ]] || fail "no pid from the agent: $output"
	AGENT_PID=${BASH_REMATCH[1]}
	srv_track "$AGENT_PID"
	run -0 timeout 30 gpg --homedir "$h" --no-autostart --batch --import "$KEYS/$kind.gpg"
	assert_output --partial "secret keys imported: 1"
	run -0 timeout 30 bash -c "echo matrix | gpg --homedir '$h' --no-autostart --batch \
		--pinentry-mode loopback --passphrase '' -u matrix-$kind --sign >'$h/msg.gpg'"
	run -0 timeout 30 gpg --homedir "$h" --no-autostart --batch --verify "$h/msg.gpg"
	assert_output --partial "Good signature from \"matrix-$kind <matrix@localhost>\""
}

@test "gpg-agent RSA: without the shim root reads d, p or q after an import and a signature (control)" {
	key_patterns openpgp "$KEYS/rsa2048.gpg"
	start_gpg_agent rsa2048
	srv_assert_found "$AGENT_PID"
}

@test "gpg-agent RSA: --lib 'libgcrypt.so*' protects it, imported and used to sign" {
	key_patterns openpgp "$KEYS/rsa2048.gpg"
	start_gpg_agent rsa2048 "$SRV_RUN" --lib 'libgcrypt.so*' --
	srv_assert_protected "$AGENT_PID"
}

@test "gpg-agent Ed25519: without the shim root reads the seed after an import and a signature (control)" {
	key_patterns openpgp "$KEYS/ed25519.gpg"
	start_gpg_agent ed25519
	srv_assert_found "$AGENT_PID"
}

@test "gpg-agent Ed25519: --lib 'libgcrypt.so*' protects it, imported and used to sign" {
	key_patterns openpgp "$KEYS/ed25519.gpg"
	start_gpg_agent ed25519 "$SRV_RUN" --lib 'libgcrypt.so*' --
	srv_assert_protected "$AGENT_PID"
}

# ---- ssh-agent: keys shielded under a prekey in the agent's own memory ----

# start_ssh_agent [RUNNER...]: the copy of ssh-agent in the foreground on a socket,
# both keys added and each used to sign (ssh-keygen -Y sign with the public key asks
# the agent); sets AGENT_PID.
start_ssh_agent() {
	local agent=$BATS_FILE_TMPDIR/ssh-agent
	[[ ! -g $agent && ! -u $agent ]] || fail "$agent is set-id"
	"$@" "$agent" -D -a "$SOCKDIR/agent.sock" </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/ssh-agent.err" 3>&- &
	AGENT_PID=$!
	srv_track "$AGENT_PID"
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -S $SOCKDIR/agent.sock ]] && break
		kill -0 "$AGENT_PID" 2>/dev/null || fail "ssh-agent ended: $(srv_logs)"
		sleep 0.05
	done
	[[ -S $SOCKDIR/agent.sock ]] || fail "ssh-agent made no socket in 10 s: $(srv_logs)"
	export SSH_AUTH_SOCK=$SOCKDIR/agent.sock
	run -0 timeout 10 ssh-add "$KEYS/id_ed25519" "$KEYS/id_rsa"
	echo matrix >"$SOCKDIR/msg"
	local k
	for k in id_ed25519 id_rsa; do
		rm -f "$SOCKDIR/msg.sig"
		run -0 timeout 10 ssh-keygen -Y sign -f "$KEYS/$k.pub" -n file "$SOCKDIR/msg"
		# the agent signed: the signature verifies against the public key
		printf 'matrix %s\n' "$(cat "$KEYS/$k.pub")" >"$SOCKDIR/allowed"
		run -0 timeout 10 ssh-keygen -Y verify -f "$SOCKDIR/allowed" -I matrix -n file \
			-s "$SOCKDIR/msg.sig" <"$SOCKDIR/msg"
	done
	run -0 timeout 10 ssh-add -l
	assert_line --partial "(ED25519)"
	assert_line --partial "(RSA)"
}

ssh_patterns() {
	key_patterns openssh "$KEYS/id_ed25519" "$KEYS/id_rsa"
}

@test "ssh-agent: without the shim root decrypts both shielded keys with the prekey (control)" {
	ssh_patterns
	start_ssh_agent
	unshield "$AGENT_PID"
	((UNSHIELDED == 2)) || fail "the attack decrypted $UNSHIELDED keys, not 2: $UNSHIELD"
	# the seed and d, p and q, each found in a decrypted key
	local n
	for n in 0 2 4 6; do
		assert_line --regexp "^found $n in unshielded "
	done
	srv_scan "$AGENT_PID"
	! grep -q ' /secretmem' "/proc/$AGENT_PID/maps" || fail "the control maps /secretmem"
}

@test "ssh-agent: --lib 'libcrypto.so*' leaves the prekey and the shielded keys readable" {
	ssh_patterns
	start_ssh_agent "$SRV_RUN" --lib 'libcrypto.so*' --
	srv_assert_shim "$AGENT_PID"
	unshield "$AGENT_PID"
	((UNSHIELDED == 2)) || fail "the attack decrypted $UNSHIELDED keys, not 2: $UNSHIELD"
}

ssh_protected() {
	ssh_patterns
	start_ssh_agent "$SRV_RUN" "$@" --
	srv_assert_protected "$AGENT_PID"
	unshield "$AGENT_PID"
	((UNSHIELDED == 0)) || fail "the attack decrypted $UNSHIELDED keys: $UNSHIELD"
	refute_line --regexp '^found '
	# and the agent still signs with both keys
	local k
	for k in id_ed25519 id_rsa; do
		rm -f "$SOCKDIR/msg.sig"
		run -0 timeout 10 ssh-keygen -Y sign -f "$KEYS/$k.pub" -n file "$SOCKDIR/msg"
	done
}

@test "ssh-agent: --lib ssh-agent (its own code: prekey, shielded keys) protects both keys between signatures" {
	ssh_protected --lib ssh-agent
}

@test "ssh-agent: the README's rule, --lib ssh-agent --lib 'libcrypto.so*', protects both keys" {
	ssh_protected --lib ssh-agent --lib 'libcrypto.so*'
}

@test "ssh-agent: --lib '*' protects both keys" {
	ssh_protected --lib '*'
}

# ssh_scan_signing: stops the agent with gdb where it signs with the RSA key
# (RSA_sign: the key unshielded into OpenSSL's numbers), scans it, lets it go on.
ssh_scan_signing() {
	local ready=$SOCKDIR/gdb.ready stopped=$SOCKDIR/gdb.stopped go=$SOCKDIR/gdb.go i
	command -v gdb >/dev/null || fail "gdb is missing (scripts/build installs it)"
	timeout 90 gdb -p "$AGENT_PID" -batch -nx -ex 'break RSA_sign' -ex "shell touch $ready" \
		-ex continue -ex "shell touch $stopped; while [ ! -e $go ]; do sleep 0.05; done" \
		-ex detach >"$BATS_TEST_TMPDIR/gdb.out" 2>&1 3>&- &
	local gdb_pid=$!
	for ((i = 0; i < 400; i++)); do [[ -e $ready ]] && break; sleep 0.05; done
	[[ -e $ready ]] || fail "gdb did not attach: $(cat "$BATS_TEST_TMPDIR/gdb.out")"
	rm -f "$SOCKDIR/msg.sig"
	timeout 60 ssh-keygen -Y sign -f "$KEYS/id_rsa.pub" -n file "$SOCKDIR/msg" >/dev/null 2>&1 3>&- &
	local sign_pid=$!
	for ((i = 0; i < 400; i++)); do [[ -e $stopped ]] && break; sleep 0.05; done
	[[ -e $stopped ]] || fail "the agent never reached RSA_sign: $(cat "$BATS_TEST_TMPDIR/gdb.out")"
	srv_scan "$AGENT_PID"
	touch "$go"
	wait "$gdb_pid" || true
	wait "$sign_pid" || fail "the signature failed after the scan"
}

@test "ssh-agent: while it signs, --lib ssh-agent alone leaves the RSA key in OpenSSL's numbers, in the ordinary heap" {
	ssh_patterns
	start_ssh_agent "$SRV_RUN" --lib ssh-agent --
	srv_assert_shim "$AGENT_PID"
	ssh_scan_signing
	[[ -n $FOUND ]] || fail "the scan inside RSA_sign found nothing: $SCAN"
}

@test "ssh-agent: while it signs, the README's rule leaves nothing readable" {
	ssh_patterns
	start_ssh_agent "$SRV_RUN" --lib ssh-agent --lib 'libcrypto.so*' --
	ssh_scan_signing
	[[ -z $FOUND ]] || fail "key material readable inside RSA_sign:
$FOUND"
	grep -q 'bytes in /secretmem' <<<"$SCAN" || fail "the scan met no secret memory: $SCAN"
}
