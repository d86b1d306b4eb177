# SPDX-License-Identifier: MIT
"""The benchmark suite of libsecretmem-preload (run it with scripts/bench).

Runs every benchmark program in bench/ and the real workloads (openssl s_server,
a Python script) with and without the shim, interleaving the configurations
round by round so that the VM's drift hits them alike, and writes into OUTDIR:
  RESULTS.md        the table: machine, figures, ratios, notes, targets
  results.png       the plot (gnuplot)
  results.json      every figure, machine-readable
  raw.log           every command run and its output
  callgrind-*.txt   function-level instruction counts (callgrind_annotate)
Figures are medians over the rounds. Nothing here asserts a figure.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(TOP, "bench")
LIB = os.path.join(TOP, ".libs", "libsecretmem-preload.so")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"        # Debian's libmimalloc2.0
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # libtcmalloc-minimal4
INSPECT = os.path.join(TOP, "tools", "secretmem-inspect")

log = None
results = {}


def say(*a):
    print(*a, flush=True)


def env_for(extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SECRETMEM_") and k != "LD_PRELOAD"}
    e.update(extra or {})
    return e


def run(cmd, extra=None, timeout=600, check=True):
    """Run cmd with the environment extra (LD_PRELOAD, SECRETMEM_*); return stdout."""
    env = env_for(extra)
    shown = " ".join("%s=%s" % kv for kv in (extra or {}).items())
    log.write("$ %s %s\n" % (shown, " ".join(cmd)))
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    log.write(p.stdout + p.stderr)
    log.flush()
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()[-500:]))
    return p.stdout


def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# Configurations: what is preloaded and which variables are set.
NOPRE = {}
JEM = {"LD_PRELOAD": JEMALLOC}
MIM = {"LD_PRELOAD": MIMALLOC}
TCM = {"LD_PRELOAD": TCMALLOC}
# The other allocators, by name, as every allocator table shows them.
OTHERS = [("jemalloc", JEM), ("mimalloc", MIM), ("tcmalloc", TCM)]


def set_shim(path):
    """The shim build every section measures (--shim; default this tree's)."""
    global LIB, SHIM, SHIMJEM, SHIMMIM, SHIMTCM
    LIB = path
    SHIM = {"LD_PRELOAD": LIB}
    SHIMJEM = {"LD_PRELOAD": LIB + " " + JEMALLOC}
    SHIMMIM = {"LD_PRELOAD": LIB + " " + MIMALLOC}
    SHIMTCM = {"LD_PRELOAD": LIB + " " + TCMALLOC}


set_shim(LIB)


def rounds_of(configs, fn, rounds):
    """Call fn(name, cfg) for each configuration, rounds times, interleaved;
    return {name: [values]}."""
    out = {n: [] for n, _ in configs}
    for _ in range(rounds):
        for n, c in configs:
            out[n].append(fn(n, c))
    return out


# ---------------------------------------------------------------- untagged

def callgrind_ir(cmd, extra, tag):
    f = tempfile.NamedTemporaryFile(prefix="cg.", delete=False).name
    run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f] + cmd, extra)
    ir = None
    with open(f) as fh:
        for line in fh:
            if line.startswith("summary:") or line.startswith("totals:"):
                ir = int(line.split()[1])
    os.unlink(f)
    return ir


def per_call_ir(mk, n1, n2, extra):
    """Instructions per iteration: the difference between two run lengths, so
    start-up and exit cancel out."""
    return (callgrind_ir(mk(n2), extra, "") - callgrind_ir(mk(n1), extra, "")) / (n2 - n1)


