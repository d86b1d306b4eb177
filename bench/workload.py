# SPDX-License-Identifier: MIT
"""A fixed, CPU-bound Python workload for scripts/bench: JSON encode/decode,
regular expressions and dict-heavy bookkeeping, allocation-intensive the way
ordinary Python code is. Deterministic (fixed seed); prints a checksum so that
runs with and without the shim can be seen to compute the same thing.

    python3 bench/workload.py [SCALE]     (SCALE: rounds, default 12)
"""
import json
import random
import re
import sys

WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
KEYVAL = re.compile(r"(\w+)=(\d+)")


def make_records(rng, n):
    names = ["alpha", "beta", "gamma", "delta", "key-id", "nonce", "token"]
    return [
        {
            "id": i,
            "name": rng.choice(names) + "-" + str(rng.randrange(1000)),
            "tags": [rng.choice(names) for _ in range(rng.randrange(1, 6))],
            "score": rng.random(),
            "attrs": {"k%d" % j: rng.randrange(100) for j in range(rng.randrange(1, 8))},
        }
        for i in range(n)
    ]


def one_round(rng):
    records = make_records(rng, 2000)
    text = json.dumps(records)
    back = json.loads(text)
    counts = {}
    for rec in back:
        for w in WORD.findall(rec["name"] + " " + " ".join(rec["tags"])):
            counts[w] = counts.get(w, 0) + 1
        line = " ".join("%s=%d" % kv for kv in rec["attrs"].items())
        total = sum(int(v) for _, v in KEYVAL.findall(line))
        counts[("total", rec["id"] % 97)] = counts.get(("total", rec["id"] % 97), 0) + total
    index = {}
    for rec in back:
        for t in rec["tags"]:
            index.setdefault(t, []).append(rec["id"])
    return len(text) + sum(v for v in counts.values()) + sum(len(v) for v in index.values())


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    rng = random.Random(1234)
    check = 0
    for _ in range(scale):
        check = (check * 31 + one_round(rng)) % (1 << 61)
    print("checksum", check)


if __name__ == "__main__":
    main()
