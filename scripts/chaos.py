"""The driver of scripts/chaos: a long sync under random SIGKILLs, injected faults and concurrent
portal changes, then a quiet convergence pass and a comparison with the simulator's ground truth.
Writes docs/reliability.md between `<!-- chaos:start/end -->`. Standard library only; see
scripts/chaos for usage."""

import argparse
import json
import os
import bisect
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simharness as h  # noqa: E402

PROG = "chaos"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "reliability.md")
OBJECTS = ["contacts", "companies", "deals", "tickets", "cars"]  # the stored edge direction follows this order
COMMANDS = [["backfill", "--resume"], ["cdc", "--once"], ["associations"], ["deletes"]]

# Fault rules drawn at random during the run: each hits a few requests, then is spent.
FAULTS = [
    {"kind": "rate_limit"},
    {"kind": "server_error", "status": 502, "html": True},
    {"kind": "server_error", "status": 503, "html": False},
    {"kind": "slow", "delay_ms": 1500},
    {"kind": "hang"},
    {"kind": "drop_connection"},
    {"kind": "truncated_json"},
    {"kind": "locked"},
    {"kind": "migration_in_progress", "retry_after_secs": 1},
]
TARGETS = ["any", "search", "general", "associations", "list"]


class Mutator(threading.Thread):
    """Changes the portal through the admin API until stopped: touches, creates, archives, merges
    and association changes, counted by kind."""

    def __init__(self, sim, rng, pause):
        super().__init__(daemon=True)
        self.sim, self.rng, self.pause = sim, rng, pause
        self.stop = threading.Event()
        self.done = Counter()
        self.errors = []
        self.archived = []
        self.cache = {}

    def live(self, obj):
        """Live ids of `obj`, read from the ground truth at most every 10 s (a large portal's truth
        is megabytes); an id gone since makes a refused change, which is counted, not fatal."""
        read_at, ids = self.cache.get(obj, (0, []))
        if time.monotonic() - read_at > 10:
            truth = self.sim.admin("GET", f"/_sim/truth?objects={obj}&values=false")
            ids = [r["id"] for r in truth["objects"][obj]["live"]]
            self.cache[obj] = (time.monotonic(), ids)
        return ids

    def step(self):
        kind = self.rng.choice(["touch", "touch", "create", "archive", "merge", "associate", "dissociate", "restore"])
        obj = self.rng.choice(["contacts", "contacts", "companies", "deals"])
        if kind == "touch":
            self.sim.admin("POST", f"/_sim/objects/{obj}/touch", {"count": self.rng.randint(1, 300), "spreadMs": 2000})
        elif kind == "create":
            prop = {"contacts": "firstname", "companies": "name", "deals": "dealname"}[obj]
            self.sim.admin("POST", f"/_sim/objects/{obj}", {"properties": {prop: f"chaos-{self.rng.random():.6f}"}})
        elif kind in ("archive", "merge"):
            ids = self.live(obj)
            if len(ids) < 10:
                return
            if kind == "archive":
                rid = self.rng.choice(ids)
                self.sim.admin("POST", f"/_sim/objects/{obj}/{rid}/archive")
                self.archived.append((obj, rid))
            else:
                a, b = self.rng.sample(ids, 2)
                self.sim.admin("POST", f"/_sim/objects/{obj}/merge", {"primary": int(a), "absorbed": int(b)})
        elif kind == "restore":
            if not self.archived:
                return
            obj, rid = self.archived.pop(self.rng.randrange(len(self.archived)))
            self.sim.admin("POST", f"/_sim/objects/{obj}/{rid}/restore")
        else:
            contacts, companies = self.live("contacts"), self.live("companies")
            edge = {"from": "contacts", "fromId": int(self.rng.choice(contacts)), "to": "companies",
                    "toId": int(self.rng.choice(companies)), "typeIds": [279]}
            self.sim.admin("POST" if kind == "associate" else "DELETE", "/_sim/associations", edge)
        self.done[kind] += 1

    def run(self):
        while not self.stop.wait(self.rng.uniform(0, 2 * self.pause)):
            try:
                self.step()
            except urllib.error.HTTPError as e:
                # A refused change (e.g. restoring a record merged away since) is not a failure.
                self.errors.append(f"{e.code} {e.read().decode(errors='replace')[:160]}")