def bench_untagged(a):
    say("== untagged overhead")
    n = 2000000 if a.quick else 10000000
    nr = 500000 if a.quick else 3000000
    configs = [("nopre", NOPRE), ("shim", SHIM), ("jemalloc", JEM), ("shim+jemalloc", SHIMJEM),
               ("mimalloc", MIM), ("shim+mimalloc", SHIMMIM), ("tcmalloc", TCM), ("shim+tcmalloc", SHIMTCM)]
    progs = {
        "pair": lambda: [os.path.join(B, "pairs"), "-n", str(n)],
        "strdup": lambda: [os.path.join(B, "route_bench"), "strdup", "-n", str(nr)],
        "new": lambda: [os.path.join(B, "route_bench"), "cxxnew", "-n", str(nr)],
    }

    def one(name, cfg):
        r = {}
        for p, mk in progs.items():
            out = run(mk(), cfg)
            m = re.search(r"ns/pair=([\d.]+)", out) or re.search(r"([\d.]+) ns", out)
            r[p] = float(m.group(1))
        return r

    raw = rounds_of(configs, one, a.rounds)
    res = {}
    for p in progs:
        res[p] = {c: med([r[p] for r in raw[c]]) for c, _ in configs}
        res[p]["ratio"] = res[p]["shim"] / res[p]["nopre"]
        for o, _ in OTHERS:
            res[p]["ratio_" + o] = res[p]["shim+" + o] / res[p][o]
        res[p]["ratio_jem"] = res[p]["ratio_jemalloc"]
    # Instruction counts per call (callgrind, repeatable).
    cg = {}
    ncg1, ncg2 = (100000, 200000) if a.quick else (200000, 400000)
    mk = {
        "pair": lambda k: [os.path.join(B, "pairs"), "-n", str(k)],
        "strdup": lambda k: [os.path.join(B, "route_bench"), "strdup", "-n", str(k)],
        "new": lambda k: [os.path.join(B, "route_bench"), "cxxnew", "-n", str(k)],
    }
    for p in mk:
        cg[p] = {c: per_call_ir(mk[p], ncg1, ncg2, cfg) for c, cfg in (("nopre", NOPRE), ("shim", SHIM))}
        res[p]["ir_nopre"] = cg[p]["nopre"]
        res[p]["ir_shim"] = cg[p]["shim"]
        say("  %-6s time %.2fx (%.1f vs %.1f ns), %.0f vs %.0f instructions" % (
            p, res[p]["ratio"], res[p]["shim"], res[p]["nopre"], cg[p]["shim"], cg[p]["nopre"]))
    results["untagged"] = res


# ---------------------------------------------------------------- secret arena

def bench_arena(a):
    say("== secret arena vs glibc, jemalloc, OpenSSL secure heap, libsodium")
    ab = os.path.join(B, "alloc_bench")
    q = 0.25 if a.quick else 1.0
    steps = {"small": int(4000000 * q), "medium": int(1000000 * q), "mixed": int(400000 * q)}
    sodium_steps = {"small": int(20000 * q), "medium": int(20000 * q), "mixed": int(10000 * q)}
    # The secret arena through the preload: a library rule naming the program,
    # the cached decision, as a user's SECRETMEM_LIBS would; and through a scope.
    secret_rule = dict(SHIM, SECRETMEM_LIBS="alloc_bench")
    allocs = [
        ("glibc", [], NOPRE),
        ("jemalloc", [], JEM),
        ("mimalloc", [], MIM),
        ("tcmalloc", [], TCM),
        ("secret", [], secret_rule),
        ("secret (scope)", ["--scope"], SHIM),
        ("openssl", ["-a", "openssl"], NOPRE),
        ("sodium", ["-a", "sodium"], NOPRE),
    ]
    res = {}
    for w in ("small", "medium", "mixed"):
        for t in (1, 2):
            def one(name, cfg, w=w, t=t):
                args, env = cfg
                n = sodium_steps[w] if name == "sodium" else steps[w]
                # a scope is only measured on the small pairs (its cost is per call)
                if name == "secret (scope)" and w != "small":
                    return None
                out = run([ab, "-w", w, "-t", str(t), "-n", str(n)] + args, env)
                d = kv(out)
                if name.startswith("secret") and d.get("secret") != "1":
                    raise RuntimeError("alloc_bench under the shim did not allocate secret memory")
                # ns: the thread's own CPU time a step (other load does not inflate it);
                # scaling: wall-clock throughput
                return (float(d.get("cpu_ns_per_step", d["ns_per_step"])), float(d["msteps_per_s"]),
                        float(d["ns_per_step"]))
            rounds = max(1, a.rounds)
            raw = rounds_of([(n, (ar, e)) for n, ar, e in allocs], one, rounds)
            for n in raw:
                vals = [v for v in raw[n] if v]
                if not vals:
                    continue
                res.setdefault(w, {}).setdefault(n, {})[t] = {
                    "ns": med([v[0] for v in vals]), "mps": med([v[1] for v in vals]),
                    "wall": med([v[2] for v in vals])}
            say("  %-6s %d thread(s): " % (w, t) + ", ".join(
                "%s %.1f ns" % (n, res[w][n][t]["ns"]) for n in res[w] if t in res[w][n]))
    # The arena alone (linked directly, no preload), for what the preload adds.
    direct = {1: [], 2: [], "glibc1": [], "glibc2": []}
    for _ in range(a.rounds):
        out = run([os.path.join(B, "arena_bench"), "-n", str(steps["small"]), "-t", "2", "pairs"])
        m = re.search(r"secret arena\s+1 thread:\s+([\d.]+) ns/pair \(\s*([\d.]+) Mpairs/s\)\s+2 threads:\s+([\d.]+) ns/pair,\s+([\d.]+) Mpairs/s", out)
        g = re.search(r"libc malloc\s+1 thread:\s+([\d.]+) ns/pair \(\s*([\d.]+) Mpairs/s\)\s+2 threads:\s+([\d.]+) ns/pair,\s+([\d.]+) Mpairs/s", out)
        direct[1].append(float(m.group(1)))
        direct[2].append(float(m.group(4)) / float(m.group(2)))
        direct["glibc1"].append(float(g.group(1)))
        direct["glibc2"].append(float(g.group(4)) / float(g.group(2)))
    res["direct"] = {"ns1": med(direct[1]), "scale": med(direct[2]), "glibc_ns1": med(direct["glibc1"]),
                     "glibc_scale": med(direct["glibc2"])}
    say("  arena linked directly: %.1f ns (glibc %.1f), 2-thread scaling %.2fx" % (
        res["direct"]["ns1"], res["direct"]["glibc_ns1"], res["direct"]["scale"]))
    results["arena"] = res


