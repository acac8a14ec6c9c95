#!/usr/bin/env python3
"""MCP conformance fixture: the official Python SDK (`mcp==2.3.0`, `MCPServer`) serving every
server scenario of `@modelcontextprotocol/conformance@0.1.16` (`conformance list --server`).

Usage:
    python conformance_server.py <port>        # streamable HTTP on http://127.0.0.1:<port>/mcp

Implements the tools, resources, prompts and utilities the scenarios call:
  tools      test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
             test_multiple_content_types, test_tool_with_logging, test_error_handling,
             test_tool_with_progress, test_sampling, test_elicitation,
             test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums,
             json_schema_2020_12_tool (pending scenario, harmless)
  resources  test://static-text, test://static-binary, test://watched-resource,
             template test://template/{id}/data
  prompts    test_simple_prompt, test_prompt_with_arguments, test_prompt_with_embedded_resource,
             test_prompt_with_image
  utilities  completion/complete, and - registered here by hand because mcp 2.x's MCPServer no
             longer does - logging/setLevel, resources/subscribe, resources/unsubscribe.
DNS-rebinding protection is the SDK's default for a 127.0.0.1 host (Host/Origin checked).
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
import warnings
import zlib
from typing import Any, Dict, Optional

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
import mcp.types as types

HOST = "127.0.0.1"
warnings.filterwarnings("ignore")  # the 2025-era features used here are deprecated in 2026-07-28


def _png_1x1_red() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"\x00\xff\x00\x00"  # filter byte + one RGB pixel
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


def _wav_silence() -> str:
    rate, samples = 8000, 80
    data = b"\x00\x00" * samples
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data)))
    return base64.b64encode(header + data).decode()


PNG = _png_1x1_red()
WAV = _wav_silence()
SIMPLE_TEXT = "This is a simple text response for testing."


def build_server() -> MCPServer:
    server = MCPServer(name="switchboard-conformance-py", version="1.0.0", log_level="WARNING")
    subscriptions: set = set()
    levels = {"level": "info"}

    # ---------------------------------------------------------------- tools
    @server.tool(description="Returns simple text content.", structured_output=False)
    def test_simple_text() -> list:
        return [types.TextContent(type="text", text=SIMPLE_TEXT)]

    @server.tool(description="Returns a 1x1 PNG image.", structured_output=False)
    def test_image_content() -> list:
        return [types.ImageContent(type="image", data=PNG, mime_type="image/png")]

    @server.tool(description="Returns a short WAV clip.", structured_output=False)
    def test_audio_content() -> list:
        return [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]

    @server.tool(description="Returns an embedded text resource.", structured_output=False)
    def test_embedded_resource() -> list:
        return [types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."))]

    @server.tool(description="Returns text, image and resource content.", structured_output=False)
    def test_multiple_content_types() -> list:
        return [
            types.TextContent(type="text", text="Multiple content types test:"),
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json",
                text=json.dumps({"test": "data", "value": 123}))),
        ]

    @server.tool(description="Sends three info log notifications while running.", structured_output=False)
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await anyio.sleep(0.05)
        await ctx.info("Tool processing data")
        await anyio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @server.tool(description="Always fails (isError true).", structured_output=False)
    def test_error_handling() -> str:
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(description="Reports progress 0/50/100 of 100.", structured_output=False)
    async def test_tool_with_progress(ctx: Context) -> str:
        for i, value in enumerate((0, 50, 100)):
            if i:
                await anyio.sleep(0.05)
            await ctx.report_progress(value, 100)
        return "Tool with progress executed successfully"

    @server.tool(description="Asks the client to sample an LLM.", structured_output=False)
    async def test_sampling(prompt: str, ctx: Context) -> str:
        result = await ctx.session.create_message(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=100, related_request_id=ctx.request_id)
        content = result.content
        text = getattr(content, "text", None)
        if text is None:
            text = json.dumps(content.model_dump(mode="json") if hasattr(content, "model_dump") else str(content))
        return f"LLM response: {text}"

    @server.tool(description="Asks the client for user input.", structured_output=False)
    async def test_elicitation(message: str, ctx: Context) -> str:
        result = await ctx.session.elicit_form(message, {
            "type": "object",
            "properties": {"username": {"type": "string", "description": "User's response"},
                           "email": {"type": "string", "description": "User's email address"}},
            "required": ["username", "email"]}, related_request_id=ctx.request_id)
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicitation with defaults for every primitive type (SEP-1034).",
                 structured_output=False)
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        result = await ctx.session.elicit_form("Please review and update the form fields with defaults", {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"],
                           "default": "active"},
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            "required": []}, related_request_id=ctx.request_id)
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicitation with the five enum schema variants (SEP-1330).", structured_output=False)
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        result = await ctx.session.elicit_form("Please select options from the enum fields", {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "description": "Select one option",
                                   "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "description": "Select one option with titles",
                                 "oneOf": [{"const": "value1", "title": "First Option"},
                                           {"const": "value2", "title": "Second Option"},
                                           {"const": "value3", "title": "Third Option"}]},
                "legacyEnum": {"type": "string", "description": "Select one option (legacy)",
                               "enum": ["opt1", "opt2", "opt3"],
                               "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "description": "Select multiple options",
                                  "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array", "description": "Select multiple options with titles",
                                "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                    {"const": "value2", "title": "Second Choice"},
                                                    {"const": "value3", "title": "Third Choice"}]}},
            },
            "required": []}, related_request_id=ctx.request_id)
        return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features",
                 structured_output=False)
    def json_schema_tool(name: Optional[str] = None, address: Optional[Dict[str, Any]] = None) -> str:
        return json.dumps({"name": name, "address": address})

    tool = server._tool_manager.get_tool("json_schema_2020_12_tool")  # noqa: SLF001 - custom inputSchema
    tool.parameters = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"type": "object",
                              "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }

    # ---------------------------------------------------------------- resources
    @server.resource("test://static-text", name="static-text", description="A static text resource",
                     mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", description="A static binary resource",
                     mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @server.resource("test://watched-resource", name="watched-resource", description="A resource to subscribe to",
                     mime_type="text/plain")
    def watched() -> str:
        return "Watched resource content"

    @server.resource("test://template/{id}/data", name="template-data", description="A templated resource",
                     mime_type="application/json")
    def template_data(id: str) -> str:  # noqa: A002 - the template variable's name
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    # ---------------------------------------------------------------- prompts
    @server.prompt(name="test_simple_prompt", description="A simple prompt without arguments")
    def simple_prompt() -> list:
        return [UserMessage(content=types.TextContent(type="text", text="This is a simple prompt for testing."))]

    @server.prompt(name="test_prompt_with_arguments", description="A prompt with two required arguments")
    def prompt_with_args(arg1: str, arg2: str) -> list:
        return [UserMessage(content=types.TextContent(
            type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @server.prompt(name="test_prompt_with_embedded_resource", description="A prompt embedding a resource")
    def prompt_with_resource(resourceUri: str) -> list:  # noqa: N803 - argument name from the scenario
        return [
            UserMessage(content=types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
            UserMessage(content=types.TextContent(type="text", text="Please process the embedded resource above.")),
        ]

    @server.prompt(name="test_prompt_with_image", description="A prompt with an image")
    def prompt_with_image() -> list:
        return [
            UserMessage(content=types.ImageContent(type="image", data=PNG, mime_type="image/png")),
            UserMessage(content=types.TextContent(type="text", text="Please analyze the image above.")),
        ]

    # ---------------------------------------------------------------- utilities
    @server.completion()
    async def complete(ref, argument, context):
        value = argument.value or ""
        candidates = ["paris", "park", "party", "test", "testValue1"]
        return types.Completion(values=[c for c in candidates if c.startswith(value)], total=None, has_more=False)

    lowlevel = server._lowlevel_server  # noqa: SLF001 - handlers MCPServer 2.x no longer registers

    async def set_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        levels["level"] = params.level
        return types.EmptyResult()

    async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscriptions.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscriptions.discard(str(params.uri))
        return types.EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    app = build_server().streamable_http_app(host=HOST)
    config = uvicorn.Config(app, host=HOST, port=args.port, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=1)
    print(f"conformance_server: http://{HOST}:{args.port}/mcp", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
