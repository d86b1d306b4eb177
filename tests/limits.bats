#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Limits in the way services really run: the memlock limit after a privilege drop,
# giving secret memory back when nothing is live (hibernation), an address-space
# limit, what a root scan of the process reads, and the systemd drop-in of
# docs/deployment.md. The probe (tests/limits_prog.c) is built as distributions
# build: -O2 -g, and -O3 -flto, and with clang where it is installed.

load helpers
load routing-helpers

setup_file() {
	rt_build
	# Runs as nobody need the shim and the program where nobody can reach them.
	LM_DIR=$(mktemp -d /tmp/secretmem-limits.XXXXXX)
	chmod 755 "$LM_DIR"
	cp "$SHIM" "$LM_DIR/libsecretmem-preload.so"
	rt_probe_variants limits_prog "$LM_DIR" || return 1
	chmod -R a+rX "$LM_DIR"
	export LM_DIR
}

teardown_file() {
	[[ -n ${LM_DIR:-} && $LM_DIR == /tmp/secretmem-limits.* ]] && rm -rf "$LM_DIR"
	return 0
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
}

lm_run() { # VARIANT ARGS...: the probe under the shim, every allocation of its own secret
	local v=$1
	shift
	env LD_PRELOAD="$LM_DIR/libsecretmem-preload.so" SECRETMEM_LIBS=limits_prog "$LM_DIR/$v/limits_prog" "$@"
}

@test "privilege drop: root becomes nobody with a 2 MiB memlock limit; 1500 then 400 KiB are secret, the limit in force is reported" {
	[[ $(id -u) == 0 ]] || skip "needs root"
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr env SECRETMEM_STATS=1 bash -c "$(declare -f lm_run); lm_run $v drop 1500 400"
		assert_line "uid 65534"
		assert_line "first ok secret 1"
		assert_line "second ok secret 1"
		# 2 MiB less the 64 KiB a fork copy keeps back
		[[ $stderr == *"limit 2031616 bytes"* ]] || fail "$v: the report names another limit: $stderr"
	done
	# control: without the drop the report names the unlimited root budget
	run -0 --separate-stderr env SECRETMEM_STATS=1 bash -c "$(declare -f lm_run); lm_run o2 idle"
	[[ $stderr == *"limit "* && $stderr != *"limit 2031616 bytes"* ]] || fail "control: $stderr"
}

@test "privilege drop to a 2 MiB memlock limit, the budget spent, free pages in runs between live blocks: a larger block fits from them, secret (fork copy and drop)" {
	[[ $(id -u) == 0 ]] || skip "needs root"
	local v fork
	for v in "${VARIANTS[@]}"; do
		for fork in copy drop; do
			run -0 --separate-stderr env SECRETMEM_FORK=$fork bash -c "$(declare -f lm_run); lm_run $v frag"
			assert_line "big ok secret 1 maps 1"
			assert_line "kept 1"
			# 16 KiB blocks filled about all of the limit before half were freed
			local blocks=${lines[0]#blocks }
			((blocks >= 100)) || fail "$v $fork: only $blocks blocks of 16 KiB: ${lines[*]}"
		done
	done
}

@test "privilege drop after the blocks are made, then fork: the copy fits the limit now in force, and the child reads every byte" {
	[[ $(id -u) == 0 ]] || skip "needs root"
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr bash -c "$(declare -f lm_run); lm_run $v forkcheck 512 drop"
		assert_line "blocks 13 secret 1"
		assert_line "child ok"
		[[ $stderr != *"cannot give the child"* ]] || fail "$v: $stderr"
	done
}

@test "a user namespace (unshare -r): CAP_IPC_LOCK there lifts no limit; the limit in force is reported, and a fork copies" {
	[[ $(id -u) == 0 ]] || skip "needs root"
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr prlimit --memlock=4194304:4194304 unshare -r env SECRETMEM_STATS=1 \
			bash -c "$(declare -f lm_run); lm_run $v forkcheck 1500"
		assert_line "child ok"
		# 4 MiB less the 64 KiB a fork copy keeps back
		[[ $stderr == *"limit 4128768 bytes"* ]] || fail "$v: the report names another limit: $stderr"
		[[ $stderr != *"cannot give the child"* ]] || fail "$v: $stderr"
	done
}

@test "nothing live: no secret mapping is left (the kernel can hibernate), the next allocation maps one; freed again at once it is kept, after the hold (doubled to 100 ms: needed again at once) given back" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr lm_run "$v" idle
		assert_line "secret 1 1"
		assert_line --regexp '^live [1-9]'     # control: the mapping is seen while live
		assert_line --regexp '^one_live [1-9]' # a live block keeps its chunk
		assert_line "none_live 0"
		assert_line --regexp '^again [1-9][0-9]* secret 1$'
		assert_line --regexp '^held (1|late)$' # "late": descheduled for the whole hold
		assert_line "end 0"
	done
}