# ---------------------------------------------------------------- issue #15 cases

# (key, case_bench case, threads, steps at full length; None: the program's default)
CASES = [
    ("small-live/1", "small-live", 1, 4000000), ("small-live/2", "small-live", 2, 4000000),
    ("small-pair/1", "small-pair", 1, 4000000), ("small-pair/2", "small-pair", 2, 4000000),
    ("medium-touch/1", "medium-touch", 1, 400000), ("medium-touch/2", "medium-touch", 2, 400000),
    ("medium-fill/1", "medium-fill", 1, 200000), ("medium-fill/2", "medium-fill", 2, 200000),
    ("cross-free", "cross-free", 2, 4000000),
    ("realloc", "realloc", 1, 2000),
    ("many-small", "many-small", 1, None),   # 1M x 64 B: the case itself, never shortened
    ("fresh-pages", "fresh-pages", 1, None),  # 4,096 pages = 16 MiB
]


def secret_count(d):
    k, n = (int(x) for x in d["secret"].split("/"))
    return k, n


def bench_cases(a):
    """Issue #15's cases (bench/case_bench) for glibc, jemalloc, mimalloc, tcmalloc
    and the shim (SECRETMEM_LIBS=case_bench; with --baseline-shim a second build
    beside it), interleaved round by round, per-thread CPU time; every run's blocks
    are checked against /secretmem in /proc/self/maps. Then the kernel's own cost of
    a fresh page, and fork copy of 16 MiB against it."""
    say("== issue #15 cases: glibc, jemalloc, mimalloc, tcmalloc, secret")
    cb = os.path.join(B, "case_bench")
    q = 0.1 if a.quick else 1.0
    rounds = a.case_rounds or (3 if a.quick else 7)
    allocs = [("glibc", NOPRE)] + OTHERS + [("secret", dict(SHIM, SECRETMEM_LIBS="case_bench"))]
    if a.baseline_shim:
        allocs.append(("before", {"LD_PRELOAD": a.baseline_shim, "SECRETMEM_LIBS": "case_bench"}))
    raw = {}
    touch = []
    fork = {}
    fb = os.path.join(B, "fork_bench")
    shims = [("secret", LIB)] + ([("before", a.baseline_shim)] if a.baseline_shim else [])
    for _ in range(rounds):
        for key, case, t, n in CASES:
            for name, env in allocs:
                cmd = [cb, case, "-t", str(t)] + (["-n", str(max(1, int(n * q)))] if n else [])
                d = kv(run(cmd, env))
                k, m = secret_count(d)
                secret = name in ("secret", "before")
                # the routing check: a secret run whose blocks are not all in /secretmem,
                # or an ordinary run with one there, is a broken measurement
                if (secret and (m == 0 or k != m)) or (not secret and k):
                    raise RuntimeError("%s under %s: %d of %d sampled blocks in /secretmem"
                                       % (key, name, k, m))
                raw.setdefault(key, {}).setdefault(name, []).append(
                    {x: float(d[x]) for x in ("cpu_ns", "wall_ns", "mups", "malloc_ns", "free_ns")
                     if x in d})
        d = kv(run([cb, "first-touch"], {}))
        touch.append(d)
        for name, lib in [("no shim", None)] + shims:
            env = {"LD_PRELOAD": lib} if lib else {}
            d = kv(run([fb, "-m", "16", "-r", "3" if a.quick else "5"] + (["--scope"] if lib else []), env))
            if lib and d.get("secret") != "1":
                raise RuntimeError("fork_bench --scope under %s: its blocks are not secret" % name)
            fork.setdefault(name, []).append((float(d["ready_ms"]), float(d["cpu_ms"])))
    res = {"rounds": rounds, "quick": a.quick, "cases": {}}
    for key, per in raw.items():
        res["cases"][key] = {name: {x: med([v[x] for v in vals]) for x in vals[0]}
                             for name, vals in per.items()}
    ft = {}
    for x in ("anon_touch_ns", "anon_populate_ns", "secret_touch_ns", "secret_populate_ns",
              "anon_unmap_ns", "secret_unmap_ns", "anon_touch_wall_ns", "secret_touch_wall_ns"):
        ft[x] = med([float(d[x]) for d in touch])
    ft["secret_populate_error"] = touch[-1].get("secret_populate_error")
    ft["anon_populate_error"] = touch[-1].get("anon_populate_error")
    res["first_touch"] = ft
    # fork: wall ms until the child runs, and the forking thread's CPU ms (the copy)
    res["fork16"] = {n: med([x[0] for x in v]) for n, v in fork.items()}
    res["fork16_cpu"] = {n: med([x[1] for x in v]) for n, v in fork.items()}
    res["shim"] = a.shim_desc or LIB
    if a.baseline_shim:
        res["baseline"] = a.baseline_desc or a.baseline_shim
    for key, _, _, _ in CASES:
        say("  %-15s " % key + ", ".join("%s %.1f" % (n, res["cases"][key][n]["cpu_ns"])
                                        for n, _ in allocs))
    say("  first touch ns/page: anonymous %.0f, secret %.0f (populate: %s)" % (
        ft["anon_touch_ns"], ft["secret_touch_ns"], ft["secret_populate_error"]))
    say("  fork 16 MiB ms: " + ", ".join("%s %.1f" % kv_ for kv_ in res["fork16"].items()))
    results["cases"] = res


