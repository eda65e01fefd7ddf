"""The driver of scripts/bench: runs hsync's benchmark sections against `hsync sim` and Postgres
and writes each into docs/benchmarks.md between its `<!-- bench:NAME:start/end -->` markers.
Standard library only; see scripts/bench for usage."""

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simharness as h  # noqa: E402

PROG = "bench"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
STANDARD_CONTACT_PROPERTIES = 12  # the simulator's standard contact properties
SECTIONS = ["throughput", "limits", "latency", "month-end", "cdc", "webhooks", "efficiency", "objects", "history",
            "push"]


def customs(total_properties):
    return total_properties - STANDARD_CONTACT_PROPERTIES


def sim_args(contacts, properties, limits=False):
    args = ["--seed", "7", "--contacts", str(contacts), "--custom-properties", str(customs(properties))]
    args += ["--companies", "0", "--deals", "0", "--tickets", "0", "--cars", "0"]
    return args + ([] if limits else ["--no-limits"])


def header(opts, build, what):
    quick = (
        "**Quick smoke run (`--quick`): small sizes, not the reported figures.**\n\n" if opts.quick else ""
    )
    return "\n".join(
        [
            f"## {what}",
            "",
            f"_Written by `{opts.command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}._",
            "",
            quick + "Machine:",
            "",
            *h.machine_lines(build),
            "",
        ]
    )


# --- 1. Throughput without limits -------------------------------------------------------------


# Rows per dump file of the COPY ceiling: a wide portal's COPY text runs to about 55 KB a contact,
# so a million of them dumped at once would need 55 GB of disk; slices need only one slice's worth.
CEILING_SLICE = 100_000


def copy_ceiling(schema, workdir):
    """Seconds of plain COPYs of hsync's contacts rows into a new table of the same shape, and the
    largest dump in bytes. The rows go in slices of CEILING_SLICE by id: each slice is dumped, loaded
    and removed, and only the loads are timed."""
    h.psql(f'create table "{schema}".copy_ceiling (like "{schema}".contacts including all)')
    bounds = h.psql(
        f'select max(id) from (select id, (row_number() over (order by id) - 1) / {CEILING_SLICE} as slice'
        f' from "{schema}".contacts) s group by slice order by 1'
    ).split()
    dump = os.path.join(workdir, "contacts.copy")
    seconds, largest, low = 0.0, 0, None
    for high in (int(b) for b in bounds):
        where = f"id <= {high}" + ("" if low is None else f" and id > {low}")
        h.psql(f"\\copy (select * from \"{schema}\".contacts where {where}) to '{dump}'")
        started = time.monotonic()
        h.psql(f"\\copy \"{schema}\".copy_ceiling from '{dump}'")
        seconds += time.monotonic() - started
        largest = max(largest, os.path.getsize(dump))
        os.remove(dump)
        low = high
    return seconds, largest


# The destinations of the throughput section, as (destination, label, extra [sync] keys). The
# fetch-ahead variant runs only up to FETCH_AHEAD_UP_TO contacts: it shows what the option buys
# without doubling the longest runs.
VARIANTS = [
    ("postgres", "postgres", {}),
    ("postgres", "postgres, `backfill_fetch_ahead`", {"backfill_fetch_ahead": True}),
    ("sqlite", "sqlite", {}),
]
FETCH_AHEAD_UP_TO = 100_000


def throughput(opts, hsync, build, workdir):
    sizes = opts.sizes or ([2_000, 10_000] if opts.quick else [100_000, 1_000_000])
    rows = []
    # Bytes per row each (properties, destination) took at a smaller size: a larger run that
    # would not fit on the disk is skipped (and said so) instead of filling it.
    per_row = {}
    for contacts in sizes:
        for properties in (25, 300):
            sim = None
            variants = [v for v in VARIANTS if not v[2] or contacts <= FETCH_AHEAD_UP_TO]
            if properties == 300 and opts.wide_up_to is not None and contacts > opts.wide_up_to:
                for _, label, _ in variants:
                    rows.append(dict(contacts=contacts, properties=properties, dest=label,
                                     skipped=f"not run: `--wide-up-to {opts.wide_up_to}` runs the 300-property portal only up to {opts.wide_up_to:,} contacts"))
                continue
            ceiling = None
            try:
                for dest, label, sync in variants:
                    table_per_row, dump_per_row = per_row.get((properties, dest), (0, 0))
                    need = (table_per_row * contacts + dump_per_row * min(contacts, CEILING_SLICE)) * 1.2
                    free = shutil.disk_usage(workdir if dest == "sqlite" else "/").free
                    if need > free:
                        rows.append(dict(contacts=contacts, properties=properties, dest=label,
                                         skipped=f"skipped: needs about {need / 2**30:.0f} GiB of disk, {free / 2**30:.0f} GiB free"))
                        continue
                    if sim is None:
                        sim = h.Sim(hsync, sim_args(contacts, properties), workdir)
                    schema = f"bench_tp_{os.getpid()}_{contacts}_{properties}"
                    if dest == "postgres":
                        h.drop_pg_schemas(schema)
                    cfg = h.write_config(workdir, "tp.toml", sim.base, h.destination_toml(dest, workdir, schema), ["contacts"],
                                         limits=h.UNLIMITED, sync=sync)
                    h.log(PROG, f"throughput: {contacts} contacts, {properties} properties into {label}")
                    sim_cpu = sim.cpu_seconds()
                    wall, cpu, rss, _ = h.run_timed(hsync, cfg, ["backfill"])
                    sim_cpu = sim.cpu_seconds() - sim_cpu
                    row = dict(contacts=contacts, properties=properties, dest=label, wall=wall, cpu=cpu, rss=rss, sim_cpu=sim_cpu)
                    if dest == "postgres":
                        got = int(h.psql(f'select count(*) from "{schema}".contacts'))
                        if got != contacts:
                            raise SystemExit(f"hsync wrote {got} contacts rows, expected {contacts}")
                        table = int(h.psql(f"select pg_total_relation_size('\"{schema}\".contacts')"))
                        # The same rows from the same simulator: one ceiling serves every variant.
                        if ceiling is None:
                            ceiling = copy_ceiling(schema, workdir)
                        row["copy"], dump = ceiling
                        row["stored"] = table
                        # hsync's table, the COPY table and one slice's dump exist at once.
                        per_row[(properties, dest)] = (2 * table / contacts, dump / min(contacts, CEILING_SLICE))
                        h.drop_pg_schemas(schema)
                    else:
                        path = os.path.join(workdir, schema + ".db")
                        row["stored"] = os.path.getsize(path)
                        per_row[(properties, dest)] = (row["stored"] / contacts, 0)
                        os.remove(path)
                    rows.append(row)
            finally:
                if sim is not None:
                    sim.stop()
    lines = [
        header(opts, build, "Throughput without limits"),
        "`hsync backfill` of contacts only (`sync.objects = [\"contacts\"]`) from `hsync sim --no-limits`",
        "(12 standard contact properties plus `--custom-properties` custom ones), into a fresh Postgres",
        "schema and a fresh SQLite file, with hsync's own pacing lifted (`[limits] searches_per_second =",
        f"{h.UNLIMITED['searches_per_second']}`, `requests_per_10s = {h.UNLIMITED['requests_per_10s']}`) so that neither side limits the rate. Wall, CPU (user + system) and peak RSS come from",
        "`/usr/bin/time -f '%e %U %S %M'` around the hsync process alone; the simulator runs beside it",
        "and takes a share of the same cores: its CPU seconds during the run are in their own column. When",
        "hsync's CPU is well below the wall time, hsync was waiting on the simulator or the database.",
        "",
        "The COPY ceiling: after hsync's run, its `contacts` rows are dumped with `\\copy ... to` and",
        "loaded with `\\copy ... from` into a new table `(like contacts including all)` in the same",
        f"schema, in slices of {CEILING_SLICE:,} rows by id (so the dump never needs more disk than one",
        "slice); the time of the loads alone is the ceiling (no HTTP, no JSON, no type conversion).",
        "",
        "Every row runs hsync's defaults except the one marked `backfill_fetch_ahead`, which sets",
        "`sync.backfill_fetch_ahead = true` (the next search page is fetched while the current one is",
        f"written; a kill may then cost two pages instead of one). It runs up to {FETCH_AHEAD_UP_TO:,} contacts",
        "and uses the ceiling measured for the default Postgres row of the same size.",
        "",
        "| contacts | properties | destination | wall s | records/s | CPU s | simulator CPU s | peak RSS MiB | stored MiB | COPY s | COPY records/s | hsync / COPY |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['contacts']:,} | {r['properties']} | {r['dest']} | {r['skipped']} |||||||||")
            continue
        rps = r["contacts"] / r["wall"] if r["wall"] else float("inf")
        if "copy" in r:
            crps = r["contacts"] / r["copy"]
            copy_cells = f"{r['copy']:.2f} | {crps:,.0f} | {100 * rps / crps:.0f}%"
        else:
            copy_cells = "n/a | n/a | n/a"
        lines.append(
            f"| {r['contacts']:,} | {r['properties']} | {r['dest']} | {r['wall']:.1f} | {rps:,.0f} | {r['cpu']:.1f} | {r['sim_cpu']:.1f} | {r['rss'] / 1024:.0f} | {r['stored'] / 2**20:,.0f} | {copy_cells} |"
        )
    lines += [
        "",
        "Targets (goals, not assertions): hsync's throughput into Postgres at least 50% of the COPY",
        "ceiling; peak RSS below 150 MB however large the portal. Stored MiB is the table with its",
        "indexes and TOAST (`pg_total_relation_size`) or the SQLite file; a size whose estimated disk need",
        "(from the smaller run, with Postgres's COPY copy and dump counted) exceeds the free disk is skipped.",
    ]
    return "\n".join(lines)


