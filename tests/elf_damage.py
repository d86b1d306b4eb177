#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# elf_damage.py IN OUT SECTION MODE: copies a 64-bit little-endian ELF file and
# damages one section header the way issue 12 found (the loader never reads section
# headers, so the library still loads and runs):
#   wrap   sh_offset = 2^63, sh_size = 2^63 + 0x100 (their sum wraps to 0x100)
#   huge   sh_offset = 0x40, sh_size = 2^63 - 1
#   past   sh_offset = the file size - 8, sh_size = 0x1000 (runs off the end)
import struct
import sys

src, dst, want, mode = sys.argv[1:5]
data = bytearray(open(src, "rb").read())
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
stroff, = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)
done = False
for i in range(shnum):
    h = shoff + i * shentsize
    name, = struct.unpack_from("<I", data, h)
    end = data.index(b"\0", stroff + name)
    if data[stroff + name:end].decode() != want:
        continue
    off, size = {
        "wrap": (1 << 63, (1 << 63) + 0x100),
        "huge": (0x40, (1 << 63) - 1),
        "past": (len(data) - 8, 0x1000),
    }[mode]
    struct.pack_into("<QQ", data, h + 0x18, off, size)
    done = True
if not done:
    sys.exit(f"elf_damage.py: no section {want} in {src}")
open(dst, "wb").write(data)
