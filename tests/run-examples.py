#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every example of README.md and man/*.[1-9], one per record, for tests/run.bats.

Code blocks: README lines indented by four spaces; man page .Bd -literal blocks
and .Dl lines (roff escapes undone). A block that starts with #include is one C example. In a
block with prompts ("$ " or "# "), the prompted lines are commands and the lines
after one are its expected output; otherwise every line is a command, and a line
ending in a backslash goes on to the next.

Writes into DIR: N.where (file:line), N.kind (sh or c), N.text, N.out (expected
output, maybe empty)."""
import os, re, sys

srcdir, outdir = sys.argv[1], sys.argv[2]
blocks = []  # (file, first line, [lines])

readme = os.path.join(srcdir, 'README.md')
cur = None
for n, line in enumerate(open(readme).read().split('\n'), 1):
    if line.startswith('    '):
        if cur is None:
            cur = ('README.md', n, [])
            blocks.append(cur)
        cur[2].append(line[4:])
    elif line.strip() == '' and cur is not None:
        cur[2].append('')
    else:
        cur = None

mandir = os.path.join(srcdir, 'man')
for page in sorted(os.listdir(mandir)):
    if not re.fullmatch(r'.*\.[1-9]', page):
        continue
    cur = None
    for n, line in enumerate(open(os.path.join(mandir, page)).read().split('\n'), 1):
        if line.startswith('.Dl '):
            blocks.append(('man/' + page, n, [line[4:].replace('\\e', '\\').replace('\\&', '')]))
        elif line.startswith('.Bd -literal'):
            cur = ('man/' + page, n + 1, [])
            blocks.append(cur)
        elif line.startswith('.Ed'):
            cur = None
        elif cur is not None:
            cur[2].append(line.replace('\\e', '\\').replace('\\&', ''))

records = []
for where, first, lines in blocks:
    while lines and lines[-1] == '':
        lines.pop()
    if lines and lines[0].startswith('#include'):
        records.append((f'{where}:{first}', 'c', '\n'.join(lines) + '\n', ''))
        continue
    prompted = any(re.match(r'[$#] ', l) for l in lines)
    cmd, out, at = None, [], first
    def flush():
        if cmd is not None:
            records.append((f'{where}:{at}', 'sh', cmd, ''.join(o + '\n' for o in out)))
    i = 0
    while i < len(lines):
        l, n = lines[i], first + i
        i += 1
        if prompted and not re.match(r'[$#] ', l):
            if cmd is not None and l:
                out.append(l)
            continue
        if not l.strip():
            continue
        flush()
        cmd, out, at = (l[2:] if prompted else l), [], n
        while cmd.endswith('\\') and i < len(lines):
            cmd = cmd[:-1].rstrip() + ' ' + lines[i].strip()
            i += 1
        cmd = ' '.join(cmd.split())
    flush()

os.makedirs(outdir, exist_ok=True)
for k, (where, kind, text, out) in enumerate(records):
    for ext, val in (('where', where), ('kind', kind), ('text', text), ('out', out)):
        with open(os.path.join(outdir, f'{k}.{ext}'), 'w') as f:
            f.write(val)
print(len(records))