# ---------------------------------------------------------------- memory

def bench_memory(a):
    say("== secret memory used: faulted vs needed, mapped vs resident")
    ab = os.path.join(B, "alloc_bench")
    res = {}
    for w, n, t in (("small", 1000000, 1), ("medium", 200000, 1), ("mixed", 200000, 1), ("mixed", 100000, 2)):
        st = tempfile.NamedTemporaryFile(prefix="st.", suffix=".json", delete=False).name
        out = run([ab, "-w", w, "-t", str(t), "-n", str(n)],
                  dict(SHIM, SECRETMEM_LIBS="alloc_bench", SECRETMEM_STATS=st))
        d = kv(out)
        with open(st) as fh:
            s = json.load(fh)
        os.unlink(st)
        peak = s["peak_bytes"]
        need = -(-peak // 4096) * 4096
        res["%s/%d" % (w, t)] = {
            "peak_requested": int(d["peak_live"]), "peak": peak, "touched": s["touched_bytes"],
            "mapped": s["mapped_bytes"], "chunks": s["chunks"],
            "smaps_mapped": int(d["secret_mapped"]), "smaps_rss": int(d["secret_rss"]),
            "touched_over_need": s["touched_bytes"] / need}
        say("  %s/%d: peak %.2f MiB, touched %.2f MiB (%.2fx), mapped %.1f MiB, resident %.2f MiB" % (
            w, t, peak / 2**20, s["touched_bytes"] / 2**20, s["touched_bytes"] / need,
            s["mapped_bytes"] / 2**20, int(d["secret_rss"]) / 2**20))
    results["memory"] = res


# ---------------------------------------------------------------- fork

def bench_fork(a):
    say("== fork with live memory")
    fb = os.path.join(B, "fork_bench")
    reps = "5" if a.quick else "15"
    configs = [("no shim", (NOPRE, [])), ("copy", (SHIM, ["--scope"])),
               ("drop", (dict(SHIM, SECRETMEM_FORK="drop"), ["--scope"]))]
    res = {}
    for mib in (0, 1, 16):
        def one(name, cfg, mib=mib):
            env, args = cfg
            d = kv(run([fb, "-m", str(mib), "-r", reps] + args, env))
            return float(d["ready_ms"]), float(d["total_ms"])
        raw = rounds_of(configs, one, a.rounds)
        res[mib] = {n: {"ready": med([v[0] for v in raw[n]]), "total": med([v[1] for v in raw[n]])}
                    for n, _ in configs}
        say("  %2d MiB: " % mib + ", ".join("%s %.2f ms" % (n, res[mib][n]["ready"]) for n, _ in configs))
    results["fork"] = res


# ---------------------------------------------------------------- routing

def bench_routing(a):
    say("== routing decisions")
    rb = os.path.join(B, "route_bench")
    n = "300000" if a.quick else "1000000"
    rule = dict(SHIM, SECRETMEM_SITES="zcycle")  # a rule that matches none of these callers
    # the program itself tagged: its own calls go to the secret entry points
    tagged = dict(SHIM, SECRETMEM_LIBS="route_bench")
    configs = [("nopre", NOPRE), ("shim", SHIM), ("rules", rule),
               ("depth4", dict(rule, SECRETMEM_DEPTH="4")), ("tagged", tagged)]
    cases = {"direct": n, "tagged": n, "strdup": n, "wcsdup": n, "cxxnew": n, "deep": n}
    res = {}

    def one(name, cfg):
        r = {}
        for c, k in cases.items():
            r[c] = float(re.search(r"([\d.]+) ns", run([rb, c, "-n", k], cfg)).group(1))
        return r
    raw = rounds_of(configs, one, a.rounds)
    for c in cases:
        res[c] = {n_: med([r[c] for r in raw[n_]]) for n_, _ in configs}
    # Resolution of rules against a newly loaded object, and at start-up.
    lconfigs = [("nopre", NOPRE), ("shim", SHIM), ("sites", rule),
                ("libs", dict(SHIM, SECRETMEM_LIBS="libz.so*"))]
    nd = "500" if a.quick else "2000"
    ns = "50" if a.quick else "200"

    def two(name, cfg):
        return {
            "dlopen": float(re.search(r"([\d.]+) ns", run([rb, "dlopen", "-n", nd], cfg)).group(1)),
            "startup": float(re.search(r"([\d.]+) ns", run([rb, "startup", "-n", ns], cfg)).group(1)),
        }
    raw = rounds_of(lconfigs, two, a.rounds)
    for c in ("dlopen", "startup"):
        res[c] = {n_: med([r[c] for r in raw[n_]]) for n_, _ in lconfigs}
    for c in res:
        say("  %-8s " % c + ", ".join("%s %.0f ns" % kv_ for kv_ in res[c].items()))
    results["routing"] = res


def bench_routing_ir(a):
    """Instructions per allocation+free (callgrind: repeatable where times on a
    shared VM are not), for this build and, with --baseline-shim, another one in
    the same run: an untagged call site with rules set, and a tagged object's own
    calls (valgrind does not know memfd_secret: SECRETMEM_FALLBACK=mlock)."""
    say("== routing: instructions per call (callgrind)")
    rb = os.path.join(B, "route_bench")
    ncg1, ncg2 = (100000, 200000) if a.quick else (200000, 400000)
    cgcases = {
        "pairs_rules": (lambda k: [os.path.join(B, "pairs"), "-n", str(k)], {"SECRETMEM_SITES": "zcycle"}),
        "pairs_tagged": (lambda k: [os.path.join(B, "pairs"), "-n", str(k)], {"SECRETMEM_LIBS": "pairs"}),
        "direct_tagged": (lambda k: [rb, "direct", "-n", str(k)], {"SECRETMEM_LIBS": "route_bench"}),
        "tail_tagged": (lambda k: [rb, "tagged", "-n", str(k)], {"SECRETMEM_LIBS": "route_bench"}),
    }
    shims = [("now", LIB)] + ([("before", a.baseline_shim)] if a.baseline_shim else [])
    ir = {}
    for c, (mk, extra) in cgcases.items():
        ir[c] = {}
        for label, lib in shims:
            cfg = dict(extra, LD_PRELOAD=lib, SECRETMEM_FALLBACK="mlock")
            ir[c][label] = per_call_ir(mk, ncg1, ncg2, cfg)
        say("  %-13s " % c + ", ".join("%s %.1f instructions" % kv_ for kv_ in ir[c].items()))
    res = {"ir": ir, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
           "source": subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True).stdout.strip()}
    if a.baseline_shim:
        res["baseline"] = a.baseline_desc or a.baseline_shim
    results["routing_ir"] = res


