"""The simulator against HubSpot's own OpenAPI documents (issue 21 point 4), run by
scripts/conformance, which provides the virtual environment with Schemathesis and the hsync
binary.

For each document below, Schemathesis generates requests for every operation the simulator
serves and checks each answer: no server error (`not_a_server_error`), a status the document
lists (`status_code_conformance`) and a body that matches the documented schema
(`response_schema_conformance`). Operations the simulator does not serve are excluded by name
in EXCLUDED, each with its reason; the documents left out are listed, with why, in
NOT_CHECKED. Where HubSpot's documents disagree with HubSpot's own answers, conformance_hooks.py
corrects them in memory, narrowly and with the evidence. The documents are read where they lie (HSYNC_OPENAPI_DIR, or
../shared/hubspot-openapi beside the repository) and never copied.

Usage: python scripts/conformance.py --hsync BIN --openapi DIR --schemathesis PATH
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conformance_hooks import CORRECTIONS  # noqa: E402
from simharness import TOKEN, Sim  # noqa: E402

PROG = "conformance"

# The checks, exactly: what issue 21 asks (no 5xx, bodies on the documented schema) and the
# status check, which HubSpot's documents make cheap to pass (every operation lists `default`).
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"

# Generation, bounded and reproducible: the same seed, the same requests (the simulator's portal
# is seeded too). Valid and invalid inputs (`all`): an invalid request must get a documented
# error, never a 5xx.
SEED = 21
MODE = "all"
MAX_EXAMPLES = 12
PHASES = "examples,coverage,fuzzing"

# A small portal, so it starts at once. `--no-limits`: Schemathesis sends far more than HubSpot's
# 100 requests per 10 s and 5 searches per second; the limits and their 429s have tests of
# their own (crates/hsync-sim/tests), here they would only slow the run down.
SIM_ARGS = [
    "--seed", "1", "--contacts", "200", "--companies", "40", "--deals", "60", "--tickets", "30",
    "--cars", "20", "--custom-properties", "8", "--no-limits",
]

# The documents checked, relative to the OpenAPI folder: the numbered family (/crm/v3, /crm/v4)
# that hsync calls, and the 2026-03 dated family, which the simulator serves as aliases (its
# per-type object documents are left to 2026-03/objects.json, see NOT_CHECKED).
DOCUMENTS = [
    "contacts.json",
    "companies.json",
    "deals.json",
    "tickets.json",
    "objects.json",
    "customObjects.json",
    "properties.json",
    "pipelines.json",
    "schemas.json",
    "crmOwners.json",
    "associations.json",
    "associationsSchema.json",
    "oauth.json",
    "2026-03/objects.json",
    "2026-03/properties.json",
    "2026-03/pipelines.json",
    "2026-03/schemas.json",
    "2026-03/crmOwners.json",
    "2026-03/associations.json",
    "2026-03/associationsSchema.json",
    "2026-03/oauth.json",
]

# Documents not checked, and why.
NOT_CHECKED = {
    "webhooks.json, 2026-03/webhooks.json":
        "webhook subscription management: hsync does not use webhooks, the simulator serves none of it",
    "2026-03/{contacts,companies,deals,tickets}.json":
        "the dated per-type documents: the operations of 2026-03/objects.json on one type, which that"
        " document checks for every type (left out to keep the run near 2 minutes)",
    "2026-09/*": "the 2026-09 dated family: the simulator does not serve its paths (/crm/objects/2026-09/...)",
}

# Operations of the checked documents that the simulator does not serve (it answers them with
# HubSpot's HTML 404 or 405 for an unknown route), by Schemathesis name "METHOD path", with why.
_PIPELINE_WRITES = "pipeline and stage writes: hsync only reads pipelines; the simulator's are changed through /_sim"
_PROPERTY_WRITES = "property writes other than one create or archive, and group writes: hsync never changes definitions"
_SCHEMA_WRITES = "custom object schema writes: hsync only reads schemas"
_LABEL_WRITES = "association label and limit writes: hsync only reads association definitions"
EXCLUDED = {
    "properties.json": {
        "POST /crm/v3/properties/{objectType}/batch/archive": _PROPERTY_WRITES,
        "POST /crm/v3/properties/{objectType}/batch/create": _PROPERTY_WRITES,
        "PATCH /crm/v3/properties/{objectType}/{propertyName}": _PROPERTY_WRITES,
        "POST /crm/v3/properties/{objectType}/groups": _PROPERTY_WRITES,
        "PATCH /crm/v3/properties/{objectType}/groups/{groupName}": _PROPERTY_WRITES,
        "DELETE /crm/v3/properties/{objectType}/groups/{groupName}": _PROPERTY_WRITES,
    },
    "pipelines.json": {
        "POST /crm/v3/pipelines/{objectType}": _PIPELINE_WRITES,
        "PUT /crm/v3/pipelines/{objectType}/{pipelineId}": _PIPELINE_WRITES,
        "PATCH /crm/v3/pipelines/{objectType}/{pipelineId}": _PIPELINE_WRITES,
        "DELETE /crm/v3/pipelines/{objectType}/{pipelineId}": _PIPELINE_WRITES,
        "POST /crm/v3/pipelines/{objectType}/{pipelineId}/stages": _PIPELINE_WRITES,
        "PUT /crm/v3/pipelines/{objectType}/{pipelineId}/stages/{stageId}": _PIPELINE_WRITES,
        "PATCH /crm/v3/pipelines/{objectType}/{pipelineId}/stages/{stageId}": _PIPELINE_WRITES,
        "DELETE /crm/v3/pipelines/{objectType}/{pipelineId}/stages/{stageId}": _PIPELINE_WRITES,
    },
    "schemas.json": {
        "POST /crm-object-schemas/v3/schemas": _SCHEMA_WRITES,
        "PATCH /crm-object-schemas/v3/schemas/{objectType}": _SCHEMA_WRITES,
        "DELETE /crm-object-schemas/v3/schemas/{objectType}": _SCHEMA_WRITES,
        "POST /crm-object-schemas/v3/schemas/{objectType}/associations": _SCHEMA_WRITES,
        "DELETE /crm-object-schemas/v3/schemas/{objectType}/associations/{associationIdentifier}": _SCHEMA_WRITES,
    },
    "associations.json": {
        "POST /crm/v4/associations/usage/high-usage-report/{userId}":
            "the usage report: not part of the CRM data hsync copies",
        "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default":
            "batch default associations: hsync writes no associations; the single PUT .../default is served",
        "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/labels/archive":
            "label removal in batch: hsync writes no associations; batch/archive is served",
        "PUT /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}":
            "labelled single association writes: hsync writes no associations",
        "DELETE /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}":
            "single association removal: hsync writes no associations; batch/archive is served",
    },
    "associationsSchema.json": {
        "POST /crm/associations/v4/definitions/configurations/{fromObjectType}/{toObjectType}/batch/create": _LABEL_WRITES,
        "POST /crm/associations/v4/definitions/configurations/{fromObjectType}/{toObjectType}/batch/purge": _LABEL_WRITES,
        "POST /crm/associations/v4/definitions/configurations/{fromObjectType}/{toObjectType}/batch/update": _LABEL_WRITES,
        "POST /crm/associations/v4/{fromObjectType}/{toObjectType}/labels": _LABEL_WRITES,
        "PUT /crm/associations/v4/{fromObjectType}/{toObjectType}/labels": _LABEL_WRITES,
        "DELETE /crm/associations/v4/{fromObjectType}/{toObjectType}/labels/{associationTypeId}": _LABEL_WRITES,
    },
    "oauth.json": {
        "GET /oauth/v1/access-tokens/{token}": "token introspection: hsync only refreshes tokens (POST /oauth/v1/token)",
        "GET /oauth/v1/refresh-tokens/{token}": "token introspection: hsync only refreshes tokens (POST /oauth/v1/token)",
        "DELETE /oauth/v1/refresh-tokens/{token}": "token revocation: hsync only refreshes tokens (POST /oauth/v1/token)",
    },
}

# The same operations in the 2026-03 documents, under the dated prefixes.
DATED_PREFIXES = [
    ("/crm/v3/properties/", "/crm/properties/2026-03/"),
    ("/crm/v3/pipelines/", "/crm/pipelines/2026-03/"),
    ("/crm-object-schemas/v3/schemas", "/crm-object-schemas/2026-03/schemas"),
    ("/crm/v4/associations/", "/crm/associations/2026-03/"),
    ("/crm/v4/objects/", "/crm/objects/2026-03/"),
    ("/crm/associations/v4/", "/crm/associations/2026-03/"),
]


def _dated(excluded):
    out = {}
    for op, why in excluded.items():
        method, path = op.split(" ", 1)
        for numbered, dated in DATED_PREFIXES:
            path = path.replace(numbered, dated)
        out[f"{method} {path}"] = why
    return out


for _name in ("properties.json", "pipelines.json", "schemas.json", "associations.json", "associationsSchema.json"):
    EXCLUDED["2026-03/" + _name] = _dated(EXCLUDED[_name])
EXCLUDED["2026-03/oauth.json"] = {
    "POST /oauth/2026-03/token/introspect": "token introspection: hsync only refreshes tokens (POST /oauth/2026-03/token)",
    "POST /oauth/2026-03/token/revoke": "token revocation: hsync only refreshes tokens (POST /oauth/2026-03/token)",
}

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def operations(document):
    """The document's operations as Schemathesis names them: "METHOD path"."""
    return [f"{m.upper()} {p}" for p, item in document.get("paths", {}).items() for m in item if m in METHODS]


