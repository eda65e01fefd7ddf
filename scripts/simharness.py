"""What scripts/bench.py and scripts/chaos.py share: starting `hsync sim` and reading its admin
API, writing hsync configurations, running hsync under /usr/bin/time, Postgres through psql, and
replacing a marked section of a Markdown document. Standard library only."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

# The simulator's built-in token (hsync::simulator::DEFAULT_TOKEN).
TOKEN = "pat-sim-00000000-0000-0000-0000-000000000000"
TOKEN_VAR = "HSYNC_BENCH_TOKEN"
PG_HOST, PG_USER, PG_DB = "127.0.0.1", "postgres", "test"
PG_URL = f"postgres://{PG_USER}@{PG_HOST}:5432/{PG_DB}"


def log(prog, msg):
    print(f"{prog}: {msg}", file=sys.stderr, flush=True)


class Sim:
    """An `hsync sim` process on a free loopback port."""

    def __init__(self, hsync, args, workdir):
        self.args = ["sim", *args, "--listen", "127.0.0.1:0"]
        self.out = open(os.path.join(workdir, "sim.out"), "w+")
        self.err = open(os.path.join(workdir, "sim.err"), "w+")
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen([hsync, *self.args], stdout=self.out, stderr=self.err, env=env)
        self.base = None
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.err.seek(0)
                raise SystemExit(f"the simulator exited early: {self.err.read()[-2000:]}")
            self.out.seek(0)
            m = re.search(r"^hsync sim listening on (http:\S+)", self.out.read(), re.M)
            if m:
                self.base = m.group(1)
                try:
                    self.admin("GET", "/_sim/health", raw=True)
                    break
                except OSError:
                    self.base = None
            time.sleep(0.1)
        if self.base is None:
            self.stop()
            raise SystemExit("the simulator did not become healthy within 600 s")

    def admin(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=120) as resp:
            text = resp.read()
        if raw:
            return text
        return json.loads(text) if text else None

    def next_seq(self):
        return self.admin("GET", "/_sim/requests?since=18446744073709551615")["nextSeq"]

    def counters(self):
        """The request counters (count, byStatus, byBucket, byPolicy), without the log."""
        c = self.admin("GET", "/_sim/requests?since=18446744073709551615")
        c.pop("entries", None)
        return c

    def cpu_seconds(self):
        """The simulator's user + system CPU so far (/proc/PID/stat)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def calls_since(self, since):
        """The calls logged from sequence `since` on, grouped: 'METHOD path' -> count."""
        out = {}
        for e in self.admin("GET", f"/_sim/requests?since={since}")["entries"]:
            key = f"{e['method']} {e['path']}"
            out[key] = out.get(key, 0) + 1
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def counter_delta(after, before):
    """Counters of `after` minus `before`, for the flat maps count/byStatus/byBucket/byPolicy."""
    out = {"count": after["count"] - before["count"]}
    for key in ("byStatus", "byBucket", "byPolicy"):
        a, b = after.get(key, {}), before.get(key, {})
        out[key] = {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) - b.get(k, 0)}
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def destination_toml(dest, workdir, schema):
    if dest == "sqlite":
        return f'url = "sqlite://{os.path.join(workdir, schema + ".db")}"'
    return f'url = "{PG_URL}"\nschema = "{schema}"\nstate_schema = "{schema}_state"'


# Client pacing for runs against `hsync sim --no-limits`: far above anything the simulator and
# one machine can serve, so hsync's own limiter (HubSpot's 5 searches/s by default) is not what
# an unlimited run measures.
UNLIMITED = {"searches_per_second": 100_000, "requests_per_10s": 1_000_000}


def write_config(workdir, name, base, destination, objects, settle_lag_secs=None, daemon=None, limits=None, sync=None,
                 history=None):
    lines = [
        "[hubspot]",
        f'base_url = "{base}"',
        f'token_env = "{TOKEN_VAR}"',
        "",
        "[destination]",
        destination,
        "",
        "[sync]",
        "objects = [" + ", ".join(f'"{o}"' for o in objects) + "]",
    ]
    if settle_lag_secs is not None:
        lines.append(f"settle_lag_secs = {settle_lag_secs}")
    lines += [f"{k} = {json.dumps(v)}" for k, v in (sync or {}).items()]
    if history:
        lines += ["", "[sync.history]"] + [f"{k} = {json.dumps(v)}" for k, v in history.items()]
    if daemon:
        lines += ["", "[daemon]"] + [f"{k} = {json.dumps(v)}" for k, v in daemon.items()]
    if limits:
        lines += ["", "[limits]"] + [f"{k} = {json.dumps(v)}" for k, v in limits.items()]
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def hsync_env():
    return dict(os.environ, **{TOKEN_VAR: TOKEN})