# ---------------------------------------------------------------- TLS

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_tls(a):
    say("== TLS: openssl s_server, handshakes from openssl s_time")
    d = tempfile.mkdtemp(prefix="tls.")
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost"])
    secs = 2 if a.quick else 6
    configs = [("no shim", NOPRE), ("shim", dict(SHIM, SECRETMEM_LIBS="libcrypto.so*",
                                                 SECRETMEM_STATS="1"))]
    res = {}

    def one(name, cfg):
        port = free_port()
        env = env_for(cfg)
        srv = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key,
                                "-quiet", "-naccept", "1000000"], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        r = {}
        for mode in ("new", "reuse"):
            c0 = cpu_seconds(srv.pid)
            out = run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-" + mode,
                       "-time", str(secs)], {})
            c1 = cpu_seconds(srv.pid)
            conns = [int(x) for x in re.findall(r"(\d+) connections in \d+ real seconds", out)]
            # -reuse reports the first (full) handshake separately: take the last line
            n_ = conns[-1]
            r[mode] = {"hps": n_ / secs, "server_cpu_us": (c1 - c0) / max(n_, 1) * 1e6}
        if name == "shim":
            insp = subprocess.run([INSPECT, "--json", str(srv.pid)], stdout=subprocess.PIPE, text=True)
            log.write(insp.stdout)
            try:
                r["inspect"] = json.loads(insp.stdout)
            except ValueError:
                r["inspect"] = None
        srv.send_signal(signal.SIGTERM)
        srv.wait()
        return r
    raw = rounds_of(configs, one, min(a.rounds, 3))
    for mode in ("new", "reuse"):
        res[mode] = {n: {"hps": med([r[mode]["hps"] for r in raw[n]]),
                         "cpu": med([r[mode]["server_cpu_us"] for r in raw[n]])} for n, _ in configs}
        res[mode]["ratio"] = res[mode]["shim"]["hps"] / res[mode]["no shim"]["hps"]
        res[mode]["cpu_ratio"] = res[mode]["shim"]["cpu"] / res[mode]["no shim"]["cpu"]
        say("  %-5s %.0f vs %.0f handshakes/s = %.3fx; server CPU %.0f vs %.0f us each" % (
            mode, res[mode]["shim"]["hps"], res[mode]["no shim"]["hps"], res[mode]["ratio"],
            res[mode]["shim"]["cpu"], res[mode]["no shim"]["cpu"]))
    res["inspect"] = raw["shim"][-1].get("inspect")
    shutil.rmtree(d)
    results["tls"] = res


