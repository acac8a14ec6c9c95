#!/usr/bin/env python3
"""OAuth 2 for upstream connectors, end to end, against a real authorization server.

Contract under test: /work/shared/spec/connectors-api.md §4.3, §4.5, §5.6 (auth_url), §5.7
(authentication_methods), §8 (the workflows plugin's polling sequence), §7.6
(`credentials_refresh_failed`).

Peers (tests/interop/oauth_peers.py): `oidc-provider` from npm (PKCE S256, dynamic client
registration, resource indicators, refresh-token rotation with reuse detection) and an MCP
upstream on the official Python SDK `mcp` 2.3.0 that accepts only access tokens the provider
issued for its own resource (checked by introspection).

Driven with the official `mistralai` 3.7.0 SDK (get_authentication_methods, get_auth_url,
list_user_credentials, list_tools, call_tool), a programmatic browser through the provider's
login and consent pages, and the official `mcp` client through the gateway's data plane.
The refresh race runs two gateway processes on one PostgreSQL.

    python test_oauth_sdk.py --bin target/debug/switchboard
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import secrets
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from gateway import (
    RESULTS,
    VERBOSE,
    Gateway,
    check,
    expect_raises,
    expect_sdk_error,
    http_client,
    parse_bin,
    pin_no_proxy,
    print_gateway_tail,
    record_abort,
    sdk_client,
    summary_and_exit,
)
from mistralai.client import errors
from oauth_peers import browser_login, mcp_call, start_oauth_upstream, start_provider

PG_URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
APP_RETURN = "http://127.0.0.1:9/app"
# Access-token lifetime in the race: long enough for the 100 calls to finish within one lifetime
# (minus the 1 s refresh skew), so exactly one refresh is the right answer.
# Access-token lifetime in the refresh race: long enough for the 100 calls (7-13 s seen on a
# loaded 2-core machine, debug build), so that normally exactly one refresh is due.
RACE_TTL = 20
RACE_SKEW = 1


def query_of(url: str) -> Dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def user_credentials(m, ref: str) -> List[Any]:
    return list(m.beta.connectors.list_user_credentials(connector_id_or_name=ref).credentials or [])


def text_of(result: Any) -> str:
    content = result.get("content") if isinstance(result, dict) else getattr(result, "content", None)
    out = []
    for c in content or []:
        t = c.get("text") if isinstance(c, dict) else getattr(c, "text", None)
        if t:
            out.append(t)
    return "\n".join(out)


def call_whoami(m, ref: str, credentials_name: Optional[str] = None) -> str:
    kw = {"credentials_name": credentials_name} if credentials_name else {}
    r = m.beta.connectors.call_tool(tool_name="whoami", connector_id_or_name=ref, arguments={}, **kw)
    dumped = r.model_dump() if hasattr(r, "model_dump") else r
    return text_of(dumped)


def authorize(m, ref: str, username: str, **kw) -> Any:
    """get_auth_url, then the user's browser through login and consent; returns the last response."""
    url = m.beta.connectors.get_auth_url(connector_id_or_name=ref, **kw).auth_url
    return browser_login(url, username=username)