# --- 2. Under Professional limits -------------------------------------------------------------

SEARCHES_PER_S = 5
GENERAL_PER_10S = 190
SEARCH_PAGE = 200


def limits(opts, hsync, build, workdir):
    contacts = 1_000_000 if opts.full else (5_000 if opts.quick else 100_000)
    properties = 25
    sim = h.Sim(hsync, sim_args(contacts, properties, limits=True) + ["--tier", "professional"], workdir)
    schema = f"bench_lim_{os.getpid()}"
    try:
        h.drop_pg_schemas(schema)
        cfg = h.write_config(workdir, "lim.toml", sim.base, h.destination_toml("postgres", workdir, schema), ["contacts"])
        h.log(PROG, f"limits: {contacts} contacts under Professional limits")
        before = sim.counters()
        wall, cpu, rss, _ = h.run_timed(hsync, cfg, ["backfill"])
        c = h.counter_delta(sim.counters(), before)
        h.drop_pg_schemas(schema)
    finally:
        sim.stop()
    search = c["byBucket"].get("search", 0)
    general = c["byBucket"].get("general", 0)
    throttled = c["byStatus"].get("429", 0)
    search_allowed = SEARCHES_PER_S * wall
    general_allowed = GENERAL_PER_10S * wall / 10
    # Both buckets at once: searches of 200 and list pages of 100.
    minimum_1m = 1_000_000 / (SEARCH_PAGE * SEARCHES_PER_S + GENERAL_PER_10S * 10)
    projected = wall * 1_000_000 / contacts
    measured = "measured" if contacts == 1_000_000 else f"projected linearly from {contacts:,} contacts"
    lines = [
        header(opts, build, "Under Professional limits"),
        f"`hsync backfill` of {contacts:,} contacts ({properties} properties) into Postgres from `hsync sim --tier professional`",
        f"enforcing {GENERAL_PER_10S} requests per rolling 10 s (general bucket) and {SEARCHES_PER_S} searches per second",
        "(search bucket). Calls are counted by the simulator (`/_sim/requests` counters by bucket and status);",
        "calls allowed is the bucket's rate times the run's wall time.",
        "",
        "| bucket | calls made | calls allowed in the run | utilisation |",
        "|---|---:|---:|---:|",
        f"| search ({SEARCHES_PER_S}/s) | {search} | {search_allowed:,.0f} | {100 * search / search_allowed:.1f}% |",
        f"| general ({GENERAL_PER_10S}/10 s) | {general} | {general_allowed:,.0f} | {100 * general / general_allowed:.1f}% |",
        "",
        f"- Wall {wall:.1f} s, {contacts / wall:,.0f} records/s, CPU {cpu:.1f} s, peak RSS {rss / 1024:.0f} MiB;"
        f" 429 responses: **{throttled}** (by policy: {c['byPolicy'] or 'none'}).",
        f"- 1,000,000 contacts: **{projected:,.0f} s** ({measured}); the minimum these limits allow is"
        f" 1,000,000 / ({SEARCHES_PER_S} searches of {SEARCH_PAGE} + {GENERAL_PER_10S / 10:.0f} list pages of 100 a second) = **{minimum_1m:,.0f} s**"
        f" ({100 * minimum_1m / projected:.0f}% of the minimum's pace).",
        "- The backfill walks id ranges by search (keyset pages of 200) and, beside it, by list pages of 100",
        "  in the general bucket (`sync.backfill_list`, on by default), so both buckets carry records.",
        "",
        "Target (a goal, not an assertion): at least 90% of the two buckets' ceiling for one object",
        f"({SEARCHES_PER_S * SEARCH_PAGE:,} + {GENERAL_PER_10S * 10:,} records/s), with zero 429s.",
    ]
    return "\n".join(lines)


# --- 2b. Under Professional limits at real network latency ----------------------------------