# ---------------------------------------------------------------- Python

def bench_python(a):
    say("== Python: bench/workload.py")
    scale = "10" if a.quick else "30"
    cmd = [sys.executable, os.path.join(B, "workload.py"), scale]
    configs = [("no shim", NOPRE), ("shim, no rule", SHIM), ("all secret", dict(SHIM, SECRETMEM_LIBS="*"))]
    stats = {}

    def one(name, cfg):
        cfg = dict(cfg)
        st = None
        if name == "all secret":
            st = tempfile.NamedTemporaryFile(prefix="py.", suffix=".json", delete=False).name
            cfg["SECRETMEM_STATS"] = st
        t0 = time.perf_counter()
        out = run(cmd, cfg)
        t = time.perf_counter() - t0
        if st:
            with open(st) as fh:
                stats.update(json.load(fh))
            os.unlink(st)
        return t, out.strip()
    raw = rounds_of(configs, one, a.rounds)
    sums = {v[1] for n in raw for v in raw[n]}
    res = {n: med([v[0] for v in raw[n]]) for n, _ in configs}
    res["same_output"] = len(sums) == 1
    res["stats"] = {k: stats.get(k) for k in ("allocs", "peak_bytes", "touched_bytes", "mapped_bytes",
                                               "routed", "stack_walks")}
    say("  " + ", ".join("%s %.2f s" % (n, res[n]) for n, _ in configs) +
        "; secret peak %.1f MiB, touched %.1f MiB" % (stats.get("peak_bytes", 0) / 2**20,
                                                      stats.get("touched_bytes", 0) / 2**20))
    results["python"] = res


