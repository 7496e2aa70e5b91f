"""What the side-by-side benchmark scripts (cluster.py, tls.py) share: logging, the descriptor limit, a
process's CPU ticks, medians and number formats. Standard library only."""

import resource
import statistics
import sys



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
