#!/usr/bin/env python3
"""Conformance check of the hsync HubSpot simulator with HubSpot's official Python client.

The client is `hubspot-api-client` from PyPI (pinned in requirements.txt beside this file). We did
not write it, so it parses the simulator's answers with HubSpot's own models: whatever it cannot
parse, or any answer that differs from what the check expects, fails the run.

Usage:
    official_client_check.py [BASE_URL] [--expected N] [--token TOKEN]

BASE_URL defaults to $HSYNC_SIM_URL, --expected to $HSYNC_EXPECTED_CONTACTS and --token to
$HSYNC_SIM_TOKEN (else the simulator's built-in token).

What it checks, all through the official client with its host pointed at BASE_URL:
  * contacts list: `crm.contacts.basic_api.get_page(limit=100, after=...)` and the SDK's
    `crm.contacts.get_all()` each see every id exactly once, and as many as expected; one more
    page with `properties=` and `associations=companies` returns only the asked-for properties
    and the same companies as the v4 association batch read;
  * contacts search, keyset-paged (`hs_object_id GT <last id>`, sorted by `hs_object_id`
    ascending, 200 a page, until a page comes back empty): every id exactly once, in ascending
    order, and the same id set as the list;
  * contact properties (`crm.properties.core_api.get_all`): objects with name, type and fieldType;
  * contact->company associations with the v4 batch read API (`crm.associations.v4.batch_api`),
    following every per-input paging cursor, for every contact in batches of 1,000;
  * owners (`crm.owners.owners_api.get_page`, paged) and deal and ticket pipelines
    (`crm.pipelines.pipelines_api.get_all`);
  * when BASE_URL is the simulator (it is unless --no-truth), the contact ids and the
    contact->company associations also match the simulator's ground truth (`/_sim/truth`).

Rate limits: the official client does not retry a 429 by default. The check hands it a urllib3
`Retry` that retries 429 responses, and only those, on every method (search is a POST), so a run
with the simulator's limits on (190 requests per 10 s, 5 searches per second) passes; it also
paces its searches to 5 in any rolling second. Any other error status fails the run at once.

Exit status: 0 when everything matches, 1 on any mismatch, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, Callable, Iterable

try:
    import hubspot
    from hubspot import HubSpot
    from hubspot.crm.associations.v4 import (
        BatchInputPublicFetchAssociationsBatchRequest,
        PublicFetchAssociationsBatchRequest,
    )
    from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest
    from urllib3.util.retry import Retry
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(
        f"official client check: cannot import the official HubSpot client ({exc}); "
        "install tests/python/requirements.txt (scripts/official-client-check does)"
    )

DEFAULT_TOKEN = "pat-sim-00000000-0000-0000-0000-000000000000"
LIST_PAGE = 100  # HubSpot's list maximum, and the SDK's PAGE_MAX_SIZE
SEARCH_PAGE = 200  # HubSpot's search maximum
SEARCH_PER_SECOND = 5  # HubSpot's search rate limit per account
ASSOCIATION_BATCH = 1_000  # HubSpot's v4 association batch-read maximum
# Property types HubSpot reads back (creatable ones plus json/object_coordinates, see the fact sheet).
KNOWN_PROPERTY_TYPES = {
    "string",
    "number",
    "date",
    "datetime",
    "enumeration",
    "bool",
    "phone_number",
    "json",
    "object_coordinates",
}
REQUIRED_CONTACT_PROPERTIES = {"email", "firstname", "lastname", "hs_object_id", "createdate", "lastmodifieddate"}
ASSOCIATION_CATEGORIES = {"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED", "WORK"}


ASSOCIATION_PAGES_FOLLOWED = 0  # per-input association pages read through paging.next.after


class CheckFailed(Exception):
    """A mismatch between what the simulator served and what the check expects."""


class Pacer:
    """Keeps calls under `per_second` in any rolling second (the search API allows 5 a second)."""

    def __init__(self, per_second: int, margin: float = 0.05):
        self.per_second = per_second
        self.window = 1.0 + margin
        self.calls: list[float] = []

    def wait(self) -> None:
        now = time.monotonic()
        self.calls = [t for t in self.calls if now - t < self.window]
        if len(self.calls) >= self.per_second:
            time.sleep(self.window - (now - self.calls[0]))
            self.calls.pop(0)
        self.calls.append(time.monotonic())


class CountingRetry(Retry):
    """A urllib3 Retry that retries 429 only and counts the 429s it absorbed."""

    seen_429 = 0

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 429:
            CountingRetry.seen_429 += 1
        return super().increment(
            method=method, url=url, response=response, error=error, _pool=_pool, _stacktrace=_stacktrace
        )


def rate_limit_retry() -> Retry:
    # 429 only; no retries on connection errors, read errors, redirects or any other status.
    # urllib3 waits 0 s before the first retry, then backoff_factor * 2**(n-1), at most
    # backoff_max; a Retry-After header (the simulator can send one) takes precedence.
    return CountingRetry(
        total=30,
        connect=0,
        read=0,
        redirect=0,
        other=0,
        status=30,
        status_forcelist=(429,),
        allowed_methods=None,  # retry every method: search and batch reads are POSTs
        backoff_factor=0.25,
        backoff_max=4.0,
        respect_retry_after_header=True,
        raise_on_status=False,  # after the last retry, hand the 429 to the SDK (ApiException)
    )


def make_client(base_url: str, token: str) -> HubSpot:
    # The SDK builds one Configuration per API client (hubspot/discovery/discovery_base.py) and
    # sets every extra keyword given to HubSpot(...) on it with setattr; Configuration.host is a
    # property whose setter replaces the default https://api.hubapi.com. So host= reaches every
    # per-API client (contacts, properties, associations v4, owners, pipelines).
    return HubSpot(access_token=token, host=base_url, retry=rate_limit_retry())


def describe_error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "reason"):
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        body = (body or "").strip()
        if len(body) > 2000:
            body = body[:2000] + "…"
        return f"HTTP {status} {getattr(exc, 'reason', '')}: {body or '(empty body)'}"
    return f"{type(exc).__name__}: {exc}"


def step(name: str, fn: Callable[[], Any]) -> Any:
    print(f"official client: {name} …", flush=True)
    started = time.monotonic()
    try:
        result = fn()
    except CheckFailed as exc:
        raise CheckFailed(f"{name}: {exc}") from None
    except Exception as exc:  # the SDK raised: an error status, or a body it could not parse
        raise CheckFailed(f"{name}: the official client failed: {describe_error(exc)}") from exc
    print(f"official client: {name}: done in {time.monotonic() - started:.1f}s", flush=True)
    return result


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def exactly_once(ids: Iterable[str], what: str) -> set[str]:
    counts = Counter(ids)
    dupes = sorted((i for i, n in counts.items() if n > 1), key=id_key)
    expect(not dupes, f"{what}: {len(dupes)} ids seen more than once, e.g. {dupes[:5]}")
    return set(counts)


def id_key(i: str) -> tuple[int, str]:
    return (int(i), i) if i.isdigit() else (sys.maxsize, i)


def expect_same_ids(left: set[str], right: set[str], left_name: str, right_name: str) -> None:
    only_left = sorted(left - right, key=id_key)
    only_right = sorted(right - left, key=id_key)
    expect(
        not only_left and not only_right,
        f"{left_name} and {right_name} differ: {len(only_left)} ids only in {left_name} "
        f"(e.g. {only_left[:5]}), {len(only_right)} only in {right_name} (e.g. {only_right[:5]})",
    )


# --- contacts list -------------------------------------------------------------------------------


def list_by_pages(client: HubSpot, expected: int) -> list[str]:
    api = client.crm.contacts.basic_api
    ids: list[str] = []
    after = None
    max_pages = expected // LIST_PAGE + 10
    for _ in range(max_pages):
        page = api.get_page(limit=LIST_PAGE, after=after)
        expect(len(page.results) <= LIST_PAGE, f"a page holds {len(page.results)} records, above limit={LIST_PAGE}")
        for rec in page.results:
            expect(isinstance(rec.id, str) and rec.id.isdigit(), f"record id {rec.id!r} is not a numeric string")
            expect(rec.archived is False, f"contact {rec.id} is archived={rec.archived!r} in a non-archived list")
            ids.append(rec.id)
        if page.paging is None or page.paging.next is None:
            return ids
        expect(bool(page.results), f"an empty page still carries paging.next (after={page.paging.next.after!r})")
        next_after = page.paging.next.after
        expect(next_after and next_after != after, f"paging.next.after does not move on (after={after!r})")
        after = next_after
    raise CheckFailed(f"list still had paging.next after {max_pages} pages for {expected} expected contacts")


def list_with_get_all(client: HubSpot) -> list[str]:
    return [rec.id for rec in client.crm.contacts.get_all()]


def list_page_with_properties_and_associations(
    client: HubSpot, rows: dict[tuple[str, str], set[int]]
) -> int:
    """One list page with `properties` and `associations`, checked against the v4 rows."""
    requested = ["email", "firstname", "lastname"]
    page = client.crm.contacts.basic_api.get_page(limit=LIST_PAGE, properties=requested, associations=["companies"])
    expect(bool(page.results), "the first list page is empty")
    allowed = set(requested) | {"hs_object_id", "createdate", "lastmodifieddate"}
    companies_by_contact: dict[str, set[str]] = {}
    for (from_id, to_id) in rows:
        companies_by_contact.setdefault(from_id, set()).add(to_id)
    with_email = 0
    for rec in page.results:
        props = rec.properties or {}
        extra = sorted(set(props) - allowed)
        expect(not extra, f"contact {rec.id} has properties {extra} that were not requested")
        for name, value in props.items():
            # The objects guide: a property without a value does not appear in list responses.
            expect(isinstance(value, str), f"contact {rec.id} property {name} is {value!r}, not a string")
        with_email += "email" in props
        listed = set()
        for kind, collection in (rec.associations or {}).items():
            expect(kind == "companies", f"contact {rec.id} has associations of {kind!r}, asked only for companies")
            expect(collection.paging is None, f"contact {rec.id} has paged v3 associations")
            for assoc in collection.results:
                expect(assoc.type.startswith("contact_to_company"), f"contact {rec.id} association type {assoc.type!r}")
                listed.add(assoc.id)
        want = companies_by_contact.get(rec.id, set())
        expect(
            listed == want,
            f"contact {rec.id}: list ?associations=companies gives {sorted(listed)}, v4 batch read {sorted(want)}",
        )
    expect(with_email > 0, "no contact on the first page has an email although it was requested")
    return len(page.results)


# --- contacts search -----------------------------------------------------------------------------


def search_keyset(client: HubSpot, expected: int) -> list[str]:
    api = client.crm.contacts.search_api
    ids: list[str] = []
    last = "0"
    max_pages = expected // SEARCH_PAGE + 10
    first_total = None
    pacer = Pacer(SEARCH_PER_SECOND)
    for _ in range(max_pages):
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="hs_object_id", operator="GT", value=last)])],
            # The SDK types `sorts` as list[str]; HubSpot documents sort objects, which the
            # client serialises as given.
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["hs_object_id", "email"],
            limit=SEARCH_PAGE,
        )
        pacer.wait()
        page = api.do_search(public_object_search_request=request)
        expect(page.total is not None, "search response has no total")
        if first_total is None:
            first_total = page.total
            expect(
                page.total == expected,
                f"first search (hs_object_id GT 0) reports total={page.total}, expected {expected}",
            )
        if not page.results:
            expect(page.total == 0, f"an empty search page reports total={page.total}, expected 0")
            return ids
        expect(len(page.results) <= SEARCH_PAGE, f"a search page holds {len(page.results)} records, above {SEARCH_PAGE}")
        previous = int(last)
        for rec in page.results:
            expect(rec.id.isdigit(), f"search record id {rec.id!r} is not a numeric string")
            expect(
                int(rec.id) > previous,
                f"search results are not in ascending hs_object_id order after {last}: {rec.id} follows {previous}",
            )
            expect(
                (rec.properties or {}).get("hs_object_id") == rec.id,
                f"search record {rec.id} has hs_object_id={(rec.properties or {}).get('hs_object_id')!r}",
            )
            previous = int(rec.id)
            ids.append(rec.id)
        last = page.results[-1].id
    raise CheckFailed(f"search still returned results after {max_pages} pages for {expected} expected contacts")


# --- properties ----------------------------------------------------------------------------------


def read_properties(client: HubSpot) -> int:
    response = client.crm.properties.core_api.get_all(object_type="contacts")
    props = response.results
    expect(bool(props), "no contact properties")
    names = []
    for prop in props:
        for field in ("name", "type", "field_type", "label", "group_name"):
            value = getattr(prop, field)
            expect(isinstance(value, str) and value != "", f"property {prop.name!r} has {field}={value!r}")
        expect(
            prop.type in KNOWN_PROPERTY_TYPES,
            f"property {prop.name!r} has type {prop.type!r}, not one of {sorted(KNOWN_PROPERTY_TYPES)}",
        )
        if prop.type == "enumeration":
            expect(prop.options is not None, f"enumeration property {prop.name!r} has no options list")
        names.append(prop.name)
    unique = exactly_once(names, "property names")
    missing = sorted(REQUIRED_CONTACT_PROPERTIES - unique)
    expect(not missing, f"contact properties lack {missing}")
    # The same API answers a single property by name with the same shape.
    one = client.crm.properties.core_api.get_by_name(object_type="contacts", property_name="email")
    expect(one.name == "email" and one.type == "string", f"GET property email gave name={one.name!r} type={one.type!r}")
    return len(props)


# --- associations --------------------------------------------------------------------------------


def read_associations(client: HubSpot, contact_ids: list[str]) -> dict[tuple[str, str], set[int]]:
    """Reads contact->company associations for every id; returns {(from, to): {typeId}}."""
    api = client.crm.associations.v4.batch_api
    rows: dict[tuple[str, str], set[int]] = {}
    global ASSOCIATION_PAGES_FOLLOWED
    ordered = sorted(contact_ids, key=id_key)
    for start in range(0, len(ordered), ASSOCIATION_BATCH):
        batch = ordered[start : start + ASSOCIATION_BATCH]
        pending = [(i, None) for i in batch]
        answered: set[str] = set()
        rounds = 0
        while pending:
            rounds += 1
            expect(rounds <= 1000, f"association paging did not finish after {rounds} rounds")
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i, after=a) for i, a in pending]
            )
            response = api.get_page(
                from_object_type="contacts",
                to_object_type="companies",
                batch_input_public_fetch_associations_batch_request=body,
            )
            asked = {i for i, _ in pending}
            expect(response.status == "COMPLETE", f"association batch status {response.status!r}")
            next_pending = []
            for result in response.results or []:
                from_id = result._from.id
                expect(from_id in asked, f"association result for {from_id!r}, which was not asked for")
                answered.add(from_id)
                for target in result.to or []:
                    to_id = str(target.to_object_id)
                    expect(to_id.isdigit(), f"toObjectId {target.to_object_id!r} of contact {from_id} is not numeric")
                    key = (from_id, to_id)
                    expect(key not in rows, f"association {from_id}->{to_id} appears on two pages")
                    types = set()
                    for spec in target.association_types or []:
                        expect(
                            spec.category in ASSOCIATION_CATEGORIES and isinstance(spec.type_id, int),
                            f"association {from_id}->{to_id} has type {spec.category!r}/{spec.type_id!r}",
                        )
                        types.add(spec.type_id)
                    expect(types, f"association {from_id}->{to_id} has no associationTypes")
                    rows[key] = types
                if result.paging is not None and result.paging.next is not None:
                    expect(bool(result.paging.next.after), f"empty paging cursor for contact {from_id}")
                    next_pending.append((from_id, result.paging.next.after))
                    ASSOCIATION_PAGES_FOLLOWED += 1
            # Ids without associations come back as 207 NO_ASSOCIATIONS_FOUND errors.
            for error in getattr(response, "errors", None) or []:
                sub = error.sub_category
                expect(
                    error.category == "OBJECT_NOT_FOUND" and sub == "crm.associations.NO_ASSOCIATIONS_FOUND",
                    f"unexpected association batch error {error.category!r}/{sub!r}: {error.message!r}",
                )
                for from_id in (error.context or {}).get("fromObjectId", []):
                    expect(from_id in asked, f"NO_ASSOCIATIONS_FOUND for {from_id!r}, which was not asked for")
                    answered.add(from_id)
            num_errors = getattr(response, "num_errors", None)
            if num_errors is not None:
                expect(
                    num_errors == len(response.errors or []),
                    f"numErrors={num_errors} but {len(response.errors or [])} errors",
                )
            pending = next_pending
        unanswered = sorted(set(batch) - answered, key=id_key)
        expect(
            not unanswered,
            f"{len(unanswered)} contacts neither in results nor in NO_ASSOCIATIONS_FOUND errors, e.g. {unanswered[:5]}",
        )
    return rows


# --- owners and pipelines ------------------------------------------------------------------------


def read_owners(client: HubSpot) -> int:
    api = client.crm.owners.owners_api
    ids: list[str] = []
    after = None
    for _ in range(1000):
        page = api.get_page(limit=100, after=after)
        for owner in page.results:
            expect(isinstance(owner.id, str) and owner.id != "", f"owner id {owner.id!r}")
            expect(owner.type in ("PERSON", "QUEUE"), f"owner {owner.id} has type {owner.type!r}")
            ids.append(owner.id)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    else:
        raise CheckFailed("owners paging did not end after 1000 pages")
    expect(bool(ids), "no owners")
    unique = exactly_once(ids, "owners")
    helper = {o.id for o in client.crm.owners.get_all()}
    expect_same_ids(unique, helper, "owners by get_page", "owners by get_all()")
    return len(unique)


def read_pipelines(client: HubSpot, object_type: str) -> int:
    response = client.crm.pipelines.pipelines_api.get_all(object_type=object_type)
    pipelines = response.results
    expect(bool(pipelines), f"no {object_type} pipelines")
    exactly_once([p.id for p in pipelines], f"{object_type} pipeline ids")
    for p in pipelines:
        expect(bool(p.label), f"{object_type} pipeline {p.id} has no label")
        expect(bool(p.stages), f"{object_type} pipeline {p.id} has no stages")
        exactly_once([s.id for s in p.stages], f"stage ids of {object_type} pipeline {p.id}")
        for s in p.stages:
            expect(bool(s.label), f"stage {s.id} of {object_type} pipeline {p.id} has no label")
    return len(pipelines)


# --- the simulator's ground truth ----------------------------------------------------------------


def read_truth(base_url: str) -> dict:
    url = base_url.rstrip("/") + "/_sim/truth?objects=contacts&values=false"
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return json.load(response)
    except (urllib.error.URLError, ValueError) as exc:
        raise CheckFailed(f"cannot read {url} ({exc}); pass --no-truth if the base URL is not the simulator")


def truth_contact_ids(truth: dict) -> set[str]:
    return {rec["id"] for rec in truth["objects"]["contacts"]["live"]}


def truth_contact_companies(truth: dict) -> dict[tuple[str, str], set[int]]:
    return {
        (edge["fromId"], edge["toId"]): {t["typeId"] for t in edge["types"]}
        for edge in truth["associations"]
        if edge["fromType"] == "contacts" and edge["toType"] == "companies"
    }


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check the hsync HubSpot simulator with HubSpot's official Python client."
    )
    parser.add_argument("base_url", nargs="?", default=os.environ.get("HSYNC_SIM_URL"), help="simulator base URL ($HSYNC_SIM_URL)")
    parser.add_argument(
        "--expected",
        type=int,
        default=int(os.environ["HSYNC_EXPECTED_CONTACTS"]) if os.environ.get("HSYNC_EXPECTED_CONTACTS") else None,
        help="number of contacts the portal holds ($HSYNC_EXPECTED_CONTACTS)",
    )
    parser.add_argument("--token", default=os.environ.get("HSYNC_SIM_TOKEN", DEFAULT_TOKEN), help="bearer token ($HSYNC_SIM_TOKEN)")
    parser.add_argument("--no-truth", action="store_true", help="do not compare with the simulator's /_sim/truth")
    args = parser.parse_args(argv)
    if not args.base_url:
        parser.error("give the simulator base URL as an argument or in $HSYNC_SIM_URL")
    if args.expected is None or args.expected < 0:
        parser.error("give the expected contact count with --expected or $HSYNC_EXPECTED_CONTACTS")
    args.base_url = args.base_url.rstrip("/")
    return args


def run(args: argparse.Namespace) -> str:
    version = getattr(hubspot, "__version__", None)
    try:
        from importlib.metadata import version as dist_version

        version = dist_version("hubspot-api-client")
    except Exception:
        pass
    print(f"official client: hubspot-api-client {version} against {args.base_url}, expecting {args.expected} contacts", flush=True)
    client = make_client(args.base_url, args.token)

    listed = step("list contacts with basic_api.get_page(limit=100)", lambda: list_by_pages(client, args.expected))
    list_ids = exactly_once(listed, "list (get_page)")
    expect(len(list_ids) == args.expected, f"list (get_page) saw {len(list_ids)} contacts, expected {args.expected}")

    helper = step("list contacts with crm.contacts.get_all()", lambda: list_with_get_all(client))
    helper_ids = exactly_once(helper, "list (get_all)")
    expect(len(helper_ids) == args.expected, f"list (get_all) saw {len(helper_ids)} contacts, expected {args.expected}")
    expect_same_ids(list_ids, helper_ids, "get_page", "get_all()")

    searched = step(
        "search contacts keyset-paged (hs_object_id GT last, ASCENDING, limit 200)",
        lambda: search_keyset(client, args.expected),
    )
    search_ids = exactly_once(searched, "search")
    expect(len(search_ids) == args.expected, f"search saw {len(search_ids)} contacts, expected {args.expected}")
    expect_same_ids(list_ids, search_ids, "list", "search")

    n_props = step("read contact properties with properties.core_api", lambda: read_properties(client))
    rows = step(
        f"read contact->company associations with associations.v4.batch_api ({ASSOCIATION_BATCH} ids a batch)",
        lambda: read_associations(client, sorted(list_ids, key=id_key)),
    )
    step(
        "list one page with properties=email,firstname,lastname and associations=companies",
        lambda: list_page_with_properties_and_associations(client, rows),
    )
    n_owners = step("read owners with owners.owners_api", lambda: read_owners(client))
    n_deal_pipelines = step("read deal pipelines with pipelines.pipelines_api", lambda: read_pipelines(client, "deals"))
    n_ticket_pipelines = step("read ticket pipelines with pipelines.pipelines_api", lambda: read_pipelines(client, "tickets"))

    if not args.no_truth:

        def against_truth() -> None:
            truth = read_truth(args.base_url)
            expect_same_ids(list_ids, truth_contact_ids(truth), "list", "the simulator's truth")
            expected_rows = truth_contact_companies(truth)
            got_keys, want_keys = set(rows), set(expected_rows)
            missing = sorted(want_keys - got_keys)
            extra = sorted(got_keys - want_keys)
            expect(
                not missing and not extra,
                f"associations differ from the simulator's truth: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(extra)} extra (e.g. {extra[:3]})",
            )
            wrong = [(k, rows[k], expected_rows[k]) for k in sorted(got_keys) if rows[k] != expected_rows[k]]
            expect(not wrong, f"{len(wrong)} associations carry other type ids than the truth, e.g. {wrong[:3]}")

        step("compare ids and associations with the simulator's /_sim/truth", against_truth)

    print(
        f"official client: {CountingRetry.seen_429} rate-limited (429) responses retried; "
        f"{ASSOCIATION_PAGES_FOLLOWED} association pages followed by cursor; "
        f"{n_owners} owners, {n_deal_pipelines} deal and {n_ticket_pipelines} ticket pipelines",
        flush=True,
    )
    return (
        f"official client: {len(list_ids)} contacts by list, {len(search_ids)} by search, "
        f"{n_props} properties, {len(rows)} association rows: OK"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except CheckFailed as exc:
        print(f"official client: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