# ---------------------------------------------------------------- callgrind profiles

def bench_profile(a, outdir):
    say("== callgrind function-level profiles")
    n = "200000"
    prof = {
        "untagged": ([os.path.join(B, "pairs"), "-n", n], SHIM),
        "secret": ([os.path.join(B, "pairs"), "-n", n],
                   dict(SHIM, SECRETMEM_LIBS="pairs", SECRETMEM_FALLBACK="mlock")),
        "secret-scope": ([os.path.join(B, "pairs"), "-n", n, "--scope"],
                         dict(SHIM, SECRETMEM_FALLBACK="mlock")),
    }
    res = {}
    for name, (cmd, env) in prof.items():
        f = os.path.join(tempfile.gettempdir(), "cg.%s.out" % name)
        run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f] + cmd, env)
        ann = subprocess.run(["callgrind_annotate", "--threshold=99", f], stdout=subprocess.PIPE,
                             text=True).stdout
        os.unlink(f)
        with open(os.path.join(outdir, "callgrind-%s.txt" % name), "w") as fh:
            fh.write("# %s %s\n" % (" ".join("%s=%s" % x for x in env.items()), " ".join(cmd)))
            fh.write(ann)
        rows = []
        for line in ann.splitlines():
            m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S+):(\S+)", line)
            if m:
                ir = int(m.group(1).replace(",", ""))
                rows.append((m.group(3).split(" ")[0], m.group(2).rsplit("/", 1)[-1], ir / int(n)))
        res[name] = rows[:12]
    results["profile"] = res


# ---------------------------------------------------------------- report

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    glibc = subprocess.run(["getconf", "GNU_LIBC_VERSION"], stdout=subprocess.PIPE, text=True).stdout.strip()
    def pkg(p):
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip() or "?"
    osr = ""
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "").strip('"')
    commit = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(),
            "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(), "glibc": glibc,
            "os": osr, "openssl": pkg("openssl"), "jemalloc": pkg("libjemalloc2"),
            "mimalloc": pkg("libmimalloc2.0"), "tcmalloc": pkg("libtcmalloc-minimal4"),
            "libsodium": pkg("libsodium23"), "python": platform.python_version(),
            "valgrind": pkg("valgrind"), "commit": commit,
            "virt": subprocess.run(["systemd-detect-virt"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True).stdout.strip() if shutil.which("systemd-detect-virt") else "?"}


import report  # noqa: E402  (bench/report.py: the markdown and the plot)


