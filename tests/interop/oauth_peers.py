#!/usr/bin/env python3
"""OAuth 2 peers for the interop tests: a real authorization server and an OAuth-protected MCP upstream.

- `start_provider(access_token_ttl)`: oauth_provider.mjs (`oidc-provider` from npm, see package.json)
  on an ephemeral 127.0.0.1 port -> `Provider` (.issuer, .stats(), .reset_stats(), .stop()).
- `start_oauth_upstream(issuer, prm="path"|"root", resource_metadata=True)`: oauth_mcp_server.py
  (official Python SDK `mcp` 2.3.0) -> `OAuthUpstream` (.url = the /mcp URL = its RFC 8707 resource,
  .base, .prm_url, .stats(), .reset_stats(), .stop()).
- `browser_login(auth_url, username="alice", password="pass", approve=True)`: plays the user's
  browser through the provider's login and consent pages (fresh cookie jar per call, so both pages
  always show) and returns the response of the client's redirect_uri.
- small client-side helpers: `pkce_pair()`, `parse_www_authenticate()`, `CallbackListener`.

Run standalone, it is a self-check of the peers without the gateway (a full authorization code +
PKCE flow, refresh with rotation, reuse detection, audience checks, the PRM variants):

    .venv-interop/bin/python tests/interop/oauth_peers.py

What a client (the gateway) meets at the provider:
- discovery: `<issuer>/.well-known/oauth-authorization-server` (and `/.well-known/openid-configuration`);
  endpoints /auth, /token, /reg, /token/introspection, /token/revocation; issuer has no path.
- registration (RFC 7591, open): `token_endpoint_auth_method` client_secret_basic (default),
  client_secret_post or none; grant_types default to [authorization_code, refresh_token]; any http(s)
  redirect URI (127.0.0.1 / localhost, any port) is accepted and must later match exactly; a `scope`
  in the registration must be drawn from openid / offline_access / mcp and then bounds what the
  client may request.
- authorization: PKCE S256 is mandatory; `resource` (the upstream's /mcp URL) must be sent here for
  the tokens to be bound to it; `scope=mcp` (a missing scope defaults to `mcp`); the redirect back
  carries code, state and iss (RFC 9207).
- token / refresh: `resource` is optional (defaults to the one granted; another one is invalid_target);
  every authorization_code grant returns a refresh token (no offline_access needed); each refresh
  rotates it; presenting a rotated one answers invalid_grant and revokes the grant (all its tokens);
  reusing an authorization code revokes the grant too.

Environment: INTEROP_NODE (node binary for the provider, default `node` on PATH),
INTEROP_MCP_PYTHON (python for the upstream, default this interpreter), INTEROP_VERBOSE=1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from gateway import (  # noqa: E402
    LOOPBACK,
    REQUEST_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    VERBOSE,
    Upstream,
    check,
    httpx,
    pin_no_proxy,
    record_abort,
    summary_and_exit,
)

from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

PROVIDER_SCRIPT = os.path.join(HERE, "oauth_provider.mjs")
UPSTREAM_SCRIPT = os.path.join(HERE, "oauth_mcp_server.py")
NODE = os.environ.get("INTEROP_NODE") or "node"
MCP_PYTHON = os.environ.get("INTEROP_MCP_PYTHON") or sys.executable

RESOURCE_SCOPE = "mcp"
RESOURCE_CLIENT = ("mcp-resource", "mcp-resource-secret")  # introspection (the upstream's client)
MACHINE_CLIENT = ("mcp-machine", "mcp-machine-secret")     # static client_credentials client
PASSWORD = "pass"

_READY = re.compile(r"^READY (\S+)\s*$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# child processes
# --------------------------------------------------------------------------------------------


class ReadyLineProcess(Upstream):
    """An `Upstream` child that picks its own port and announces `READY <url>` on stdout."""

    def __init__(self, name: str, argv: List[str], cwd: Optional[str] = HERE):
        super().__init__(name, argv, 0, cwd=cwd)
        self.ready_url: Optional[str] = None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            found = _READY.search(self.output())
            if found:
                self.ready_url = found.group(1)
                self.port = urlsplit(self.ready_url).port or 0
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode} before it "
                                   f"was ready; output:\n{self.output()}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} printed no READY line after {timeout:.0f}s; "
                                   f"output:\n{self.output()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _get_json(self, url: str) -> Dict[str, Any]:
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as c:
            r = c.get(url)
            r.raise_for_status()
            return r.json()

    def _post(self, url: str) -> None:
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as c:
            c.post(url).raise_for_status()


class Provider(ReadyLineProcess):
    """oauth_provider.mjs; `issuer` is `http://127.0.0.1:<port>` (no path, no trailing slash)."""

    def __init__(self, access_token_ttl: int, node: str = NODE):
        super().__init__("oauth-provider", [node, PROVIDER_SCRIPT, "--port", "0",
                                            "--access-token-ttl", str(int(access_token_ttl))])
        self.access_token_ttl = int(access_token_ttl)

    @property
    def issuer(self) -> str:
        assert self.ready_url, "provider not started"
        return self.ready_url

    def metadata(self) -> Dict[str, Any]:
        return self._get_json(self.issuer + "/.well-known/oauth-authorization-server")

    def stats(self) -> Dict[str, int]:
        return self._get_json(self.issuer + "/__stats")

    def revoke_access_tokens(self) -> int:
        """Destroys every access token issued so far (refresh tokens stay valid)."""
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as h:
            r = h.post(f"{self.issuer}/__revoke-access-tokens")
            r.raise_for_status()
            return int(r.json()["revoked"])

    def reset_stats(self) -> None:
        self._post(self.issuer + "/__stats/reset")


class OAuthUpstream(ReadyLineProcess):
    """oauth_mcp_server.py; `url` is its MCP endpoint `http://127.0.0.1:<port>/mcp` (= its resource)."""

    def __init__(self, issuer: str, prm: str = "path", resource_metadata: bool = True,
                 required_scope: Optional[str] = None, python: str = MCP_PYTHON):
        if prm not in ("path", "root"):
            raise ValueError(f"prm must be 'path' or 'root', not {prm!r}")
        argv = [python, UPSTREAM_SCRIPT, "--port", "0", "--issuer", issuer, "--prm", prm]
        if not resource_metadata:
            argv.append("--no-resource-metadata")
        if required_scope:
            argv += ["--required-scope", required_scope]
        suffix = prm + ("" if resource_metadata else "-bare")
        super().__init__(f"oauth-upstream-{suffix}", argv)
        self.prm = prm
        self.resource_metadata = resource_metadata

    @property
    def url(self) -> str:
        assert self.ready_url, "upstream not started"
        return self.ready_url

    @property
    def base(self) -> str:
        return self.url[: -len("/mcp")]

    @property
    def prm_url(self) -> str:
        """Where this upstream serves its RFC 9728 document."""
        return self.base + ("/.well-known/oauth-protected-resource" +
                            ("/mcp" if self.prm == "path" else ""))

    def stats(self) -> Dict[str, Any]:
        return self._get_json(self.base + "/__stats")

    def reset_stats(self) -> None:
        self._post(self.base + "/__stats/reset")


def start_provider(access_token_ttl: int = 3600) -> Provider:
    return Provider(access_token_ttl).start()  # type: ignore[return-value]


def start_oauth_upstream(issuer: str, prm: str = "path", resource_metadata: bool = True,
                         required_scope: Optional[str] = None) -> OAuthUpstream:
    return OAuthUpstream(issuer, prm, resource_metadata, required_scope).start()  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# the user's browser
# --------------------------------------------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page: id, method, action and its named input values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: List[Dict[str, Any]] = []
        self._current: Optional[Dict[str, Any]] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = {"id": a.get("id", ""), "method": (a.get("method") or "get").lower(),
                             "action": a.get("action", ""), "fields": {}, "types": set()}
            self.forms.append(self._current)
        elif tag in ("input", "button", "textarea", "select") and self._current is not None:
            kind = a.get("type", "text").lower()
            self._current["types"].add(kind)
            if a.get("name") and tag != "button" and kind not in ("submit", "button"):
                self._current["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(html_text: str) -> List[Dict[str, Any]]:
    parser = _Forms()
    parser.feed(html_text)
    parser.close()
    return parser.forms


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def browser_login(auth_url: str, username: str = "alice", password: str = PASSWORD,
                  approve: bool = True, max_steps: int = 25) -> "httpx.Response":
    """Act like the user's browser for one authorization request.

    GETs `auth_url` with a fresh cookie jar, follows redirects (loopback only) into the provider's
    login page, submits it (username / password), then submits the consent page (`approve=True`)
    or its Deny form (`approve=False`: the provider redirects back with error=access_denied).
    The first request to the client's redirect_uri origin (taken from the `redirect_uri` parameter of
    the authorization request) is made and its response returned; further redirects are followed
    only while they stay on that origin (a 30x leaving it is returned as is). A page that is neither
    a login nor a consent page (an error page, the login page again after a wrong password) is
    returned as is too.
    """
    callback: Optional[Tuple[str, str, Optional[int]]] = None
    at_callback = False
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=REQUEST_TIMEOUT_S) as browser:
        method, url, data = "GET", auth_url, None
        last_page = None  # "login" | "consent": a page shown twice in a row is returned
        for _ in range(max_steps):
            if callback is None:
                q = parse_qs(urlsplit(url).query)
                if q.get("redirect_uri") and q.get("client_id"):
                    callback = _origin(q["redirect_uri"][0])
            if callback is not None and _origin(url) == callback:
                at_callback = True
            if method == "GET":
                resp = browser.get(url)
            else:
                resp = browser.post(url, data=data)
            if resp.is_redirect:
                target = urljoin(url, resp.headers["location"])
                if at_callback and _origin(target) != callback:
                    return resp
                if not _loopback(target):
                    return resp  # never leave the loopback interface
                method, url, data = "GET", target, None
                continue
            if at_callback:
                return resp
            ctype = resp.headers.get("content-type", "")
            if resp.status_code != 200 or "html" not in ctype:
                return resp
            forms = {f["id"]: f for f in _forms(resp.text)}
            if "login" in forms or any("password" in f["types"] for f in forms.values()):
                if last_page == "login":
                    return resp  # login refused (wrong password)
                last_page = "login"
                form = forms.get("login") or next(f for f in forms.values() if "password" in f["types"])
                fields = dict(form["fields"])
                fields.update({"username": username, "password": password})
            elif "consent" in forms:
                last_page = "consent"
                form = forms["consent"] if approve else forms.get("abort")
                if form is None:
                    raise RuntimeError("consent page without a Deny (abort) form")
                fields = dict(form["fields"])
            else:
                return resp
            target = urljoin(str(resp.url), form["action"] or str(resp.url))
            if form["method"] == "post":
                method, url, data = "POST", target, fields
            else:
                sep = "&" if urlsplit(target).query else "?"
                method, url, data = "GET", target + sep + urlencode(fields), None
        raise RuntimeError(f"browser_login: no answer from the redirect_uri after {max_steps} steps (at {url})")


# --------------------------------------------------------------------------------------------
# client-side helpers
# --------------------------------------------------------------------------------------------


def pkce_pair() -> Tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
    return verifier, challenge.decode("ascii")


def parse_www_authenticate(value: str) -> Tuple[str, Dict[str, str]]:
    """`Bearer a="b", c=d` -> ("bearer", {"a": "b", "c": "d"}) (one challenge)."""
    scheme, _, rest = value.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in re.finditer(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest)}
    return scheme.lower(), params


class CallbackListener:
    """A tiny redirect_uri endpoint on 127.0.0.1: records each query, answers 200 `callback received`."""

    def __init__(self, path: str = "/oauth/callback"):
        self.path = path
        self.hits: List[Dict[str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path != listener.path:
                    self.send_error(404)
                    return
                listener.hits.append({k: v[0] for k, v in parse_qs(parts.query).items()})
                body = b"callback received"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://{LOOPBACK}:{self.port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self) -> Dict[str, str]:
        assert self.hits, "the redirect_uri was never called"
        return self.hits[-1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# self-check (no gateway)
# --------------------------------------------------------------------------------------------


async def _mcp_call(url: str, token: str, tool: str, args: Dict[str, Any]) -> str:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, trust_env=False,
                                 timeout=httpx.Timeout(REQUEST_TIMEOUT_S), follow_redirects=False) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool(tool, args)
            text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
            if result.is_error:
                raise AssertionError(f"{tool} returned an error: {text}")
            return text


def mcp_call(url: str, token: str, tool: str, args: Optional[Dict[str, Any]] = None) -> str:
    """Call one tool on an OAuth upstream with the official `mcp` client (bounded)."""
    return asyncio.run(asyncio.wait_for(_mcp_call(url, token, tool, args or {}), 30))


INIT_BODY = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "oauth-peers-probe", "version": "0"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def probe(url: str, token: Optional[str] = None) -> "httpx.Response":
    """One raw MCP `initialize` POST (with a bearer token if given)."""
    headers = dict(MCP_HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as c:
        return c.post(url, json=INIT_BODY, headers=headers)


def self_check() -> None:
    pin_no_proxy()
    state: Dict[str, Any] = {}
    procs: List[Upstream] = []
    cb = CallbackListener()
    http = httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S, follow_redirects=False)
    try:
        provider = Provider(access_token_ttl=3)
        procs.append(provider)

        def start_all():
            provider.start()
            ups = [OAuthUpstream(provider.issuer, "path"), OAuthUpstream(provider.issuer, "root"),
                   OAuthUpstream(provider.issuer, "root", resource_metadata=False)]
            for u in ups:  # the three Python upstreams start in parallel
                procs.append(u)
                u.launch()
            for u in ups:
                u.wait_ready(STARTUP_TIMEOUT_S)
            state["up"], state["up_root"], state["up_bare"] = ups
            assert provider.issuer.startswith(f"http://{LOOPBACK}:"), provider.issuer

        if not check("provider and 3 upstreams start and print READY", start_all):
            return
        up: OAuthUpstream = state["up"]
        issuer = provider.issuer

        def discovery():
            r = probe(up.url)
            assert r.status_code == 401, f"unauthenticated probe: HTTP {r.status_code}"
            scheme, params = parse_www_authenticate(r.headers.get("www-authenticate", ""))
            assert scheme == "bearer", r.headers.get("www-authenticate")
            assert params.get("resource_metadata") == up.prm_url, params
            prm = http.get(params["resource_metadata"]).json()
            assert prm["resource"] == up.url, prm
            assert prm["authorization_servers"] == [issuer], prm
            assert prm.get("scopes_supported") == [RESOURCE_SCOPE], prm
            meta = http.get(prm["authorization_servers"][0] + "/.well-known/oauth-authorization-server").json()
            assert meta["issuer"] == issuer, meta
            assert "S256" in meta["code_challenge_methods_supported"], meta
            for key in ("authorization_endpoint", "token_endpoint", "registration_endpoint",
                        "introspection_endpoint"):
                assert meta.get(key, "").startswith(issuer + "/"), (key, meta.get(key))
            for m in ("client_secret_post", "client_secret_basic", "none"):
                assert m in meta["token_endpoint_auth_methods_supported"], meta
            state["meta"] = meta

        if not check("upstream 401 -> resource_metadata -> PRM -> AS metadata (RFC 9728 / 8414)", discovery):
            return
        meta = state["meta"]

        def register():
            r = http.post(meta["registration_endpoint"], json={
                "client_name": "oauth-peers self-check",
                "redirect_uris": [cb.redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_post",
            })
            assert r.status_code == 201, f"registration: HTTP {r.status_code} {r.text}"
            client = r.json()
            assert client.get("client_id") and client.get("client_secret"), client
            state["client"] = client
            r = http.post(meta["registration_endpoint"], json={
                "client_name": "oauth-peers public", "redirect_uris": [cb.redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                "token_endpoint_auth_method": "none", "scope": RESOURCE_SCOPE,
            })
            assert r.status_code == 201 and "client_secret" not in r.json(), f"public: {r.status_code} {r.text}"
            state["public"] = r.json()

        if not check("dynamic client registration (client_secret_post; none + scope mcp; http loopback redirect_uri)",
                     register):
            return
        client = state["client"]
        creds = {"client_id": client["client_id"], "client_secret": client["client_secret"]}

        def authorize():
            verifier, challenge = pkce_pair()
            st = secrets.token_urlsafe(16)
            url = meta["authorization_endpoint"] + "?" + urlencode({
                "response_type": "code", "client_id": client["client_id"], "redirect_uri": cb.redirect_uri,
                "scope": RESOURCE_SCOPE, "state": st, "code_challenge": challenge,
                "code_challenge_method": "S256", "resource": up.url,
            })
            resp = browser_login(url)
            assert resp.status_code == 200 and resp.text == "callback received", \
                f"final response: HTTP {resp.status_code} {resp.text[:300]}"
            hit = cb.last()
            assert hit.get("state") == st and hit.get("code"), hit
            assert hit.get("iss") == issuer, hit
            r = http.post(meta["token_endpoint"], data={
                "grant_type": "authorization_code", "code": hit["code"], "redirect_uri": cb.redirect_uri,
                "code_verifier": verifier, "resource": up.url, **creds,
            })
            assert r.status_code == 200, f"code exchange: HTTP {r.status_code} {r.text}"
            tok = r.json()
            assert tok["token_type"].lower() == "bearer" and tok.get("refresh_token"), tok
            assert tok.get("scope") == RESOURCE_SCOPE and 1 <= tok["expires_in"] <= 3, tok
            tok["obtained"] = time.monotonic()
            state["tok"] = tok

        if not check("authorization code + PKCE S256 + resource: browser login, consent, code exchange",
                     authorize):
            return
        tok = state["tok"]

        check("upstream accepts the access token: whoami == alice, echo",
              lambda: (_expect(mcp_call(up.url, tok["access_token"], "whoami"), "alice"),
                       _expect(mcp_call(up.url, tok["access_token"], "echo", {"text": "héllo"}), "héllo")))

        def expired():
            time.sleep(max(0.0, tok["obtained"] + tok["expires_in"] + 0.3 - time.monotonic()))
            r = probe(up.url, tok["access_token"])
            assert r.status_code == 401, f"expired token: HTTP {r.status_code}"
            assert "invalid_token" in r.headers.get("www-authenticate", ""), r.headers

        check("upstream rejects the access token once expired (401 invalid_token)", expired)

        def refresh():
            r = http.post(meta["token_endpoint"], data={
                "grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "resource": up.url, **creds})
            assert r.status_code == 200, f"refresh: HTTP {r.status_code} {r.text}"
            new = r.json()
            assert new["refresh_token"] != tok["refresh_token"], "refresh token not rotated"
            assert new["access_token"] != tok["access_token"] and new.get("scope") == RESOURCE_SCOPE, new
            _expect(mcp_call(up.url, new["access_token"], "whoami"), "alice")
            # a second rotation, this time without `resource`: the grant's resource is used
            r = http.post(meta["token_endpoint"], data={
                "grant_type": "refresh_token", "refresh_token": new["refresh_token"], **creds})
            assert r.status_code == 200, f"refresh without resource: HTTP {r.status_code} {r.text}"
            newer = r.json()
            assert newer["refresh_token"] not in (new["refresh_token"], tok["refresh_token"]), newer
            _expect(mcp_call(up.url, newer["access_token"], "whoami"), "alice")
            state["new"], state["newer"] = new, newer

        if not check("refresh (with and without resource) rotates the refresh token; new access token works",
                     refresh):
            return

        def reuse():
            before = provider.stats()
            r = http.post(meta["token_endpoint"], data={
                "grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "resource": up.url, **creds})
            assert r.status_code == 400 and r.json().get("error") == "invalid_grant", f"{r.status_code} {r.text}"
            after = provider.stats()
            assert after["reuse_detected"] == before["reuse_detected"] + 1, (before, after)
            assert after["refresh_errors"] == before["refresh_errors"] + 1, (before, after)
            # reuse detection revoked the whole grant: the latest refresh and access tokens are dead too
            r = http.post(meta["token_endpoint"], data={
                "grant_type": "refresh_token", "refresh_token": state["newer"]["refresh_token"], **creds})
            assert r.status_code == 400 and r.json().get("error") == "invalid_grant", f"{r.status_code} {r.text}"
            r = probe(up.url, state["newer"]["access_token"])
            assert r.status_code == 401, f"access token of the revoked grant: HTTP {r.status_code}"
            # presenting the old token once more still counts as reuse
            http.post(meta["token_endpoint"], data={
                "grant_type": "refresh_token", "refresh_token": tok["refresh_token"], **creds})
            assert provider.stats()["reuse_detected"] == before["reuse_detected"] + 2, provider.stats()

        check("reusing a rotated refresh token: invalid_grant, reuse_detected +1, grant revoked", reuse)

        def other_resource():
            other = "http://127.0.0.1:9/other/mcp"
            r = http.post(meta["token_endpoint"], auth=MACHINE_CLIENT, data={
                "grant_type": "client_credentials", "resource": other, "scope": RESOURCE_SCOPE})
            assert r.status_code == 200, f"client_credentials: HTTP {r.status_code} {r.text}"
            before = up.stats()
            r2 = probe(up.url, r.json()["access_token"])
            assert r2.status_code == 401, f"token for {other}: HTTP {r2.status_code}"
            assert up.stats()["tokens_wrong_audience"] == before["tokens_wrong_audience"] + 1, up.stats()
            r = http.post(meta["token_endpoint"], auth=MACHINE_CLIENT, data={
                "grant_type": "client_credentials", "resource": up.url, "scope": RESOURCE_SCOPE})
            assert r.status_code == 200, f"client_credentials: HTTP {r.status_code} {r.text}"
            _expect(mcp_call(up.url, r.json()["access_token"], "whoami"), "client:mcp-machine")

        check("a token for another resource is rejected (401); client_credentials for this one works",
              other_resource)

        def deny():
            verifier, challenge = pkce_pair()
            pub = state["public"]
            url = meta["authorization_endpoint"] + "?" + urlencode({
                "response_type": "code", "client_id": pub["client_id"], "redirect_uri": cb.redirect_uri,
                "scope": RESOURCE_SCOPE, "state": "deny-1", "code_challenge": challenge,
                "code_challenge_method": "S256", "resource": up.url,
            })
            resp = browser_login(url, username="bob", approve=False)
            assert resp.status_code == 200, resp.status_code
            hit = cb.last()
            assert hit.get("error") == "access_denied" and hit.get("state") == "deny-1", hit
            # a wrong password never reaches the redirect_uri: the login page comes back
            n = len(cb.hits)
            resp = browser_login(url, username="bob", password="wrong")
            assert resp.status_code == 200 and "Invalid username or password" in resp.text, resp.text[:300]
            assert len(cb.hits) == n, cb.hits[n:]
            # PKCE is mandatory
            r = http.get(meta["authorization_endpoint"] + "?" + urlencode({
                "response_type": "code", "client_id": client["client_id"], "redirect_uri": cb.redirect_uri,
                "scope": RESOURCE_SCOPE, "state": "nopkce", "resource": up.url}))
            assert r.status_code in (302, 303), r.status_code
            q = parse_qs(urlsplit(r.headers["location"]).query)
            assert q.get("error") == ["invalid_request"], q

        check("deny at consent -> error=access_denied; wrong password; PKCE required", deny)

        def public_defaults():
            pub = state["public"]
            verifier, challenge = pkce_pair()
            url = meta["authorization_endpoint"] + "?" + urlencode({  # no scope: the default `mcp`
                "response_type": "code", "client_id": pub["client_id"], "redirect_uri": cb.redirect_uri,
                "state": "pub-1", "code_challenge": challenge, "code_challenge_method": "S256",
                "resource": up.url,
            })
            resp = browser_login(url, username="carol")
            assert resp.status_code == 200, resp.status_code
            hit = cb.last()
            assert hit.get("state") == "pub-1" and hit.get("code"), hit
            r = http.post(meta["token_endpoint"], data={  # no resource: the authorized one
                "grant_type": "authorization_code", "code": hit["code"], "redirect_uri": cb.redirect_uri,
                "code_verifier": verifier, "client_id": pub["client_id"]})
            assert r.status_code == 200, f"code exchange: HTTP {r.status_code} {r.text}"
            t = r.json()
            assert t.get("scope") == RESOURCE_SCOPE and t.get("refresh_token"), t
            _expect(mcp_call(up.url, t["access_token"], "whoami"), "carol")

        check("public client (none): no scope -> default mcp, no resource on the token request -> granted one",
              public_defaults)

        def prm_variants():
            root, bare = state["up_root"], state["up_bare"]
            r = probe(root.url)
            assert r.status_code == 401, r.status_code
            _, params = parse_www_authenticate(r.headers["www-authenticate"])
            assert params.get("resource_metadata") == root.base + "/.well-known/oauth-protected-resource", params
            doc = http.get(params["resource_metadata"]).json()
            assert doc["resource"] == root.url and doc["authorization_servers"] == [issuer], doc
            assert http.get(root.base + "/.well-known/oauth-protected-resource/mcp").status_code == 404
            r = probe(bare.url)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.headers
            assert http.get(bare.base + "/.well-known/oauth-protected-resource").status_code == 200
            assert http.get(up.base + "/.well-known/oauth-protected-resource").status_code == 404

        check("PRM variants: --prm root (resource_metadata -> root URL), --no-resource-metadata (bare Bearer)",
              prm_variants)

        def counters():
            p = provider.stats()
            for key, low in (("authorization_code", 1), ("refresh_token", 2), ("client_credentials", 2),
                             ("registrations", 2), ("introspections", 5), ("reuse_detected", 2)):
                assert p[key] >= low, (key, p)
            u = up.stats()
            assert u["accepted"] >= 3 and u["rejected"] >= 4 and u["subjects"].get("alice", 0) >= 3, u
            provider.reset_stats()
            assert all(v == 0 for v in provider.stats().values()), provider.stats()
            up.reset_stats()
            assert up.stats()["accepted"] == 0, up.stats()

        check("provider /__stats and upstream /__stats count, and reset", counters)
    finally:
        http.close()
        cb.stop()
        for p in reversed(procs):
            if VERBOSE or not all_ok():
                print(f"--- {p.name} output ---\n{p.output()[-4000:]}\n--- end ---", file=sys.stderr)
            p.stop()


def _expect(actual: str, expected: str) -> None:
    assert actual == expected, f"expected {expected!r}, got {actual!r}"


def all_ok() -> bool:
    from gateway import RESULTS
    return all(RESULTS)


def main() -> None:
    started = time.monotonic()
    try:
        self_check()
    except Exception as exc:  # noqa: BLE001 - a bug in the harness itself
        record_abort(exc)
    if VERBOSE:
        print(f"self-check took {time.monotonic() - started:.1f}s", file=sys.stderr)
    summary_and_exit()


if __name__ == "__main__":
    main()