def run_timed(hsync, config, args, check=True):
    """Runs `hsync --quiet --config CONFIG ARGS` under GNU time: (wall s, cpu s, peak RSS KiB, stdout)."""
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %U %S %M", hsync, "--quiet", "--config", config, *args],
        capture_output=True,
        text=True,
        env=hsync_env(),
    )
    m = re.search(r"^TIME (\S+) (\S+) (\S+) (\d+)$", proc.stderr, re.M)
    if check and (proc.returncode != 0 or not m):
        raise SystemExit(f"hsync {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    wall, user, sys_, rss = float(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4))
    return wall, user + sys_, rss, proc.stdout


def psql(sql, *, tuples=True):
    args = ["psql", "-h", PG_HOST, "-U", PG_USER, "-d", PG_DB, "-v", "ON_ERROR_STOP=1", "-q"]
    if tuples:
        args += ["-At"]
    proc = subprocess.run(args + ["-c", sql], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"psql failed: {proc.stderr.strip()}\nstatement: {sql[:300]}")
    return proc.stdout.strip()


def drop_pg_schemas(schema):
    psql(f'drop schema if exists "{schema}" cascade; drop schema if exists "{schema}_state" cascade')


def machine_lines(build):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
        with open("/proc/meminfo") as f:
            mem = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1)) / 1048576
    except OSError:
        mem = 0.0
    pg = psql("show server_version")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return [
        f"- `uname -a`: `{subprocess.run(['uname', '-a'], capture_output=True, text=True).stdout.strip()}`",
        f"- `nproc`: {os.cpu_count()}; CPU: {cpu}; memory: {mem:.1f} GiB; Postgres {pg}",
        f"- hsync: {build}",
        f"- Load average (1, 5, 15 min) when the section was written: {load}. Everything (simulator,"
        " hsync, Postgres) shares these cores, so wall-clock figures are pessimistic when other work ran.",
    ]


def replace_section(doc, marker, section, title):
    """Puts `section` between `<!-- MARKER:start -->` and `<!-- MARKER:end -->` in `doc`,
    appending the markers when they are missing; the rest of the file is left alone."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = open(doc).read() if os.path.exists(doc) else f"# {title}\n\nFigures come from the commands named in each section; rerun them to reproduce.\n"
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    block = f"{start}\n{section.rstrip()}\n{end}"
    text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    with open(doc, "w") as f:
        f.write(text)


def search_page_key(entry):
    """A search page's identity in the request log: path, filters, sort and offset. None for
    anything that is not an answered (or never answered) search."""
    path = entry.get("path", "")
    if entry.get("status") not in (200, 0) or not path.endswith("/search"):
        return None
    body = entry.get("body") or ""
    try:
        b = json.loads(body)
        return path + " " + json.dumps([b.get("filterGroups"), b.get("sorts"), b.get("after")], sort_keys=True)
    except ValueError:
        m = re.search(r'"filterGroups":(\[.*?\]\}\]\}\])', body)
        return path + " " + (m.group(1) if m else body[:2000])


def which_hsync(root, prog):
    """HSYNC_BIN, or a release build made now."""
    given = os.environ.get("HSYNC_BIN")
    if given:
        path = os.path.abspath(given)
        kind = "dev-profile (opt-level 1, dependencies 2)" if "/debug/" in path else "release" if "/release/" in path else "given"
        return path, f"`{given}` (HSYNC_BIN; a {kind} build)"
    log(prog, "building (cargo build --release)")
    subprocess.run(["cargo", "build", "--release"], cwd=root, check=True)
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    return os.path.join(root, "target", "release", "hsync"), f"`cargo build --release`, `{rustc}`"


def command_line(script, args):
    """The command as run, with HSYNC_BIN when it was given."""
    given = os.environ.get("HSYNC_BIN")
    return " ".join(([f"HSYNC_BIN={given}"] if given else []) + [script, *args])


def require(tool):
    if shutil.which(tool) is None and not os.path.exists(tool):
        raise SystemExit(f"{tool} is needed and was not found")