def run(binary: str) -> None:
    provider = start_provider(access_token_ttl=3600)
    up_path = start_oauth_upstream(provider.issuer, prm="path")
    up_root = start_oauth_upstream(provider.issuer, prm="root")
    up_bare = start_oauth_upstream(provider.issuer, prm="root", resource_metadata=False)
    env = {
        "SWITCHBOARD_OAUTH_RETURN_URLS": "http://127.0.0.1:9/app",
        "SWITCHBOARD_OAUTH_REFRESH_SKEW_SECONDS": str(RACE_SKEW),
    }
    gw = Gateway(binary, extra_env=env)
    others: List[Any] = []
    try:
        if not check("gateway starts", gw.start):
            return
        admin = sdk_client(gw.base_url, gw.bootstrap_key)
        alice_key = gw.create_key("alice", "ws", "org")
        alice = sdk_client(gw.base_url, alice_key)
        bob = sdk_client(gw.base_url, gw.create_key("bob", "ws", "org"))
        S: Dict[str, Any] = {}

        def create():
            c = alice.beta.connectors.create(request={
                "protocol": "mcp", "name": "oauth-path", "description": "OAuth upstream",
                "server": up_path.url, "visibility": "private"})
            S["ref"] = c.id
        check("alice creates an MCP connector with no auth_methods (server asks for OAuth)", create)
        ref = S.get("ref", "oauth-path")

        def methods():
            ms = alice.beta.connectors.get_authentication_methods(connector_id_or_name=ref)
            assert len(ms) == 1, ms
            m = ms[0]
            assert m.method_type == "oauth2" and m.grant_type == "authorization_code", m
            assert m.has_default_credentials is False
            md = m.oauth2_server_metadata
            assert md.issuer.rstrip("/") == provider.issuer.rstrip("/"), md.issuer
            assert md.token_endpoint.startswith(provider.issuer), md.token_endpoint
            assert md.x_source == "autodiscovery", md.x_source
            assert md.x_resource_url == up_path.url, md.x_resource_url
            assert "S256" in (md.code_challenge_methods_supported or []), md
        check("get_authentication_methods: oauth2/authorization_code with metadata discovered from the "
              "upstream's 401 resource_metadata (x_source=autodiscovery, x_resource_url=the /mcp URL)", methods)

        check("list_tools without credentials -> 401 (the plugin's 'needs re-auth' signal)",
              lambda: expect_sdk_error(lambda: alice.beta.connectors.list_tools(connector_id_or_name=ref), 401))

        def auth_url_shape():
            r = alice.beta.connectors.get_auth_url(connector_id_or_name=ref, credentials_name="work",
                                                   app_return_url=APP_RETURN)
            assert r.ttl == 600, r.ttl
            q = query_of(r.auth_url)
            assert r.auth_url.startswith(provider.issuer), r.auth_url
            assert q["response_type"] == "code" and q["code_challenge_method"] == "S256", q
            assert len(q["code_challenge"]) == 43, q["code_challenge"]
            assert q["resource"] == up_path.url, q
            assert q["redirect_uri"] == f"{gw.base_url}/oauth/callback", q["redirect_uri"]
            assert "alice" not in q["state"] and len(q["state"]) > 100, "state must be sealed"
            S["pending_url"] = r.auth_url
        check("get_auth_url -> {auth_url, ttl=600}: PKCE S256, resource, sealed state, "
              "redirect_uri on the gateway; client registered dynamically", auth_url_shape)

        def plugin_flow():
            # §8: publish auth_url, poll user credentials every 1.5 s (here 0.2 s), then list_tools.
            found: Dict[str, Any] = {}

            def poll():
                deadline = time.time() + 60
                while time.time() < deadline:
                    try:
                        creds = user_credentials(alice, ref)
                        if creds:
                            tools = alice.beta.connectors.list_tools(connector_id_or_name=ref,
                                                                     credentials_name="work")
                            found["tools"] = sorted(t.name if hasattr(t, "name") else t["name"] for t in tools)
                            return
                    except Exception as exc:  # noqa: BLE001 - transient errors are retried
                        found["last_error"] = repr(exc)
                    time.sleep(0.2)
            t = threading.Thread(target=poll)
            t.start()
            resp = browser_login(S["pending_url"], username="alice")
            S["callback_url"] = str(resp.request.url)
            assert resp.status_code == 303, (resp.status_code, resp.text[:300])
            assert resp.headers["location"] == APP_RETURN, resp.headers
            t.join(70)
            assert found.get("tools") == ["echo", "whoami"], found
        check("plugin polling sequence: browser login + consent -> callback 303 to the allowed "
              "app_return_url; credentials appear; list_tools(credentials_name=work) succeeds", plugin_flow)

        def listed():
            creds = user_credentials(alice, ref)
            assert [c.name for c in creds] == ["work"], creds
            c = creds[0]
            assert c.authentication_type == "oauth2" and c.scope == "user" and c.is_default, c
            assert c.status is not None and c.status.status_type == "valid", c.status
        check("the credential is listed: user scope, oauth2, default (first), status valid", listed)

        check("call_tool whoami with the new token -> alice (the upstream verified it by introspection)",
              lambda: _eq(call_whoami(alice, ref, "work"), "alice"))
        check("gateway /mcp with the official mcp client: whoami -> alice (default credential)",
              lambda: _eq(mcp_call(f"{gw.base_url}/v1/connectors-gateway/{ref}/mcp",
                                   alice_key, "whoami"), "alice"))

        def upstream_401():
            assert provider.revoke_access_tokens() >= 1
            S["registrations_before_reset"] = provider.stats()["registrations"]
            provider.reset_stats()
            assert mcp_call(f"{gw.base_url}/v1/connectors-gateway/{ref}/mcp", alice_key, "whoami") == "alice"
            assert provider.stats()["refresh_token"] == 1, provider.stats()
            assert provider.revoke_access_tokens() >= 1
            assert call_whoami(alice, ref, "work") == "alice"
            st = provider.stats()
            assert st["refresh_token"] == 2 and st["reuse_detected"] == 0, st
        check("upstream 401 on a token still valid by its expiry (revoked at the provider) -> one "
              "refresh and a transparent replay, on /mcp and on REST call_tool", upstream_401)

        def replay():
            before = len(user_credentials(alice, ref))
            with http_client() as h:
                r = h.get(S["callback_url"], follow_redirects=False)
            assert r.status_code == 400, (r.status_code, r.text[:200])
            assert "already" in r.text, r.text[:300]
            assert len(user_credentials(alice, ref)) == before
        check("the same callback (state) used twice -> 400 page, nothing changes", replay)

        def tampered():
            q = query_of(S["callback_url"])
            st = q["state"]
            bad = st[:-2] + ("A" if st[-2] != "A" else "B") + st[-1]
            with http_client() as h:
                r = h.get(f"{gw.base_url}/oauth/callback", params={"state": bad, "code": q["code"]})
                r2 = h.get(f"{gw.base_url}/oauth/callback", params={"code": "x"})
            assert r.status_code == 400 and "invalid" in r.text, (r.status_code, r.text[:200])
            assert r2.status_code == 400, r2.status_code
            assert r.headers["cache-control"] == "no-store"
        check("a tampered or missing state -> 400 page", tampered)

        def other_principal():
            expect_sdk_error(lambda: bob.beta.connectors.get_auth_url(connector_id_or_name=ref), 404)
            expect_sdk_error(lambda: user_credentials(bob, ref), 404)
            # alice's shared connector: bob authorizes for himself, never sees alice's credential
            alice.beta.connectors.create(request={
                "protocol": "mcp", "name": "oauth-shared", "description": "d",
                "server": up_path.url, "visibility": "shared_workspace"})
            r = authorize(bob, "oauth-shared", "bob", credentials_name="mine")
            assert r.status_code == 200 and "ready" in r.text, (r.status_code, r.text[:200])
            assert [c.name for c in user_credentials(bob, "oauth-shared")] == ["mine"]
            assert user_credentials(alice, "oauth-shared") == []
            assert call_whoami(bob, "oauth-shared") == "bob"
        check("another principal: no auth_url for alice's private connector (404); on a shared one bob's "
              "flow lands in bob's credentials only; no return URL -> success page", other_principal)

        def denied():
            url = alice.beta.connectors.get_auth_url(connector_id_or_name=ref, credentials_name="denied").auth_url
            r = browser_login(url, username="alice", approve=False)
            assert r.status_code == 400 and "access_denied" in r.text, (r.status_code, r.text[:300])
            assert [c.name for c in user_credentials(alice, ref)] == ["work"]
        check("consent denied -> provider error=access_denied -> clear 400 page, no credential", denied)

        def not_allowed_return():
            r = authorize(alice, ref, "alice", credentials_name="second", app_return_url="https://evil.test/x")
            assert r.status_code == 200 and "ready" in r.text, (r.status_code, r.text[:200])
            names = sorted(c.name for c in user_credentials(alice, ref))
            assert names == ["second", "work"], names
            creds = {c.name: c for c in user_credentials(alice, ref)}
            assert creds["work"].is_default and not creds["second"].is_default
        check("app_return_url outside the allow-list -> success page instead of a redirect; "
              "the second credential is not default", not_allowed_return)

        def bad_requests():
            expect_raises(lambda: alice.beta.connectors.get_auth_url(
                connector_id_or_name=ref, credentials_name="bad name"), errors.HTTPValidationError, 422)
            expect_sdk_error(lambda: alice.beta.connectors.get_auth_url(
                connector_id_or_name=ref, method_type="github_app"), 400)
            expect_sdk_error(lambda: alice.beta.connectors.get_auth_url(
                connector_id_or_name=ref, github_installation_link=True), 400)
            alice.beta.connectors.create(request={
                "protocol": "mcp", "name": "bearer-only", "description": "d", "server": up_path.url,
                "auth_methods": [{"method_type": "bearer"}]})
            expect_sdk_error(lambda: alice.beta.connectors.get_auth_url(connector_id_or_name="bearer-only"), 400)
            ms = alice.beta.connectors.get_authentication_methods(connector_id_or_name="bearer-only")
            assert [m.method_type for m in ms] == ["bearer"], ms
        check("auth_url: invalid credentials_name 422, github_app/installation link 400, "
              "bearer-only connector 400 (and its methods list only bearer)", bad_requests)

        for label, up in (("root well-known (resource_metadata -> root)", up_root),
                          ("bare 401, no resource_metadata (gateway probes path-aware then root)", up_bare)):
            def variant(up=up, label=label):
                name = "oauth-" + ("root" if up is up_root else "bare")
                alice.beta.connectors.create(request={
                    "protocol": "mcp", "name": name, "description": "d", "server": up.url})
                md = alice.beta.connectors.get_authentication_methods(connector_id_or_name=name)[0].oauth2_server_metadata
                assert md.issuer.rstrip("/") == provider.issuer.rstrip("/") and md.x_source == "autodiscovery"
                r = authorize(alice, name, "alice")
                assert r.status_code == 200, (r.status_code, r.text[:200])
                assert call_whoami(alice, name) == "alice"
            check(f"discovery from the {label}: methods, flow, tool call", variant)

        def registration_reused():
            st = provider.stats()
            total = st["registrations"] + S.get("registrations_before_reset", 0)
            assert total == 1, (total, st)
        check("one dynamic client registration (per issuer and redirect URI) reused by every flow",
              registration_reused)

        def secrets_sealed():
            db = os.path.join(gw.tmp, "switchboard.db")
            blob = b""
            for suffix in ("", "-wal"):
                if os.path.exists(db + suffix):
                    with open(db + suffix, "rb") as f:
                        blob += f.read()
            # the sealed forms are JSON objects: their keys would show if anything were in clear
            for word in (b'"access_token"', b'"refresh_token"', b'"client_secret"'):
                assert word not in blob, f"{word!r} in the database file"
            out = gw.output()
            assert "Bearer " not in out, "a bearer token reached the log"
        check("tokens and the registered client secret are sealed at rest; no token in the log", secrets_sealed)

        def client_credentials():
            md = provider.metadata()
            alice.beta.connectors.create(request={
                "protocol": "mcp", "name": "machine", "description": "d", "server": up_path.url,
                "auth_methods": [{
                    "method_type": "oauth2", "grant_type": "client_credentials",
                    "token_endpoint_auth_method": "client_secret_post",
                    "oauth2_server_metadata": {"issuer": md["issuer"], "token_endpoint": md["token_endpoint"],
                                               "x_resource_url": up_path.url}}]})
            alice.beta.connectors.create_credentials(
                connector_id_or_name="machine", consumer_scope="user", name="svc",
                credentials={"oauth": {"client_id": "mcp-machine", "client_secret": "mcp-machine-secret",
                                       "grant_type": "client_credentials"}})
            provider.reset_stats()
            assert call_whoami(alice, "machine") == "client:mcp-machine"
            assert mcp_call(f"{gw.base_url}/v1/connectors-gateway/machine/mcp", alice_key, "whoami") \
                == "client:mcp-machine"
            st = provider.stats()
            assert st["client_credentials"] == 1, st
            ms = alice.beta.connectors.get_authentication_methods(connector_id_or_name="machine")
            assert ms[0].grant_type == "client_credentials" and ms[0].oauth2_server_metadata.x_source == "provided"
            expect_sdk_error(lambda: alice.beta.connectors.get_auth_url(connector_id_or_name="machine"), 400)
        check("client-credentials grant (client_secret_post, provided metadata): one token, reused by "
              "REST and /mcp; methods show x_source=provided; no interactive auth_url", client_credentials)

        # --- refresh with a short-lived token provider, then a provider outage --------------------
        short = start_provider(access_token_ttl=3)
        others.append(short)
        up_short = start_oauth_upstream(short.issuer, prm="path")
        others.append(up_short)

        def refresh_ahead():
            alice.beta.connectors.create(request={
                "protocol": "mcp", "name": "short", "description": "d", "server": up_short.url})
            assert authorize(alice, "short", "alice").status_code == 200
            assert call_whoami(alice, "short") == "alice"
            time.sleep(3.2)
            short.reset_stats()
            assert call_whoami(alice, "short") == "alice"
            assert mcp_call(f"{gw.base_url}/v1/connectors-gateway/short/mcp",
                            alice_key, "whoami") == "alice"
            st = short.stats()
            assert st["refresh_token"] == 1 and st["reuse_detected"] == 0, st
        check("expired access token -> one refresh at the provider (rotated refresh token stored), "
              "REST and gateway calls succeed", refresh_ahead)

        def refresh_fails():
            short.stop()
            time.sleep(3.2)
            with http_client() as h:
                r = h.post(f"{gw.base_url}/v1/connectors-gateway/short/mcp",
                           headers={"Authorization": f"Bearer {alice_key}",
                                    "Accept": "application/json, text/event-stream",
                                    "Content-Type": "application/json"},
                           json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert r.status_code == 401, (r.status_code, r.text[:200])
            ps = r.headers.get("proxy-status", "")
            assert 'details="credentials_refresh_failed"' in ps, ps
            c = user_credentials(alice, "short")[0]
            assert c.status.status_type == "error" and c.status.error_message == "oauth refresh error", c.status
            expect_sdk_error(lambda: alice.beta.connectors.list_tools(connector_id_or_name="short"), 401)
        check("provider down at refresh time -> gateway 401 credentials_refresh_failed, credential "
              "status error 'oauth refresh error', REST 401", refresh_fails)

        # --- expired state ---------------------------------------------------------------------------
        gw_ttl = Gateway(binary, extra_env={"SWITCHBOARD_OAUTH_STATE_TTL_SECONDS": "1"})
        others.append(gw_ttl)

        def expired_state():
            gw_ttl.start()
            m = sdk_client(gw_ttl.base_url, gw_ttl.bootstrap_key)
            m.beta.connectors.create(request={"protocol": "mcp", "name": "x", "description": "d",
                                              "server": up_path.url})
            url = m.beta.connectors.get_auth_url(connector_id_or_name="x").auth_url
            time.sleep(2.1)
            r = browser_login(url, username="admin")
            assert r.status_code == 400 and "expired" in r.text, (r.status_code, r.text[:200])
            assert user_credentials(m, "x") == []
        check("an expired state -> 400 page, no credential", expired_state)

        race(binary, S)
    finally:
        for o in others:
            try:
                o.stop()
            except Exception:  # noqa: BLE001
                pass
        gw.stop()
        for p in (up_path, up_root, up_bare, provider):
            p.stop()
        if VERBOSE or (RESULTS and not all(RESULTS)):
            print_gateway_tail(gw)


def race(binary: str, S: Dict[str, Any]) -> None:
    """Two gateways on one PostgreSQL; tokens expire in seconds; 100 concurrent calls → one refresh."""
    schema = "oauth_race_" + secrets.token_hex(4)
    vault_key = base64.b64encode(os.urandom(32)).decode()
    env = {
        "SWITCHBOARD_STORE_URL": PG_URL,
        "SWITCHBOARD_STORE_POSTGRES_SCHEMA": schema,
        "SWITCHBOARD_VAULT_KEY": vault_key,
        "SWITCHBOARD_OAUTH_REFRESH_SKEW_SECONDS": str(RACE_SKEW),
        "SWITCHBOARD_STORE_MAX_CONNECTIONS": "16",
    }
    provider = start_provider(access_token_ttl=RACE_TTL)
    up = start_oauth_upstream(provider.issuer, prm="path")
    a = Gateway(binary, extra_env=env)
    b = Gateway(binary, extra_env=env)
    try:
        if not check("two gateways on one PostgreSQL schema start", lambda: (a.start(), b.start())):
            return
        key = a.create_key("alice", "ws", "org")
        ma, mb = sdk_client(a.base_url, key), sdk_client(b.base_url, key)

        def setup():
            ma.beta.connectors.create(request={"protocol": "mcp", "name": "race", "description": "d",
                                               "server": up.url})
            assert authorize(ma, "race", "alice").status_code == 200
            assert call_whoami(mb, "race") == "alice"
        check("race setup: authorized through gateway A, usable through gateway B", setup)

        def hundred_calls():
            time.sleep(RACE_TTL + 0.3)  # the access token has expired on both replicas
            provider.reset_stats()
            started = time.monotonic()

            def one(i: int) -> str:
                m = ma if i % 2 == 0 else mb
                if i % 4 < 2:
                    return call_whoami(m, "race")
                gw = a if i % 2 == 0 else b
                return mcp_call(f"{gw.base_url}/v1/connectors-gateway/race/mcp", key, "whoami")
            with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
                results = list(pool.map(one, range(100)))
            took = time.monotonic() - started
            print(f"     (100 calls in {took:.1f} s)", flush=True)
            bad = [r for r in results if r != "alice"]
            assert not bad, bad[:3]
            st = provider.stats()
            # One refresh per token lifetime: exactly one unless the calls outlived the new token
            # too (then its own expiry legitimately causes one more, never one per caller).
            lifetimes = 1 + int(took // (RACE_TTL - RACE_SKEW))
            if lifetimes == 1:
                assert st["refresh_token"] == 1, st
            else:
                print(f"     (the calls outlived {lifetimes - 1} refreshed token(s))", flush=True)
                assert 1 <= st["refresh_token"] <= lifetimes, st
            assert st["reuse_detected"] == 0 and st["refresh_errors"] == 0, st
        check("100 concurrent tool calls (REST and /mcp) over two gateways after expiry -> exactly one "
              "refresh at the provider, no reuse detected, no call fails", hundred_calls)
    finally:
        a.stop()
        b.stop()
        up.stop()
        provider.stop()
        subprocess.run(["psql", PG_URL, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                       capture_output=True, timeout=30)


def _eq(actual: Any, expected: Any) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


def main() -> None:
    binary = parse_bin(__doc__ or "")
    pin_no_proxy()
    try:
        run(binary)
    except Exception as exc:  # noqa: BLE001 - a bug in the harness itself
        record_abort(exc)
    summary_and_exit()


if __name__ == "__main__":
    main()