def main():
    global log
    ap = argparse.ArgumentParser(description="Run the libsecretmem-preload benchmark suite.")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and iterations (about 2 minutes)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds per figure (default 5, --quick 1)")
    ap.add_argument("--out", default=os.path.join(B, "results"), help="output directory")
    ap.add_argument("--only", help="comma-separated sections: untagged,arena,cases,memory,fork,routing,"
                    "routing-ir,tls,python,profile (updates those in an existing results.json)")
    ap.add_argument("--shim", metavar="PATH", help="the libsecretmem-preload.so every section measures "
                    "(default: this tree's .libs/libsecretmem-preload.so)")
    ap.add_argument("--shim-desc", help="what --shim is (e.g. 'branch perfarena at 1a2b3c4')")
    ap.add_argument("--baseline-shim", metavar="PATH", help="another build of libsecretmem-preload.so, "
                    "measured beside --shim in the same run (before/after): the issue #15 cases "
                    "(cases) and the routing instruction counts (routing-ir)")
    ap.add_argument("--baseline-desc", help="what --baseline-shim is (e.g. its git describe)")
    ap.add_argument("--case-rounds", type=int, help="interleaved rounds for the cases section "
                    "(default 7, --quick 3)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md and results.png from OUT/results.json, run nothing")
    a = ap.parse_args()
    if a.report_only:
        with open(os.path.join(a.out, "results.json")) as f:
            # JSON keys are strings: thread counts and MiB become numbers again
            report.write(json.load(f, object_hook=lambda d: {
                int(k) if k.isdigit() else k: v for k, v in d.items()}), a.out)
        return
    if a.rounds is None:
        a.rounds = 1 if a.quick else 5
    if os.geteuid() != 0:
        say("scripts/bench: secret-memory figures need root (memfd_secret charges RLIMIT_MEMLOCK); "
            "some runs may fail")
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "raw.log"), "a" if a.only else "w")
    if a.shim:
        if not os.path.exists(a.shim):
            ap.error("--shim %s: no such file" % a.shim)
        set_shim(os.path.abspath(a.shim))
    if a.baseline_shim:
        if not os.path.exists(a.baseline_shim):
            ap.error("--baseline-shim %s: no such file" % a.baseline_shim)
        a.baseline_shim = os.path.abspath(a.baseline_shim)
    sections = {"untagged": bench_untagged, "arena": bench_arena, "cases": bench_cases,
                "memory": bench_memory,
                "fork": bench_fork, "routing": bench_routing, "routing-ir": bench_routing_ir,
                "tls": bench_tls, "python": bench_python,
                "profile": lambda x: bench_profile(x, a.out)}
    only = a.only.split(",") if a.only else list(sections)
    t0 = time.time()
    prev = os.path.join(a.out, "results.json")
    if a.only and os.path.exists(prev):
        # a partial run updates the sections it ran and keeps the others
        with open(prev) as f:
            results.update(json.load(f, object_hook=lambda d: {
                int(k) if k.isdigit() else k: v for k, v in d.items()}))
        results.pop("failed", None)
    results["machine"] = machine()
    with open("/proc/loadavg") as f:
        results["load_before"] = f.read().split()[0]
    results["quick"] = a.quick
    results["shim"] = {"desc": a.shim_desc or LIB, "sections": a.only or "all"}
    results["rounds"] = a.rounds
    for s in only:
        # when each section was measured: a partial run keeps the others' figures
        results.setdefault("measured", {})[s] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        try:
            sections[s](a)
        except Exception as e:  # one broken section must not lose the others
            say("  %s: FAILED: %s" % (s, e))
            results.setdefault("failed", {})[s] = str(e)
    results["seconds"] = time.time() - t0 + (results.get("seconds", 0) if a.only else 0)
    # CPU time of everything the run started: about the run's length on a quiet machine
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    results["cpu_seconds"] = ru.ru_utime + ru.ru_stime + (results.get("cpu_seconds", 0) if a.only else 0)
    with open("/proc/loadavg") as f:
        results["load_after"] = f.read().split()[0]
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    report.write(results, a.out)
    say("wrote %s/RESULTS.md, results.png, results.json, raw.log (%.0f s; %.0f s CPU)" % (
        a.out, results["seconds"], results["cpu_seconds"]))


if __name__ == "__main__":
    main()
