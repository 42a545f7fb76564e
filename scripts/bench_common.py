"""Helpers shared by Ballast's benchmark scripts (bench_server.py, and the balance benchmark).

Python 3.11 standard library only. What lives here:
- tools and environment: find wrk/nginx or exit 2, free ports, the facts a result must carry;
- servers: start pinned in their own process group, check they answer, stop them for sure;
- CPU time of a process from /proc/PID/stat (all threads), and of the whole machine;
- wrk: build the command, run it pinned, parse its `--latency` report;
- small statistics and number formatting.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import http.client
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

INSTALL_HINT = "apt-get install -y wrk nginx-light"
_PACKAGE_OF = {"wrk": "wrk", "nginx": "nginx-light", "taskset": "util-linux"}

# nginx lives in /usr/sbin, which is not on every PATH (e.g. under some make or sudo setups).
_EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class BenchError(Exception):
    """A benchmark cannot go on: a tool failed, or a server did not answer or died."""


class ServerDied(BenchError):
    def __init__(self, name: str, detail: str, log_tail: str):
        super().__init__(f"server {name} {detail}\n--- tail of {name}'s output ---\n{log_tail}")
        self.name = name


# ---------------------------------------------------------------------------------------------
# Tools and environment
# ---------------------------------------------------------------------------------------------

def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _EXTRA_BIN_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tools(*names: str) -> dict[str, str]:
    """Path of each tool, or print what to install and exit 2."""
    paths = {name: find_tool(name) for name in names}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        hint = INSTALL_HINT if set(missing) <= {"wrk", "nginx"} else \
            "apt-get install -y " + " ".join(sorted({_PACKAGE_OF.get(m, m) for m in missing}))
        print(f"error: {', '.join(missing)} not found; install with: {hint}", file=sys.stderr)
        sys.exit(2)
    return paths  # type: ignore[return-value]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (bind to port 0). Another process could take it later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_cpu_list(text: str) -> list[int]:
    """'0', '0,1', '0-3,6' -> sorted CPU numbers; raises ValueError on nonsense."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty item in CPU list {text!r}")
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi) if hi else int(lo)
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def raise_nofile_limit() -> int:
    """Raise our soft open-files limit to the hard limit (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _command_output(argv: list[str], cwd: str | None = None) -> str | None:
    """stdout+stderr of a short command, stripped; None if it cannot run."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout + done.stderr).strip() or None


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_state(repo_dir: Path) -> dict:
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"], cwd=str(repo_dir))
    status = _command_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=str(repo_dir))
    return {"commit": commit, "dirty": bool(status) if commit else None}


def file_fingerprint(path: str) -> dict:
    """Size, mtime and sha256 prefix of a binary, to tie a result to the build that made it."""
    p = Path(path)
    digest = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    st = p.stat()
    return {
        "path": str(p),
        "bytes": st.st_size,
        "modified": datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds"),
        "sha256_12": digest.hexdigest()[:12],
    }


