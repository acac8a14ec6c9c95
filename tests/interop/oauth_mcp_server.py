#!/usr/bin/env python3
"""OAuth-protected MCP upstream built on the official Python SDK (`mcp==2.3.0`, `MCPServer`).

Usage:
    python oauth_mcp_server.py --port 0 --issuer http://127.0.0.1:P [--prm path|root]
                               [--no-resource-metadata] [--required-scope SCOPE]

Binds 127.0.0.1 (`--port 0`: an ephemeral port) and prints one line on stdout once it accepts
connections: `READY http://127.0.0.1:<port>/mcp` (the MCP endpoint, which is also this server's
RFC 8707 resource identifier). Logs go to stderr. Stops on SIGTERM.

It serves Streamable HTTP MCP at /mcp (the SDK's default, stateful sessions) behind the SDK's
bearer-token middleware (`AuthSettings` + a `TokenVerifier`):

- every request to /mcp needs `Authorization: Bearer <token>`; each token is checked by RFC 7662
  introspection at the issuer (client `mcp-resource` / `mcp-resource-secret`, endpoint from the
  issuer's RFC 8414 metadata): `active` must be true and `aud` must contain this server's resource
  URL, otherwise the request gets 401 (no introspection cache: an expired or revoked token is
  rejected at once);
- a 401 carries `WWW-Authenticate: Bearer error="invalid_token", error_description="...",
  resource_metadata="<RFC 9728 document URL>"` (the SDK's header, its URL adjusted by `Front` for
  `--prm root`); no `scope=` parameter is sent in the challenge;
- the RFC 9728 protected resource metadata, {"resource": "http://127.0.0.1:<port>/mcp",
  "authorization_servers": [issuer], "scopes_supported": ["mcp"], "bearer_methods_supported":
  ["header"], "resource_name": ...} (the SDK's `ProtectedResourceMetadata` model, served by the small
  ASGI wrapper `Front` so that scopes_supported is there without making the scope mandatory) is served
    --prm path (default)  at /.well-known/oauth-protected-resource/mcp only (path-aware, RFC 9728 §3.1);
    --prm root            at /.well-known/oauth-protected-resource only; the 401's resource_metadata
                          names that root URL;
  with --no-resource-metadata (meant for `--prm root`) a 401 carries a bare `WWW-Authenticate: Bearer`
  and the client has to probe the well-known URLs itself;
- `--required-scope mcp` additionally makes the SDK answer 403 insufficient_scope to a token without
  that scope (off by default: only `active` and the audience are checked).

Tools: whoami() -> the token's `sub` (the user name at the test provider; `client:<client_id>` for a
token without a subject, e.g. client_credentials); echo(text) -> text.

`GET /__stats` (no auth) -> JSON counters:
  accepted / rejected           requests to /mcp answered with something else than 401/403 / with 401 or 403
  rejected_no_token             ... 401 because no bearer token was sent
  rejected_invalid_token        ... 401 for a token that was sent (inactive, expired, wrong audience, ...)
  rejected_scope                ... 403 insufficient_scope (only with --required-scope)
  introspections                introspection calls made
  tokens_active / tokens_inactive / tokens_wrong_audience / introspection_errors   their outcomes
  prm_requests                  GETs of the protected resource metadata document
  subjects                      {sub: accepted token verifications}
`POST /__stats/reset` zeroes them.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from typing import Any, Dict, List, Optional

import uvicorn
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context
from mcp.shared.auth import ProtectedResourceMetadata

try:  # the SDK ships on top of `httpx2` (same API as httpx)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore

HOST = "127.0.0.1"
MCP_PATH = "/mcp"
PRM_ROOT = "/.well-known/oauth-protected-resource"
RESOURCE_CLIENT_ID = "mcp-resource"
RESOURCE_CLIENT_SECRET = "mcp-resource-secret"
RESOURCE_SCOPE = "mcp"


def log(msg: str) -> None:
    print(f"oauth_mcp_server: {msg}", file=sys.stderr, flush=True)


class Stats:
    KEYS = ("accepted", "rejected", "rejected_no_token", "rejected_invalid_token", "rejected_scope",
            "introspections", "tokens_active", "tokens_inactive", "tokens_wrong_audience",
            "introspection_errors", "prm_requests")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counts: Dict[str, int] = {k: 0 for k in self.KEYS}
            self.subjects: Dict[str, int] = {}

    def bump(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def subject(self, sub: str) -> None:
        with self._lock:
            self.subjects[sub] = self.subjects.get(sub, 0) + 1

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {**self.counts, "subjects": dict(self.subjects)}


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class IntrospectionVerifier:
    """`TokenVerifier`: RFC 7662 introspection at the issuer, active + audience checked."""

    def __init__(self, issuer: str, resource: str, stats: Stats):
        self.issuer = issuer.rstrip("/")
        self.resource = resource
        self.stats = stats
        self._endpoint: Optional[str] = None

    async def _introspection_endpoint(self, client: "httpx.AsyncClient") -> str:
        if self._endpoint is None:
            endpoint = None
            for wk in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                try:
                    r = await client.get(self.issuer + wk)
                    if r.status_code == 200:
                        endpoint = r.json().get("introspection_endpoint")
                        if endpoint:
                            break
                except (httpx.HTTPError, ValueError) as exc:
                    log(f"metadata {wk}: {exc!r}")
            if not endpoint:
                raise RuntimeError(f"no introspection_endpoint in {self.issuer}'s metadata")
            self._endpoint = endpoint
        return self._endpoint

    async def verify_token(self, token: str) -> Optional[AccessToken]:
        self.stats.bump("introspections")
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
                endpoint = await self._introspection_endpoint(client)
                r = await client.post(
                    endpoint,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=(RESOURCE_CLIENT_ID, RESOURCE_CLIENT_SECRET),
                    headers={"Accept": "application/json"},
                )
            if r.status_code != 200:
                raise RuntimeError(f"introspection HTTP {r.status_code}: {r.text[:300]}")
            data = r.json()
        except Exception as exc:  # noqa: BLE001 - any failure means "not verified"
            self.stats.bump("introspection_errors")
            log(f"introspection failed: {exc!r}")
            return None
        if data.get("active") is not True:
            self.stats.bump("tokens_inactive")
            return None
        aud = data.get("aud")
        auds: List[str] = [aud] if isinstance(aud, str) else [a for a in (aud or []) if isinstance(a, str)]
        if not any(_same_url(a, self.resource) for a in auds):
            self.stats.bump("tokens_wrong_audience")
            log(f"token for audience {aud!r} rejected (this resource is {self.resource})")
            return None
        self.stats.bump("tokens_active")
        sub = data.get("sub")
        client_id = data.get("client_id") or "unknown"
        self.stats.subject(sub if isinstance(sub, str) else f"client:{client_id}")
        scope = data.get("scope") or ""
        exp = data.get("exp")
        return AccessToken(
            token=token,
            client_id=client_id,
            scopes=scope.split(),
            expires_at=int(exp) if isinstance(exp, (int, float)) else None,
            resource=self.resource,
            subject=sub if isinstance(sub, str) else None,
            claims={k: v for k, v in data.items() if k in ("iss", "aud", "iat", "exp", "sub", "client_id", "scope")},
        )


def build_server(issuer: str, resource: str, stats: Stats, required_scope: Optional[str]) -> MCPServer:
    auth = AuthSettings(
        issuer_url=issuer,
        resource_server_url=resource,
        validate_token_resource=True,
        required_scopes=[required_scope] if required_scope else None,
    )
    server = MCPServer(name="switchboard-interop-oauth", version="1.0.0", log_level="WARNING",
                       auth=auth, token_verifier=IntrospectionVerifier(issuer, resource, stats))

    @server.tool(description="The subject (user name) of the access token this call arrived with.",
                 structured_output=False)
    def whoami(ctx: Context) -> str:
        token: Optional[AccessToken] = None
        request = getattr(ctx.request_context, "request", None)
        user = request.scope.get("user") if request is not None and hasattr(request, "scope") else None
        if isinstance(user, AuthenticatedUser):
            token = user.access_token
        if token is None:
            token = get_access_token()
        if token is None:
            return "anonymous"
        return token.subject or f"client:{token.client_id}"

    @server.tool(description="Echo the given text back.", structured_output=False)
    def echo(text: str) -> str:
        return text

    return server


class Front:
    """ASGI wrapper around the SDK app: /__stats, the PRM document, 401 header variants, counters."""

    def __init__(self, app, *, resource: str, issuer: str, prm: str, resource_metadata: bool, stats: Stats):
        self.app = app
        self.stats = stats
        self.prm = prm
        self.resource_metadata = resource_metadata
        base = resource[: -len(MCP_PATH)]
        self.prm_path = PRM_ROOT + MCP_PATH if prm == "path" else PRM_ROOT
        self.prm_url = base + self.prm_path
        self.prm_doc = ProtectedResourceMetadata(
            resource=resource,
            authorization_servers=[issuer],
            scopes_supported=[RESOURCE_SCOPE],
            resource_name="switchboard interop OAuth MCP upstream",
        ).model_dump(mode="json", exclude_none=True)

    @staticmethod
    async def _json(send, status: int, payload: Any, extra: Optional[List] = None) -> None:
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")] + (extra or [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]

        if path == "/__stats" and method == "GET":
            return await self._json(send, 200, self.stats.snapshot())
        if path == "/__stats/reset" and method == "POST":
            self.stats.reset()
            return await self._json(send, 200, {"reset": True})

        if path == PRM_ROOT or path.startswith(PRM_ROOT + "/"):
            if path == self.prm_path and method in ("GET", "HEAD"):
                self.stats.bump("prm_requests")
                return await self._json(send, 200, self.prm_doc, [(b"access-control-allow-origin", b"*")])
            return await self._json(send, 404, {"error": "not_found"})

        if path != MCP_PATH:
            return await self.app(scope, receive, send)

        has_token = any(k.lower() == b"authorization" and v[:7].lower() == b"bearer " for k, v in scope["headers"])

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 401:
                    self.stats.bump("rejected")
                    self.stats.bump("rejected_invalid_token" if has_token else "rejected_no_token")
                    message = dict(message)
                    message["headers"] = self._rewrite_challenge(message.get("headers", []))
                elif status == 403:
                    self.stats.bump("rejected")
                    self.stats.bump("rejected_scope")
                else:
                    self.stats.bump("accepted")
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _rewrite_challenge(self, headers):
        out = [(k, v) for k, v in headers if k.lower() != b"www-authenticate"]
        old = next((v.decode("latin-1") for k, v in headers if k.lower() == b"www-authenticate"), "")
        if not self.resource_metadata:
            value = "Bearer"
        else:
            parts = [p.strip() for p in old[len("Bearer"):].split(",")] if old.startswith("Bearer") else []
            parts = [p for p in parts if p and not p.startswith("resource_metadata=")]
            parts.append(f'resource_metadata="{self.prm_url}"')
            value = "Bearer " + ", ".join(parts)
        out.append((b"www-authenticate", value.encode("latin-1")))
        return out


class ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready_line: str):
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self.ready_line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: ephemeral)")
    parser.add_argument("--issuer", required=True, help="the authorization server's issuer URL")
    parser.add_argument("--prm", choices=("path", "root"), default="path",
                        help="where the RFC 9728 document is served (default: path-aware URL)")
    parser.add_argument("--no-resource-metadata", action="store_true",
                        help="401 answers carry a bare `WWW-Authenticate: Bearer`")
    parser.add_argument("--required-scope", default=None, help="also require this scope (403 otherwise)")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, args.port))
    port = sock.getsockname()[1]
    resource = f"http://{HOST}:{port}{MCP_PATH}"
    issuer = args.issuer.rstrip("/")

    stats = Stats()
    server = build_server(issuer, resource, stats, args.required_scope)
    app = Front(server.streamable_http_app(host=HOST), resource=resource, issuer=issuer, prm=args.prm,
                resource_metadata=not args.no_resource_metadata, stats=stats)

    # timeout_graceful_shutdown: open SSE streams must not hold up SIGTERM for long
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    log(f"serving {resource} (issuer {issuer}, PRM at {app.prm_url}, "
        f"resource_metadata in 401: {not args.no_resource_metadata})")
    ReadyServer(config, f"READY {resource}").run(sockets=[sock])


if __name__ == "__main__":
    main()