def run_with_kill(hsync, config, args, kill_after):
    """Runs one hsync command; SIGKILLs it after `kill_after` seconds unless it finished. Returns
    (killed, exit code, stderr tail)."""
    proc = subprocess.Popen([hsync, "--quiet", "--config", config, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=h.hsync_env())
    try:
        _, err = proc.communicate(timeout=kill_after)
        return False, proc.returncode, err[-1500:]
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL
        proc.communicate()
        return True, None, ""


def run_until_ok(hsync, config, args, tries=20):
    for _ in range(tries):
        killed, code, err = run_with_kill(hsync, config, args, 3600)
        if code == 0:
            return
    raise SystemExit(f"hsync {' '.join(args)} kept failing in the quiet pass ({code}):\n{err}")


def truth_edges(sim):
    truth = sim.admin("GET", "/_sim/truth?values=false")
    live = {(o, r["id"]) for o in OBJECTS for r in truth["objects"][o]["live"]}
    out = {}
    for e in truth["associations"]:
        f, t = e["fromType"], e["toType"]
        # The simulator's portal also relates types the chaos run does not sync (notes ...).
        if f not in OBJECTS or t not in OBJECTS:
            continue
        if OBJECTS.index(f) > OBJECTS.index(t) or (f, e["fromId"]) not in live:
            continue
        for ty in e["types"]:
            out[(f, int(e["fromId"]), t, int(e["toId"]), int(ty["typeId"]))] = (ty["category"], ty["label"])
    return out


def warehouse_edges(dest, db, schema):
    sql = "select from_type, from_id, to_type, to_id, type_id, category, label from {} where deleted_at is null"
    if dest == "sqlite":
        rows = sqlite3.connect(db).execute(sql.format("associations")).fetchall()
    else:
        text = h.psql(sql.format(f'"{schema}".associations'))
        rows = [line.split("|") for line in text.splitlines() if line]
        rows = [(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or None) for r in rows]
    return {(r[0], int(r[1]), r[2], int(r[3]), int(r[4])): (r[5], r[6]) for r in rows}


def repeated_search_pages(sim, segments):
    """Search pages per command and how many of them repeat an earlier page of the same command
    (same path, filters, sort and offset). `segments` are (command, first seq, end seq) of each
    run; commands run one at a time, so a logged request belongs to the run whose range holds it."""
    starts = [seg[1] for seg in segments]
    seen = {}
    log = sim.admin("GET", f"/_sim/requests?since={segments[0][1]}")
    for entry in log["entries"]:
        i = bisect.bisect_right(starts, entry["seq"]) - 1
        if i < 0 or entry["seq"] >= segments[i][2]:
            continue
        key = h.search_page_key(entry)
        if key:
            seen.setdefault(segments[i][0], Counter())[key] += 1
    return {cmd: (sum(c.values()), sum(n - 1 for n in c.values())) for cmd, c in seen.items()}


def main():
    ap = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a 2-minute run on a small portal (labelled in the doc)")
    ap.add_argument("--minutes", type=float, help="length of the chaos phase (default 10; 2 with --quick)")
    ap.add_argument("--destination", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--doc", default=DOC)
    opts = ap.parse_args()
    minutes = opts.minutes or (2 if opts.quick else 10)
    command = h.command_line("scripts/chaos", sys.argv[1:])
    rng = random.Random(opts.seed)
    hsync, build = h.which_hsync(ROOT, PROG)
    contacts = 5_000 if opts.quick else 50_000
    portal = ["--seed", str(opts.seed), "--contacts", str(contacts), "--companies", str(contacts // 10),
              "--deals", str(contacts // 10), "--tickets", str(contacts // 20), "--cars", "100",
              "--custom-properties", "30", "--no-limits"]
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="hsync-chaos-") as workdir:
        sim = h.Sim(hsync, portal, workdir)
        schema = f"chaos_{os.getpid()}"
        db = os.path.join(workdir, schema + ".db")
        if opts.destination == "postgres":
            h.drop_pg_schemas(schema)
        cfg = h.write_config(workdir, "chaos.toml", sim.base, h.destination_toml(opts.destination, workdir, schema),
                             OBJECTS, settle_lag_secs=1)
        mutator = Mutator(sim, random.Random(opts.seed + 1), pause=0.5)
        try:
            # A hang answers 524 after 2 s instead of 120 s, so hung calls stay short retries.
            behaviour = sim.admin("GET", "/_sim/behaviour")
            sim.admin("PUT", "/_sim/behaviour", dict(behaviour, hang_ms=2000))
            segments = []
            kills, runs, failures = Counter(), Counter(), []
            faults_added = Counter()
            mutator.start()
            end = time.monotonic() + 60 * minutes
            h.log(PROG, f"seed {opts.seed}: chaos for {minutes} min against {contacts} contacts into {opts.destination}")
            while time.monotonic() < end:
                if rng.random() < 0.5:
                    rule = dict(rng.choice(FAULTS), target=rng.choice(TARGETS), remaining=rng.randint(1, 6),
                                probability=round(rng.uniform(0.2, 1.0), 2))
                    sim.admin("POST", "/_sim/faults", rule)
                    faults_added[rule["kind"]] += 1
                args = rng.choice(COMMANDS)
                kill_after = rng.uniform(0.2, 6.0) if rng.random() < 0.6 else 120
                first = sim.next_seq()
                killed, code, err = run_with_kill(hsync, cfg, args, kill_after)
                name = args[0]
                segments.append((name, first, sim.next_seq()))
                runs[name] += 1
                if killed:
                    kills[name] += 1
                elif code != 0:
                    # A command may give up on a fault it judges permanent; the next run resumes.
                    failures.append(f"{' '.join(args)} exited {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")
            mutator.stop.set()
            mutator.join()
            h.log(PROG, f"quiet pass after {sum(kills.values())} kills")
            injected = sim.admin("GET", "/_sim/faults")["injected"]
            sim.admin("PUT", "/_sim/faults", [])
            time.sleep(3)  # past the touches' spread and the settle lag
            for args in (["backfill", "--resume"], ["cdc", "--once"], ["deletes"], ["associations", "--sweep"], ["cdc", "--once"]):
                first = sim.next_seq()
                run_until_ok(hsync, cfg, args)
                segments.append((args[0], first, sim.next_seq()))
            pages = repeated_search_pages(sim, segments)
            proc = subprocess.run([hsync, "--quiet", "--config", cfg, "verify", "--json", "--examples", "5"],
                                  capture_output=True, text=True, env=h.hsync_env())
            if proc.returncode not in (0, 5):
                raise SystemExit(f"hsync verify failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            report = json.loads(proc.stdout)
            expected, stored = truth_edges(sim), warehouse_edges(opts.destination, db, schema)
        finally:
            mutator.stop.set()
            sim.stop()
            if opts.destination == "postgres":
                h.drop_pg_schemas(schema)
    records = sum(o.get("hubspot_swept", o["hubspot_total"]) for o in report["objects"])
    record_mismatches = sum(o["missing"]["count"] + o["extra"]["count"] + o["stale"]["count"] for o in report["objects"])
    missing_edges = sorted(k for k in expected if k not in stored)
    extra_edges = sorted(k for k in stored if k not in expected)
    wrong_edges = sorted(k for k in expected if k in stored and stored[k] != expected[k])
    edge_mismatches = len(missing_edges) + len(extra_edges) + len(wrong_edges)
    mismatches = record_mismatches + edge_mismatches

    quick = "**Quick smoke run (`--quick`): a short run on a small portal, not the reported figures.**\n\n" if opts.quick else ""
    lines = [
        "## Chaos run",
        "",
        f"_Written by `{command}` (seed {opts.seed}) on {started_at}._",
        "",
        quick + "Machine:",
        "",
        *h.machine_lines(build),
        "",
        f"For {minutes:g} minutes, hsync commands ran one after another against `hsync sim` ({contacts:,} contacts,",
        f"{contacts // 10:,} companies, {contacts // 10:,} deals, {contacts // 20:,} tickets, 100 cars, 30 custom properties)",
        f"into {opts.destination}, each chosen at random from `backfill --resume`, `cdc --once`, `associations` and",
        "`deletes`; 60% of them were SIGKILLed after a random 0.2–6 s. Before about half of them a fault rule",
        "was added (a random kind and target, hitting 1–6 requests with probability 0.2–1). All the while",
        "a thread changed the portal every 0–1 s: touches of up to 300 records, creates, archives, restores,",
        "merges, and contact–company association changes. Then the faults were cleared, the changes",
        "stopped, and one quiet pass ran (`backfill --resume`, `cdc --once`, `deletes`, `associations --sweep`,",
        "`cdc --once`), followed by `hsync verify --json` and a comparison of every association edge with",
        "the simulator's ground truth (`/_sim/truth`).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| kills survived (SIGKILL) | {sum(kills.values())} ({', '.join(f'{k} {v}' for k, v in sorted(kills.items())) or 'none'}) |",
        f"| commands run | {sum(runs.values())} ({', '.join(f'{k} {v}' for k, v in sorted(runs.items()))}) |",
        f"| commands that exited non-zero (not killed) | {len(failures)} |",
        f"| faults injected, by class (simulator counters) | {sum(injected.values())} ({', '.join(f'{k} {v}' for k, v in sorted(injected.items())) or 'none'}) |",
        f"| fault rules added | {sum(faults_added.values())} |",
        f"| portal changes | {sum(mutator.done.values())} ({', '.join(f'{k} {v}' for k, v in sorted(mutator.done.items()))}); refused: {len(mutator.errors)} |",
        f"| records compared (`hsync verify`, every id swept) | {records:,} |",
        f"| association edges compared | {len(expected):,} expected, {len(stored):,} stored |",
        f"| **mismatches** | **{mismatches}** (records: {record_mismatches}; edges missing {len(missing_edges)}, extra {len(extra_edges)}, wrong label {len(wrong_edges)}) |",
        f"| calls repeated (search pages, all commands) | {sum(r for _, r in pages.values())} of {sum(n for n, _ in pages.values())} |",
        "",
        "Calls repeated, by command: search requests (answered, or cut off by a kill) during the chaos",
        "phase and the quiet pass whose path, filters, sort and offset equal an earlier request of the",
        "same command (hsync verify's own searches are not counted).",
        "",
        "| command | runs | kills | search pages | repeated |",
        "|---|---:|---:|---:|---:|",
        *[f"| {cmd} | {runs[cmd]} (+ quiet pass) | {kills[cmd]} | {pages.get(cmd, (0, 0))[0]} | {pages.get(cmd, (0, 0))[1]} |"
          for cmd in sorted(runs)],
        "",
        "Only the backfill's repeats are a pure measure of what kills cost (its pages are checkpointed, so",
        "a resume should repeat at most the page in flight). A CDC pass that runs again before its",
        "watermark moved (the portal kept changing within the settle lag) reads the same window again by",
        "design, and `deletes` sweeps every id on every run, so their repeats are an upper bound.",
    ]
    if mutator.errors:
        lines += ["", "Portal changes the simulator refused (by reason, first ones):", ""]
        lines += [f"- {n} × `{e}`" for e, n in Counter(mutator.errors).most_common(5)]
    if failures:
        lines += ["", "Non-zero exits during the chaos phase (the next run resumed):", ""]
        lines += [f"- {n} × `{f}`" for f, n in Counter(failures).most_common(10)]
    if mismatches:
        lines += ["", "Examples of mismatches:", ""]
        lines += [f"- {o['object']}: {json.dumps({k: o[k] for k in ('missing', 'extra', 'stale')})}" for o in report["objects"] if not o["matches"]]
        lines += [f"- edge missing: {k}" for k in missing_edges[:5]] + [f"- edge extra: {k}" for k in extra_edges[:5]]
        lines += [f"- edge label: {k}: expected {expected[k]}, stored {stored[k]}" for k in wrong_edges[:5]]
    text = "\n".join(lines)
    h.replace_section(opts.doc, "chaos", text, "Reliability")
    print(text)
    h.log(PROG, f"wrote {os.path.relpath(opts.doc, ROOT)}")
    if mismatches:
        h.log(PROG, f"{mismatches} mismatches with the ground truth")
        sys.exit(1)


if __name__ == "__main__":
    main()
