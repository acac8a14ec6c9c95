#!/usr/bin/env python3
"""MCP upstream fixture built on the official Python SDK (`mcp==2.3.0`, `MCPServer`).

Usage:
    python py_mcp_server.py <mode> <port> [--log FILE]

Modes (the server always binds 127.0.0.1):
    modern          streamable-http, default options. The 2.3.0 server is dual-era: it answers
                    `server/discover` (2026-07-28, stateless) and the 2025 `initialize` handshake.
    sessions        streamable-http with sessions (Mcp-Session-Id) and SSE replies, 2025 era only.
    stateless-json  streamable-http with stateless_http=True, json_response=True, 2025 era only.
    sse             legacy HTTP+SSE (2024-11-05): GET /sse, POST /messages/?session_id=...

"2025 era only" hides the 2026-07-28 entry point the way a pre-2026 server would answer it:
`sessions` rejects a sessionless non-initialize POST with HTTP 400 (like mcp 1.x / most
session servers), `stateless-json` answers `server/discover` with JSON-RPC -32601 (method not
found). Everything else is served by the SDK untouched.

Tools: echo(text) -> text; add(a, b) -> structured {"sum": a + b} (with outputSchema);
fail() -> raises ToolError (a tool-level error, isError true); rpc_error(code) -> a JSON-RPC
error response with that code; sleep(seconds) -> answers after `seconds`; whoami() -> a JSON text
{"authorization": <Authorization header or null>, "x_team": <X-Team header or null>} with the
HTTP headers of the request that carried the call (to check credential injection upstream).

With --gateway-tools (used by test_gateway_sdk.py; off by default so the tool list other scripts
expect is unchanged) two more tools are served: progress(steps, delay) -> sends
`notifications/progress` (progress=i, total=steps) every `delay` seconds, then answers
"done <steps> steps"; headers() -> a JSON text object of every HTTP request header (lowercased
names) of the request that carried the call.

With --log FILE, one JSON line per HTTP request is appended to FILE:
{"method", "path", "protocol_version", "session", "mcp_method_header", "rpc_method", "user_agent",
 "status"}
so a test can tell which protocol era a client used.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Dict, List, Optional

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel

HOST = "127.0.0.1"
MODES = ("modern", "sessions", "stateless-json", "sse")


class AddResult(BaseModel):
    sum: int


def build_server(gateway_tools: bool = False) -> MCPServer:
    server = MCPServer(name="switchboard-interop-py", version="1.0.0", log_level="WARNING")

    @server.tool(description="Echo the given text back.", structured_output=False)
    def echo(text: str) -> str:
        return text

    @server.tool(description="Add two integers; the result is structured.")
    def add(a: int, b: int) -> AddResult:
        return AddResult(sum=a + b)

    @server.tool(description="Always fails with a tool-level error.", structured_output=False)
    def fail() -> str:
        raise ToolError("deliberate failure from the interop fixture")

    @server.tool(description="Answer with a JSON-RPC error (not a tool result) of the given code.",
                 structured_output=False)
    def rpc_error(code: int) -> str:
        raise MCPError(code, f"deliberate JSON-RPC error {code} from the interop fixture")

    @server.tool(description="Sleep for the given number of seconds, then answer.", structured_output=False)
    async def sleep(seconds: float) -> str:
        await anyio.sleep(seconds)
        return f"slept {seconds}s"

    @server.tool(description="Report the Authorization and X-Team headers this call arrived with (JSON text).",
                 structured_output=False)
    def whoami(ctx: Context) -> str:
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        return json.dumps({"authorization": headers.get("authorization"), "x_team": headers.get("x-team")},
                          sort_keys=True)

    if gateway_tools:
        @server.tool(description="Send notifications/progress each step (every `delay` s), then answer.",
                     structured_output=False)
        async def progress(steps: int, delay: float, ctx: Context) -> str:
            for i in range(1, steps + 1):
                await ctx.report_progress(i, steps, f"step {i}/{steps}")
                await anyio.sleep(delay)
            return f"done {steps} steps"

        @server.tool(description="Every HTTP request header of this call (JSON text, lowercased names).",
                     structured_output=False)
        def headers(ctx: Context) -> str:
            return json.dumps({k.lower(): v for k, v in (ctx.headers or {}).items()}, sort_keys=True)

    return server


class Wire:
    """ASGI wrapper: logs every HTTP request; optionally hides the 2026-07-28 era."""

    def __init__(self, app, log_path: Optional[str], hide_modern: Optional[str]):
        self.app = app
        self.log_path = log_path
        self.hide_modern = hide_modern  # None | "http400" | "method-not-found"
        self._lock = threading.Lock()

    def _log(self, record: Dict[str, Any]) -> None:
        if not self.log_path:
            return
        with self._lock, open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        buffered: List[Dict[str, Any]] = []
        body = b""
        if scope["method"] == "POST":
            while True:
                message = await receive()
                buffered.append(message)
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        rpc: Any = None
        if body:
            try:
                rpc = json.loads(body)
            except ValueError:
                rpc = None
        rpc_method = rpc.get("method") if isinstance(rpc, dict) else None
        record = {
            "method": scope["method"],
            "path": scope["path"],
            "protocol_version": headers.get("mcp-protocol-version"),
            "session": bool(headers.get("mcp-session-id")) or "session_id=" in scope.get("query_string", b"").decode(),
            "mcp_method_header": headers.get("mcp-method"),
            "rpc_method": rpc_method,
            "user_agent": headers.get("user-agent"),
            "status": None,
        }

        pv = headers.get("mcp-protocol-version")
        modern_request = scope["method"] == "POST" and (
            rpc_method == "server/discover" or (pv is not None and pv not in HANDSHAKE_PROTOCOL_VERSIONS)
        )
        if self.hide_modern and modern_request:
            rid = rpc.get("id") if isinstance(rpc, dict) else None
            if self.hide_modern == "http400":
                status, payload = 400, {"jsonrpc": "2.0", "id": None,
                                        "error": {"code": -32600, "message": "Bad Request: Missing session ID"}}
            else:
                status, payload = 200, {"jsonrpc": "2.0", "id": rid,
                                        "error": {"code": -32601, "message": f"Method not found: {rpc_method}"}}
            data = json.dumps(payload).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            record["status"] = status
            record["hidden_modern"] = True
            self._log(record)
            return

        async def replay():
            if buffered:
                return buffered.pop(0)
            return await receive()

        async def send_wrapper(message):
            if message["type"] == "http.response.start" and record["status"] is None:
                record["status"] = message["status"]
                self._log(record)
            await send(message)

        await self.app(scope, replay, send_wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("port", type=int)
    parser.add_argument("--log", default=None, help="append one JSON line per HTTP request here")
    parser.add_argument("--gateway-tools", action="store_true", help="also serve progress() and headers()")
    args = parser.parse_args()

    server = build_server(gateway_tools=args.gateway_tools)
    if args.mode == "sse":
        app, hide = server.sse_app(host=HOST), None
    elif args.mode == "sessions":
        app, hide = server.streamable_http_app(host=HOST), "http400"
    elif args.mode == "stateless-json":
        app = server.streamable_http_app(host=HOST, stateless_http=True, json_response=True)
        hide = "method-not-found"
    else:
        app, hide = server.streamable_http_app(host=HOST), None

    # timeout_graceful_shutdown: open SSE streams must not hold up SIGTERM for long
    config = uvicorn.Config(Wire(app, args.log, hide), host=HOST, port=args.port, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=1)
    print(f"py_mcp_server: {args.mode} on http://{HOST}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
