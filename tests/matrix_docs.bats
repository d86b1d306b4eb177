#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The table of rules for real programs (README.md, libsecretmem-preload(7)) against
# the matrix tests: every rule the README gives is run, as written, by the test file
# the row names, and the man page gives the same rules.

load helpers

setup() {
	sm_setup
	SRC=$abs_top_srcdir
}

# The rows of README.md's table under "## Rules for real programs", one a line:
# RULE<TAB>TEST FILE.
readme_rules() {
	awk '/^## Rules for real programs/ { on = 1; next } /^## / { on = 0 }
		on && /^\| / && !/^\| program/ && !/^\|---/' "$SRC/README.md" |
		while IFS='|' read -r _ _ rule _ tested _; do
			rule=${rule#*\`}
			rule=${rule%\`*}
			tested=$(grep -oE 'tests/[a-z_]+\.bats' <<<"$tested" | head -n 1)
			printf '%s\t%s\n' "$rule" "$tested"
		done
}

@test "matrix docs: every rule of the README's table is the one its test file runs" {
	local rule tested n=0
	while IFS=$'\t' read -r rule tested; do
		n=$((n + 1))
		[[ -n $rule && -n $tested ]] || fail "a row without a rule or a test file: '$rule' '$tested'"
		[[ -f $SRC/$tested ]] || fail "$tested (for $rule) does not exist"
		grep -qF -- "$rule" "$SRC/$tested" || fail "$tested does not run the rule $rule"
	done < <(readme_rules)
	((n >= 9)) || fail "only $n rows in the README's table"
}

@test "matrix docs: the man page gives the README's rules" {
	local man rule
	man=$(mandoc -Tascii -Owidth=1000 "$SRC/man/libsecretmem-preload.7" | sed 's/.\x08//g' |
		awk '/^   Rules for real programs/ { on = 1; next } /^[A-Z]/ { on = 0 } on' | tr -s ' \n' ' ')
	[[ -n $man ]] || fail "libsecretmem-preload(7) has no 'Rules for real programs'"
	while IFS=$'\t' read -r rule _; do
		[[ $man == *" $rule;"* ]] || fail "the man page does not give the rule $rule"
	done < <(readme_rules)
}