LATENCY_MS = 300
# The search bucket's ceiling for one object: 5 searches a second of 200 records.
SEARCH_CEILING = SEARCHES_PER_S * SEARCH_PAGE
LIST_PAGE = 100
# The general bucket's: 190 list pages of 100 per 10 s, or half that when a page takes two calls
# (ids listed, then a batch read, when the property names do not fit in the list URL).
LIST_CEILING = GENERAL_PER_10S * LIST_PAGE // 10


def latency(opts, hsync, build, workdir):
    """The backfill under Professional limits with the simulator answering at realistic latency
    (`--latency-ms 300`: searches about 300 ms, list pages about 240 ms, seeded log-normal jitter):
    walked in turn (`sync.backfill_concurrency = 1`, hsync before concurrent ranges), by search
    ranges alone (`sync.backfill_list = false`, hsync before the list walkers) and with the
    defaults (search and list walkers at once), at 25 properties, and with the defaults at 300
    properties, where the names no longer fit in a list URL. With --full the defaults at 25
    properties read 1,000,000 contacts; the other rows stay at 100,000."""
    contacts = 1_000_000 if opts.full else (5_000 if opts.quick else 100_000)
    # Rows paced by one bucket or by latency run at 100,000 at most: their rate does not depend
    # on the size, and at 1,000,000 they would take most of an hour.
    paced = min(contacts, 100_000)
    runs = [
        (paced, 25, {"backfill_concurrency": 1}, "in turn (`backfill_concurrency = 1`)"),
        (paced, 25, {"backfill_list": False}, "search ranges (`backfill_list = false`)"),
        (contacts, 25, {}, "defaults: search and list walkers"),
        (paced, 300, {}, "defaults: search and list walkers"),
    ]
    rows = []
    for n, properties, sync, label in runs:
        args = sim_args(n, properties, limits=True) + ["--tier", "professional", "--latency-ms", str(LATENCY_MS)]
        sim = h.Sim(hsync, args, workdir)
        schema = f"bench_lat_{os.getpid()}_{len(rows)}"
        try:
            h.drop_pg_schemas(schema)
            cfg = h.write_config(workdir, "lat.toml", sim.base, h.destination_toml("postgres", workdir, schema),
                                 ["contacts"], sync=sync)
            h.log(PROG, f"latency: {n} contacts, {properties} properties, {label}")
            _, _, _, planned = h.run_timed(hsync, cfg, ["plan", "--json"])
            chosen = json.loads(planned)["objects"][0]
            before = sim.counters()
            wall, cpu, rss, _ = h.run_timed(hsync, cfg, ["backfill"])
            c = h.counter_delta(sim.counters(), before)
            got = int(h.psql(f'select count(*) from "{schema}".contacts'))
            if got != n:
                raise SystemExit(f"hsync wrote {got} contacts rows, expected {n}")
            h.drop_pg_schemas(schema)
        finally:
            sim.stop()
        rows.append(dict(contacts=n, properties=properties, label=label, wall=wall, cpu=cpu, rss=rss,
                         search=c["byBucket"].get("search", 0), general=c["byBucket"].get("general", 0),
                         throttled=c["byStatus"].get("429", 0), policies=c["byPolicy"],
                         readers=chosen.get("readers", "?"), reason=chosen.get("readers_reason")))
    lines = [
        header(opts, build, "Under Professional limits at 300 ms latency"),
        f"`hsync backfill` of contacts into Postgres from `hsync sim --tier professional --latency-ms {LATENCY_MS}`:",
        f"{SEARCHES_PER_S} searches per second and {GENERAL_PER_10S} requests per rolling 10 s enforced, searches answered in",
        f"about {LATENCY_MS} ms (median, log-normal jitter 0.3, plus 0.6 ms per record returned), list and other",
        "reads a little faster (the simulator's latency model, docs/simulator.md). Utilisation is calls made",
        "over the bucket's rate times the run's wall time; calls counted by the simulator. \"plan\" is what",
        "`hsync plan` said the backfill would read with, asked before the run.",
        "",
        "| contacts | properties | backfill | plan | wall s | records/s | search calls | general calls | search utilisation | general utilisation | 429s | CPU s | peak RSS MiB |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        search_allowed = SEARCHES_PER_S * r["wall"]
        general_allowed = GENERAL_PER_10S * r["wall"] / 10
        lines.append(
            f"| {r['contacts']:,} | {r['properties']} | {r['label']} | {r['readers']} | {r['wall']:.1f} | "
            f"{r['contacts'] / r['wall']:,.0f} | {r['search']:,} | {r['general']:,} | "
            f"{100 * r['search'] / search_allowed:.0f}% | {100 * r['general'] / general_allowed:.0f}% | "
            f"**{r['throttled']}** | {r['cpu']:.1f} | {r['rss'] / 1024:.0f} |"
        )
    throttled = [f"{r['properties']} properties, {r['label']}: {r['policies']}" for r in rows if r["throttled"]]
    reasons = [f"{r['properties']} properties, {r['label']}: {r['reason']}" for r in rows if r["reason"]]
    ceiling = SEARCH_CEILING + LIST_CEILING
    narrow = next((r for r in rows if r["properties"] == 25 and not r["label"].startswith(("in turn", "search"))), None)
    lines += [
        "",
        *([f"- 429s by policy: {'; '.join(throttled)}."] if throttled else []),
        *([f"- Search alone because: {'; '.join(reasons)}."] if reasons else []),
        f"- Ceilings for one object: search {SEARCH_CEILING:,} records/s ({SEARCHES_PER_S} pages of {SEARCH_PAGE}), the general",
        f"  bucket {LIST_CEILING:,} records/s ({GENERAL_PER_10S} list pages of {LIST_PAGE} per 10 s), **{ceiling:,} records/s** both;",
        f"  {SEARCH_CEILING + LIST_CEILING // 2:,} when the property names do not fit in a list URL (two calls a list page).",
        "  Walked in turn, latency sets the pace; search ranges fill the search bucket; list walkers fill the",
        "  general bucket beside it. The general bucket's calls include the property and schema reads.",
        *[f"- {r['properties']} properties, {r['label']}: the buckets are {100 * r['search'] / (SEARCHES_PER_S * r['wall']):.0f}%"
          f" and {100 * r['general'] / (GENERAL_PER_10S * r['wall'] / 10):.0f}% used, so the machine set the pace: hsync took"
          f" {r['cpu']:.0f} s of CPU in {r['wall']:.0f} s, and the simulator (rendering {r['properties']} properties a record)"
          f" and Postgres share the same {os.cpu_count()} cores. The planner's choice is for the buckets; on this host the"
          " writes bound it." for r in rows
          if r["readers"] == "search+list" and r["search"] < 0.6 * SEARCHES_PER_S * r["wall"]],
        *([f"- Defaults at 25 properties: **{narrow['contacts'] / narrow['wall']:,.0f} records/s, "
           f"{100 * narrow['contacts'] / narrow['wall'] / ceiling:.0f}% of the two-bucket ceiling**; target at least 90%"
           f" ({0.9 * ceiling:,.0f} records/s) with 0 429s."] if narrow else []),
    ]
    return "\n".join(lines)


def month_end(opts, hsync, build, workdir):
    """A CDC pass over half the contacts, modified at once, under Professional limits at 300 ms
    latency: once walked in turn (`sync.backfill_concurrency = 1`, hsync before concurrent CDC
    passes) and once with the defaults."""
    contacts = 5_000 if opts.quick else 100_000
    updated = contacts // 2
    args = sim_args(contacts, 25, limits=True) + ["--tier", "professional", "--latency-ms", str(LATENCY_MS)]
    sim = h.Sim(hsync, args, workdir)
    schema = f"bench_month_{os.getpid()}"
    rows = []
    try:
        h.drop_pg_schemas(schema)
        dest = h.destination_toml("postgres", workdir, schema)
        cfg = h.write_config(workdir, "month.toml", sim.base, dest, ["contacts"], settle_lag_secs=1)
        h.log(PROG, f"latency: month-end CDC, backfilling {contacts} contacts")
        h.run_timed(hsync, cfg, ["backfill"])
        for label, sync in [("in turn (`backfill_concurrency = 1`)", {"backfill_concurrency": 1}),
                            ("defaults: search ranges", {})]:
            cfg = h.write_config(workdir, "month.toml", sim.base, dest, ["contacts"], settle_lag_secs=1, sync=sync)
            seed = 1_000 + len(rows)
            touched = sim.admin("POST", "/_sim/objects/contacts/touch",
                                {"count": updated, "spreadMs": 1_000, "seed": seed})
            column = touched["property"]
            time.sleep(2.5)  # the spread and the settle lag
            h.log(PROG, f"latency: month-end CDC of {updated} contacts, {label}")
            before = sim.counters()
            wall, _, _, _ = h.run_timed(hsync, cfg, ["cdc", "--once"])
            c = h.counter_delta(sim.counters(), before)
            got = int(h.psql(f'select count(*) from "{schema}".contacts where "{column}" like \'touched {seed} %\''))
            if got != updated:
                raise SystemExit(f"the CDC pass left {got} of {updated} updated contacts in Postgres")
            rows.append(dict(label=label, updated=updated, wall=wall, search=c["byBucket"].get("search", 0),
                             throttled=c["byStatus"].get("429", 0)))
    finally:
        sim.stop()
        h.drop_pg_schemas(schema)
    lines = [
        header(opts, build, "A month-end update under Professional limits at 300 ms latency"),
        f"{updated:,} of {contacts:,} contacts (25 properties) modified within a second in `hsync sim --tier professional",
        f"--latency-ms {LATENCY_MS}`, then one `hsync cdc --once` into Postgres after the settle lag, walked in turn and with",
        "the defaults (a pass with more than two ranges' worth of changes walks id ranges by search, as the backfill",
        "does). Each pass's rows are checked in Postgres; calls counted by the simulator.",
        "",
        "| CDC pass | records | wall s | records/s | search calls | search utilisation | 429s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['label']} | {r['updated']:,} | {r['wall']:.1f} | {r['updated'] / r['wall']:,.0f} | {r['search']:,} | "
          f"{100 * r['search'] / (SEARCHES_PER_S * r['wall']):.0f}% | **{r['throttled']}** |" for r in rows],
        "",
        f"- The search bucket's ceiling is {SEARCH_CEILING:,} records/s; a CDC pass cannot use list pages (they cannot",
        "  ask for changed records).",
    ]
    return "\n".join(lines)


