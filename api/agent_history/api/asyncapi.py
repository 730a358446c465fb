"""The event contract's AsyncAPI document: as JSON at /asyncapi.json, and as a page at /asyncapi.

The page is rendered here, on the server, from the same document: plain HTML and a little CSS,
no scripts, nothing fetched from elsewhere, so it works where the API has no internet.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from agent_history.contract.asyncapi import asyncapi_document, asyncapi_json

asyncapi = APIRouter(tags=["contract"])

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
h1,h2,h3{line-height:1.2} h3{margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top} code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f6f6;padding:.5rem;overflow:auto} .req{color:#a40}
"""


@cache
def _document_json() -> bytes:
    return asyncapi_json().encode()


@asyncapi.get(
    "/asyncapi.json",
    summary="The event contract (topics, event types, both content modes) as AsyncAPI 3.0",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def asyncapi_document_json() -> Response:
    return Response(_document_json(), media_type="application/json")


@asyncapi.get(
    "/asyncapi",
    summary="The event contract as a page to read",
    response_class=HTMLResponse,
)
async def asyncapi_page() -> HTMLResponse:
    return HTMLResponse(render_page(asyncapi_document()))


def _type(schema: dict[str, Any]) -> str:
    """A schema in a few words: its type, format, constant or reference, as HTML."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const']))}</code>"
    kind = schema.get("type", "any")
    text = escape(" | ".join(kind) if isinstance(kind, list) else kind)
    if "format" in schema:
        text += f" ({escape(schema['format'])})"
    if kind == "array" and "items" in schema:
        text += f" of {_type(schema['items'])}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text += f" of {_type(schema['additionalProperties'])}"
    return text


def _fields(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = [
        f"<tr><td><code>{escape(name)}</code>"
        + (' <span class="req">required</span>' if name in required else "")
        + f"</td><td>{_type(field)}</td><td>{escape(field.get('description', ''))}</td></tr>"
        for name, field in schema.get("properties", {}).items()
    ]
    if not rows:
        return "<p>Anything.</p>"
    return "<table><tr><th>name</th><th>type</th><th>notes</th></tr>" + "".join(rows) + "</table>"


def _message(name: str, message: dict[str, Any]) -> str:
    parts = [
        f'<h3 id="message-{escape(name)}">{escape(message.get("title", name))}</h3>',
        f"<p>{escape(message.get('summary', ''))}</p>",
        f"<p>Content type: <code>{escape(message.get('contentType', 'any'))}</code>; "
        f"value: {_type(message['payload']) if message['payload'] else 'the original value'}"
        "</p>",
        "<h4>Headers</h4>",
        _fields(message.get("headers", {})),
    ]
    for example in message.get("examples", []):
        parts.append(f"<h4>Example</h4><pre>{escape(json.dumps(example, indent=2))}</pre>")
    return "".join(parts)


def render_page(document: dict[str, Any]) -> str:
    """The document as one HTML page: channels, operations, messages, schemas."""
    info, components = document["info"], document["components"]
    channels = "".join(
        f"<li><code>{escape(ch['address'])}</code>: {escape(ch.get('description', ''))} "
        + ", ".join(f'<a href="#message-{escape(m)}">{escape(m)}</a>' for m in ch["messages"])
        + "</li>"
        for ch in document["channels"].values()
    )
    operations = "".join(
        f"<li><b>{escape(op['action'])}</b> on "
        f"<code>{escape(op['channel']['$ref'].rsplit('/', 1)[-1])}</code>: "
        f"{escape(op.get('summary', ''))}</li>"
        for op in document["operations"].values()
    )
    messages = "".join(_message(n, m) for n, m in components["messages"].items())
    schemas = "".join(
        f'<h3 id="schema-{escape(n)}">{escape(n)}</h3>'
        f"<p>{escape(s.get('description', ''))}</p>{_fields(s)}"
        for n, s in components["schemas"].items()
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info['title'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>"
        f"<p>AsyncAPI {escape(document['asyncapi'])}; the document: "
        f'<a href="asyncapi.json">asyncapi.json</a>.</p>'
        f"<p>{escape(info.get('description', ''))}</p>"
        f"<h2>Channels</h2><ul>{channels}</ul><h2>Operations</h2><ul>{operations}</ul>"
        f"<h2>Messages</h2>{messages}<h2>Schemas</h2>{schemas}</body></html>"
    )
