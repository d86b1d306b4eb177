#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The documentation against the code: every man page renders cleanly; every
# SECRETMEM_* variable the library names is documented in the man page, the README
# and secretmem-run --help; every message the library can print is in the man page's
# DIAGNOSTICS; the README and CI name the scripts that exist.

load helpers

setup() {
	sm_setup
	SRC=$abs_top_srcdir
	MAN7=$SRC/man/libsecretmem-preload.7
	RUN=$abs_top_builddir/tools/secretmem-run
}

# The man pages under man/.
man_pages() {
	find "$SRC/man" -maxdepth 1 -type f -name '*.[1-9]' | sort
}

# The plain text of SECTION of man page FILE, as mandoc renders it (no line
# breaks inside a paragraph, no overstrike), whitespace squeezed to single spaces.
man_section() {
	local file=$1 section=$2
	mandoc -Tascii -Owidth=1000 "$file" | sed 's/.\x08//g' |
		awk -v s="$section" '/^[A-Z]/ { on = ($0 == s); next } on' | tr -s ' \t\n' ' '
}

# The SECRETMEM_* variables the library's sources name in a string ("SECRETMEM_...).
source_variables() {
	grep -ohE '"SECRETMEM_[A-Z_]*[A-Z]' "$SRC"/src/*.c | tr -d '"' | sort -u
}

@test "every man page renders with man -l: exit 0, text, no warnings" {
	local page n=0
	for page in $(man_pages); do
		n=$((n + 1))
		run --separate-stderr env MANWIDTH=80 MANPAGER=cat man --warnings -l "$page"
		((status == 0)) || fail "man -l $page: status $status: $stderr"
		assert_equal "$stderr" ""
		(($(grep -c '[a-z]' <<<"$output") >= 10)) || fail "man -l $page: little text: $output"
	done
	((n >= 4)) || fail "only $n man pages found under $SRC/man"
}

@test "every man page is clean under mandoc -Tlint -W warning" {
	local page
	for page in $(man_pages); do
		run mandoc -Tlint -W warning "$page"
		((status == 0)) && [[ -z $output ]] || fail "mandoc -Tlint $page (status $status): $output"
	done
}

@test "there is a man page for the library, the header and both commands" {
	local page
	for page in libsecretmem-preload.7 secretmem.h.3 secretmem-run.1 secretmem-inspect.1; do
		[[ -f $SRC/man/$page ]] || fail "man/$page is missing"
	done
}

@test "every SECRETMEM_* variable of the sources is in the man page's ENVIRONMENT" {
	local env vars var missing=()
	vars=$(source_variables)
	(($(wc -l <<<"$vars") >= 10)) || fail "found too few variables in src/*.c: $vars"
	env=$(man_section "$MAN7" ENVIRONMENT)
	[[ -n $env ]] || fail "$MAN7 has no ENVIRONMENT section"
	for var in $vars; do
		[[ " $env " =~ [^A-Z_]${var}[^A-Z_] ]] || missing+=("$var")
	done
	((${#missing[@]} == 0)) || fail "not in the ENVIRONMENT section of $MAN7: ${missing[*]}"
	# and each one has its own entry: the list's tags are the variables
	local tags
	tags=$(grep -oE '^\.It Ev SECRETMEM_[A-Z_]+' "$MAN7" | awk '{ print $3 }' | sort -u)
	assert_equal "$tags" "$vars"
}

@test "every SECRETMEM_* variable of the sources is in README.md's table" {
	local var missing=()
	for var in $(source_variables); do
		grep -qE "^\| \`$var\` \|" "$SRC/README.md" || missing+=("$var")
	done
	((${#missing[@]} == 0)) || fail "not in the variables table of README.md: ${missing[*]}"
}

@test "every SECRETMEM_* variable of the sources is in secretmem-run --help" {
	run --separate-stderr -0 "$RUN" --help
	local var missing=()
	for var in $(source_variables); do
		[[ $output =~ (^|[^A-Z_])${var}([^A-Z_]|$) ]] || missing+=("$var")
	done
	((${#missing[@]} == 0)) || fail "not in secretmem-run --help: ${missing[*]}"
}

@test "every message the library can print is in DIAGNOSTICS of libsecretmem-preload(7)" {
	# Each sm_die/sm_warn/sm_info/sm_abort/sm_error format in src/*.c is known by its
	# constant prefix up to the first conversion (for a format that starts with one,
	# its first constant piece of at least 4 characters), cut at the first "; " (what
	# follows is advice the page may word differently). It is documented when the
	# rendered DIAGNOSTICS section contains it, or when an entry of the section
	# (an .It line) whose text before its first placeholder (Ar) or "..." has at
	# least 16 characters begins it (an entry that abbreviates the message with "...").
	run --separate-stderr python3 - "$MAN7" "$SRC"/src/*.c <<'EOF'
import re, subprocess, sys
man, sources = sys.argv[1], sys.argv[2:]

# the messages
CALL = re.compile(r'\bsm_(die|warn|info|abort|error)\s*\(')
STR = re.compile(r'\s*"((?:[^"\\\n]|\\.)*)"')
CONV = re.compile(r'%-?[0-9]*(?:ll|l|z)?[sducxp%]')
ESC = {'n': '\n', 't': '\t'}
messages = []
for path in sources:
    text = open(path).read()
    for m in CALL.finditer(text):
        pos, parts = m.end(), []
        while (s := STR.match(text, pos)):
            parts.append(re.sub(r'\\(.)', lambda e: ESC.get(e.group(1), e.group(1)), s.group(1)))
            pos = s.end()
        if not parts:
            continue  # a definition (log.c) or a format that is not a literal
        fmt = ''.join(parts)
        frags = [' '.join(f.split()) for f in CONV.split(fmt.split('; ')[0])]
        key = frags[0] if len(frags[0]) >= 4 else next((f for f in frags if len(f) >= 4), '')
        if key:
            line = text.count('\n', 0, m.start()) + 1
            messages.append((f'{path.rsplit("/", 1)[-1]}:{line}', key))
if len(messages) < 20:
    sys.exit(f'found only {len(messages)} messages in src/*.c')

# the DIAGNOSTICS section, rendered, whitespace squeezed
out = subprocess.run(['mandoc', '-Tascii', '-Owidth=1000', man], capture_output=True,
                     text=True, check=True).stdout
out = re.sub(r'.\x08', '', out)
m = re.search(r'^DIAGNOSTICS\n(.*?)(?=^[A-Z])', out, re.S | re.M)
if not m:
    sys.exit(f'{man} has no DIAGNOSTICS section')
diag = ' '.join(m.group(1).split())

# the entries' text before the first placeholder or "..."
src = open(man).read()
m = re.search(r'^\.Sh DIAGNOSTICS\n(.*?)(?=^\.Sh )', src, re.S | re.M)
MACROS = {'It', 'Li', 'Ev', 'Ns', 'Cm', 'Dv', 'Er', 'Pa', 'Sy', 'Em', 'Fn', 'Fa', 'Xr',
          'Ql', 'Dq', 'Nm', 'Va', 'Ic', 'Fl'}
prefixes = []
for line in m.group(1).splitlines():
    if not line.startswith('.It '):
        continue
    tag, nospace, placeholder = '', True, False
    for tok in line[1:].split():
        tok = tok.replace('\\&', '')
        if tok in MACROS:
            nospace = nospace or tok == 'Ns'
            continue
        if tok == 'Ar':
            placeholder = True
            continue
        if placeholder:
            tok, placeholder = '@@', False
        if not tok:
            continue
        if not nospace and not re.fullmatch(r'[.,:;)\]?!]+', tok):
            tag += ' '
        tag += tok
        nospace = bool(re.fullmatch(r'[(\[]+', tok))
    prefix = re.split(r'@@|\.\.\.', tag)[0].strip()
    if len(prefix) >= 16:
        prefixes.append(prefix)

missing, seen = [], set()
for where, key in messages:
    if key in diag or key in seen or any(key.startswith(p) for p in prefixes):
        continue
    seen.add(key)
    missing.append(f'  {where}: {key}')
if missing:
    print(f'{len(missing)} messages of the library are not in the DIAGNOSTICS section of {man}:')
    print('\n'.join(missing))
    sys.exit(1)
EOF
	assert_success
}

@test "README.md names scripts/demo and scripts/check, and both exist" {
	local s
	for s in scripts/demo scripts/check; do
		grep -qF "$s" "$SRC/README.md" || fail "README.md does not name $s"
		[[ -x $SRC/$s ]] || fail "$s is not an executable file"
	done
}

@test ".ci/run calls scripts/check" {
	[[ -x $SRC/.ci/run ]] || fail ".ci/run is missing or not executable"
	grep -vE '^[[:space:]]*#' "$SRC/.ci/run" | grep -qE '(^|[[:space:]/])scripts/check([[:space:]]|$)' ||
		fail ".ci/run does not call scripts/check: $(cat "$SRC/.ci/run")"
}
