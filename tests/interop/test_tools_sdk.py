#!/usr/bin/env python3
"""Interop test: list and call upstream MCP tools through the gateway with `mistralai==3.7.0`.

Contract under test: /work/shared/spec/connectors-api.md §5.8 (list_tools), §5.9 (call_tool),
§4.11 (MCPTool). Peers: /work/shared/peers.md.

Usage:
    python test_tools_sdk.py --bin target/debug/switchboard

Needs `npm ci` done in tests/interop (server-everything) and the `mcp` package importable by
the Python that runs the fixture (this interpreter, or $INTEROP_MCP_PYTHON). `run.sh` does both.

The script starts, on 127.0.0.1 only, these upstreams and the gateway:
  - @modelcontextprotocol/server-everything in `streamableHttp` and `sse` mode (preloaded with
    bind_localhost.cjs so its port-only listen() binds 127.0.0.1);
  - py_mcp_server.py (official Python SDK, mcp 2.3.0) in modes `modern` (dual-era, the gateway
    should speak 2026-07-28 to it), `sessions` and `stateless-json` (2025 era only) and `sse`
    (2024-11-05 HTTP+SSE).
For each it creates an MCP connector with the SDK, compares `list_tools` with what the upstream
itself advertises (read directly with a small raw MCP client), and calls tools with
`call_tool`. One `ok`/`FAIL` line per check, then `N passed, N failed`; exit 1 on failure.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urljoin

from mistralai.client import Mistral, models
from mistralai.client.types.basemodel import Unset

from gateway import (
    LOOPBACK,
    STARTUP_TIMEOUT_S,
    VERBOSE,
    Gateway,
    Upstream,
    check,
    expect_sdk_error,
    free_port,
    http_client,
    listening_addresses,
    main_with_gateway,
    one_line,
    sdk_client,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_EVERYTHING = os.path.join(HERE, "node_modules", "@modelcontextprotocol", "server-everything", "dist",
                                 "index.js")
BIND_LOCALHOST = os.path.join(HERE, "bind_localhost.cjs")
PY_FIXTURE = os.path.join(HERE, "py_mcp_server.py")
MCP_PYTHON = os.environ.get("INTEROP_MCP_PYTHON") or sys.executable
NODE = os.environ.get("INTEROP_NODE") or "node"

# The gateway's upstream call timeout for this run (ms): small, so the 504 check stays short.
CALL_TIMEOUT_MS = 3000
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
STATELESS_VERSION = "2026-07-28"

# list_tools / call_tool are marked deprecated in the SDK (the gateway API replaces them).
warnings.filterwarnings("ignore", category=DeprecationWarning)


# --------------------------------------------------------------------------------------------
# SDK with a response recorder (the SDK hides the HTTP status of successful calls)
# --------------------------------------------------------------------------------------------


class LastResponse:
    def __init__(self) -> None:
        self.status: Optional[int] = None
        self.body: str = ""
        self.path: str = ""

    def on_response(self, response) -> None:
        response.read()
        self.status = response.status_code
        self.body = response.text
        self.path = response.request.url.path


LAST = LastResponse()


def sdk(base_url: str, key: str) -> Mistral:
    return sdk_client(base_url, key, {"response": [LAST.on_response]})


def absent(value: Any) -> bool:
    return value is None or isinstance(value, Unset)


# --------------------------------------------------------------------------------------------
# a small raw MCP client: the reference for "what the upstream itself advertises"
# --------------------------------------------------------------------------------------------


class RpcError(Exception):
    def __init__(self, error: Dict[str, Any]):
        super().__init__(f"JSON-RPC error {error.get('code')}: {error.get('message')}")
        self.error = error


def _sse_events(lines: Iterator[str]) -> Iterator[Tuple[str, str]]:
    """(event, data) pairs from an SSE line iterator; events with empty data are skipped."""
    event: Optional[str] = None
    data: List[str] = []
    for line in lines:
        if line == "":
            if data and "".join(data).strip():
                yield event or "message", "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data and "".join(data).strip():
        yield event or "message", "\n".join(data)


def _match(message: Any, rid: int) -> Optional[Dict[str, Any]]:
    for m in message if isinstance(message, list) else [message]:
        if isinstance(m, dict) and m.get("id") == rid and ("result" in m or "error" in m):
            return m
    return None


def _result(m: Dict[str, Any]) -> Dict[str, Any]:
    if "error" in m:
        raise RpcError(m["error"])
    return m["result"]


CLIENT_INFO = {"name": "switchboard-interop-direct", "version": "1.0.0"}
# Sent by the reference client, so era checks can ignore its requests in the fixture's log.
DIRECT_UA = {"User-Agent": "switchboard-interop-direct/1.0"}


class DirectStreamable:
    """Streamable HTTP (2025 handshake; every server here supports it)."""

    def __init__(self, url: str):
        self.url = url
        self.http = http_client()
        self.session: Optional[str] = None
        self.version: Optional[str] = None
        self.ids = 0

    def _headers(self) -> Dict[str, str]:
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **DIRECT_UA}
        if self.session:
            h["Mcp-Session-Id"] = self.session
        if self.version:
            h["MCP-Protocol-Version"] = self.version
        return h

    def _post(self, body: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        rid = body.get("id")
        with self.http.stream("POST", self.url, headers=self._headers(), content=json.dumps(body)) as r:
            if r.status_code == 202 or rid is None:
                r.read()
                return None
            if r.status_code != 200:
                r.read()
                raise RuntimeError(f"direct POST {body['method']} -> HTTP {r.status_code}: {r.text[:300]}")
            if body.get("method") == "initialize":
                self.session = r.headers.get("mcp-session-id")
            ctype = r.headers.get("content-type", "")
            if ctype.startswith("text/event-stream"):
                for _event, data in _sse_events(r.iter_lines()):
                    m = _match(json.loads(data), rid)
                    if m is not None:
                        return m
                raise RuntimeError(f"direct POST {body['method']}: SSE stream ended without a reply")
            r.read()
            m = _match(json.loads(r.text), rid)
            if m is None:
                raise RuntimeError(f"direct POST {body['method']}: no reply with id {rid}: {r.text[:300]}")
            return m

    def request(self, method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        self.ids += 1
        body: Dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            body["params"] = params
        m = self._post(body)
        assert m is not None
        return _result(m)

    def open(self) -> "DirectStreamable":
        res = self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": CLIENT_INFO})
        self.version = res.get("protocolVersion")
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def close(self) -> None:
        try:
            if self.session:
                self.http.delete(self.url, headers=self._headers())
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.http.close()


class DirectLegacy:
    """HTTP+SSE (2024-11-05): GET the SSE URL, POST to the `endpoint`, replies on the stream."""

    def __init__(self, url: str):
        self.url = url
        self.http = http_client()
        self._cm = None
        self.events: Optional[Iterator[Tuple[str, str]]] = None
        self.post_url: Optional[str] = None
        self.ids = 0

    def open(self) -> "DirectLegacy":
        self._cm = self.http.stream("GET", self.url, headers={"Accept": "text/event-stream", **DIRECT_UA})
        resp = self._cm.__enter__()
        if resp.status_code != 200:
            raise RuntimeError(f"direct GET {self.url} -> HTTP {resp.status_code}")
        self.events = _sse_events(resp.iter_lines())
        for event, data in self.events:
            if event == "endpoint":
                self.post_url = urljoin(self.url, data.strip())
                break
        if not self.post_url:
            raise RuntimeError("legacy SSE stream ended without an endpoint event")
        res = self.request("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                          "clientInfo": CLIENT_INFO})
        assert "protocolVersion" in res, res
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def _send(self, body: Dict[str, Any]) -> None:
        r = self.http.post(self.post_url, headers={"Content-Type": "application/json", **DIRECT_UA},
                           content=json.dumps(body))
        if r.status_code not in (200, 202):
            raise RuntimeError(f"direct legacy POST {body.get('method')} -> HTTP {r.status_code}: {r.text[:300]}")

    def request(self, method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        self.ids += 1
        rid = self.ids
        body: Dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        self._send(body)
        assert self.events is not None
        for event, data in self.events:
            if event != "message":
                continue
            m = _match(json.loads(data), rid)
            if m is not None:
                return _result(m)
        raise RuntimeError(f"legacy SSE stream ended before the reply to {method}")

    def close(self) -> None:
        try:
            if self._cm is not None:
                self._cm.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.http.close()


@contextmanager
def direct(kind: str, url: str):
    client = DirectLegacy(url) if kind == "legacy" else DirectStreamable(url)
    try:
        yield client.open()
    finally:
        client.close()


def direct_tools(kind: str, url: str) -> List[Dict[str, Any]]:
    tools: List[Dict[str, Any]] = []
    with direct(kind, url) as c:
        cursor = None
        for _ in range(100):
            res = c.request("tools/list", {"cursor": cursor} if cursor else {})
            tools.extend(res.get("tools", []))
            cursor = res.get("nextCursor")
            if not cursor:
                return tools
    raise RuntimeError("tools/list pagination does not end")


def direct_call(kind: str, url: str, name: str, arguments: Dict[str, Any]) -> Dict[str, Any]:
    with direct(kind, url) as c:
        return c.request("tools/call", {"name": name, "arguments": arguments})


# --------------------------------------------------------------------------------------------
# upstream specs
# --------------------------------------------------------------------------------------------


class Spec:
    """One upstream to check through the gateway."""

    def __init__(self, *, label: str, connector: str, kind: str, path: str, start: Callable[[int], Upstream],
                 expected_names: Optional[List[str]] = None, required_names: List[str],
                 echo: Tuple[str, Dict[str, Any], str], structured: Optional[Tuple[str, Dict[str, Any]]],
                 failing: List[Tuple[str, Dict[str, Any], str]],
                 extra_calls: List[Tuple[str, Dict[str, Any], str]] = (),
                 rpc_errors: bool = False, timeout_check: bool = False, pretty_check: bool = False,
                 restart_check: bool = False, request_log: Optional[str] = None,
                 era: Optional[Callable[[List[Dict[str, Any]]], None]] = None, era_label: str = ""):
        self.label = label
        self.connector = connector
        self.kind = kind
        self.path = path
        self.start_fn = start
        self.expected_names = expected_names
        self.required_names = required_names
        self.echo = echo
        self.structured = structured
        self.failing = failing
        self.extra_calls = list(extra_calls)
        self.rpc_errors = rpc_errors
        self.timeout_check = timeout_check
        self.pretty_check = pretty_check
        self.restart_check = restart_check
        self.request_log = request_log
        self.era = era
        self.era_label = era_label
        self.port = free_port()
        self.proc: Optional[Upstream] = None
        self.launch_error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    def launch(self) -> None:
        self.proc = self.start_fn(self.port).launch()

    def wait_ready(self) -> None:
        assert self.proc is not None, "not launched"
        self.proc.wait_ready(STARTUP_TIMEOUT_S)

    def restart(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self.proc = self.start_fn(self.port).start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def everything(mode: str) -> Callable[[int], Upstream]:
    def start(port: int) -> Upstream:
        if not os.path.isfile(SERVER_EVERYTHING):
            raise RuntimeError(f"{SERVER_EVERYTHING} missing: run `npm ci` in {HERE} (run.sh does)")
        env = dict(os.environ)
        env.update({"PORT": str(port), "GZIP_ALLOWED_DOMAINS": LOOPBACK})
        return Upstream(f"server-everything-{mode}", [NODE, "--require", BIND_LOCALHOST, SERVER_EVERYTHING, mode],
                        port, env=env, cwd=HERE)

    return start


def py_fixture(mode: str, log_path: str) -> Callable[[int], Upstream]:
    def start(port: int) -> Upstream:
        return Upstream(f"py-mcp-{mode}", [MCP_PYTHON, PY_FIXTURE, mode, str(port), "--log", log_path],
                        port, cwd=HERE)

    return start


def read_log(path: str) -> List[Dict[str, Any]]:
    """The fixture's request log, minus the reference client's own requests."""
    try:
        with open(path, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []
    return [r for r in records if not str(r.get("user_agent") or "").startswith("switchboard-interop-direct")]


def summarize(records: List[Dict[str, Any]]) -> str:
    return one_line("; ".join(
        f"{r['method']} {r['path']} {r.get('rpc_method') or '-'} pv={r.get('protocol_version')} "
        f"sid={r.get('session')} -> {r.get('status')}" for r in records[:12]), 900)


def era_modern(records: List[Dict[str, Any]]) -> None:
    discover = [r for r in records if r.get("rpc_method") == "server/discover"]
    assert any(r.get("protocol_version") == STATELESS_VERSION and r.get("status") == 200 for r in discover), (
        f"no successful server/discover with MCP-Protocol-Version {STATELESS_VERSION}: {summarize(records)}")
    inits = [r for r in records if r.get("rpc_method") == "initialize"]
    assert not inits, f"gateway sent initialize to a 2026-07-28 server: {summarize(records)}"
    calls = [r for r in records if r.get("rpc_method") in ("tools/list", "tools/call")]
    assert calls, f"no tools/list or tools/call seen: {summarize(records)}"
    bad = [r for r in calls if r.get("protocol_version") != STATELESS_VERSION or r.get("session")
           or r.get("mcp_method_header") != r.get("rpc_method")]
    assert not bad, f"tools requests not in 2026-07-28 stateless form (version/session/Mcp-Method): {summarize(bad)}"


def era_handshake(with_session: bool) -> Callable[[List[Dict[str, Any]]], None]:
    def _check(records: List[Dict[str, Any]]) -> None:
        inits = [r for r in records if r.get("rpc_method") == "initialize" and r.get("status") == 200]
        assert inits, f"no successful initialize: {summarize(records)}"
        calls = [r for r in records if r.get("rpc_method") in ("tools/list", "tools/call")]
        assert calls, f"no tools/list or tools/call seen: {summarize(records)}"
        bad = [r for r in calls if r.get("protocol_version") not in HANDSHAKE_VERSIONS
               or bool(r.get("session")) != with_session]
        assert not bad, (f"tools requests should carry a handshake MCP-Protocol-Version and "
                         f"{'a' if with_session else 'no'} Mcp-Session-Id: {summarize(bad)}")

    return _check


def era_legacy(records: List[Dict[str, Any]]) -> None:
    assert any(r["method"] == "GET" and r["path"] == "/sse" for r in records), f"no GET /sse: {summarize(records)}"
    calls = [r for r in records if r.get("rpc_method") == "tools/call"]
    assert calls and all(r["path"].startswith("/messages") for r in calls), (
        f"tools/call not POSTed to the endpoint: {summarize(records)}")


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def text_of(result) -> str:
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return "\n".join(texts)


def mcp_meta(result):
    md = result.metadata
    assert not absent(md), f"no metadata in call result: {LAST.body[:300]}"
    mm = md.mcp_meta
    assert not absent(mm), f"no metadata.mcp_meta in call result: {LAST.body[:300]}"
    return mm


def run_suite(gw: Gateway, admin: Mistral, spec: Spec) -> None:
    L = spec.label
    S: Dict[str, Any] = {}

    def c_bound():
        addrs = listening_addresses(spec.port)
        assert addrs, f"nothing listening on port {spec.port}"
        assert set(addrs) == {LOOPBACK}, f"listens on {addrs}, expected {LOOPBACK} only"

    check(f"{L}: upstream listens on {LOOPBACK}:{spec.port} only", c_bound)

    def c_direct():
        S["tools"] = direct_tools(spec.kind, spec.url)
        names = [t.get("name") for t in S["tools"]]
        for n in spec.required_names:
            assert n in names, f"upstream does not advertise {n!r}: {names}"
        if spec.expected_names is not None:
            assert sorted(names) == sorted(spec.expected_names), f"upstream advertises {names}"
        if spec.structured:
            S["direct_structured"] = direct_call(spec.kind, spec.url, *spec.structured)

    if not check(f"{L}: reference tools/list read directly from the upstream ({spec.kind})", c_direct):
        return

    def c_create():
        c = admin.beta.connectors.create(request={
            "protocol": "mcp", "name": spec.connector, "description": f"interop: {L}", "server": spec.url})
        assert isinstance(c, models.MCPConnector), f"got {type(c).__name__}"
        assert c.server == spec.url, c.server
        S["id"] = c.id

    if not check(f"{L}: create MCP connector (server={spec.path})", c_create):
        return
    cid = S["id"]

    def c_list():
        tools = admin.beta.connectors.list_tools(connector_id_or_name=cid)
        assert LAST.status == 200, f"HTTP {LAST.status}"
        assert isinstance(tools, list), f"list_tools returned {type(tools).__name__}"
        assert all(isinstance(t, models.MCPTool) for t in tools), (
            f"items not parsed as MCPTool: {[type(t).__name__ for t in tools][:5]}")
        got = [t.name for t in tools]
        want = [t["name"] for t in S["tools"]]
        assert got == want, f"names {got} != upstream {want}"
        for t in tools:
            assert isinstance(t.input_schema, dict) and t.input_schema.get("type") == "object", (
                f"{t.name}: inputSchema {t.input_schema!r}")
        upstream_with_output = {t["name"]: t["outputSchema"] for t in S["tools"] if "outputSchema" in t}
        for t in tools:
            if t.name in upstream_with_output:
                assert t.output_schema == upstream_with_output[t.name], (
                    f"{t.name}: outputSchema {t.output_schema!r} != upstream {upstream_with_output[t.name]!r}")
            else:
                assert absent(t.output_schema), f"{t.name}: outputSchema appeared: {t.output_schema!r}"
        if spec.structured:
            assert spec.structured[0] in upstream_with_output, (
                f"upstream emits no outputSchema for {spec.structured[0]}")

    check(f"{L}: list_tools -> MCPTool items, same names/order as upstream, inputSchema on each, "
          f"outputSchema where upstream has one", c_list)

    def c_list_verbatim():
        admin.beta.connectors.list_tools(connector_id_or_name=spec.connector, refresh=True)
        assert LAST.status == 200, f"HTTP {LAST.status}"
        body = json.loads(LAST.body)
        assert isinstance(body, list), f"not a bare array: {LAST.body[:200]}"
        assert body == S["tools"], (
            "tools differ from upstream's tools/list items: "
            + one_line([(g.get("name"), sorted(set(g) ^ set(u)) or "values")
                        for g, u in zip(body, S["tools"]) if g != u] or (len(body), len(S["tools"]))))

    check(f"{L}: list_tools by name with refresh=true: raw JSON items equal the upstream's (every field kept)",
          c_list_verbatim)

    if spec.pretty_check:
        def c_pretty():
            tools = admin.beta.connectors.list_tools(connector_id_or_name=cid, pretty=True)
            assert LAST.status == 200, f"HTTP {LAST.status}"
            body = json.loads(LAST.body)
            allowed = {"name", "description", "annotations", "inputSchema"}
            extra = {t.get("name"): sorted(set(t) - allowed) for t in body if set(t) - allowed}
            assert not extra, f"pretty=true keeps more than {sorted(allowed)}: {extra}"
            assert [t.name for t in tools] == [t["name"] for t in S["tools"]]
            assert all(isinstance(t.input_schema, dict) for t in tools)

        check(f"{L}: list_tools(pretty=true) keeps only name/description/annotations/inputSchema", c_pretty)

    def call(name: str, args: Dict[str, Any]):
        LAST.status = None
        return admin.beta.connectors.call_tool(tool_name=name, connector_id_or_name=cid, arguments=args)

    tool, args, expected = spec.echo

    def c_echo():
        res = call(tool, args)
        assert LAST.status == 200, f"HTTP {LAST.status}"
        assert isinstance(res, models.ConnectorToolCallResponse), type(res).__name__
        assert text_of(res) == expected, f"text {text_of(res)!r} != {expected!r}"
        mm = mcp_meta(res)
        assert mm.is_error is False, f"isError {mm.is_error!r}"

    check(f"{L}: call_tool {tool} -> text round-trips ({expected!r}), isError false", c_echo)

    for tool_x, args_x, expected_x in spec.extra_calls:
        def c_extra(tool_x=tool_x, args_x=args_x, expected_x=expected_x):
            res = call(tool_x, args_x)
            assert LAST.status == 200, f"HTTP {LAST.status}"
            assert text_of(res) == expected_x, f"text {text_of(res)!r} != {expected_x!r}"

        check(f"{L}: call_tool {tool_x} {json.dumps(args_x)} -> {expected_x!r}", c_extra)

    if spec.structured:
        s_tool, s_args = spec.structured

        def c_structured():
            up = S["direct_structured"]
            assert "structuredContent" in up, f"upstream result has no structuredContent: {up}"
            res = call(s_tool, s_args)
            assert LAST.status == 200, f"HTTP {LAST.status}"
            mm = mcp_meta(res)
            assert mm.structured_content == up["structuredContent"], (
                f"structuredContent {mm.structured_content!r} != upstream {up['structuredContent']!r}")
            assert mm.is_error is False, f"isError {mm.is_error!r}"
            raw = json.loads(LAST.body)
            assert raw["content"] == up["content"], f"content {raw['content']!r} != upstream {up['content']!r}"
            assert "structuredContent" in raw["metadata"]["mcp_meta"], (
                f"camelCase structuredContent missing: {LAST.body[:300]}")

        check(f"{L}: call_tool {s_tool} -> metadata.mcp_meta.structuredContent equals the upstream's", c_structured)

    for f_tool, f_args, f_text in spec.failing:
        def c_fail(f_tool=f_tool, f_args=f_args, f_text=f_text):
            res = call(f_tool, f_args)
            assert LAST.status == 200, f"HTTP {LAST.status}"
            mm = mcp_meta(res)
            assert mm.is_error is True, f"isError {mm.is_error!r}: {LAST.body[:300]}"
            assert f_text in text_of(res), f"{f_text!r} not in {text_of(res)!r}"
            assert json.loads(LAST.body)["metadata"]["mcp_meta"].get("isError") is True, "camelCase isError missing"

        check(f"{L}: call_tool {f_tool} {json.dumps(f_args)} -> HTTP 200, isError true ({f_text!r})", c_fail)

    if spec.rpc_errors:
        for code, status in ((-32602, 400), (-32603, 502)):
            def c_rpc(code=code, status=status):
                exc = expect_sdk_error(lambda: call("rpc_error", {"code": code}), status)
                assert "deliberate JSON-RPC error" in (exc.body or ""), (
                    f"upstream message not in the error body: {exc.body!r}")

            check(f"{L}: upstream JSON-RPC error {code} -> SDKError {status} carrying the upstream message", c_rpc)

    if spec.timeout_check:
        def c_timeout():
            expect_sdk_error(lambda: call("sleep", {"seconds": CALL_TIMEOUT_MS / 1000 + 5}), 504)
            res = call(tool, args)  # the connector still works afterwards
            assert text_of(res) == expected, text_of(res)

        check(f"{L}: tool slower than upstream.call_timeout ({CALL_TIMEOUT_MS} ms) -> SDKError 504; "
              f"next call works", c_timeout)

    if spec.restart_check:
        def c_restart():
            spec.restart()
            res = call(tool, args)
            assert LAST.status == 200, f"HTTP {LAST.status}"
            assert text_of(res) == expected, f"text {text_of(res)!r} != {expected!r}"
            tools = admin.beta.connectors.list_tools(connector_id_or_name=cid, refresh=True)
            assert [t.name for t in tools] == [t["name"] for t in S["tools"]]

        check(f"{L}: upstream restarted (its sessions are gone) -> call_tool and list_tools(refresh) recover",
              c_restart)

    if spec.era is not None:
        def c_era():
            spec.era(read_log(spec.request_log))

        check(f"{L}: gateway spoke {spec.era_label} (from the upstream's request log)", c_era)


def run_checks(gw: Gateway) -> None:
    admin = sdk(gw.base_url, gw.bootstrap_key)
    logdir = gw.tmp  # removed with the gateway's temp dir
    echo_text = "héllo ✓ interop <&> \"quoted\""
    py_names = ["echo", "add", "fail", "rpc_error", "sleep", "whoami"]

    def py_spec(mode: str, connector: str, kind: str, path: str, era, era_label: str, **kw) -> Spec:
        log = os.path.join(logdir, f"py-{mode}.jsonl")
        return Spec(label=f"python mcp 2.3.0 {mode}", connector=connector, kind=kind, path=path,
                    start=py_fixture(mode, log), expected_names=py_names, required_names=py_names,
                    echo=("echo", {"text": echo_text}, echo_text), structured=("add", {"a": 2, "b": 40}),
                    failing=[("fail", {}, "deliberate failure")], rpc_errors=True,
                    request_log=log, era=era, era_label=era_label, **kw)

    se_common = dict(
        required_names=["echo", "get-structured-content", "get-sum", "gzip-file-as-resource"],
        echo=("echo", {"message": echo_text}, f"Echo: {echo_text}"),
        structured=("get-structured-content", {"location": "Chicago"}),
        extra_calls=[("get-sum", {"a": 2, "b": 3}, "The sum of 2 and 3 is 5.")],
        failing=[("gzip-file-as-resource", {"data": "file:///interop/denied"}, "Unsupported URL protocol"),
                 ("echo", {}, "validation")],
    )
    specs = [
        Spec(label="server-everything streamableHttp", connector="se_streamable", kind="streamable",
             path="/mcp", start=everything("streamableHttp"), pretty_check=True, restart_check=True,
             **se_common),
        Spec(label="server-everything sse", connector="se_sse", kind="legacy", path="/sse",
             start=everything("sse"), **se_common),
        py_spec("modern", "py_modern", "streamable", "/mcp", era_modern, "2026-07-28 (server/discover, stateless)",
                timeout_check=True),
        py_spec("sessions", "py_sessions", "streamable", "/mcp", era_handshake(True),
                "2025 streamable HTTP with Mcp-Session-Id", timeout_check=True, restart_check=True),
        py_spec("stateless-json", "py_stateless_json", "streamable", "/mcp", era_handshake(False),
                "2025 streamable HTTP without a session (JSON replies)"),
        py_spec("sse", "py_sse", "legacy", "/sse", era_legacy, "2024-11-05 HTTP+SSE"),
    ]
    try:
        launched = []
        for spec in specs:  # launch them all, then wait for each: start-up runs in parallel
            try:
                spec.launch()
                launched.append(spec)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check below
                spec.launch_error = exc
        started = []
        for spec in specs:
            def c_start(spec=spec):
                if spec not in launched:
                    raise spec.launch_error
                spec.wait_ready()

            if check(f"{spec.label}: starts on {LOOPBACK}:{spec.port} (port polled until it accepts)", c_start):
                started.append(spec)
        for spec in started:
            run_suite(gw, admin, spec)

        def c_closed_port():
            port = free_port()  # nothing listens there
            url = f"http://{LOOPBACK}:{port}/mcp"
            c = admin.beta.connectors.create(request={
                "protocol": "mcp", "name": "closed_port", "description": "interop: nothing listens", "server": url})
            exc = expect_sdk_error(lambda: admin.beta.connectors.list_tools(connector_id_or_name=c.id), 502)
            assert exc.body, "502 without a body"
            expect_sdk_error(lambda: admin.beta.connectors.call_tool(
                tool_name="echo", connector_id_or_name=c.id, arguments={"text": "x"}), 502)

        check("connector pointing at a closed port: list_tools and call_tool -> SDKError 502", c_closed_port)
    finally:
        for spec in specs:
            if VERBOSE and spec.proc is not None:
                print(f"--- {spec.label} output (last 3000 chars) ---\n{spec.proc.output()[-3000:]}",
                      file=sys.stderr)
            spec.stop()


def main() -> None:
    main_with_gateway(__doc__.splitlines()[0], run_checks,
                      extra_env={"SWITCHBOARD_UPSTREAM_CALL_TIMEOUT_MS": str(CALL_TIMEOUT_MS)})


if __name__ == "__main__":
    main()
