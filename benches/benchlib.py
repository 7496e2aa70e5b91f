"""What the side-by-side benchmark scripts (cluster.py, tls.py, failover.py, efficiency.py) share: logging, the
descriptor limit, the processes they start and stop by PID and the line a server prints once it listens, CPU
ticks of a process and of the machine, waiting for a quiet machine, medians and number formats, and the
section of BENCHMARKS.md a script rewrites. Standard library only."""

import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PROCS = []  # every process a script started, stopped by PID



def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ValueError, OSError):
        pass


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def num(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def pct(v):
    return "—" if v is None else f"{v * 100:.0f}%"


def rate(v):
    if v is None:
        return "—"
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k" if v >= 1e3 else f"{v:.0f}"


def stop(proc):
    """SIGTERM to this PID, SIGKILL if it is still there after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc in PROCS:
        PROCS.remove(proc)


def stop_all():
    for proc in list(reversed(PROCS)):
        stop(proc)


def busy_ticks():
    """user + nice + system of the whole machine (irq and softirq left out: much of the measured processes'
    loopback work lands there without being charged to them)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2]


def builds_running():
    """Names of cargo/rustc processes running on the machine (another engineer's build)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name in ("cargo", "rustc") or name.startswith("rustc"):
                found.append(f"{name}[{pid}]")
    return found


def wait_quiet(limit=300):
    """Waits (at most `limit` s) until no cargo/rustc runs and other work uses under 0.3 of a core."""
    start = time.time()
    while True:
        b0 = busy_ticks()
        time.sleep(1)
        busy = (busy_ticks() - b0) / TICK
        builds = builds_running()
        if (busy < 0.3 and not builds) or time.time() - start > limit:
            if busy >= 0.3 or builds:
                log(f"    machine still busy ({busy:.2f} cores, {' '.join(builds) or 'no build'}) after {limit} s; "
                    "measuring anyway")
            return
        log(f"    machine busy ({busy:.2f} cores used by others{', build: ' + ' '.join(builds) if builds else ''}); "
            "waiting")


def first_line(proc, timeout=15):
    """The first line a child prints on its stdout (a pipe, unbuffered), or what came before `timeout` s or
    its end: bytes."""
    line, deadline = b"", time.monotonic() + timeout
    while b"\n" not in line and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    return line


def publish_section(a, block, failed, begin, end, missing):
    """The end of a bench that owns a section of BENCHMARKS.md: with failures, prints `block` and exits 1
    without writing; with `--no-write` prints it; else writes it into `a.out` between `begin` and `end`."""
    if failed:
        print(block)
        log("\n*** AUDIT OR RUN FAILURES — BENCHMARKS.md not written ***\n  " + "\n  ".join(failed))
        sys.exit(1)
    if a.no_write:
        print(block)
    else:
        replace_section(a.out, begin, end, block, missing)
        log(f"wrote {a.out} (raw results in {a.json_dir}/results.json)")


def replace_section(path, begin, end, block, missing):
    """Writes `block` (which starts with `begin` and ends with `end`) over the one between those markers in the
    file at `path`; without them, appends `missing` (a heading and any introduction) followed by `block`."""
    with open(path) as f:
        text = f.read()
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + (missing + "\n\n" if missing else "") + block + "\n"
    with open(path, "w") as f:
        f.write(text)