# --- 3. CDC latency ---------------------------------------------------------------------------


def wait_for_backfill(daemon, log, schema, contacts):
    """Waits (30 minutes at most) until the daemon's backfill put `contacts` rows in Postgres."""
    deadline = time.time() + 1800
    while True:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}); see {log.name}")
        try:
            if int(h.psql(f'select count(*) from "{schema}".contacts')) >= contacts:
                return
        except SystemExit:
            pass  # the table does not exist yet
        if time.time() > deadline:
            raise SystemExit("the daemon's backfill did not finish within 30 minutes")
        time.sleep(1)


def stop_daemon(daemon):
    daemon.terminate()
    try:
        daemon.wait(timeout=60)
    except h.subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def cdc_latency(opts, hsync, build, workdir):
    contacts = 2_000 if opts.quick else 20_000
    samples = 2 if opts.quick else 6
    spread = 10 if opts.quick else 60
    sim = h.Sim(hsync, sim_args(contacts, 25), workdir)
    schema = f"bench_cdc_{os.getpid()}"
    h.drop_pg_schemas(schema)
    port = h.free_port()
    cfg = h.write_config(
        workdir, "cdc.toml", sim.base, h.destination_toml("postgres", workdir, schema), ["contacts"],
        daemon={"listen": f"127.0.0.1:{port}"},
    )
    log = open(os.path.join(workdir, "daemon.log"), "w")
    daemon = h.subprocess.Popen([hsync, "--quiet", "--config", cfg, "run"], stdout=log, stderr=log, env=h.hsync_env())
    latencies = []
    rng = random.Random(7)
    try:
        h.log(PROG, f"cdc: daemon backfilling {contacts} contacts")
        wait_for_backfill(daemon, log, schema, contacts)
        ids = [r["id"] for r in sim.admin("GET", "/_sim/truth?objects=contacts&values=false")["objects"]["contacts"]["live"]]
        for n in range(samples):
            # A random moment in the daemon's CDC cycle, so the samples spread over it.
            time.sleep(rng.uniform(0, spread))
            rid, marker = rng.choice(ids), f"bench-cdc-{os.getpid()}-{n}"
            sim.admin("PATCH", f"/_sim/objects/contacts/{rid}", {"properties": {"firstname": marker}})
            changed = time.monotonic()
            while True:
                got = h.psql(f'select firstname from "{schema}".contacts where id = {int(rid)}')
                if got == marker:
                    latencies.append(time.monotonic() - changed)
                    h.log(PROG, f"cdc: sample {n + 1}/{samples}: {latencies[-1]:.1f} s")
                    break
                if time.monotonic() - changed > 900:
                    raise SystemExit("a change did not reach Postgres within 15 minutes")
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited ({daemon.returncode}); see {log.name}")
                time.sleep(0.2)
    finally:
        stop_daemon(daemon)
        sim.stop()
        h.drop_pg_schemas(schema)
    lines = [
        header(opts, build, "CDC latency"),
        f"`hsync run` (the daemon) with its default intervals (`cdc_interval_secs = 60`, 10% jitter,",
        f"`settle_lag_secs = 300`) against `hsync sim --no-limits` with {contacts:,} contacts, into Postgres.",
        f"After the backfill, each sample waits a random 0–{spread} s (so changes land at random points of the",
        "CDC cycle), changes `firstname` of a random contact through the simulator's admin API and polls",
        "Postgres every 0.2 s until the row holds the new value.",
        "",
        f"- Samples: {len(latencies)}; median **{statistics.median(latencies):.1f} s**, max **{max(latencies):.1f} s**,"
        f" min {min(latencies):.1f} s (all: {', '.join(f'{x:.1f}' for x in latencies)}).",
        "",
        "Components: the wait for the next CDC pass (passes start 54–66 s apart with the 10% jitter; a change",
        "made at a random moment waits about half an interval on average and at most a whole one), the",
        "search index lag (0 in the simulator; seconds in HubSpot), and the pass itself (a search per",
        "object plus the merge), which the difference between the max and the interval shows. The settle lag does not delay the row: a record",
        "newer than `now - settle_lag_secs` is merged at once and only read again on later passes, because",
        "the durable watermark stays 300 s behind.",
    ]
    return "\n".join(lines)