# --- what the portal holds, to give path parameters and ids values that exist --------------------


def get_json(base, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def portal_facts(sim):
    """What the portal holds, for dictionaries of values that exist: type names and ids, record
    ids, property and group names, pipelines with their stages, owners. Written to a file that
    conformance_hooks.py reads to keep a request's types and ids consistent."""
    truth = sim.admin("GET", "/_sim/truth?values=false")
    aliases, ids_by_type = {}, {}
    for name, store in truth["objects"].items():
        aliases[name] = name
        aliases[store["objectTypeId"]] = name
        ids_by_type[name] = [str(r["id"]) for r in store.get("live", [])][:IDS_PER_TYPE]
    schemas = get_json(sim.base, "/crm/v3/schemas")["results"]
    custom = [s["name"] for s in schemas] + [s["objectTypeId"] for s in schemas] + [s["fullyQualifiedName"] for s in schemas]
    for s in schemas:
        aliases[s["fullyQualifiedName"]] = s["name"]
    properties, groups = set(), set()
    for name in ("contacts", "companies", "deals", "tickets"):
        properties.update(p["name"] for p in get_json(sim.base, f"/crm/v3/properties/{name}")["results"])
        groups.update(g["name"] for g in get_json(sim.base, f"/crm/v3/properties/{name}/groups")["results"])
    pipelines = {t: {p["id"]: [s["id"] for s in p["stages"]] for p in ps} for t, ps in truth["pipelines"].items()}
    return {
        "aliases": aliases,
        "ids_by_type": ids_by_type,
        "custom": custom,
        "properties": sorted(properties),
        "groups": sorted(groups),
        "pipelines": pipelines,
        # Owner ids are integers in crmOwners.json.
        "owners": [int(o["id"]) for o in truth["owners"]],
    }


# --- Schemathesis' configuration ---------------------------------------------------------------


def toml(value):
    """A TOML value (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


# The record type of a per-type document's paths.
DOCUMENT_TYPE = {
    "contacts.json": "contacts",
    "companies.json": "companies",
    "deals.json": "deals",
    "tickets.json": "tickets",
}

# Record ids per type in the dictionaries.
IDS_PER_TYPE = 12

# Dictionaries are drawn with this probability; the rest of the time Schemathesis' own value is
# sent, so unknown types, ids and names are tried too.
KNOWN = 0.8


def config_toml(name, base, facts):
    """The schemathesis.toml for one document: the simulator's address and token, and
    dictionaries of values the portal holds for path parameters, ids in bodies and paging."""
    own = DOCUMENT_TYPE.get(name)
    if own:
        types, ids = [own], facts["ids_by_type"][own]
    else:
        # Every type by name and by id; conformance_hooks.py swaps a dictionary id for one of the
        # type the request names, so any id of any type will do here.
        types = sorted(facts["aliases"])
        ids = sorted({i for v in facts["ids_by_type"].values() for i in v})
    if name == "customObjects.json":
        types = facts["custom"]
    if name.endswith("pipelines.json"):
        types = sorted(facts["pipelines"])
    dictionaries = {
        "types": types,
        "ids": ids,
        "properties": facts["properties"],
        "groups": facts["groups"],
        "pipelines": sorted({p for ps in facts["pipelines"].values() for p in ps}),
        "stages": sorted({s for ps in facts["pipelines"].values() for st in ps.values() for s in st}),
        "owners": facts["owners"],
        "custom": facts["custom"],
        # Page sizes inside every documented limit (lists 100, search 200, owners 500).
        "limits": [1, 10, 100],
        "offsets": ["0", "10"],
    }
    bind = lambda d: {"dictionary": d, "probability": KNOWN}  # noqa: E731
    parameters = {
        "path.objectType": bind("custom" if name.endswith("schemas.json") else "types"),
        "path.fromObjectType": bind("types"),
        "path.toObjectType": bind("types"),
        "path.objectId": bind("ids"),
        "path.contactId": bind("ids"),
        "path.companyId": bind("ids"),
        "path.dealId": bind("ids"),
        "path.ticketId": bind("ids"),
        "path.fromObjectId": bind("ids"),
        "path.toObjectId": bind("ids"),
        "path.propertyName": bind("properties"),
        "path.groupName": bind("groups"),
        "path.pipelineId": bind("pipelines"),
        "path.stageId": bind("stages"),
        "path.ownerId": bind("owners"),
        "query.limit": bind("limits"),
        "body.limit": bind("limits"),
        "body.after": bind("offsets"),
        "body.inputs[*].id": bind("ids"),
        "body.inputs[*].from.id": bind("ids"),
        "body.inputs[*].to.id": bind("ids"),
        "body.inputs[*].name": bind("properties"),
        "body.filterGroups[*].filters[*].propertyName": bind("properties"),
        "body.properties[*]": bind("properties"),
        "body.primaryObjectId": bind("ids"),
        "body.objectIdToMerge": bind("ids"),
    }
    if name.endswith("schemas.json"):
        parameters["body.inputs[*]"] = bind("custom")
    lines = [
        f"base-url = {toml(base)}",
        f"seed = {SEED}",
        # One worker: the simulator has the other core, and with two, Hypothesis' descriptions of
        # its strategies race in CPython 3.11's ast.parse ("SystemError: AST constructor
        # recursion depth mismatch", seen here as a Schemathesis runtime error).
        "workers = 1",
        "request-timeout = 60",
        f"headers = {toml({'Authorization': f'Bearer {TOKEN}'})}",
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        'database = "none"',
        # The documents' security schemes (an API key header `private-app`, a `hapikey` query
        # parameter, OAuth) do not describe how a private app's token travels (`Authorization:
        # Bearer`, sent above); values generated for them would be noise the simulator ignores.
        "with-security-parameters = false",
        "",
        "[parameters]",
    ]
    lines += [f"{json.dumps(k)} = {toml(v)}" for k, v in parameters.items()]
    for key, values in dictionaries.items():
        lines += ["", f"[dictionaries.{key}]", f"values = {toml(list(values) or ['none'])}"]
    return "\n".join(lines) + "\n"


# --- running Schemathesis -----------------------------------------------------------------------


def run_document(args, name, workdir):
    """Schemathesis against a fresh simulator for one document: its own portal, so that the
    writes of one document do not take the records another one reads."""
    path = os.path.join(args.openapi, name)
    with open(path) as f:
        document = json.load(f)
    ops = operations(document)
    excluded = EXCLUDED.get(name, {})
    stale = [op for op in excluded if op not in ops]
    if stale:
        raise SystemExit(f"{PROG}: {name} has no operation {', '.join(stale)}: update EXCLUDED in {__file__}")
    checked = [op for op in ops if op not in excluded]
    stem = os.path.join(workdir, name.replace("/", "_").removesuffix(".json"))
    os.makedirs(stem, exist_ok=True)
    report = os.path.join(stem, "report.ndjson")
    cmd = [
        args.schemathesis, "--config-file", os.path.join(stem, "schemathesis.toml"), "run", path,
        "--checks", CHECKS,
        "--phases", PHASES,
        "--mode", MODE,
        "--report", "ndjson", "--report-ndjson-path", report,
        "--no-color",
    ]
    for op in excluded:
        cmd += ["--exclude-name", op]
    sim = Sim(args.hsync, SIM_ARGS, stem)
    try:
        facts = portal_facts(sim)
        with open(os.path.join(stem, "facts.json"), "w") as f:
            json.dump(facts, f)
        with open(os.path.join(stem, "schemathesis.toml"), "w") as f:
            f.write(config_toml(name, sim.base, facts))
        env = dict(
            os.environ,
            SCHEMATHESIS_HOOKS="conformance_hooks",
            PYTHONPATH=HERE,
            HSYNC_CONFORMANCE_FACTS=os.path.join(stem, "facts.json"),
        )
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=stem, env=env, text=True, capture_output=True)
        elapsed = time.monotonic() - started
    finally:
        sim.stop()
    requests, by_status, failures = read_report(report)
    sim.err.seek(0)
    return {
        "name": name,
        "operations": len(checked),
        "excluded": len(excluded),
        "requests": requests,
        "by_status": by_status,
        "failures": failures,
        "seconds": elapsed,
        "status": proc.returncode,
        "output": proc.stdout + proc.stderr,
        "sim_log": sim.err.read()[-3000:],
    }


def read_report(path):
    """Requests sent, their statuses, and the failed checks from Schemathesis' NDJSON report."""
    requests, by_status, failures = 0, {}, []
    if not os.path.exists(path):
        return requests, by_status, failures
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            for interaction in (recorder.get("interactions") or {}).values():
                requests += 1
                status = str((interaction.get("response") or {}).get("status_code", "none"))
                by_status[status] = by_status.get(status, 0) + 1
            for checks in (recorder.get("checks") or {}).values():
                for check in checks:
                    if check.get("status") == "failure":
                        failure = (check.get("failure_info") or {}).get("failure") or {}
                        first = (failure.get("message") or "").strip().splitlines()[:1]
                        failures.append(
                            f"{recorder.get('label')}: {check['name']}: {failure.get('title', '')}: {first[0] if first else ''}"
                        )
    return requests, dict(sorted(by_status.items())), sorted(set(failures))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hsync", required=True)
    ap.add_argument("--openapi", required=True)
    ap.add_argument("--schemathesis", required=True)
    ap.add_argument("--only", action="append", help="check only this document (repeatable)")
    ap.add_argument("--keep", metavar="DIR", help="keep Schemathesis' configurations and reports in DIR")
    args = ap.parse_args()
    # Schemathesis runs in a scratch folder (its caches stay out of the work tree): absolute paths.
    args.hsync, args.schemathesis, args.openapi = map(os.path.abspath, (args.hsync, args.schemathesis, args.openapi))
    # A TERM (scripts/test interrupted, CI's timeout) unwinds through `finally`: the simulator stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    documents = [d for d in DOCUMENTS if not args.only or d in args.only]
    missing = [d for d in documents if not os.path.isfile(os.path.join(args.openapi, d))]
    if missing:
        raise SystemExit(f"{PROG}: {args.openapi} lacks {', '.join(missing)}")

    log(f"each document against a fresh `{args.hsync} sim {' '.join(SIM_ARGS)}` on a free loopback port")
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="hsync-conformance.") as scratch:
        workdir = os.path.abspath(args.keep) if args.keep else scratch
        os.makedirs(workdir, exist_ok=True)
        for name in documents:
            result = run_document(args, name, workdir)
            results.append(result)
            ok = result["status"] == 0 and not result["failures"]
            verdict = "passed" if ok else f"FAILED (schemathesis exit {result['status']})"
            log(f"{name}: {result['operations']} operations, {result['requests']} requests in {result['seconds']:.0f} s: {verdict}")
            if not ok:
                print(result["output"], flush=True)
                if result["sim_log"].strip():
                    print("simulator's log (last lines):\n" + result["sim_log"], flush=True)
    total = time.monotonic() - started

    print()
    print(f"OpenAPI conformance of the simulator (Schemathesis, checks {CHECKS}; seed {SEED}, mode {MODE}, max {MAX_EXAMPLES} examples, phases {PHASES})")
    print(f"  {'document':<26} {'ops':>4} {'excl':>4} {'requests':>8} {'secs':>5}  result  statuses")
    for r in results:
        statuses = " ".join(f"{k}:{v}" for k, v in r["by_status"].items())
        verdict = "ok" if r["status"] == 0 and not r["failures"] else "FAILED"
        print(f"  {r['name']:<26} {r['operations']:>4} {r['excluded']:>4} {r['requests']:>8} {r['seconds']:>5.0f}  {verdict:<6}  {statuses}")
    ops = sum(r["operations"] for r in results)
    excl = sum(r["excluded"] for r in results)
    reqs = sum(r["requests"] for r in results)
    print(f"  {'total':<26} {ops:>4} {excl:>4} {reqs:>8} {total:>5.0f}")
    print("Excluded (EXCLUDED and NOT_CHECKED in scripts/conformance.py):")
    for name in documents:
        for op, why in EXCLUDED.get(name, {}).items():
            print(f"  {op}: {why}")
    for doc, why in NOT_CHECKED.items():
        print(f"  {doc}: {why}")
    print("Where HubSpot's documents disagree with HubSpot's answers, corrected in memory (scripts/conformance_hooks.py):")
    for fix in CORRECTIONS:
        print(f"  {fix}")
    failed = [r for r in results if r["status"] != 0 or r["failures"]]
    if failed:
        print(f"{PROG}: FAILED ({', '.join(r['name'] for r in failed)}):")
        for r in failed:
            for failure in r["failures"] or [f"{r['name']}: Schemathesis exited {r['status']} (its output above)"]:
                print(f"  {failure}")
        return 1
    print(f"{PROG}: passed: {ops} operations, {reqs} requests, 0 server errors, 0 responses off the documented schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
