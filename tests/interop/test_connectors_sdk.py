#!/usr/bin/env python3
"""Interop test: drive the Switchboard gateway with the official `mistralai==3.7.0` SDK.

Contract under test: /work/shared/spec/connectors-api.md (§1-§5, §5.11, §5.12).

Usage:
    python test_connectors_sdk.py --bin target/debug/switchboard

The script starts `<bin> serve` itself (fresh temp dir, ephemeral ports on 127.0.0.1),
creates extra API keys with `<bin> keys create`, runs the checks, prints one line per check
and finishes with a line `N passed, N failed`. Exit status is 1 if any check failed.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

import pydantic
from mistralai.client import Mistral, errors, models
from mistralai.client.types.basemodel import Unset

from gateway import (  # shared with the other interop scripts (tests/interop/gateway.py)
    REQUEST_TIMEOUT_S,
    Gateway,
    bearer,
    check,
    expect_raises,
    expect_sdk_error,
    httpx,
    main_with_gateway,
    raw_client,
    sdk_client,
)

# --------------------------------------------------------------------------------------------
# SDK / raw HTTP helpers
# --------------------------------------------------------------------------------------------


class Recorder:
    """Keeps every response body the SDK received (to prove secrets never come back)."""

    def __init__(self) -> None:
        self.bodies: List[str] = []
        self.requests = 0

    def on_request(self, request) -> None:
        self.requests += 1

    def on_response(self, response) -> None:
        response.read()
        self.bodies.append(response.text)


RECORDER = Recorder()


def sdk(base_url: str, key: Optional[str]) -> Mistral:
    return sdk_client(base_url, key, {"request": [RECORDER.on_request], "response": [RECORDER.on_response]})


def absent(value: Any) -> bool:
    return value is None or isinstance(value, Unset)  # pydantic copies the UNSET default


def assert_known(c) -> None:
    assert not getattr(c, "is_unknown", False), (
        f"SDK could not parse the connector (UnknownConnector); raw={getattr(c, 'raw', None)!r}"
    )


def assert_tz_datetime(value: Any, field: str) -> None:
    assert isinstance(value, datetime), f"{field} is not a datetime: {value!r}"
    assert value.tzinfo is not None, f"{field} has no timezone: {value!r}"


def assert_connector(
    c,
    *,
    name: str,
    description: str,
    protocol: str,
    server: str,
    visibility: str = "private",
    owner_type: str = "user",
) -> None:
    assert_known(c)
    expected_cls = models.MCPConnector if protocol == "mcp" else models.HTTPConnector
    assert isinstance(c, expected_cls), f"expected {expected_cls.__name__}, got {type(c).__name__}"
    assert isinstance(c.id, str) and c.id, f"bad id {c.id!r}"
    assert c.name == name, f"name {c.name!r} != {name!r}"
    assert c.description == description, f"description {c.description!r} != {description!r}"
    assert c.protocol == protocol, f"protocol {c.protocol!r} != {protocol!r}"
    assert c.server == server, f"server {c.server!r} != {server!r}"
    assert c.visibility == visibility, f"visibility {c.visibility!r} != {visibility!r}"
    assert c.owner_type == owner_type, f"owner_type {c.owner_type!r} != {owner_type!r}"
    assert c.supports_mcp is (protocol == "mcp"), f"supports_mcp {c.supports_mcp!r} for {protocol}"
    assert isinstance(c.private_tool_execution, bool)
    assert_tz_datetime(c.created_at, "created_at")
    assert_tz_datetime(c.modified_at, "modified_at")


def list_all(client: Mistral, page_size: int = 100, query_filters=None, max_pages: int = 200):
    """Follow the cursor to the end. Returns (items, pages)."""
    items: List[Any] = []
    pages: List[Any] = []
    cursor = None
    seen_cursors = set()
    while True:
        kwargs: Dict[str, Any] = {"page_size": page_size}
        if cursor is not None:
            kwargs["cursor"] = cursor
        if query_filters is not None:
            kwargs["query_filters"] = query_filters
        page = client.beta.connectors.list(**kwargs)
        pages.append(page)
        assert isinstance(page, models.PaginatedConnectors)
        assert len(page.items) <= page_size, f"page has {len(page.items)} items > page_size {page_size}"
        assert page.pagination.page_size == page_size, (
            f"pagination.page_size {page.pagination.page_size} != requested {page_size}"
        )
        for item in page.items:
            assert_known(item)
        items.extend(page.items)
        nxt = page.pagination.next_cursor
        if absent(nxt) or nxt == "":
            return items, pages
        assert nxt not in seen_cursors, f"cursor {nxt!r} returned twice"
        seen_cursors.add(nxt)
        assert len(pages) < max_pages, "pagination does not terminate"
        cursor = nxt


def ids_of(items) -> List[str]:
    return [i.id for i in items]


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------


def run_checks(gw: Gateway) -> None:
    S: Dict[str, Any] = {}  # shared state between checks
    base = gw.base_url
    raw = raw_client(base)
    admin = sdk(base, gw.bootstrap_key)
    secret_value = "sbsecret-" + secrets.token_hex(16)
    plain_value = "sbplain-" + secrets.token_hex(8)

    def c_health():
        assert gw.admin, "no fields.admin in the listening line"
        r = httpx.get(f"http://{gw.admin}/healthz", trust_env=False, timeout=REQUEST_TIMEOUT_S)
        assert r.status_code == 200, f"GET /healthz -> {r.status_code} {r.text!r}"

    check("admin GET /healthz -> 200", c_health)

    def c_keys():
        S["bob_key"] = gw.create_key("bob", "default", "default")
        S["carol_key"] = gw.create_key("carol", "other", "default")
        assert S["bob_key"] != S["carol_key"] != gw.bootstrap_key
        S["bob"] = sdk(base, S["bob_key"])
        S["carol"] = sdk(base, S["carol_key"])

    check("keys create (bob@default/default, carol@other/default)", c_keys)

    def c_empty_list():
        page = admin.beta.connectors.list()
        assert isinstance(page, models.PaginatedConnectors)
        assert page.items == [], f"fresh store lists {len(page.items)} connectors"
        assert page.pagination.page_size == 100, f"default page_size echoed as {page.pagination.page_size}"

    check("list on a fresh store is empty (default page_size=100 echoed)", c_empty_list)

    # -- create ------------------------------------------------------------------------------
    created: List[Dict[str, Any]] = []  # specs of everything we created (admin)
    S["created"] = created

    def make_create(proto: str, idx: int):
        def _c():
            spec = {
                "protocol": proto,
                "name": f"{proto}_conn-{idx}",
                "description": f"{proto} connector number {idx}",
                "server": f"http://127.0.0.1:9/{proto}/{idx}",
            }
            c = admin.beta.connectors.create(request=dict(spec))
            assert_connector(c, **spec)
            assert absent(c.title), f"title should be unset, got {c.title!r}"
            assert not c.blocked_by, f"fresh connector blocked_by={c.blocked_by!r}"
            spec["id"] = c.id
            created.append(spec)

        return _c

    for i in range(3):
        check(f"create MCP connector #{i} (201, fields, private/user, supports_mcp=true)", make_create("mcp", i))
    for i in range(3):
        check(f"create HTTP connector #{i} (201, fields, private/user, supports_mcp=false)", make_create("http", i))

    def c_create_titled():
        spec = {"protocol": "mcp", "name": "titled_mcp", "description": "has a title",
                "server": "http://127.0.0.1:9/mcp/titled"}
        c = admin.beta.connectors.create(
            request=models.CreateConnectorRequest(title="Titled MCP", visibility="private", **{
                k: v for k, v in spec.items() if k != "protocol"}))
        assert_connector(c, **spec)
        assert c.title == "Titled MCP", f"title {c.title!r}"
        spec["id"] = c.id
        created.append(spec)
        S["titled"] = spec

    check("create MCP connector via model object with title + explicit visibility=private", c_create_titled)

    # -- global headers / secrets -------------------------------------------------------------
    def c_create_secret():
        spec = {"protocol": "http", "name": "with_secret_headers", "description": "global headers",
                "server": "http://127.0.0.1:9/http/secret"}
        req = dict(spec)
        req["global_headers"] = {
            "X-Api-Key": {"value": secret_value, "is_secret": True},
            "X-Tenant": {"value": plain_value, "is_secret": False},
        }
        n_before = len(RECORDER.bodies)
        c = admin.beta.connectors.create(request=req)
        assert_connector(c, **spec)
        spec["id"] = c.id
        created.append(spec)
        S["secret"] = spec
        body = RECORDER.bodies[n_before] if len(RECORDER.bodies) > n_before else ""
        assert secret_value not in body, f"create response echoes the secret header value: {body}"

    check("create HTTP connector with secret + non-secret global_headers (secret not in 201 body)", c_create_secret)

    def c_secret_raw_get():
        spec = S["secret"]
        for ref in (spec["id"], spec["name"]):
            r = raw.get(f"/v1/connectors/{ref}", headers=bearer(gw.bootstrap_key))
            assert r.status_code == 200, f"GET /v1/connectors/{ref} -> {r.status_code} {r.text}"
            assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
            assert secret_value not in r.text, f"secret value present in GET body: {r.text}"
            obj = r.json()
            assert obj.get("id") == spec["id"] and obj.get("protocol") == "http", obj
            gh = obj.get("global_headers")
            if gh is not None:  # optional in the contract; if echoed, the secret must be masked
                assert isinstance(gh, dict), f"global_headers is not an object: {gh!r}"
                sec = gh.get("X-Api-Key")
                assert isinstance(sec, dict) and sec.get("is_secret") is True, f"secret header echoed as {sec!r}"
                assert sec.get("value") != secret_value
        r = raw.get("/v1/connectors", params={"page_size": 100}, headers=bearer(gw.bootstrap_key))
        assert r.status_code == 200, f"list -> {r.status_code}"
        assert secret_value not in r.text, "secret value present in list body"
        r = raw.get(f"/v1/connectors/{spec['id']}", params={"fetch_user_data": "true"},
                    headers=bearer(gw.bootstrap_key))
        assert r.status_code == 200, f"get fetch_user_data=true -> {r.status_code} {r.text}"
        assert secret_value not in r.text, "secret value present in GET ?fetch_user_data=true body"

    check("raw GET (by id, by name, fetch_user_data) and raw list never contain the secret value", c_secret_raw_get)

    def c_secret_sdk_get():
        spec = S["secret"]
        c = admin.beta.connectors.get(connector_id_or_name=spec["id"])
        assert_connector(c, **{k: spec[k] for k in ("name", "description", "protocol", "server")})
        assert c.id == spec["id"]
        dumped = json.dumps(c.model_dump(mode="json"), default=str)
        assert secret_value not in dumped, "secret present in the SDK model"

    check("SDK get of the global-headers connector parses and hides the secret", c_secret_sdk_get)

    # -- list / pagination ----------------------------------------------------------------------
    def c_paginate():
        items, pages = list_all(admin, page_size=2)
        ids = ids_of(items)
        assert len(pages) >= 3, f"only {len(pages)} pages with page_size=2 for {len(ids)} connectors"
        assert len(ids) == len(set(ids)), f"duplicates across pages: {ids}"
        missing = {s["id"] for s in created} - set(ids)
        assert not missing, f"created connectors missing from the listing: {missing}"
        by_id = {i.id: i for i in items}
        for s in created:
            it = by_id[s["id"]]
            assert it.name == s["name"] and it.protocol == s["protocol"], (it.name, it.protocol)
            assert it.visibility == "private" and it.owner_type == "user", (it.visibility, it.owner_type)
        S["all_ids"] = set(ids)

    check("list page_size=2 follows next_cursor over >=3 pages, no duplicates, all created present", c_paginate)

    def c_raw_pagination_shape():
        r = raw.get("/v1/connectors", params={"page_size": 2}, headers=bearer(gw.bootstrap_key))
        assert r.status_code == 200, f"{r.status_code} {r.text}"
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
        body = r.json()
        assert isinstance(body.get("items"), list) and len(body["items"]) == 2, body
        assert body.get("pagination", {}).get("page_size") == 2, body.get("pagination")
        assert isinstance(body["pagination"].get("next_cursor"), str), body["pagination"]

    check("raw list page_size=2 -> {items:[2], pagination:{page_size:2, next_cursor:str}}", c_raw_pagination_shape)

    def make_filter(flag: bool):
        def _c():
            items, _ = list_all(admin, page_size=3, query_filters={"supports_mcp": flag})
            bad = [(i.name, i.supports_mcp) for i in items if i.supports_mcp is not flag]
            assert not bad, f"items not matching supports_mcp={flag}: {bad}"
            ids = set(ids_of(items))
            assert len(ids) == len(items), "duplicates in filtered listing"
            want = {s["id"] for s in created if (s["protocol"] == "mcp") == flag}
            unwanted = {s["id"] for s in created if (s["protocol"] == "mcp") != flag}
            assert want <= ids, f"missing from filtered listing: {want - ids}"
            assert not (unwanted & ids), f"wrong connectors in filtered listing: {unwanted & ids}"

        return _c

    check("list query_filters supports_mcp=True (paged) returns exactly the MCP ones", make_filter(True))
    check("list query_filters supports_mcp=False (paged) returns exactly the HTTP ones", make_filter(False))

    # -- get ------------------------------------------------------------------------------------
    def c_get():
        for s in created:
            spec = {k: s[k] for k in ("name", "description", "protocol", "server")}
            by_id = admin.beta.connectors.get(connector_id_or_name=s["id"])
            assert_connector(by_id, **spec)
            assert by_id.id == s["id"]
            by_name = admin.beta.connectors.get(connector_id_or_name=s["name"])
            assert_connector(by_name, **spec)
            assert by_name.id == s["id"], f"get by name {s['name']} -> id {by_name.id} != {s['id']}"

    check("get by id and by name returns the same connector with all fields", c_get)

    def c_get_extra_query():
        s = created[0]
        r = raw.get(f"/v1/connectors/{s['id']}", headers=bearer(gw.bootstrap_key),
                    params={"fetch_user_data": "false", "fetch_customer_data": "false", "page": "1"})
        assert r.status_code == 200, f"{r.status_code} {r.text}"
        assert r.json().get("id") == s["id"]

    check("get ignores unknown query params (2.x SDK's fetch_customer_data) -> 200", c_get_extra_query)

    def c_get_unknown():
        expect_sdk_error(lambda: admin.beta.connectors.get(connector_id_or_name="no_such_connector"), 404)
        expect_sdk_error(
            lambda: admin.beta.connectors.get(connector_id_or_name="019b2bd7-96e7-7219-8c0b-45a73da50088"), 404)

    check("get unknown name / unknown uuid -> SDKError 404", c_get_unknown)

    # -- update -----------------------------------------------------------------------------------
    def c_update():
        s = next(x for x in created if x["protocol"] == "mcp")
        before = admin.beta.connectors.get(connector_id_or_name=s["id"])
        new = {"description": "updated description", "title": "Updated Title",
               "server": "http://127.0.0.1:9/mcp/updated"}
        c = admin.beta.connectors.update(connector_id=s["id"], request_body={"protocol": "mcp", **new})
        assert_connector(c, name=s["name"], description=new["description"], protocol="mcp", server=new["server"])
        assert c.id == s["id"]
        assert c.title == new["title"], f"title {c.title!r}"
        assert c.modified_at >= before.modified_at, "modified_at went backwards"
        assert c.created_at == before.created_at, f"created_at changed {before.created_at} -> {c.created_at}"
        g = admin.beta.connectors.get(connector_id_or_name=s["id"])
        assert_connector(g, name=s["name"], description=new["description"], protocol="mcp", server=new["server"])
        assert g.title == new["title"], f"title after get {g.title!r}"
        s.update(new)
        S["updated"] = s

    check("update (PATCH) MCP description/title/server -> returned and persisted", c_update)

    def c_update_null_title():
        s = S["updated"]
        c = admin.beta.connectors.update(connector_id=s["id"], request_body={"protocol": "mcp", "title": None})
        assert absent(c.title), f"title not cleared in PATCH response: {c.title!r}"
        assert c.description == s["description"] and c.server == s["server"], "other fields changed"
        g = admin.beta.connectors.get(connector_id_or_name=s["id"])
        assert absent(g.title), f"title not cleared on get: {g.title!r}"
        assert g.description == s["description"] and g.server == s["server"] and g.name == s["name"]
        s.pop("title", None)

    check("update title=null clears it, leaves other fields unchanged", c_update_null_title)

    def c_update_http():
        s = next(x for x in created if x["protocol"] == "http" and x is not S.get("secret"))
        body = models.UpdateHTTPConnectorRequest(description="http updated", title="HTTP T")
        c = admin.beta.connectors.update(connector_id=s["id"], request_body=body)
        assert_connector(c, name=s["name"], description="http updated", protocol="http", server=s["server"])
        assert c.title == "HTTP T", f"title {c.title!r}"
        g = admin.beta.connectors.get(connector_id_or_name=s["name"])
        assert g.description == "http updated" and g.title == "HTTP T", (g.description, g.title)
        s["description"] = "http updated"

    check("update (PATCH) HTTP connector via UpdateHTTPConnectorRequest", c_update_http)

    def c_update_unknown():
        expect_sdk_error(
            lambda: admin.beta.connectors.update(
                connector_id="no_such_connector", request_body={"protocol": "mcp", "description": "x"}), 404)

    check("update unknown connector -> SDKError 404", c_update_unknown)

    # -- visibility between users ----------------------------------------------------------------
    def c_share_setup():
        spec = {"protocol": "mcp", "name": "share_me", "description": "to be shared",
                "server": "http://127.0.0.1:9/mcp/share"}
        c = admin.beta.connectors.create(request=dict(spec))
        assert_connector(c, **spec)
        spec["id"] = c.id
        created.append(spec)
        S["share"] = spec

    check("create connector to share (admin)", c_share_setup)

    def c_private_hidden():
        sid = S["share"]["id"]
        expect_sdk_error(lambda: S["bob"].beta.connectors.get(connector_id_or_name=sid), 404)
        expect_sdk_error(lambda: S["bob"].beta.connectors.get(connector_id_or_name=S["share"]["name"]), 404)
        expect_sdk_error(lambda: S["carol"].beta.connectors.get(connector_id_or_name=sid), 404)
        admin_private = {s["id"] for s in created}
        for who in ("bob", "carol"):
            items, _ = list_all(S[who], page_size=100)
            leaked = admin_private & set(ids_of(items))
            assert not leaked, f"{who} lists admin's private connectors: {leaked}"

    check("private connector: bob/carol get -> 404, their lists do not include admin's connectors", c_private_hidden)

    def c_bob_cannot_modify_private():
        sid = S["share"]["id"]
        for fn in (
            lambda: S["bob"].beta.connectors.delete(connector_id=sid),
            lambda: S["bob"].beta.connectors.update(connector_id=sid, request_body={"protocol": "mcp", "description": "pwn"}),
            lambda: S["bob"].beta.connectors.share(connector_id=sid),
        ):
            try:
                fn()
            except errors.SDKError as exc:
                assert exc.status_code in (403, 404), f"expected 403/404, got {exc.status_code}: {exc}"
            else:
                raise AssertionError("bob modified admin's private connector")
        g = admin.beta.connectors.get(connector_id_or_name=sid)
        assert g.description == "to be shared" and g.visibility == "private", (g.description, g.visibility)

    check("bob cannot delete/update/share admin's private connector (403/404, unchanged)", c_bob_cannot_modify_private)

    def c_share_ws():
        sid = S["share"]["id"]
        m = admin.beta.connectors.share(connector_id=sid)
        assert isinstance(m, models.MessageResponse) and isinstance(m.message, str), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=sid)
        assert g.visibility == "shared_workspace", f"visibility {g.visibility!r}"
        assert g.owner_type == "workspace", f"owner_type {g.owner_type!r}"

    check("share -> MessageResponse; get shows visibility=shared_workspace owner_type=workspace", c_share_ws)

    def c_share_ws_access():
        sid = S["share"]["id"]
        b = S["bob"].beta.connectors.get(connector_id_or_name=sid)
        assert_known(b)
        assert b.id == sid and b.visibility == "shared_workspace", (b.id, b.visibility)
        assert b.owner_type == "workspace", f"owner_type seen by bob {b.owner_type!r}"
        b2 = S["bob"].beta.connectors.get(connector_id_or_name=S["share"]["name"])
        assert b2.id == sid, "bob's get-by-name of the shared connector resolved elsewhere"
        items, _ = list_all(S["bob"], page_size=2)
        assert sid in ids_of(items), "bob's list lacks the workspace-shared connector"
        expect_sdk_error(lambda: S["carol"].beta.connectors.get(connector_id_or_name=sid), 404)
        items, _ = list_all(S["carol"], page_size=100)
        assert sid not in ids_of(items), "carol (other workspace) lists the workspace-shared connector"

    check("workspace-shared: bob can get+list it, carol (other workspace) gets SDKError 404", c_share_ws_access)

    def c_unshare_ws():
        sid = S["share"]["id"]
        m = admin.beta.connectors.unshare(connector_id=sid)
        assert isinstance(m, models.MessageResponse), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=sid)
        assert g.visibility == "private" and g.owner_type == "user", (g.visibility, g.owner_type)
        expect_sdk_error(lambda: S["bob"].beta.connectors.get(connector_id_or_name=sid), 404)

    check("unshare -> private/user again; bob gets 404", c_unshare_ws)

    def c_share_org():
        sid = S["share"]["id"]
        m = admin.beta.connectors.share_to_organization(connector_id=sid)
        assert isinstance(m, models.MessageResponse), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=sid)
        assert g.visibility == "shared_org", f"visibility {g.visibility!r}"
        assert g.owner_type == "org", f"owner_type {g.owner_type!r}"
        c = S["carol"].beta.connectors.get(connector_id_or_name=sid)
        assert_known(c)
        assert c.id == sid and c.visibility == "shared_org", (c.id, c.visibility)
        items, _ = list_all(S["carol"], page_size=100)
        assert sid in ids_of(items), "carol's list lacks the org-shared connector"
        b = S["bob"].beta.connectors.get(connector_id_or_name=sid)
        assert b.id == sid

    check("share_to_organization (admin) -> shared_org/org; carol and bob can get it", c_share_org)

    def c_unshare_org():
        sid = S["share"]["id"]
        m = admin.beta.connectors.unshare_from_organization(connector_id=sid)
        assert isinstance(m, models.MessageResponse), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=sid)
        assert g.visibility == "private" and g.owner_type == "user", (g.visibility, g.owner_type)
        expect_sdk_error(lambda: S["carol"].beta.connectors.get(connector_id_or_name=sid), 404)

    check("unshare_from_organization -> private/user; carol gets 404", c_unshare_org)

    def c_same_name_other_workspace():
        spec = {"protocol": "mcp", "name": S["share"]["name"], "description": "carol's own",
                "server": "http://127.0.0.1:9/mcp/carol"}
        c = S["carol"].beta.connectors.create(request=dict(spec))
        assert_connector(c, **spec)
        assert c.id != S["share"]["id"]
        g = S["carol"].beta.connectors.get(connector_id_or_name=spec["name"])
        assert g.id == c.id, "carol's get-by-name resolved to someone else's connector"
        a = admin.beta.connectors.get(connector_id_or_name=spec["name"])
        assert a.id == S["share"]["id"], "admin's get-by-name resolved to carol's connector"

    check("same name in another workspace is allowed; get-by-name resolves per caller", c_same_name_other_workspace)

    # -- activate / deactivate ----------------------------------------------------------------------
    def c_deactivate():
        s = S["titled"]
        m = admin.beta.connectors.deactivate_for_consumer(connector_id=s["id"], consumer_scope="user")
        assert isinstance(m, models.MessageResponse), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=s["id"])
        assert g.blocked_by and "user" in g.blocked_by, f"blocked_by={g.blocked_by!r}"

    check("deactivate_for_consumer(user) -> blocked_by contains 'user'", c_deactivate)

    def c_activate():
        s = S["titled"]
        m = admin.beta.connectors.activate_for_consumer(connector_id=s["id"], consumer_scope="user")
        assert isinstance(m, models.MessageResponse), repr(m)
        g = admin.beta.connectors.get(connector_id_or_name=s["id"])
        assert "user" not in (g.blocked_by or []), f"blocked_by={g.blocked_by!r}"

    check("activate_for_consumer(user) -> 'user' removed from blocked_by", c_activate)

    def c_bad_scope():
        s = S["titled"]
        r = raw.post(f"/v1/connectors/{s['id']}/galaxy/deactivate", headers=bearer(gw.bootstrap_key))
        assert r.status_code == 422, f"expected 422, got {r.status_code} {r.text}"
        detail = r.json().get("detail")
        assert isinstance(detail, list) and detail, f"detail not a non-empty list: {r.text}"
        locs = [d.get("loc") for d in detail]
        assert any(isinstance(l, list) and l and l[0] == "path" for l in locs), f"loc: {locs}"

    check("raw POST .../galaxy/deactivate (bad consumer_scope) -> 422 with loc ['path', ...]", c_bad_scope)

    # -- errors: each rejected request must leave the set unchanged ---------------------------------
    def snapshot() -> set:
        items, _ = list_all(admin, page_size=100)
        return set(ids_of(items))

    def unchanged(before: set) -> None:
        after = snapshot()
        assert after == before, f"connector set changed: added={after - before} removed={before - after}"

    def rejected(name: str, fn: Callable[[], Any]) -> None:
        def _c():
            before = snapshot()
            fn()
            unchanged(before)

        check(name, _c)

    def e_duplicate():
        s = S["share"]
        exc = expect_sdk_error(lambda: admin.beta.connectors.create(request={
            "protocol": "mcp", "name": s["name"], "description": "dup", "server": "http://127.0.0.1:9/dup"}), 409)
        assert exc.body, "409 without body"
        expect_sdk_error(lambda: admin.beta.connectors.create(request={
            "protocol": "http", "name": s["name"], "description": "dup", "server": "http://127.0.0.1:9/dup"}), 409)

    rejected("duplicate name (mcp and http) -> SDKError 409; set unchanged", e_duplicate)

    def e_dup_bob():
        # bob is in the same workspace as admin: names are unique per workspace
        expect_sdk_error(lambda: S["bob"].beta.connectors.create(request={
            "protocol": "mcp", "name": S["share"]["name"], "description": "dup",
            "server": "http://127.0.0.1:9/dup"}), 409)

    rejected("duplicate name by another user of the same workspace -> SDKError 409; set unchanged", e_dup_bob)

    def invalid_name(name: str):
        def _f():
            exc = expect_raises(lambda: admin.beta.connectors.create(request={
                "protocol": "mcp", "name": name, "description": "d", "server": "http://127.0.0.1:9/bad"}),
                errors.HTTPValidationError, 422)
            detail = exc.data.detail
            assert isinstance(detail, list) and detail, f"detail is not a non-empty list: {exc.body}"
            assert any("name" in [str(x) for x in d.loc] for d in detail), f"no loc with 'name': {exc.body}"

        return _f

    rejected("invalid name 'bad name!' -> HTTPValidationError 422, loc includes 'name'; set unchanged",
             invalid_name("bad name!"))
    rejected("invalid name (65 chars) -> HTTPValidationError 422, loc includes 'name'; set unchanged",
             invalid_name("a" * 65))
    rejected("invalid name (empty) -> HTTPValidationError 422, loc includes 'name'; set unchanged",
             invalid_name(""))

    def c_name_64():
        name = "b" * 63 + "9"
        c = admin.beta.connectors.create(request={
            "protocol": "http", "name": name, "description": "64 chars", "server": "http://127.0.0.1:9/http/64"})
        assert c.name == name
        created.append({"protocol": "http", "name": name, "id": c.id, "description": "64 chars",
                        "server": "http://127.0.0.1:9/http/64"})

    check("name of exactly 64 chars is accepted (201)", c_name_64)

    def e_missing_description_raw():
        r = raw.post("/v1/connectors", headers={**bearer(gw.bootstrap_key), "Content-Type": "application/json"},
                     content=json.dumps({"protocol": "mcp", "name": "no_description",
                                         "server": "http://127.0.0.1:9/nodesc"}, separators=(",", ":")))
        assert r.status_code == 422, f"expected 422, got {r.status_code} {r.text}"
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers.get("content-type")
        detail = r.json().get("detail")
        assert isinstance(detail, list) and detail, f"detail not a non-empty list: {r.text}"
        for d in detail:
            assert isinstance(d.get("loc"), list) and isinstance(d.get("msg"), str) and isinstance(d.get("type"), str), d
        S["missing_desc_detail"] = detail

    rejected("raw POST without description -> 422 FastAPI-style detail list; set unchanged", e_missing_description_raw)

    def c_missing_desc_loc():
        detail = S["missing_desc_detail"]
        assert any("description" in [str(x) for x in d["loc"]] for d in detail), f"loc: {detail}"

    check("422 for missing description has loc mentioning 'description'", c_missing_desc_loc)

    def e_missing_description_sdk():
        n = RECORDER.requests
        try:
            admin.beta.connectors.create(request={"protocol": "mcp", "name": "no_description_sdk",
                                                  "server": "http://127.0.0.1:9/nodesc"})
        except pydantic.ValidationError:
            assert RECORDER.requests == n, "SDK sent a request although it raised a client-side ValidationError"
        except errors.HTTPValidationError as exc:
            assert exc.status_code == 422
        else:
            raise AssertionError("create without description succeeded")
        # force the SDK to send it anyway: description becomes explicit null
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            req = models.CreateConnectorRequest.model_construct(name="null_description", server="http://127.0.0.1:9/n")
            expect_raises(lambda: admin.beta.connectors.create(request=req), errors.HTTPValidationError, 422)

    rejected("SDK: missing description refused client-side; description=null -> HTTPValidationError 422; set unchanged",
             e_missing_description_sdk)

    def e_bad_protocol_raw():
        r = raw.post("/v1/connectors", headers={**bearer(gw.bootstrap_key), "Content-Type": "application/json"},
                     content=json.dumps({"protocol": "turbine", "name": "turbine_one", "description": "d",
                                         "server": "http://127.0.0.1:9/t"}))
        assert r.status_code == 422, f"expected 422, got {r.status_code} {r.text}"
        assert isinstance(r.json().get("detail"), list), r.text

    rejected("raw POST with protocol 'turbine' -> 422 detail list; set unchanged", e_bad_protocol_raw)

    def e_bad_key():
        bad = sdk(base, "sbk_" + secrets.token_urlsafe(32))
        expect_sdk_error(lambda: bad.beta.connectors.list(), 401)
        expect_sdk_error(lambda: bad.beta.connectors.get(connector_id_or_name=S["share"]["id"]), 401)
        expect_sdk_error(lambda: bad.beta.connectors.create(request={
            "protocol": "mcp", "name": "by_bad_key", "description": "d", "server": "http://127.0.0.1:9/bad"}), 401)
        expect_sdk_error(lambda: bad.beta.connectors.delete(connector_id=S["share"]["id"]), 401)
        nokey = sdk(base, None)
        expect_sdk_error(lambda: nokey.beta.connectors.list(), 401)
        r = raw.get("/v1/connectors", headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert r.status_code == 401, f"Basic auth -> {r.status_code}"

    rejected("bad / missing API key -> SDKError 401 (list, get, create, delete); set unchanged", e_bad_key)

    # -- delete -----------------------------------------------------------------------------------
    def c_delete():
        s = next(x for x in created if x["protocol"] == "http" and x is not S.get("secret"))
        m = admin.beta.connectors.delete(connector_id=s["id"])
        assert isinstance(m, models.MessageResponse) and isinstance(m.message, str), repr(m)
        expect_sdk_error(lambda: admin.beta.connectors.get(connector_id_or_name=s["id"]), 404)
        expect_sdk_error(lambda: admin.beta.connectors.get(connector_id_or_name=s["name"]), 404)
        items, _ = list_all(admin, page_size=2)
        assert s["id"] not in ids_of(items), "deleted connector still listed"
        created.remove(s)
        S["deleted"] = s

    check("delete -> MessageResponse; get by id/name -> SDKError 404; not listed", c_delete)

    def e_delete_again():
        expect_sdk_error(lambda: admin.beta.connectors.delete(connector_id=S["deleted"]["id"]), 404)

    rejected("delete of an already deleted connector -> SDKError 404; set unchanged", e_delete_again)

    def c_recreate_deleted_name():
        s = S["deleted"]
        c = admin.beta.connectors.create(request={k: s[k] for k in ("protocol", "name", "description", "server")})
        assert c.id != s["id"], "re-created connector reuses the deleted id"
        created.append({**s, "id": c.id})

    check("name of a deleted connector can be reused (new id)", c_recreate_deleted_name)

    def c_final_listing():
        items, _ = list_all(admin, page_size=2)
        ids = ids_of(items)
        assert len(ids) == len(set(ids)), "duplicates"
        assert {s["id"] for s in created} <= set(ids), "created connectors missing at the end"

    check("final paged listing consistent with everything created/deleted", c_final_listing)

    # -- secrets must not leak anywhere ----------------------------------------------------------------
    def c_secret_never_in_sdk_responses():
        assert RECORDER.bodies, "no responses recorded"
        leaks = [b[:200] for b in RECORDER.bodies if secret_value in b]
        assert not leaks, f"{len(leaks)} of {len(RECORDER.bodies)} SDK response bodies contain the secret: {leaks[:2]}"

    check("secret global header value never appears in any response body the SDK received", c_secret_never_in_sdk_responses)

    def c_secret_not_in_logs():
        assert secret_value not in gw.output(), "gateway log output contains the secret header value"

    check("secret global header value never appears in the gateway's log output", c_secret_not_in_logs)

    def c_secret_encrypted_at_rest():
        found = []
        for fn in os.listdir(gw.tmp):
            path = os.path.join(gw.tmp, fn)
            if fn.startswith("switchboard.db") and os.path.isfile(path):
                with open(path, "rb") as fh:
                    if secret_value.encode() in fh.read():
                        found.append(fn)
        assert not found, f"secret header value stored in clear in {found}"

    check("secret global header value is not stored in clear in the sqlite files", c_secret_encrypted_at_rest)


# --------------------------------------------------------------------------------------------


def main() -> None:
    main_with_gateway(__doc__.splitlines()[0], run_checks)


if __name__ == "__main__":
    main()
