"""Schemathesis hooks of scripts/conformance (loaded through SCHEMATHESIS_HOOKS).

Where HubSpot's OpenAPI documents disagree with what HubSpot itself answers, the document is
corrected in memory, never on disk, before Schemathesis reads it. Each correction is narrow
(one schema, one keyword) and names the recorded HubSpot answers it rests on; everything else
in the documents is checked as written. scripts/conformance prints the list on every run.
"""

import json
import os
import zlib

import schemathesis

# HubSpot's answer to a body or query parameter it cannot read into its input type: three keys,
# no `category`, although the documents' `Error` requires one. Recorded from real portals in
# rudderlabs/rudder-transformer (test/integrations/destinations/hs/dataDelivery: "Invalid input
# JSON on line 3, column 9: Cannot deserialize value of type ...") and in a 2026 probe of a real
# portal (Luigi08001/hubcli, docs/TESTING), the sources docs/simulator.md lists under "Strict
# like HubSpot"; the simulator answers so on purpose (crates/hsync-sim/src/render.rs,
# `unreadable_input`). Accepted in exactly that shape: these three keys only, `status` "error",
# a uuid `correlationId`, and one of the two messages the simulator sends.
UNREADABLE_INPUT = {
    "type": "object",
    "required": ["status", "message", "correlationId"],
    "additionalProperties": False,
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "message": {
            "type": "string",
            "pattern": r"^(Invalid input JSON on line [0-9]+, column [0-9]+: |Unable to parse value for query parameter: )",
        },
        "correlationId": {"type": "string", "format": "uuid"},
    },
}

# The `errors` of a batch answer (207): HubSpot sends `status`, `category`, `message` and
# `context` (plus `subCategory` where it has one) and no `errors` or `links`, though the
# documents' `StandardError` requires both. So in every 207 that HubSpot clients keep from real
# portals as test fixtures or quote in their code (rudderlabs/rudder-transformer's hs
# dataDelivery tests of batch update, among others: "Could not get some CONTACT objects, they may
# be deleted or not exist. Check that ids are valid." with `context.ids`); the shared
# hubspot-openapi/README.md already warns that the documents' `required` lists are unreliable.
STANDARD_ERROR_NOT_SENT = ("errors", "links")

# `subCategory` of a batch error: HubSpot sends a string ("crm.associations.NO_ASSOCIATIONS_FOUND"
# in the 207 of an associations batch read, as captured from real portals by the clients that
# branch on it), and the documents' own `Error` types `subCategory` as a string; only
# `StandardError` says `object`, with no properties. The documents contradict themselves.
SUBCATEGORY = {"type": "string"}

# `label` of an association type: `null` for the unlabelled type. HubSpot's associations v4 guide
# shows `"label": null` for type 279 in "Retrieve association labels" and for type 3 in
# "Retrieve association limits" (the definition configurations), and clients record it from
# real portals in batch reads; the documents type it as a plain string.
NULLABLE_LABEL = ("AssociationSpecWithLabel", "PublicAssociationDefinitionUserConfiguration")

# HubSpot's OAuth token endpoint answers a refusal with its own body: an upper-case `status`
# code (`BAD_REFRESH_TOKEN`, `BAD_CLIENT_ID`, ...), `message` and `correlationId`, no
# `category` (as HubSpot clients record it: `{"status":"BAD_REFRESH_TOKEN","message":"missing
# or unknown refresh token"}`). The simulator answers so (crates/hsync-sim/src/oauth.rs).
OAUTH_ERROR = {
    "type": "object",
    "required": ["status", "message", "correlationId"],
    "properties": {
        "status": {"type": "string", "pattern": "^BAD_[A-Z_]+$"},
        "message": {"type": "string"},
        "correlationId": {"type": "string", "format": "uuid"},
    },
}

# Property values of a record: `null` for a requested property without a value, as search
# answers (docs/simulator.md, Search; ../shared/docs/hubspot-api.md, "Absent property or null?").
# HubSpot's own 2026-09 documents mark exactly these two schemas' values `nullable: true`; the
# numbered and 2026-03 documents do not yet.
NULLABLE_VALUES = ("SimplePublicObject", "SimplePublicObjectWithAssociations")

CORRECTIONS = [
    "components.responses.Error: also HubSpot's three-key 400 for unreadable input (status, message, correlationId; no category)",
    "components.responses.Error of oauth.json: also HubSpot's OAuth refusal (status BAD_..., message, correlationId; no category)",
    "components.schemas.StandardError.required: without errors and links, which HubSpot's 207 batch errors do not carry",
    "components.schemas.StandardError.subCategory: a string, as HubSpot sends it and the documents' own Error types it",
    "components.schemas.{AssociationSpecWithLabel,PublicAssociationDefinitionUserConfiguration}.label: nullable (null for the unlabelled type)",
    "components.schemas.{SimplePublicObject,SimplePublicObjectWithAssociations}.properties values: nullable, as in HubSpot's 2026-09 documents",
]