# --- 3b. Webhook latency and the receiver's rate ----------------------------------------------


WEBHOOK_SECRET = "bench-webhook-secret"


def webhook_latency(opts, hsync, build, workdir):
    """Change-to-warehouse latency through HubSpot webhooks: the daemon with webhooks on, the
    simulator delivering every event with its default delay, HubSpot's Professional limits and
    300 ms latency on the reads back; then a burst of changes for the events per second applied."""
    contacts = 2_000 if opts.quick else 10_000
    samples = 10 if opts.quick else 60
    burst = 300 if opts.quick else 3_000
    args = sim_args(contacts, 25, limits=True) + ["--tier", "professional", "--latency-ms", str(LATENCY_MS)]
    sim = h.Sim(hsync, args, workdir)
    schema = f"bench_hooks_{os.getpid()}"
    h.drop_pg_schemas(schema)
    port, hook_port = h.free_port(), h.free_port()
    target = f"http://127.0.0.1:{hook_port}/hubspot/webhooks"
    cfg = h.write_config(
        workdir, "hooks.toml", sim.base, h.destination_toml("postgres", workdir, schema), ["contacts"],
        daemon={"listen": f"127.0.0.1:{port}"},
    )
    with open(cfg, "a") as f:
        f.write(f'\n[webhooks]\nenabled = true\nlisten = "127.0.0.1:{hook_port}"\ntarget_url = "{target}"\n'
                'client_secret_env = "HSYNC_BENCH_WEBHOOK_SECRET"\n')
    log = open(os.path.join(workdir, "hooks-daemon.log"), "w")
    env = dict(h.hsync_env(), HSYNC_BENCH_WEBHOOK_SECRET=WEBHOOK_SECRET)
    daemon = h.subprocess.Popen([hsync, "--quiet", "--config", cfg, "run"], stdout=log, stderr=log, env=env)
    latencies = []
    rng = random.Random(11)
    try:
        h.log(PROG, f"webhooks: daemon backfilling {contacts} contacts")
        wait_for_backfill(daemon, log, schema, contacts)
        sim.admin("PUT", "/_sim/webhooks", {"target_url": target, "client_secret": WEBHOOK_SECRET})
        defaults = sim.admin("GET", "/_sim/webhooks")
        ids = [r["id"] for r in sim.admin("GET", "/_sim/truth?objects=contacts&values=false")["objects"]["contacts"]["live"]]
        for n in range(samples):
            time.sleep(rng.uniform(0, 1))
            rid, marker = rng.choice(ids), f"bench-hook-{os.getpid()}-{n}"
            sim.admin("PATCH", f"/_sim/objects/contacts/{rid}", {"properties": {"firstname": marker}})
            changed = time.monotonic()
            while True:
                if h.psql(f'select firstname from "{schema}".contacts where id = {int(rid)}') == marker:
                    latencies.append(time.monotonic() - changed)
                    if (n + 1) % 10 == 0:
                        h.log(PROG, f"webhooks: sample {n + 1}/{samples}: {latencies[-1]:.2f} s")
                    break
                if time.monotonic() - changed > 300:
                    raise SystemExit("a change did not reach Postgres within 5 minutes")
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited ({daemon.returncode}); see {log.name}")
                time.sleep(0.05)
        # The burst: distinct records, each changed once, as fast as the admin API takes them.
        chosen = rng.sample(ids, min(burst, len(ids)))
        marker = f"bench-burst-{os.getpid()}"
        started = time.monotonic()
        for rid in chosen:
            sim.admin("PATCH", f"/_sim/objects/contacts/{rid}", {"properties": {"lastname": marker}})
        made = time.monotonic() - started
        while int(h.psql(f"select count(*) from \"{schema}\".contacts where lastname = '{marker}'")) < len(chosen):
            if time.monotonic() - started > 900:
                raise SystemExit("the burst did not reach Postgres within 15 minutes")
            time.sleep(0.2)
        burst_secs = time.monotonic() - started
        counters = sim.admin("GET", "/_sim/webhooks")["counters"]
    finally:
        stop_daemon(daemon)
        sim.stop()
        h.drop_pg_schemas(schema)
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    lines = [
        header(opts, build, "Webhook latency"),
        f"`hsync run` with `[webhooks]` on (defaults: `coalesce_ms = 250`) against `hsync sim --tier professional",
        f"--latency-ms {LATENCY_MS}` with {contacts:,} contacts, into Postgres. The simulator delivers each event with its",
        f"default delay ({defaults['delay_ms']} ms ± {defaults['delay_jitter_ms']} ms, batches of up to {defaults['max_batch']}), signed; hsync checks the",
        "signature, stores the events, and reads the records back by id (batch read at the simulator's latency)",
        "into the guarded merge. Each sample changes `firstname` of a random contact through the admin API after",
        "a random 0–1 s pause and polls Postgres every 50 ms until the row holds the new value.",
        "",
        f"- Samples: {len(latencies)}; median **{statistics.median(latencies):.2f} s**, p95 {p95:.2f} s, max **{max(latencies):.2f} s**,"
        f" min {min(latencies):.2f} s. Target: median ≤ 2 s and max ≤ 5 s.",
        f"- Polling, for comparison (the CDC section above): a change waits for the next pass, about half of",
        "  `cdc_interval_secs` (60 s) on average.",
        f"- Burst: {len(chosen):,} contacts changed once each in {made:.1f} s through the admin API; all of them were in",
        f"  Postgres {burst_secs:.1f} s after the first change: **{len(chosen) / burst_secs:,.0f} events per second** applied",
        f"  (receiver, store, coalesce, batch read of 100 at {LATENCY_MS} ms, merge), with the reads within Professional limits.",
        f"- The simulator's counters: {counters['deliveries']:,} deliveries, {counters['delivered_events']:,} events delivered,"
        f" {counters['failed_attempts']} failed attempts.",
    ]
    return "\n".join(lines)


