#!/usr/bin/env python3
"""Interop test: connector credentials (scopes, defaults, secrecy, upstream injection) with `mistralai==3.7.0`.

Contract under test: /work/shared/spec/connectors-api.md §4.4 (AuthenticationConfiguration),
§5.10 (credentials endpoints, is_default rules, selection), §5.3 (`fetch_user_data`),
§5.8/§5.9 (`credentials_name` on list_tools / call_tool).

Usage:
    python test_credentials_sdk.py --bin target/debug/switchboard

Needs the `mcp` package importable by the Python that runs the fixture (this interpreter, or
$INTEROP_MCP_PYTHON); `run.sh` provides both. Everything binds / talks to 127.0.0.1 only.

What it does:
  1. on one connector, in each of the three scopes (workspace, organization, user), drives
     create / update (upsert) / list / delete through the SDK and asserts the exact listed state
     after every step: first-of-a-method default, promotion + demotion, title upsert, the 422s
     (demoting the default, is_default=false on the first of a method), the 409 duplicate, the
     promotion of the oldest other credential when the default is deleted, delete-all (user);
  2. a non-admin key gets 403 on workspace/organization writes and sees those credentials;
  3. no secret (bearer token, header value, oauth client_secret) ever comes back in a response
     body, the gateway log or the sqlite files in clear;
  4. injection end to end through py_mcp_server.py's `whoami` tool (echoes the Authorization /
     X-Team headers it received): 401 credentials_required without credentials, default and
     named selection, user > workspace > organization precedence across three users,
     `fetch_user_data=true` showing the caller's credentials.
One `ok`/`FAIL` line per check, then `N passed, N failed`; exit status 1 on any failure.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

from mistralai.client import Mistral, errors, models
from mistralai.client.types.basemodel import Unset

from gateway import (
    LOOPBACK,
    VERBOSE,
    Gateway,
    Upstream,
    check,
    expect_raises,
    expect_sdk_error,
    free_port,
    main_with_gateway,
    one_line,
    sdk_client,
)

HERE = os.path.dirname(os.path.abspath(__file__))
PY_FIXTURE = os.path.join(HERE, "py_mcp_server.py")
MCP_PYTHON = os.environ.get("INTEROP_MCP_PYTHON") or sys.executable

# list_tools / call_tool are marked deprecated in the SDK (the gateway API replaces them).
warnings.filterwarnings("ignore", category=DeprecationWarning)

SCOPE_VALUE = {"user": "user", "workspace": "workspace", "organization": "org"}  # path word -> ConsumerType
PUBLIC_KEYS = {"name", "authentication_type", "scope", "title", "status", "is_default", "creator_id"}


# --------------------------------------------------------------------------------------------
# SDK with a response recorder
# --------------------------------------------------------------------------------------------


class Recorder:
    """Every response the SDK received: (method, path, status, body)."""

    def __init__(self) -> None:
        self.responses: List[Tuple[str, str, int, str]] = []

    def on_response(self, response) -> None:
        response.read()
        self.responses.append((response.request.method, response.request.url.path, response.status_code,
                               response.text))

    @property
    def last_body(self) -> str:
        return self.responses[-1][3] if self.responses else ""


RECORDER = Recorder()


def sdk(base_url: str, key: str) -> Mistral:
    return sdk_client(base_url, key, {"response": [RECORDER.on_response]})


def absent(value: Any) -> bool:
    return value is None or isinstance(value, Unset)


def token(label: str) -> str:
    return f"sbtok-{label}-{secrets.token_hex(12)}"


# Secrets that must never come back in any response body (management checks, items 1-3) and
# tokens that may legitimately come back only from the fixture's `whoami` (item 4).
MGMT_SECRETS: List[str] = []
INJECTED_SECRETS: List[str] = []


def mgmt_secret(label: str) -> str:
    value = token(label)
    MGMT_SECRETS.append(value)
    return value


def injected_secret(label: str) -> str:
    value = token(label)
    INJECTED_SECRETS.append(value)
    return value


# --------------------------------------------------------------------------------------------
# credential helpers
# --------------------------------------------------------------------------------------------

State = Dict[str, Tuple[str, Optional[str], bool]]  # name -> (authentication_type, title, is_default)


def list_fn(client: Mistral, scope: str) -> Callable[..., Any]:
    con = client.beta.connectors
    return {"user": con.list_user_credentials, "workspace": con.list_workspace_credentials,
            "organization": con.list_organization_credentials}[scope]


def listing(client: Mistral, ref: str, scope: str, **kw) -> List[Any]:
    resp = list_fn(client, scope)(connector_id_or_name=ref, **kw)
    assert isinstance(resp, models.CredentialsResponse), f"got {type(resp).__name__}"
    raw = json.loads(RECORDER.last_body)
    for item in raw.get("credentials", []):
        extra = set(item) - PUBLIC_KEYS
        assert not extra, f"credential {item.get('name')!r} carries non-public keys {sorted(extra)}: {item}"
    return list(resp.credentials)


def state_of(creds: List[Any]) -> State:
    names = [c.name for c in creds]
    assert len(names) == len(set(names)), f"duplicate names in listing: {names}"
    return {c.name: (c.authentication_type, None if absent(c.title) else c.title, bool(c.is_default))
            for c in creds}


def fmt(state: State) -> str:
    return ", ".join(f"{n}:{t}{'*' if d else ''}({ti!r})" for n, (t, ti, d) in sorted(state.items())) or "(empty)"


def assert_state(client: Mistral, ref: str, scope: str, expected: State, creator: str) -> None:
    creds = listing(client, ref, scope)
    got = state_of(creds)
    assert got == expected, f"{scope} listing is [{fmt(got)}], expected [{fmt(expected)}] (* = default)"
    for c in creds:
        assert c.scope == SCOPE_VALUE[scope], f"{c.name}: scope {c.scope!r} != {SCOPE_VALUE[scope]!r}"
        assert c.creator_id == creator, f"{c.name}: creator_id {c.creator_id!r} != {creator!r}"
        assert absent(c.status), f"{c.name}: status {c.status!r} (expected null)"
    methods = {t for t, _, _ in expected.values()}
    for m in methods:
        defaults = [n for n, (t, _, d) in got.items() if t == m and d]
        assert len(defaults) == 1, f"method {m}: defaults {defaults} (exactly one expected)"


def assert_message(resp: Any) -> None:
    assert isinstance(resp, models.MessageResponse), f"got {type(resp).__name__}"
    assert isinstance(resp.message, str) and resp.message, f"empty message: {resp!r}"


def loc_has(exc: "errors.HTTPValidationError", field: str) -> bool:
    detail = exc.data.detail
    assert isinstance(detail, list) and detail, f"detail is not a non-empty list: {exc.body}"
    return any(field in [str(x) for x in d.loc] for d in detail)


# --------------------------------------------------------------------------------------------
# 1. + 2. credential management in the three scopes
# --------------------------------------------------------------------------------------------


def run_scope(admin: Mistral, ref: str, scope: str, after_user: Optional[Callable[[], None]] = None) -> None:
    L = f"{scope} scope"
    con = admin.beta.connectors
    st: State = {}
    ok = {"chain": True}  # later steps build on the expected state; stop at the first failure

    def step(name: str, fn: Callable[[], None]) -> None:
        if not ok["chain"]:
            return
        if not check(f"{L}: {name}", fn):
            ok["chain"] = False

    def verify() -> None:
        assert_state(admin, ref, scope, st, "admin")

    def create(name: str, **kw):
        return con.create_credentials(connector_id_or_name=ref, consumer_scope=scope, name=name, **kw)

    def update(name: str, **kw):
        return con.update_credentials(connector_id_or_name=ref, consumer_scope=scope, name=name, **kw)

    def s_empty():
        verify()

    step("list on a fresh connector -> empty credentials", s_empty)

    def s_b1():
        assert_message(create("b1", title="Bearer one", credentials={"bearer_token": mgmt_secret(f"{scope}-b1")}))
        st["b1"] = ("bearer", "Bearer one", True)
        verify()

    step("create b1 (bearer_token, is_default absent) -> bearer, first of its method so default", s_b1)

    def s_b2():
        assert_message(create("b2", title="Bearer two", credentials={"bearer_token": mgmt_secret(f"{scope}-b2")}))
        st["b2"] = ("bearer", "Bearer two", False)
        verify()

    step("create b2 (bearer_token) -> bearer, not default; b1 still default", s_b2)

    def s_h1():
        assert_message(create("h1", credentials={"headers": {"X-Team": mgmt_secret(f"{scope}-h1-hdr")}}))
        st["h1"] = ("none", None, True)
        verify()

    step("create h1 (headers only, no title) -> none, default of its own method; bearer defaults unchanged",
         s_h1)

    def s_promote():
        assert_message(update("b2", is_default=True))
        st["b2"] = ("bearer", "Bearer two", True)
        st["b1"] = ("bearer", "Bearer one", False)
        verify()

    step("update b2 is_default=true -> b2 promoted, b1 demoted; h1 untouched", s_promote)

    def s_title():
        assert_message(update("b1", title="Bearer one (renamed)"))
        st["b1"] = ("bearer", "Bearer one (renamed)", False)
        verify()

    step("update b1 title only (upsert of an existing name) -> title changed, flags unchanged", s_title)

    def s_upsert_new():
        assert_message(update("h2", title="Headers two",
                              credentials={"headers": {"X-Team": mgmt_secret(f"{scope}-h2-hdr")}}))
        st["h2"] = ("none", "Headers two", False)
        verify()

    step("update h2 (unknown name) -> upsert creates it, not default (h1 stays default)", s_upsert_new)

    def s_demote():
        exc = expect_raises(lambda: update("b2", is_default=False), errors.HTTPValidationError, 422)
        assert loc_has(exc, "is_default"), f"no loc with 'is_default': {exc.body}"
        verify()

    step("update b2 (the default) is_default=false -> HTTPValidationError 422 (loc is_default); state unchanged",
         s_demote)

    def s_first_false():
        oauth_secret = mgmt_secret(f"{scope}-o1-client-secret")
        exc = expect_raises(lambda: create("o1", is_default=False, credentials={"oauth": {
            "client_id": f"client-{scope}", "grant_type": "client_credentials", "client_secret": oauth_secret}}),
            errors.HTTPValidationError, 422)
        assert loc_has(exc, "is_default"), f"no loc with 'is_default': {exc.body}"
        verify()

    step("create o1 (first oauth2) with is_default=false -> HTTPValidationError 422; state unchanged",
         s_first_false)

    def s_dup():
        exc = expect_sdk_error(lambda: create("b1", title="dup", credentials={"bearer_token": mgmt_secret("dup")}), 409)
        assert exc.body, "409 without a body"
        verify()

    step("create b1 again (duplicate name) -> SDKError 409; state unchanged", s_dup)

    def s_dup_other_method():
        expect_sdk_error(lambda: create("h1", credentials={"bearer_token": mgmt_secret("dup2")}), 409)
        verify()

    step("create h1 again with a bearer_token (duplicate name, other method) -> SDKError 409; state unchanged",
         s_dup_other_method)

    def s_o1():
        assert_message(create("o1", title="OAuth client", credentials={"oauth": {
            "client_id": f"client-{scope}", "grant_type": "client_credentials",
            "client_secret": mgmt_secret(f"{scope}-o1-secret")}}))
        st["o1"] = ("oauth2", "OAuth client", True)
        verify()

    step("create o1 (oauth client_credentials, is_default absent) -> oauth2, default of its method", s_o1)

    def s_b3():
        assert_message(create("b3", title="Bearer three", is_default=False,
                              credentials={"bearer_token": mgmt_secret(f"{scope}-b3")}))
        st["b3"] = ("bearer", "Bearer three", False)
        verify()

    step("create b3 (bearer, is_default=false while others exist) -> not default", s_b3)

    def s_filters():
        by_type = state_of(listing(admin, ref, scope, auth_type="bearer"))
        want = {n: v for n, v in st.items() if v[0] == "bearer"}
        assert by_type == want, f"auth_type=bearer -> [{fmt(by_type)}], expected [{fmt(want)}]"
        defaults = state_of(listing(admin, ref, scope, fetch_default=True))
        want = {n: v for n, v in st.items() if v[2]}
        assert defaults == want, f"fetch_default=true -> [{fmt(defaults)}], expected [{fmt(want)}]"
        both = state_of(listing(admin, ref, scope, auth_type="none", fetch_default=True))
        want = {n: v for n, v in st.items() if v[2] and v[0] == "none"}
        assert both == want, f"auth_type=none&fetch_default=true -> [{fmt(both)}], expected [{fmt(want)}]"

    step("list filters: auth_type=bearer, fetch_default=true, both together", s_filters)

    def s_delete_default():
        assert_message(con.delete_credentials(connector_id_or_name=ref, consumer_scope=scope, credentials_name="b2"))
        del st["b2"]
        st["b1"] = ("bearer", "Bearer one (renamed)", True)  # the oldest other bearer, not b3
        verify()

    step("delete b2 (the bearer default) -> the oldest other bearer (b1, not the newer b3) promoted", s_delete_default)

    def s_delete_unknown():
        expect_sdk_error(lambda: con.delete_credentials(connector_id_or_name=ref, consumer_scope=scope,
                                                        credentials_name="nope"), 404)
        verify()

    step("delete an unknown credential name -> SDKError 404; state unchanged", s_delete_unknown)

    def s_delete_nondefault():
        assert_message(con.delete_credentials(connector_id_or_name=ref, consumer_scope=scope, credentials_name="b3"))
        del st["b3"]
        verify()

    step("delete b3 (not a default) -> removed, defaults unchanged", s_delete_nondefault)

    def s_delete_h1():
        assert_message(con.delete_credentials(connector_id_or_name=ref, consumer_scope=scope, credentials_name="h1"))
        del st["h1"]
        st["h2"] = ("none", "Headers two", True)
        verify()

    step("delete h1 (the only other none credential is h2) -> h2 promoted", s_delete_h1)

    if scope == "user":
        def s_delete_all():
            assert_message(con.delete_all_user_credentials(connector_id_or_name=ref))
            st.clear()
            verify()
            if after_user is not None:
                after_user()

        step("delete_all_user_credentials -> user listing empty; workspace/organization listings untouched",
             s_delete_all)

    SCOPE_STATES[scope] = st


SCOPE_STATES: Dict[str, State] = {}


# --------------------------------------------------------------------------------------------
# 4. injection end to end
# --------------------------------------------------------------------------------------------


def whoami(client: Mistral, ref: str, credentials_name: Optional[str] = None) -> Dict[str, Any]:
    kw: Dict[str, Any] = {}
    if credentials_name is not None:
        kw["credentials_name"] = credentials_name
    res = client.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref, arguments={}, **kw)
    assert isinstance(res, models.ConnectorToolCallResponse), type(res).__name__
    texts = [c.text for c in res.content if getattr(c, "type", None) == "text"]
    assert len(texts) == 1, f"whoami content {res.content!r}"
    WHOAMI_TEXTS.append(texts[0])
    return json.loads(texts[0])


WHOAMI_TEXTS: List[str] = []


def expect_whoami(client: Mistral, ref: str, auth: Optional[str], team: Any = "any",
                  credentials_name: Optional[str] = None) -> None:
    got = whoami(client, ref, credentials_name)
    assert got.get("authorization") == auth, f"upstream saw Authorization {got.get('authorization')!r}, expected {auth!r}"
    if team != "any":
        assert got.get("x_team") == team, f"upstream saw X-Team {got.get('x_team')!r}, expected {team!r}"


def expect_401(fn: Callable[[], Any]) -> None:
    exc = expect_sdk_error(fn, 401)
    assert "credentials_required" in (exc.body or ""), f"401 body does not mention credentials_required: {exc.body!r}"


def run_injection(gw: Gateway, admin: Mistral, users: Dict[str, Mistral], keys: Dict[str, str]) -> None:
    bob, dave, carol = users["bob"], users["dave"], users["carol"]
    port = free_port()
    fixture = Upstream("py-mcp-whoami", [MCP_PYTHON, PY_FIXTURE, "modern", str(port)], port, cwd=HERE)
    url = f"http://{LOOPBACK}:{port}/mcp"
    ref = "whoami_bearer"
    open_ref = "whoami_open"
    tA, tB, tW, tO = (injected_secret(x) for x in ("tA", "tB", "tW", "tO"))
    team_a, team_h = injected_secret("team-a"), injected_secret("team-h")
    try:
        if not check(f"python mcp fixture (modern, whoami tool) starts on {LOOPBACK}:{port}", fixture.start):
            return

        def c_connectors():
            c = admin.beta.connectors.create(request={
                "protocol": "mcp", "name": ref, "description": "interop: bearer credentials injected",
                "server": url, "visibility": "shared_org", "auth_methods": [{"method_type": "bearer"}]})
            assert isinstance(c, models.MCPConnector), type(c).__name__
            if not absent(c.supported_auth_methods):  # optional in the contract; if echoed it must match
                assert [m.method_type for m in c.supported_auth_methods] == ["bearer"], (
                    f"supported_auth_methods {c.supported_auth_methods!r}")
            c2 = admin.beta.connectors.create(request={
                "protocol": "mcp", "name": open_ref, "description": "interop: no auth method",
                "server": url, "visibility": "shared_org"})
            assert isinstance(c2, models.MCPConnector), type(c2).__name__

        if not check("create MCP connectors at the fixture: whoami_bearer (auth_methods [bearer], shared_org) "
                     "and whoami_open (no auth method)", c_connectors):
            return

        def c_open_no_cred():
            expect_whoami(bob, open_ref, None, None)

        check("connector without auth methods, no credential: whoami sees no Authorization (API key not forwarded)",
              c_open_no_cred)

        def c_open_headers():
            assert_message(bob.beta.connectors.create_credentials(
                connector_id_or_name=open_ref, consumer_scope="user", name="h",
                credentials={"headers": {"X-Team": team_h}}))
            creds = listing(bob, open_ref, "user")
            assert state_of(creds) == {"h": ("none", None, True)}, fmt(state_of(creds))
            expect_whoami(bob, open_ref, None, team_h)
            expect_whoami(bob, open_ref, None, team_h, credentials_name="h")

        check("headers-only user credential on it -> whoami sees X-Team as given, still no Authorization",
              c_open_headers)

        def c_no_cred():
            expect_401(lambda: bob.beta.connectors.list_tools(connector_id_or_name=ref))
            expect_401(lambda: bob.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref,
                                                             arguments={}))

        check("bearer connector, no credential anywhere: list_tools and call_tool -> SDKError 401 "
              "credentials_required", c_no_cred)

        def c_user_data_empty():
            c = bob.beta.connectors.get(connector_id_or_name=ref, fetch_user_data=True)
            assert isinstance(c, models.MCPConnector), type(c).__name__
            assert absent(c.connection_credentials) or c.connection_credentials == [], (
                f"connection_credentials {c.connection_credentials!r}")
            assert c.is_authenticated is False, f"is_authenticated {c.is_authenticated!r}"

        check("get(fetch_user_data=true) without credentials -> no connection_credentials, is_authenticated false",
              c_user_data_empty)

        def c_a():
            assert_message(bob.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="user", name="A", title="token A",
                credentials={"bearer_token": tA, "headers": {"X-Team": team_a}}))
            tools = bob.beta.connectors.list_tools(connector_id_or_name=ref)
            assert "whoami" in [t.name for t in tools], [t.name for t in tools]
            expect_whoami(bob, ref, f"Bearer {tA}", team_a)

        check("bob creates user credential A (token tA + X-Team) -> list_tools works; whoami sees "
              "'Bearer tA' and X-Team", c_a)

        def c_b():
            assert_message(bob.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="user", name="B", is_default=True,
                credentials={"bearer_token": tB}))
            assert state_of(listing(bob, ref, "user")) == {"A": ("bearer", "token A", False),
                                                           "B": ("bearer", None, True)}
            expect_whoami(bob, ref, f"Bearer {tB}", None)

        check("bob creates B (token tB, is_default=true) -> B default; whoami sees 'Bearer tB' (no X-Team)", c_b)

        def c_named():
            expect_whoami(bob, ref, f"Bearer {tA}", team_a, credentials_name="A")
            tools = bob.beta.connectors.list_tools(connector_id_or_name=ref, credentials_name="A")
            assert "whoami" in [t.name for t in tools]

        check("credentials_name=A -> whoami sees 'Bearer tA' (list_tools with it works too)", c_named)

        def c_nope():
            expect_sdk_error(lambda: whoami(bob, ref, "nope"), 404)
            expect_sdk_error(lambda: bob.beta.connectors.list_tools(connector_id_or_name=ref,
                                                                    credentials_name="nope"), 404)

        check("credentials_name=nope -> call_tool and list_tools SDKError 404", c_nope)

        def c_dave_401():
            # bob's tool list is cached by now: it must not be served to a caller without credentials
            expect_401(lambda: dave.beta.connectors.list_tools(connector_id_or_name=ref))
            expect_401(lambda: dave.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref,
                                                              arguments={}))
            expect_sdk_error(lambda: whoami(dave, ref, "A"), 404)  # bob's user credential is not dave's

        check("dave (same workspace, no credentials) -> 401 credentials_required on list_tools/call_tool; "
              "credentials_name=A (bob's) -> 404", c_dave_401)

        def c_workspace():
            assert_message(admin.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="workspace", name="W", credentials={"bearer_token": tW}))
            expect_whoami(dave, ref, f"Bearer {tW}")
            expect_whoami(bob, ref, f"Bearer {tB}")

        check("admin creates workspace credential W (tW) -> dave sees 'Bearer tW'; bob still 'Bearer tB' "
              "(user scope wins)", c_workspace)

        def c_named_workspace():
            expect_whoami(bob, ref, f"Bearer {tW}", credentials_name="W")

        check("bob with credentials_name=W (a workspace credential) -> 'Bearer tW'", c_named_workspace)

        def c_org():
            expect_401(lambda: carol.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref,
                                                               arguments={}))
            assert_message(admin.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="organization", name="O", credentials={"bearer_token": tO}))
            expect_whoami(carol, ref, f"Bearer {tO}")
            expect_whoami(dave, ref, f"Bearer {tW}")
            expect_whoami(bob, ref, f"Bearer {tB}")

        check("carol (other workspace, same org) 401 -> admin creates org credential O (tO) -> carol 'Bearer tO', "
              "dave still tW, bob still tB", c_org)

        def c_user_data():
            want = {
                "bob": {("A", "user", False), ("B", "user", True), ("W", "workspace", True), ("O", "org", True)},
                "dave": {("W", "workspace", True), ("O", "org", True)},
                "carol": {("O", "org", True)},
            }
            for who, expected in want.items():
                c = users[who].beta.connectors.get(connector_id_or_name=ref, fetch_user_data=True)
                assert isinstance(c, models.MCPConnector), type(c).__name__
                cc = [] if absent(c.connection_credentials) else c.connection_credentials
                got = {(x.name, x.scope, bool(x.is_default)) for x in cc}
                assert got == expected, f"{who}: connection_credentials {sorted(got)} != {sorted(expected)}"
                assert all(x.authentication_type == "bearer" for x in cc), [x.authentication_type for x in cc]
                assert c.is_authenticated is True, f"{who}: is_authenticated {c.is_authenticated!r}"
                raw = json.loads(RECORDER.last_body)
                for item in raw.get("connection_credentials") or []:
                    extra = set(item) - PUBLIC_KEYS
                    assert not extra, f"{who}: connection_credentials item with non-public keys {sorted(extra)}"

        check("get(fetch_user_data=true) -> connection_credentials = the caller's credentials in all scopes "
              "(bob A,B,W,O; dave W,O; carol O), is_authenticated true", c_user_data)

        def c_fallback():
            assert_message(bob.beta.connectors.delete_all_user_credentials(connector_id_or_name=ref))
            expect_whoami(bob, ref, f"Bearer {tW}")
            expect_sdk_error(lambda: whoami(bob, ref, "A"), 404)

        check("bob deletes all his user credentials -> falls back to the workspace credential ('Bearer tW'); "
              "credentials_name=A -> 404", c_fallback)

        def c_ws_deleted():
            assert_message(admin.beta.connectors.delete_credentials(
                connector_id_or_name=ref, consumer_scope="workspace", credentials_name="W"))
            expect_whoami(dave, ref, f"Bearer {tO}")

        check("admin deletes W -> dave falls back to the organization credential ('Bearer tO')", c_ws_deleted)

    finally:
        if VERBOSE:
            print(f"--- whoami fixture output ---\n{fixture.output()[-3000:]}", file=sys.stderr)
        fixture.stop()


def run_era_injection(admin: Mistral, users: Dict[str, Mistral], mode: str, path: str) -> None:
    """Per-caller injection against a 2025-era / legacy upstream, where the gateway keeps sessions:
    alternating callers must each reach the upstream with their own credential."""
    bob, dave = users["bob"], users["dave"]
    port = free_port()
    fixture = Upstream(f"py-mcp-whoami-{mode}", [MCP_PYTHON, PY_FIXTURE, mode, str(port)], port, cwd=HERE)
    ref = f"whoami_{mode.replace('-', '_')}"
    t_bob, t_ws, t_bob2 = (injected_secret(f"{mode}-{x}") for x in ("bob", "ws", "bob2"))
    try:
        if not check(f"python mcp fixture ({mode}) starts on {LOOPBACK}:{port}", fixture.start):
            return

        def c_alternate():
            c = admin.beta.connectors.create(request={
                "protocol": "mcp", "name": ref, "description": f"interop: injection, {mode}",
                "server": f"http://{LOOPBACK}:{port}{path}", "visibility": "shared_workspace",
                "auth_methods": [{"method_type": "bearer"}]})
            assert isinstance(c, models.MCPConnector), type(c).__name__
            expect_401(lambda: bob.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref,
                                                             arguments={}))
            assert_message(bob.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="user", name="mine", credentials={"bearer_token": t_bob}))
            assert_message(admin.beta.connectors.create_credentials(
                connector_id_or_name=ref, consumer_scope="workspace", name="ws", credentials={"bearer_token": t_ws}))
            for _ in range(2):
                expect_whoami(bob, ref, f"Bearer {t_bob}")
                expect_whoami(dave, ref, f"Bearer {t_ws}")
            expect_whoami(bob, ref, f"Bearer {t_ws}", credentials_name="ws")
            expect_whoami(bob, ref, f"Bearer {t_bob}")
            # a changed secret (upsert of the same name) is used from the next call on
            assert_message(bob.beta.connectors.update_credentials(
                connector_id_or_name=ref, consumer_scope="user", name="mine", credentials={"bearer_token": t_bob2}))
            expect_whoami(bob, ref, f"Bearer {t_bob2}")
            expect_whoami(dave, ref, f"Bearer {t_ws}")

        check(f"{mode}: bob (user credential) and dave (workspace credential) alternate -> each upstream call "
              f"carries the caller's own token; named selection; rotated token used at once", c_alternate)
    finally:
        if VERBOSE:
            print(f"--- {mode} fixture output ---\n{fixture.output()[-3000:]}", file=sys.stderr)
        fixture.stop()


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------


def run_checks(gw: Gateway) -> None:
    base = gw.base_url
    admin = sdk(base, gw.bootstrap_key)
    keys: Dict[str, str] = {"admin": gw.bootstrap_key}
    users: Dict[str, Mistral] = {}
    ref = "cred_scopes"

    def c_keys():
        keys["bob"] = gw.create_key("bob", "default", "default")
        keys["dave"] = gw.create_key("dave", "default", "default")
        keys["carol"] = gw.create_key("carol", "other", "default")
        keys["root2"] = gw.create_key("root2", "default", "default", admin=True)
        for who in ("bob", "dave", "carol", "root2"):
            users[who] = sdk(base, keys[who])

    if not check("keys create (bob, dave @default/default; carol @other/default; root2 admin @default/default)",
                 c_keys):
        return

    def c_connector():
        c = admin.beta.connectors.create(request={
            "protocol": "mcp", "name": ref, "description": "interop: credential management",
            "server": "http://127.0.0.1:9/mcp", "visibility": "shared_workspace"})
        assert isinstance(c, models.MCPConnector), type(c).__name__

    if not check("create connector cred_scopes (shared_workspace; never contacted)", c_connector):
        return

    # -- 1. the three scopes ---------------------------------------------------------------------
    run_scope(admin, ref, "workspace")
    run_scope(admin, ref, "organization")

    def others_untouched():
        for scope in ("workspace", "organization"):
            if scope in SCOPE_STATES:
                assert_state(admin, ref, scope, SCOPE_STATES[scope], "admin")

    run_scope(admin, ref, "user", after_user=others_untouched)

    def c_bad_scope_body():
        exc = expect_raises(lambda: admin.beta.connectors.create_credentials(
            connector_id_or_name=ref, consumer_scope="user", name="empty", credentials={}),
            errors.HTTPValidationError, 422)
        assert exc.data.detail, exc.body
        bad = "sbtok-ctl-" + secrets.token_hex(8)
        MGMT_SECRETS.append(bad)
        expect_raises(lambda: admin.beta.connectors.create_credentials(
            connector_id_or_name=ref, consumer_scope="user", name="ctl", credentials={"bearer_token": bad + "\n"}),
            errors.HTTPValidationError, 422)
        assert listing(admin, ref, "user") == [], "a rejected credential was stored"

    check("create with empty credentials {} or a bearer_token with a control character -> 422, nothing stored",
          c_bad_scope_body)

    def c_unknown_connector():
        expect_sdk_error(lambda: admin.beta.connectors.list_user_credentials(connector_id_or_name="no_such_conn"), 404)
        expect_sdk_error(lambda: admin.beta.connectors.create_credentials(
            connector_id_or_name="no_such_conn", consumer_scope="user", name="x",
            credentials={"bearer_token": mgmt_secret("unk")}), 404)

    check("credentials of an unknown connector -> SDKError 404 (list, create)", c_unknown_connector)

    # -- 2. non-admin ----------------------------------------------------------------------------
    bob = users["bob"]

    def c_forbidden():
        con = bob.beta.connectors
        for scope in ("workspace", "organization"):
            expect_sdk_error(lambda: con.create_credentials(
                connector_id_or_name=ref, consumer_scope=scope, name="bobs",
                credentials={"bearer_token": mgmt_secret(f"bob-{scope}")}), 403)
            expect_sdk_error(lambda: con.update_credentials(
                connector_id_or_name=ref, consumer_scope=scope, name="b1", title="hijack"), 403)
            expect_sdk_error(lambda: con.update_credentials(
                connector_id_or_name=ref, consumer_scope=scope, name="bobs2",
                credentials={"bearer_token": mgmt_secret(f"bob-{scope}-2")}), 403)
            expect_sdk_error(lambda: con.delete_credentials(
                connector_id_or_name=ref, consumer_scope=scope, credentials_name="b1"), 403)
            if scope in SCOPE_STATES:
                assert_state(admin, ref, scope, SCOPE_STATES[scope], "admin")

    check("non-admin bob: create / update / upsert / delete in workspace and organization scope -> "
          "SDKError 403; state unchanged", c_forbidden)

    def c_bob_sees():
        for scope in ("workspace", "organization"):
            assert scope in SCOPE_STATES, f"{scope} scenario did not complete"
            assert_state(bob, ref, scope, SCOPE_STATES[scope], "admin")

    check("non-admin bob (same workspace/org) lists the workspace and organization credentials admin made",
          c_bob_sees)

    def c_carol_sees():
        # carol is in another workspace of the same org; cred_scopes is shared_workspace -> invisible to her
        expect_sdk_error(lambda: users["carol"].beta.connectors.list_workspace_credentials(connector_id_or_name=ref),
                         404)

    check("carol (other workspace) cannot list credentials of a connector she cannot see -> SDKError 404",
          c_carol_sees)

    def c_bob_user():
        con = bob.beta.connectors
        assert_message(con.create_credentials(connector_id_or_name=ref, consumer_scope="user", name="b1",
                                              credentials={"bearer_token": mgmt_secret("bob-user-b1")}))
        assert_state(bob, ref, "user", {"b1": ("bearer", None, True)}, "bob")
        assert_state(admin, ref, "user", {}, "admin")  # user scope is per user
        assert_state(users["dave"], ref, "user", {}, "dave")
        assert_message(con.delete_all_user_credentials(connector_id_or_name=ref))
        assert_state(bob, ref, "user", {}, "bob")
        for scope in ("workspace", "organization"):
            assert_state(admin, ref, scope, SCOPE_STATES[scope], "admin")

    check("bob's own user credential: visible to him only; his delete-all leaves other scopes alone", c_bob_user)

    def c_second_admin():
        root2 = users["root2"]
        assert_message(root2.beta.connectors.create_credentials(
            connector_id_or_name=ref, consumer_scope="workspace", name="r2", title="by root2",
            credentials={"bearer_token": mgmt_secret("root2-ws")}))
        listed = state_of(listing(admin, ref, "workspace"))
        assert listed.get("r2") == ("bearer", "by root2", False), f"workspace listing [{fmt(listed)}]"
        creator = {c.name: c.creator_id for c in listing(admin, ref, "workspace")}
        assert creator["r2"] == "root2", f"creator_id {creator['r2']!r}"
        assert_message(root2.beta.connectors.delete_credentials(
            connector_id_or_name=ref, consumer_scope="workspace", credentials_name="r2"))
        assert_state(admin, ref, "workspace", SCOPE_STATES["workspace"], "admin")

    check("a second admin key (keys create --admin) manages workspace credentials (creator_id = its user)",
          c_second_admin)

    # -- 4. injection ----------------------------------------------------------------------------
    run_injection(gw, admin, users, keys)
    for mode, path in (("sessions", "/mcp"), ("stateless-json", "/mcp"), ("sse", "/sse")):
        run_era_injection(admin, users, mode, path)

    def c_no_key_upstream():
        assert WHOAMI_TEXTS, "no whoami answers recorded"
        leaks = [t for t in WHOAMI_TEXTS for k in keys.values() if k in t]
        assert not leaks, f"an API key reached the upstream: {leaks[:2]}"

    check("no gateway API key ever reached the upstream (every whoami answer)", c_no_key_upstream)

    # -- 3. secrets ------------------------------------------------------------------------------
    def c_mgmt_secrets():
        assert RECORDER.responses and MGMT_SECRETS, "nothing recorded"
        leaks = [(m, p, s, b[:160]) for (m, p, s, b) in RECORDER.responses for v in MGMT_SECRETS if v in b]
        assert not leaks, f"{len(leaks)} response bodies contain a credential secret: {one_line(leaks[:2])}"

    check(f"no credential secret (tokens, header values, oauth client_secret) in any of the "
          f"{len(RECORDER.responses)}+ SDK response bodies", c_mgmt_secrets)

    def c_injected_secrets():
        whoami_bodies = [b for (m, p, s, b) in RECORDER.responses if p.endswith("/tools/whoami/call")]
        assert any(INJECTED_SECRETS[0] in b for b in whoami_bodies), "recorder saw no whoami answer with tA"
        leaks = [(m, p, s, b[:160]) for (m, p, s, b) in RECORDER.responses for v in INJECTED_SECRETS
                 if v in b and not p.endswith("/tools/whoami/call")]
        assert not leaks, f"{len(leaks)} response bodies besides whoami's contain an injected token: {one_line(leaks[:2])}"

    check("injected tokens/header values appear only in the upstream whoami answers, in no gateway response",
          c_injected_secrets)

    def c_keys_never():
        leaks = [(m, p) for (m, p, s, b) in RECORDER.responses for k in keys.values() if k in b]
        assert not leaks, f"API keys in response bodies: {leaks[:3]}"

    check("no API key in any response body", c_keys_never)

    def c_logs():
        out = gw.output()
        leaks = [v[:14] for v in MGMT_SECRETS + INJECTED_SECRETS if v in out]
        assert not leaks, f"gateway log output contains {len(leaks)} secret values (prefixes {leaks[:3]})"

    check("no credential secret in the gateway's log output", c_logs)

    def c_at_rest():
        found = []
        for fn in os.listdir(gw.tmp):
            path = os.path.join(gw.tmp, fn)
            if fn.startswith("switchboard.db") and os.path.isfile(path):
                with open(path, "rb") as fh:
                    data = fh.read()
                found += [(fn, v[:14]) for v in MGMT_SECRETS + INJECTED_SECRETS if v.encode() in data]
        assert not found, f"secrets stored in clear: {found[:3]}"

    check("no credential secret stored in clear in the sqlite files", c_at_rest)


def main() -> None:
    main_with_gateway(__doc__.splitlines()[0], run_checks)


if __name__ == "__main__":
    main()