@schemathesis.hook
def before_load_schema(context, raw_schema):
    components = raw_schema.get("components", {})
    schemas = components.setdefault("schemas", {})
    alternatives = [{"$ref": "#/components/schemas/Error"}]
    schemas["HsyncConformanceUnreadableInput"] = UNREADABLE_INPUT
    alternatives.append({"$ref": "#/components/schemas/HsyncConformanceUnreadableInput"})
    if any(path.startswith("/oauth/") for path in raw_schema.get("paths", {})):
        schemas["HsyncConformanceOAuthError"] = OAUTH_ERROR
        alternatives.append({"$ref": "#/components/schemas/HsyncConformanceOAuthError"})
    error = components.get("responses", {}).get("Error", {})
    for media in error.get("content", {}).values():
        if media.get("schema") == {"$ref": "#/components/schemas/Error"}:
            media["schema"] = {"anyOf": alternatives}
    standard = schemas.get("StandardError")
    if standard:
        if "required" in standard:
            standard["required"] = [k for k in standard["required"] if k not in STANDARD_ERROR_NOT_SENT]
        if "subCategory" in standard.get("properties", {}):
            described = standard["properties"]["subCategory"].get("description", "")
            standard["properties"]["subCategory"] = dict(SUBCATEGORY, description=described)
    for name in NULLABLE_VALUES:
        values = schemas.get(name, {}).get("properties", {}).get("properties", {}).get("additionalProperties")
        if isinstance(values, dict):
            values["nullable"] = True
    for name in NULLABLE_LABEL:
        label = schemas.get(name, {}).get("properties", {}).get("label")
        if label is not None:
            label["nullable"] = True


# --- consistent types and ids ---------------------------------------------------------------------
# scripts/conformance gives Schemathesis dictionaries of the portal's type names and record ids,
# so that requests reach records that exist. A record id means something only with its type, and
# a stage only within its pipeline: when a request names a known type and carries an id (or a
# pipeline, a stage) from the dictionaries, the id is swapped for one of that type, chosen from
# the id drawn so that the same seed sends the same request. Values Schemathesis made up itself
# are left alone: they still try unknown ids and types.

_FACTS = None


def _facts():
    global _FACTS
    if _FACTS is None:
        path = os.environ.get("HSYNC_CONFORMANCE_FACTS")
        _FACTS = {}
        if path:
            with open(path) as f:
                _FACTS = json.load(f)
            _FACTS["all_ids"] = {i for ids in _FACTS["ids_by_type"].values() for i in ids}
            _FACTS["all_pipelines"] = {p for ps in _FACTS["pipelines"].values() for p in ps}
            _FACTS["all_stages"] = {s for ps in _FACTS["pipelines"].values() for st in ps.values() for s in st}
    return _FACTS


def _pick(options, drawn):
    return options[zlib.crc32(str(drawn).encode()) % len(options)] if options else drawn


def _type_of(facts, value, fallback=None):
    return facts["aliases"].get(value, fallback) if isinstance(value, str) else fallback


def _same_type_id(facts, kind, drawn, destructive=False):
    """An id of `kind` for a dictionary id: from the first half of the type's ids for a request
    that reads or updates, from the second half for one that archives, deletes or merges, so
    that the writes leave the reads' records in place."""
    if kind is None or not isinstance(drawn, str) or drawn not in facts["all_ids"]:
        return drawn
    ids = facts["ids_by_type"].get(kind, [])
    half = len(ids) // 2
    return _pick((ids[half:] if destructive else ids[:half]) or ids, drawn)


def _destructive(case):
    path = case.operation.path
    return case.operation.method.upper() == "DELETE" or path.endswith(("/batch/archive", "/gdpr-delete", "/merge"))


# The type named by a per-type document's paths (/crm/v3/objects/contacts/..., /crm/objects/2026-03/0-3/...).
_PATH_TYPE = {"contacts": "contacts", "companies": "companies", "0-3": "deals", "tickets": "tickets"}


@schemathesis.hook
def map_case(context, case):
    facts = _facts()
    if not facts:
        return case
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    parts = case.operation.path.split("/")
    prefixed = len(parts) > 4 and parts[1:4] in (["crm", "v3", "objects"], ["crm", "objects", "2026-03"])
    own = _PATH_TYPE.get(parts[4]) if prefixed else None
    kind = _type_of(facts, params.get("objectType"), own)
    destructive = _destructive(case)
    source = _type_of(facts, params.get("fromObjectType"), kind)
    target = _type_of(facts, params.get("toObjectType"))
    for name in ("objectId", "contactId", "companyId", "dealId", "ticketId"):
        if name in params:
            params[name] = _same_type_id(facts, kind, params[name], destructive)
    if "fromObjectId" in params:
        params["fromObjectId"] = _same_type_id(facts, source, params["fromObjectId"])
    if "toObjectId" in params:
        params["toObjectId"] = _same_type_id(facts, target, params["toObjectId"])
    pipelines = facts["pipelines"].get(kind or "")
    if pipelines and params.get("pipelineId") in facts["all_pipelines"]:
        params["pipelineId"] = _pick(sorted(pipelines), params["pipelineId"])
        if params.get("stageId") in facts["all_stages"]:
            params["stageId"] = _pick(pipelines.get(params["pipelineId"], []), params["stageId"])
    body = case.body
    if isinstance(body, dict):
        for key in ("primaryObjectId", "objectIdToMerge"):
            if key in body:
                body[key] = _same_type_id(facts, kind, body[key], destructive)
        inputs = body.get("inputs")
        if isinstance(inputs, list):
            for item in inputs:
                if not isinstance(item, dict):
                    continue
                if "id" in item:
                    item["id"] = _same_type_id(facts, source, item["id"], destructive)
                for end, end_kind in (("from", source), ("to", target)):
                    if isinstance(item.get(end), dict) and "id" in item[end]:
                        item[end]["id"] = _same_type_id(facts, end_kind, item[end]["id"], destructive)
    return case