# --- 4. API efficiency ------------------------------------------------------------------------


def pair_minimum(stdout):
    """Σ over association pairs of ceil(records read / 1,000): one v4 batch read per 1,000 inputs."""
    calls, records = 0, 0
    for line in stdout.splitlines():
        if " -> " in line and "records read" in line:
            n = int(line.split(":")[1].split("records read")[0].strip())
            records += n
            calls += math.ceil(n / 1000)
    return calls, records


def efficiency(opts, hsync, build, workdir):
    # Calls per 1,000 records do not depend on the size beyond rounding; 20,000 contacts of 600
    # properties already store several GB.
    contacts = 4_000 if opts.quick else 20_000
    rows = []
    for properties in (25, 600):
        sim = h.Sim(hsync, sim_args(contacts, properties), workdir)
        schema = f"bench_eff_{os.getpid()}_{properties}"
        h.drop_pg_schemas(schema)
        cfg = h.write_config(workdir, "eff.toml", sim.base, h.destination_toml("postgres", workdir, schema), ["contacts"])
        try:
            h.log(PROG, f"efficiency: backfill {contacts} contacts, {properties} properties")
            before, since = sim.counters(), sim.next_seq()
            h.run_timed(hsync, cfg, ["backfill"])
            c = h.counter_delta(sim.counters(), before)
            minimum = math.ceil(contacts / SEARCH_PAGE) + 1
            rows.append((f"backfill, {properties} properties", contacts, c["count"], minimum,
                         f"{math.ceil(contacts / SEARCH_PAGE)} search pages of 200 + 1 property list", sim.calls_since(since)))
        finally:
            sim.stop()
            h.drop_pg_schemas(schema)
    # CDC and associations on a portal with companies and deals.
    cdc_contacts = 2_000 if opts.quick else 20_000
    changed = 1_000 if opts.quick else 10_000
    sim_extra = sim_args(cdc_contacts, 25)
    for flag, n in (("--companies", cdc_contacts // 10), ("--deals", cdc_contacts // 10)):
        sim_extra[sim_extra.index(flag) + 1] = str(n)
    sim = h.Sim(hsync, sim_extra, workdir)
    schema = f"bench_eff_cdc_{os.getpid()}"
    h.drop_pg_schemas(schema)
    cfg = h.write_config(workdir, "effc.toml", sim.base, h.destination_toml("postgres", workdir, schema),
                         ["contacts", "companies", "deals"], settle_lag_secs=1)
    try:
        h.run_timed(hsync, cfg, ["backfill"])
        h.run_timed(hsync, cfg, ["cdc", "--once"])
        time.sleep(2)
        sim.admin("POST", "/_sim/objects/contacts/touch", {"count": changed, "spreadMs": 1000})
        time.sleep(2.5)  # past the spread and the settle lag, so one pass reads every change once
        before, since = sim.counters(), sim.next_seq()
        h.run_timed(hsync, cfg, ["cdc", "--once"])
        c = h.counter_delta(sim.counters(), before)
        minimum = math.ceil(changed / SEARCH_PAGE) + 2 + 3
        rows.append(("CDC pass", changed, c["count"], minimum,
                     f"{math.ceil(changed / SEARCH_PAGE)} search pages of 200 for contacts + 1 empty search each for companies and deals"
                     " + 1 property list per object (each pass's schema-drift check)",
                     sim.calls_since(since)))
        before, since = sim.counters(), sim.next_seq()
        _, _, _, out = h.run_timed(hsync, cfg, ["associations", "--sweep"])
        c = h.counter_delta(sim.counters(), before)
        minimum, records = pair_minimum(out)
        candidate_pairs = 3 * 4 // 2  # (i, j) with i <= j over contacts, companies, deals
        minimum += candidate_pairs
        rows.append(("associations (full sweep)", records, c["count"], minimum,
                     "Σ over pairs of ceil(records / 1,000) v4 batch reads + 1 association-type list per candidate pair (6)",
                     sim.calls_since(since)))
    finally:
        sim.stop()
        h.drop_pg_schemas(schema)
    lines = [
        header(opts, build, "API efficiency"),
        "Calls counted by the simulator (`/_sim/requests` counter deltas around each command, every",
        "status included, so retries count) against the fewest calls the API allows for the same work.",
        "",
        "| work | records | calls | calls per 1,000 records | minimum | minimum per 1,000 | over the minimum | the minimum is |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for work, records, calls, minimum, why, _ in rows:
        per = 1000 * calls / records if records else 0
        mper = 1000 * minimum / records if records else 0
        lines.append(f"| {work} | {records:,} | {calls} | {per:.2f} | {minimum} | {mper:.2f} | {100 * (calls - minimum) / minimum:+.0f}% | {why} |")
    lines += ["", "The calls made, by method and path (where any calls above the minimum go):", ""]
    for work, _, _, _, _, calls in rows:
        lines.append(f"- {work}: " + ", ".join(f"`{k}` ×{v}" for k, v in sorted(calls.items())))
    lines += [
        "",
        f"- Backfill: {contacts:,} contacts; search returns at most 200 records per page and the 10,000-result",
        "  cap does not bind a keyset walk, so ceil(records / 200) searches, plus one `GET /crm/v3/properties/contacts`",
        "  to learn the columns. Search accepts every requested property in one body, so 600 properties cost",
        "  no more pages than 25 (a list-based reader would pay more: 100 per page).",
        f"- CDC: {changed:,} of {cdc_contacts:,} contacts touched (spread over 1 s, so about ten share each",
        "  millisecond and every page boundary falls inside a busy one), one `hsync cdc --once` pass after",
        "  the settle lag (`settle_lag_secs = 1` here): ceil(changes / 200) searches for contacts, one empty",
        "  search per other object, and one property list per object, which is how a pass sees a property",
        "  added, archived or retyped in HubSpot (the backfill's minimum counts its property list the same way).",
        "- Associations (`hsync associations --sweep` after the backfill): the v4 batch read takes up to",
        "  1,000 inputs per call, so each pair (from type → to type) needs ceil(its records / 1,000) calls;",
        "  an input with more targets than a page holds needs one more page, which this minimum ignores.",
        "  Which pairs HubSpot defines (company parent/child, custom labels) is known only from the v4",
        "  labels endpoint, one call per candidate pair, each command once; the daemon reads them at start.",
        "",
        "Target (a goal, not an assertion): calls per 1,000 records within 10% of the minimum.",
    ]
    return "\n".join(lines)


# --- 5. The catalogue's types: calls per 1,000 records by read path, and the engagement sweep ---

LIST_PAGE = 100


def objects(opts, hsync, build, workdir):
    """Backfills one engagement type (calls), one commerce type (line_items) and the type HubSpot
    serves no search for (contracts), counting calls against the minimum of each read path, then
    sweeps the associations of 100,000 calls with their contacts, stored from either side."""
    contacts = 1_000 if opts.quick else 5_000
    calls = 10_000 if opts.quick else 100_000
    line_items = 4_000 if opts.quick else 20_000
    contracts = 1_000 if opts.quick else 5_000
    args = ["--seed", "7", "--contacts", str(contacts), "--custom-properties", "10", "--no-limits",
            "--companies", "0", "--deals", "0", "--tickets", "0", "--cars", "0",
            "--calls", str(calls), "--line_items", str(line_items), "--contracts", str(contracts)]
    sim = h.Sim(hsync, args, workdir)
    schema = f"bench_objects_{os.getpid()}"
    rows, sweeps = [], []
    try:
        for name, n, path in (("calls", calls, "search"), ("line_items", line_items, "search"), ("contracts", contracts, "list")):
            h.drop_pg_schemas(schema)
            cfg = h.write_config(workdir, f"obj-{name}.toml", sim.base, h.destination_toml("postgres", workdir, schema), [name])
            h.log(PROG, f"objects: backfill {n} {name} ({path} path)")
            before, since = sim.counters(), sim.next_seq()
            wall, _, _, _ = h.run_timed(hsync, cfg, ["backfill"])
            c = h.counter_delta(sim.counters(), before)
            page = SEARCH_PAGE if path == "search" else LIST_PAGE
            minimum = math.ceil(n / page) + 1
            why = f"{math.ceil(n / page)} {'search pages of 200' if path == 'search' else 'list pages of 100'} + 1 property list"
            rows.append((f"backfill {name} ({path})", n, c["count"], minimum, why, sim.calls_since(since), wall))
        for order in (["contacts", "calls"], ["calls", "contacts"]):
            h.drop_pg_schemas(schema)
            cfg = h.write_config(workdir, "obj-sweep.toml", sim.base, h.destination_toml("postgres", workdir, schema), order)
            h.log(PROG, f"objects: sweep {order[0]} -> {order[1]}")
            h.run_timed(hsync, cfg, ["backfill"])
            before, since = sim.counters(), sim.next_seq()
            wall, _, _, out = h.run_timed(hsync, cfg, ["associations", "--sweep"])
            c = h.counter_delta(sim.counters(), before)
            _, records = pair_minimum(out)
            edges = h.psql(f'select count(*) from "{schema}".associations where deleted_at is null').strip()
            sweeps.append((f"{order[0]} -> {order[1]}", records, int(edges), c["count"], sim.calls_since(since), wall))
    finally:
        sim.stop()
        h.drop_pg_schemas(schema)
    lines = [
        header(opts, build, "Every object type: calls per 1,000 records by read path"),
        f"`hsync sim --no-limits` with {contacts:,} contacts, {calls:,} calls, {line_items:,} line items and",
        f"{contracts:,} contracts (10 custom properties each), into Postgres. Calls counted by the",
        "simulator (`/_sim/requests` counter deltas around each command).",
        "",
        "| work | records | calls | calls per 1,000 records | minimum | minimum per 1,000 | over the minimum | the minimum is | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for work, records, made, minimum, why, _, wall in rows:
        lines.append(f"| {work} | {records:,} | {made} | {1000 * made / records:.2f} | {minimum} | "
                     f"{1000 * minimum / records:.2f} | {100 * (made - minimum) / minimum:+.0f}% | {why} | {wall:.1f} |")
    lines += ["", "Association sweep (`hsync associations --sweep` after a backfill of both types), the pair stored from",
              "the object listed first in `sync.objects`:", "",
              "| pair stored from | records read | live edges stored | calls | wall s |", "|---|---:|---:|---:|---:|"]
    for pair, records, edges, made, _, wall in sweeps:
        lines.append(f"| {pair} | {records:,} | {edges:,} | {made} | {wall:.1f} |")
    lines += ["", "The calls made, by method and path:", ""]
    for work, _, _, _, _, made, _ in rows:
        lines.append(f"- {work}: " + ", ".join(f"`{k}` ×{v}" for k, v in sorted(made.items())))
    for pair, _, _, _, made, _ in sweeps:
        lines.append(f"- sweep {pair}: " + ", ".join(f"`{k}` ×{v}" for k, v in sorted(made.items())))
    lines += [
        "",
        "- Search types (engagements, commerce, everything but contracts) cost what contacts cost: a search",
        "  per 200 records. Contracts have no search in HubSpot: the list endpoint gives 100 records a call",
        "  (with the properties in the URL while they fit in 2,000 bytes; a batch read per 100 more beyond),",
        "  so a list-path type costs twice as many calls, from the general bucket rather than the search one.",
        "- The sweep reads 1,000 `from` records a call whatever each has, plus a page per 100 more targets",
        "  of one record (the simulator's page size here), so a pair costs about its smaller side's",
        "  records / 1,000 when listed first: `daemon.association_sweep_interval_by_object` sets how often.",
    ]
    return "\n".join(lines)


# --- 6. Property history: the first load and an incremental pass against the minimum ---

HISTORY_BATCH = 50


def history(opts, hsync, build, workdir):
    """Loads the deal-stage history (`sync.history.deals = ["default"]`) of every deal, changes
    some deals, runs a CDC pass and a second history pass, and counts each pass's calls against
    the minimum: one batch read per 50 records (HubSpot's limit with history)."""
    deals = 2_000 if opts.quick else 20_000
    changed = 200 if opts.quick else 1_000
    args = ["--seed", "7", "--contacts", "100", "--companies", "0", "--deals", str(deals), "--tickets", "0",
            "--cars", "0", "--custom-properties", "10", "--no-limits"]
    sim = h.Sim(hsync, args, workdir)
    schema = f"bench_history_{os.getpid()}"
    rows = []
    try:
        h.drop_pg_schemas(schema)
        cfg = h.write_config(workdir, "history.toml", sim.base, h.destination_toml("postgres", workdir, schema), ["deals"],
                             settle_lag_secs=1, history={"deals": ["default"]})
        h.log(PROG, f"history: backfill {deals} deals")
        h.run_timed(hsync, cfg, ["backfill"])
        for label, records in (("first load", deals), ("after changes", changed)):
            if label == "after changes":
                sim.admin("POST", "/_sim/objects/deals/touch", {"count": changed, "property": "dealstage", "spreadMs": 500})
                time.sleep(1.5)
                h.run_timed(hsync, cfg, ["cdc", "--once"])
            h.log(PROG, f"history: {label}")
            before, since = sim.counters(), sim.next_seq()
            wall, _, rss, _ = h.run_timed(hsync, cfg, ["history"])
            c = h.counter_delta(sim.counters(), before)
            versions = h.psql(f'select count(*) from "{schema}".property_history').strip()
            rows.append((label, records, c["count"], math.ceil(records / HISTORY_BATCH), int(versions), sim.calls_since(since), wall, rss))
    finally:
        sim.stop()
        h.drop_pg_schemas(schema)
    lines = [
        header(opts, build, "Property history: calls per 1,000 records"),
        f"`hsync sim --no-limits` with {deals:,} deals (10 custom properties), into Postgres, keeping the deals'",
        "default history (`dealstage`, `amount`, `closedate`, `hubspot_owner_id`, `pipeline`). The first",
        f"`hsync history` reads every deal; then {changed:,} deals change stage, `hsync cdc --once` writes them and",
        "the second `hsync history` reads only those. Calls counted by the simulator.",
        "",
        "| pass | records | calls | calls per 1,000 records | minimum | over the minimum | versions stored after | wall s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, records, made, minimum, versions, _, wall, rss in rows:
        lines.append(f"| {label} | {records:,} | {made} | {1000 * made / records:.2f} | {minimum} | "
                     f"{100 * (made - minimum) / minimum:+.0f}% | {versions:,} | {wall:.1f} | {rss / 1024:.0f} |")
    lines += ["", "The calls made, by method and path:", ""]
    for label, _, _, _, _, made, _, _ in rows:
        lines.append(f"- {label}: " + ", ".join(f"`{k}` ×{v}" for k, v in sorted(made.items())))
    lines += [
        "",
        "- The minimum is a batch read per 50 records: HubSpot refuses more inputs when a read asks for history,",
        "  and no other endpoint returns history for many records at once (list pages with history hold 50 too).",
        "- The number of properties kept does not change the calls, only the size of the answers.",
        "- An incremental pass reads the records CDC wrote since the last pass, whatever the table's size: 20",
        "  calls per 1,000 changed records.",
    ]
    return "\n".join(lines)


# --- 7. hsync push: rows into HubSpot at Professional limits and latency ---


def push(opts, hsync, build, workdir):
    """Pushes a CSV of new contacts (a lead score each) with `hsync push`: the first run creates
    them, the second finds them unchanged and writes nothing, the third changes every score.
    Professional limits and 300 ms latency; calls counted by the simulator."""
    rows = 2_000 if opts.quick else 20_000
    sim = h.Sim(hsync, sim_args(100, 25, limits=True) + ["--tier", "professional", "--latency-ms", str(LATENCY_MS)],
                workdir)
    results = []
    try:
        sim.admin("POST", "/_sim/properties/contacts",
                  {"name": "lead_score", "label": "Lead score", "type": "number", "fieldType": "number"})
        csv_path = os.path.join(workdir, "scores.csv")
        cfg = h.write_config(workdir, "push.toml", sim.base,
                             f'url = "sqlite://{os.path.join(workdir, "push.db")}"', ["contacts"])
        with open(cfg, "a") as f:
            f.write(f'\n[push.scores]\nobject = "contacts"\nid_property = "email"\nfile = "{csv_path}"\n')
        for label, offset in (("create", 0), ("rerun, nothing changed", 0), ("every score changed", 1)):
            with open(csv_path, "w") as f:
                f.write("email,lead_score\n")
                for i in range(rows):
                    f.write(f"push{i:06d}@example.com,{i + offset}\n")
            h.log(PROG, f"push: {label}, {rows} rows")
            before, since = sim.counters(), sim.next_seq()
            wall, _, rss, out = h.run_timed(hsync, cfg, ["push", "scores", "--restart"])
            c = h.counter_delta(sim.counters(), before)
            summary = next((line for line in out.splitlines() if line.startswith("push scores")), "").split(": ", 1)[-1]
            results.append((label, c["count"], wall, rss, summary, sim.calls_since(since)))
    finally:
        sim.stop()
    lines = [
        header(opts, build, "hsync push: rows into HubSpot"),
        f"`hsync sim --tier professional --latency-ms {LATENCY_MS}` (HubSpot's Professional limits: 190 calls",
        f"per 10 s; {LATENCY_MS} ms per answer). `hsync push` of a {rows:,}-row CSV file of contacts (email and a",
        "number), upserted by email into SQLite's `push_results`. Each run is `--restart`, so every row is",
        "checked and sent again; calls counted by the simulator.",
        "",
        "| run | rows | calls | rows per second | wall s | peak RSS MiB | summary |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, calls, wall, rss, summary, _ in results:
        lines.append(f"| {label} | {rows:,} | {calls} | {rows / wall:,.0f} | {wall:.1f} | {rss / 1024:.0f} | {summary} |")
    lines += ["", "The calls made, by method and path:", ""]
    for label, _, _, _, _, made in results:
        lines.append(f"- {label}: " + ", ".join(f"`{k}` ×{v}" for k, v in sorted(made.items())))
    lines += [
        "",
        "- Each batch of 100 rows costs one batch read (to leave out records HubSpot already holds) and, for",
        "  rows that changed, one batch upsert: 20 calls per 1,000 rows, 10 when nothing changed.",
        "- Four batches are in flight, so a push runs at HubSpot's rate limit rather than one answer at a time.",
        "- The rows are held in memory whole (the peak RSS column); they are not streamed.",
        "- HubSpot's limit alone allows these calls in about calls / 19 s (401 calls: 21 s). The simulator finds each",
        "  batch's records by scanning every contact, so at tens of thousands of records its CPU, shared with hsync",
        "  on two cores, sets the wall time here; the rows-per-second column understates what HubSpot allows.",
    ]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (labelled in the doc)")
    ap.add_argument("--full", action="store_true", help="Professional limits over 1,000,000 contacts instead of a projection")
    ap.add_argument("--section", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    help="throughput: comma-separated contact counts instead of 100000,1000000")
    ap.add_argument("--wide-up-to", type=int, default=None, metavar="N",
                    help="throughput: run the 300-property portal only at sizes up to N contacts (larger ones are listed as not run)")
    ap.add_argument("--doc", default=DOC, help="the document to write (default docs/benchmarks.md)")
    opts = ap.parse_args()
    opts.command = h.command_line("scripts/bench", sys.argv[1:])
    for tool in ("psql", "/usr/bin/time"):
        h.require(tool)
    hsync, build = h.which_hsync(ROOT, PROG)
    runners = {"throughput": throughput, "limits": limits, "latency": latency, "month-end": month_end, "cdc": cdc_latency,
               "webhooks": webhook_latency, "efficiency": efficiency,
               "objects": objects, "history": history, "push": push}
    with tempfile.TemporaryDirectory(prefix="hsync-bench-") as workdir:
        for name in opts.section or SECTIONS:
            text = runners[name](opts, hsync, build, workdir)
            h.replace_section(opts.doc, f"bench:{name}", text, "Benchmarks")
            print(text + "\n")
            h.log(PROG, f"wrote the {name} section of {os.path.relpath(opts.doc, ROOT)}")


if __name__ == "__main__":
    main()