@test "a program that sandboxes itself after start-up (seccomp: memfd_secret EPERM): the next secret allocation fails, and the warning names the filter" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr lm_run "$v" sandbox
		assert_line "before 1"
		assert_line "after null" # fails closed, never ordinary memory
		[[ $stderr == *"mapping 4096 more bytes failed (EPERM): the kernel refused the call, most likely a seccomp filter the program installed after start-up"* ]] ||
			fail "$v: $stderr"
	done
}

@test "threads started and joined by a tagged program keep nothing secret live: with its blocks freed, no secret mapping is left" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr lm_run "$v" thread
		assert_line "secret 1"
		assert_line "threads secret 1 1 1 1" # the threads' own blocks are the program's
		assert_line --regexp '^live [1-9]'   # control: the mapping is seen while live
		assert_line "freed 0"
		assert_line "end 0"
	done
}

@test "ulimit -v 1000000: a program with a rule runs, and its blocks are secret" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr bash -c "ulimit -v 1000000 && $(declare -f lm_run); lm_run $v idle"
		assert_line "secret 1 1"
		assert_line "none_live 0"
	done
	# control: the limit is in force (a 2 GB ordinary allocation fails under it)
	run -1 bash -c 'ulimit -v 1000000 && exec python3 -c "bytearray(2 << 30)"'
}

@test "a root scan of the process reads little more than without the shim" {
	run -0 --separate-stderr env "$LM_DIR/o2/limits_prog" readable
	assert_line "secret 0" # control: no shim, nothing secret
	local plain
	plain=$(awk '$1 == "readable" { print $2 }' <<<"$output")
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr lm_run "$v" readable
		assert_line "secret 1"
		local shim
		shim=$(awk '$1 == "readable" { print $2 }' <<<"$output")
		# the page map is committed only where chunks are (it was 127 MiB readable)
		((shim - plain < 8 << 20)) || fail "$v: $shim readable bytes with the shim, $plain without"
	done
}

@test "systemd drop-in of docs/deployment.md: systemd-analyze verify accepts it, with its environment and LimitMEMLOCK" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed (apt package systemd)"
	local d=$BATS_TEST_TMPDIR/units
	mkdir -p "$d/nginx.service.d"
	# the unit of Debian's nginx package, reduced to what verify looks at
	cat >"$d/nginx.service" <<-UNIT
		[Unit]
		Description=A high performance web server and a reverse proxy server
		[Service]
		Type=forking
		PIDFile=/run/nginx.pid
		ExecStart=/bin/true
		[Install]
		WantedBy=multi-user.target
	UNIT
	cp "$abs_top_srcdir/docs/systemd/secretmem.conf" "$d/nginx.service.d/"
	run --separate-stderr env SYSTEMD_UNIT_PATH="$d:" SYSTEMD_LOG_LEVEL=debug timeout 60 \
		systemd-analyze verify --man=no nginx.service
	if ((status != 0)) && [[ $stderr == *"Failed to initialize"* || $stderr == *"ermission denied"* ]]; then
		skip "systemd-analyze verify cannot run here: $stderr"
	fi
	((status == 0)) || fail "verify failed: $stderr"
	# a complaint about the drop-in names it, FILE:LINE: (verify also reads, and
	# may complain about, the system's own units)
	[[ $stderr != *"secretmem.conf:"* ]] || fail "verify complains: $(grep secretmem.conf: <<<"$stderr")"
	# the unit as systemd loaded it (the debug dump)
	local dump="$output$stderr"
	[[ $dump == *"DropIn Path: $d/nginx.service.d/secretmem.conf"* ]] || fail "the drop-in was not read"
	[[ $dump == *"Environment: LD_PRELOAD=/usr/local/lib/libsecretmem-preload.so"* ]] || fail "no LD_PRELOAD"
	[[ $dump == *"Environment: SECRETMEM_LIBS=libcrypto.so*"* ]] || fail "no SECRETMEM_LIBS"
	[[ $dump == *"LimitMEMLOCK: 67108864"* ]] || fail "no LimitMEMLOCK"
	# control: a typo in the limit is reported
	sed -i 's/^LimitMEMLOCK=64M/LimitMEMLOCK=64Q/' "$d/nginx.service.d/secretmem.conf"
	run --separate-stderr env SYSTEMD_UNIT_PATH="$d:" timeout 60 systemd-analyze verify --man=no nginx.service
	[[ $stderr == *"secretmem.conf:"*"Failed to parse"* ]] ||
		fail "control: a bad LimitMEMLOCK went unnoticed: $stderr"
}