def environment(repo_dir: Path, tools: dict[str, str]) -> dict:
    """The facts a figure needs to be a result: machine, kernel, tools, commit, date."""
    versions = {}
    if "nginx" in tools:
        versions["nginx"] = _command_output([tools["nginx"], "-v"])
    if "wrk" in tools:
        out = _command_output([tools["wrk"], "-v"]) or ""
        versions["wrk"] = out.splitlines()[0].strip() if out else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "git": git_state(repo_dir),
        "tools": versions,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "clock_ticks_per_second": CLK_TCK,
    }


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the child before exec: die with the harness even if it is SIGKILLed (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """Prefix argv with `taskset -c CPUS` (taskset execs, so the PID stays the program's)."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


@dataclass
class Server:
    """One server process, in its own process group, its output going to a log file.

    `extra_logs` are files the server writes by itself (nginx's error.log), shown when it dies.
    """
    name: str
    argv: list[str]
    workdir: Path
    cpus: str | None = None
    extra_logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.out"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def command(self) -> list[str]:
        return pinned(self.argv, self.cpus)

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.workdir, start_new_session=True, preexec_fn=_child_setup)
            except OSError as e:
                raise BenchError(f"cannot start {self.name} ({shlex.join(self.command)}): {e}") from e

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if not self.running():
            code = self.process.returncode if self.process else None
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            raise ServerDied(self.name, how, self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for path in [self.log_path, *self.extra_logs]:
            try:
                text = path.read_text(errors="replace").rstrip()
            except OSError:
                continue
            if text:
                parts.append(f"[{path.name}]\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) or "(no output)"

    def describe(self) -> dict:
        """PID, name and thread count of the measured process (the one /proc/PID/stat covers)."""
        info: dict = {"pid": self.pid, "command": self.command}
        try:
            info["comm"] = Path(f"/proc/{self.pid}/comm").read_text().strip()
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    info["threads"] = int(line.split()[1])
        except OSError:
            pass
        return info

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after `grace` seconds. Idempotent."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        if self.process.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(pgid, signal.SIGKILL)  # any leftovers in the group, even if the leader exited
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(f"warning: {self.name} (pid {pgid}) did not exit after SIGKILL", file=sys.stderr)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def wait_until_serving(server: Server, host: str, port: int, path: str,
                       expect_body_bytes: int | None = None, timeout: float = 10.0) -> dict:
    """Retry GET until 200 (and the expected body size) for up to `timeout` seconds.

    Raises ServerDied if the process exits, BenchError if it never answers correctly.
    Returns the status, headers and body size seen.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        server.check_alive()
        try:
            status, headers, body = http_get(host, port, path)
            if status == 200 and (expect_body_bytes is None or len(body) == expect_body_bytes):
                return {"status": status, "headers": headers, "body_bytes": len(body)}
            last = f"status {status}, body {len(body)} bytes"
            if status == 200:  # it answers, but not what we asked for: retrying will not help
                raise BenchError(f"{server.name} answered GET {path} with a {len(body)}-byte body, "
                                 f"expected {expect_body_bytes}")
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            server.check_alive()
            raise BenchError(f"{server.name} did not answer GET http://{host}:{port}{path} with 200 "
                             f"within {timeout:.0f} s (last: {last})\n--- tail of its output ---\n"
                             f"{server.log_tail()}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# CPU time from /proc
# ---------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    user_s: float
    system_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __sub__(self, other: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.user_s - other.user_s, self.system_s - other.system_s)


def process_cpu_times(pid: int) -> CpuTimes:
    """utime and stime (fields 14 and 15 of /proc/PID/stat) of the whole process, all threads.

    The command name (field 2) may hold spaces and parentheses, so split after the last ')':
    the rest starts at field 3. Resolution is one clock tick (usually 10 ms).
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[14 - 3]), int(fields[15 - 3])
    return CpuTimes(utime / CLK_TCK, stime / CLK_TCK)


@dataclass(frozen=True)
class MachineCpu:
    """Whole-machine CPU seconds from the first line of /proc/stat (summed over all CPUs)."""
    busy_s: float    # user + nice + system + irq + softirq (guest time is inside user)
    steal_s: float   # time the hypervisor ran something else while we wanted to run

    def __sub__(self, other: "MachineCpu") -> "MachineCpu":
        return MachineCpu(self.busy_s - other.busy_s, self.steal_s - other.steal_s)


def machine_cpu_times() -> MachineCpu:
    with open("/proc/stat") as f:
        values = [int(x) / CLK_TCK for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return MachineCpu(user + nice + system + irq + softirq, steal)


def children_cpu_times() -> CpuTimes:
    """CPU time of our children that have been waited for (used to measure a wrk run)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuTimes(r.ru_utime, r.ru_stime)


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    requests: int
    duration_s: float
    requests_per_second: float
    bytes_read: float
    latency_s: dict[str, float]          # "50", "75", "90", "99" -> seconds (with --latency)
    socket_errors: dict[str, int]        # connect, read, write, timeout
    non_2xx_3xx: int

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx_3xx

    def error_text(self) -> str:
        parts = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non_2xx_3xx:
            parts.append(f"non-2xx/3xx {self.non_2xx_3xx}")
        if self.requests == 0:
            parts.append("no requests completed")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
_NUMBER_UNIT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


def parse_wrk_time(token: str) -> float:
    """wrk's time format ('91.00us', '1.23ms', '2.00s', '1.00m') -> seconds."""
    m = _NUMBER_UNIT.match(token.strip())
    if not m or m.group(2) not in _TIME_UNITS:
        raise ValueError(f"not a wrk time: {token!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def parse_wrk_size(token: str) -> float:
    """wrk's byte format ('19.38MB', '512.00B') -> bytes (wrk uses powers of 1024)."""
    m = _NUMBER_UNIT.match(token.strip())
    if not m or m.group(2) not in _SIZE_UNITS:
        raise ValueError(f"not a wrk size: {token!r}")
    return float(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk 4.x's report (run with --latency). Raises ValueError if it is not one."""
    summary = re.search(r"^\s*(\d+) requests in (\S+), (\S+) read\s*$", text, re.M)
    if not summary:
        raise ValueError("no 'N requests in T, B read' line in wrk output")
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    latency: dict[str, float] = {}
    dist = text.split("Latency Distribution", 1)
    if len(dist) == 2:
        for m in re.finditer(r"^\s*(\d+(?:\.\d+)?)%\s+(\S+)\s*$", dist[1], re.M):
            pct = m.group(1).rstrip("0").rstrip(".") if "." in m.group(1) else m.group(1)
            latency[pct] = parse_wrk_time(m.group(2))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors = dict(zip(errors, map(int, sock.groups())))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    return WrkResult(
        requests=int(summary.group(1)),
        duration_s=parse_wrk_time(summary.group(2)),
        requests_per_second=float(rps.group(1)) if rps else 0.0,
        bytes_read=parse_wrk_size(summary.group(3)),
        latency_s=latency,
        socket_errors=errors,
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
    )


def wrk_command(wrk: str, url: str, connections: int, duration_s: int, threads: int = 1,
                cpus: str | None = None, latency: bool = True) -> list[str]:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s"]
    if latency:
        argv.append("--latency")
    return pinned([*argv, url], cpus)


def run_wrk(argv: list[str], timeout_s: float) -> tuple[WrkResult, str, CpuTimes]:
    """Run wrk to completion; return its parsed report, raw output and its own CPU time."""
    before = children_cpu_times()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"wrk did not finish within {timeout_s:.0f} s: {' '.join(argv)}") from e
    used = children_cpu_times() - before
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise BenchError(f"wrk exited with code {done.returncode}: {' '.join(argv)}\n{output.strip()}")
    try:
        return parse_wrk(done.stdout), output, used
    except ValueError as e:
        raise BenchError(f"cannot parse wrk output ({e}):\n{output.strip()}") from e


# ---------------------------------------------------------------------------------------------
# Statistics and formatting
# ---------------------------------------------------------------------------------------------

def spread(values: list[float]) -> dict | None:
    """Median, min and max of the values, or None if there are none."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_count(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def fmt_latency(seconds: float | None) -> str:
    """Three significant digits in µs, ms or s."""
    if seconds is None:
        return "–"
    for unit, scale in (("µs", 1e-6), ("ms", 1e-3)):
        if seconds < 1000 * scale:
            v = seconds / scale
            return f"{v:.0f}{unit}" if v >= 100 else f"{v:.3g}{unit}"
    return f"{seconds:.3g}s"


def fmt_num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def fmt_spread(s: dict | None, fmt=fmt_num, suffix: str = "") -> str:
    """'median (min–max)', or just the median when there is a single value."""
    if s is None:
        return "–"
    if s["n"] == 1:
        return f"{fmt(s['median'])}{suffix}"
    return f"{fmt(s['median'])}{suffix} ({fmt(s['min'])}–{fmt(s['max'])})"


# ---------------------------------------------------------------------------------------------
# Multi-process servers (nginx master + workers), templates, memory (added for bench_proxy.py)
# ---------------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants (from the ppid field of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[4 - 3]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_cpu_times(pid: int) -> CpuTimes:
    """utime+stime summed over `pid` and its live descendants (nginx: master and workers).

    Processes that exited during the interval are not counted: take both samples while the
    server's processes are stable (after start-up, before stop)."""
    user = system = 0.0
    for p in process_tree(pid):
        try:
            t = process_cpu_times(p)
        except OSError:
            continue
        user, system = user + t.user_s, system + t.system_s
    return CpuTimes(user, system)


def process_rss_bytes(pid: int) -> int:
    """VmRSS of one process in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """VmRSS summed over `pid` and its live descendants (shared pages count once per process;
    use differences, not absolute values, across multi-process servers)."""
    return sum(process_rss_bytes(p) for p in process_tree(pid))


def render_template(text: str, values: dict[str, object]) -> str:
    """Replaces each `{{NAME}}`; raises BenchError when a placeholder is left unreplaced."""
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", str(value))
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise BenchError(f"template placeholders not replaced: {', '.join(sorted(set(left)))}")
    return text


def open_idle_connections(host: str, port: int, count: int, request: bytes, expect_body_bytes: int,
                          timeout: float = 10.0) -> tuple[list[socket.socket], int]:
    """Opens `count` keep-alive connections one after another, sends `request` on each and reads
    its whole response (a Content-Length body of `expect_body_bytes`), leaving every connection
    open and idle. Returns the sockets (the caller closes them) and how many answered 200.
    Raises BenchError on a refused or timed-out connection (the sockets opened so far are closed)."""
    socks: list[socket.socket] = []
    ok = 0
    try:
        for i in range(count):
            s = socket.create_connection((host, port), timeout=timeout)
            socks.append(s)
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise BenchError(f"connection {i} closed before a response head")
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            while len(body) < expect_body_bytes:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
            if head.split(b" ", 2)[1:2] == [b"200"] and len(body) == expect_body_bytes:
                ok += 1
    except OSError as e:
        for s in socks:
            s.close()
        raise BenchError(f"opening idle connection {len(socks)} of {count} to {host}:{port}: {e}") from e
    except BenchError:
        for s in socks:
            s.close()
        raise
    return socks, ok


# ---------------------------------------------------------------------------------------------
# Command-line argument types shared by the benchmark scripts
# ---------------------------------------------------------------------------------------------

def arg_int_list(text: str) -> list[int]:
    """`16,128` -> [16, 128]: positive integers, duplicates dropped, order kept."""
    import argparse
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return list(dict.fromkeys(values))


def arg_cpu_set(text: str) -> "str | None":
    """A taskset CPU list, or None for 'none' (no pinning)."""
    import argparse
    if text.strip().lower() in ("", "none"):
        return None
    try:
        cpus = parse_cpu_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    allowed = os.sched_getaffinity(0)
    if not set(cpus) <= allowed:
        raise argparse.ArgumentTypeError(f"CPU(s) {sorted(set(cpus) - allowed)} not available (have {sorted(allowed)})")
    return text.strip()


def arg_choice_list(choices):
    """An argument type for a comma-separated subset of `choices`, returned in `choices` order."""
    import argparse

    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown or text!r}; choose from {', '.join(choices)}")
        return [v for v in choices if v in names]
    return parse


def run_plan(variants: list[str], connections: list[int], repetitions: int) -> list[tuple[int, int, str]]:
    """(repetition, connections, variant) in run order; the variant order rotates every round, so
    drift over time hits every variant alike."""
    plan, round_no = [], 0
    for rep in range(1, repetitions + 1):
        for conns in connections:
            k = round_no % len(variants)
            plan.extend((rep, conns, v) for v in variants[k:] + variants[:k])
            round_no += 1
    return plan


def exit_on_termination_signals() -> None:
    """SIGTERM/SIGHUP become SystemExit, so the callers' `finally` blocks stop their servers."""
    import signal
    import sys

    def terminate(signum, frame):
        print(f"terminated by signal {signum}; stopping servers", file=sys.stderr)
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)


# ---------------------------------------------------------------------------------------------
# Summary formatting shared by the benchmark scripts
# ---------------------------------------------------------------------------------------------

def ratio_text(s: "dict | None", digits: int = 3) -> str:
    """A ratio's median with its min-max spread, e.g. `0.895x (0.864-0.935)`; `–` when missing."""
    return fmt_spread(s, lambda x: f"{x:.{digits}f}", "x") if s else "–"


def median_of(s: "dict | None") -> "float | None":
    return s["median"] if s else None


def percent(s: "dict | None") -> str:
    return "–" if s is None else f"{100 * s['median']:.0f}%"


def rps_key(r: dict) -> float:
    return r["wrk"]["requests_per_second"]


def interleaved_wrk_rounds(servers: dict[str, "Server"], urls: dict[str, str], wrk: str, rounds: int, seconds: int,
                           connections: int, cpus: str | None) -> dict[tuple[str, str], list[dict]]:
    """Runs wrk against every server, round after round: once on keep-alive connections
    ("keep-alive") and once with `Connection: close`, a new connection per request ("handshakes"),
    the server order rotated every round. Per run: req/s, the server process tree's CPU per
    request (us), errors and the round; keyed by (server name, load). Progress goes to stderr."""
    results: dict[tuple[str, str], list[dict]] = {}
    order = list(servers)
    for r in range(rounds):
        for load in ("keep-alive", "handshakes"):
            for name in order[r % len(order):] + order[:r % len(order)]:
                server = servers[name]
                argv = wrk_command(wrk, urls[name], connections, seconds, cpus=cpus)
                if load == "handshakes":
                    argv = argv[:-1] + ["-H", "Connection: close", argv[-1]]
                before = tree_cpu_times(server.pid)
                result, _, _ = run_wrk(argv, seconds * 4 + 30)
                used = tree_cpu_times(server.pid) - before
                server.check_alive()
                errors = sum(result.socket_errors.values()) + result.non_2xx_3xx
                cpu_us = (used.user_s + used.system_s) / max(result.requests, 1) * 1e6
                results.setdefault((name, load), []).append(
                    {"rps": result.requests_per_second, "cpu_us": cpu_us, "errors": errors, "round": r})
                print(f"round {r + 1}/{rounds} {load:10} {name:16} {result.requests_per_second:9.0f}/s "
                      f"{cpu_us:7.1f} us CPU each, errors {errors}", file=sys.stderr)
    return results


def per_round_ratios(results: dict[tuple[str, str], list[dict]], name: str, peer: str, load: str, key: str) -> dict | None:
    """`key` of `name` over the same round's `key` of `peer` (runs of one round are interleaved),
    as a spread over the rounds."""
    mine = {x["round"]: x[key] for x in results.get((name, load), [])}
    theirs = {x["round"]: x[key] for x in results.get((peer, load), [])}
    return spread([mine[r] / theirs[r] for r in mine if r in theirs and theirs[r] > 0])
