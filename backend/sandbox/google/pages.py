"""What a person sees: the OAuth consent page, the Drive file and folder pages, and the
emulator's tables on the sandbox control page.

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import html
from typing import Any

from fastapi.responses import HTMLResponse

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.google.state import DEFAULT_TTL, FOLDER, NAME, PREFIX


def consent_page(params: dict[str, str], client_name: str) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k != "login_hint"
    )
    scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in params["scope"].split())
    email = html.escape(params.get("login_hint") or "sandbox.user@example.com")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sign in - Google</title>
<style>body{{font:15px system-ui,sans-serif;max-width:34rem;margin:3rem auto;color:#202124}}
button{{font:inherit;padding:.5rem 1.4rem;margin-right:.6rem}}</style></head><body>
<p style="color:#5f6368">Google sandbox</p>
<h1>{html.escape(client_name)} wants to access your Google Account</h1>
<form method="post" action="{PREFIX}/_pages/o/oauth2/consent">{hidden}
<p><label>Signed in as <input name="email" value="{email}" size="32"></label></p>
<p>This will allow {html.escape(client_name)} to:</p><ul>{scopes}</ul>
<button name="decision" value="deny">Deny</button>
<button name="decision" value="allow">Allow</button></form></body></html>"""


def drive_page(ctx: SandboxContext, file_id: str) -> HTMLResponse:
    state = ctx.store.read(NAME)
    files: dict[str, Any] = state.get("files", {})
    record = files.get(file_id)
    if record is None:
        return HTMLResponse("<!doctype html><h1>404. That's an error.</h1>", status_code=404)
    children = [f for f in files.values() if file_id in f.get("parents", [])]
    rows = "".join(
        f"<tr><td><a href='{PREFIX}/_pages/"
        + (f"drive/folders/{c['id']}" if c["mimeType"] == FOLDER else f"file/d/{c['id']}/view")
        + f"'>{html.escape(c['name'])}</a></td><td>{html.escape(c['mimeType'])}</td></tr>"
        for c in children
    )
    shared = ", ".join(
        html.escape(f"{p.get('emailAddress') or p['type']} ({p['role']})")
        for p in record.get("permissions", [])
    )
    listing = f"<table>{rows}</table>" if record["mimeType"] == FOLDER else ""
    return HTMLResponse(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(record['name'])} - Google "
        f"Drive</title><body style='font:14px system-ui,sans-serif;margin:2rem'>"
        f"<h1>{html.escape(record['name'])}</h1><p>{html.escape(record['mimeType'])} · "
        f"<code>{html.escape(file_id)}</code></p><p>Shared with: {shared}</p>{listing}</body>"
    )


def summary(ctx: SandboxContext) -> list[Section]:
    state = ctx.store.read(NAME)
    files: dict[str, dict[str, Any]] = state.get("files", {})
    children: dict[str, list[dict[str, Any]]] = {}
    tops = []
    for record in files.values():
        parents = [p for p in record.get("parents", []) if p in files]
        if not parents:
            tops.append(record)
        for parent in parents:
            children.setdefault(parent, []).append(record)
    rows: list[list[str]] = []

    def walk(record: dict[str, Any], depth: int) -> None:
        kind = "folder" if record["mimeType"] == FOLDER else record["mimeType"]
        shared = ", ".join(
            f"{p.get('emailAddress') or p.get('domain') or p['type']} ({p['role']})"
            for p in record.get("permissions", [])
            if p["role"] != "owner"
        )
        trashed = " (trashed)" if record.get("explicitlyTrashed") else ""
        rows.append(
            [
                "&nbsp;" * 4 * depth + html.escape(record["name"] + trashed),
                f"<a href='{PREFIX}/_pages/"
                + ("drive/folders/" if record["mimeType"] == FOLDER else "file/d/")
                + f"{html.escape(record['id'])}'><code>{html.escape(record['id'])}</code></a>",
                html.escape(kind),
                html.escape(", ".join(o["emailAddress"] for o in record.get("owners", []))),
                html.escape(shared),
            ]
        )
        for child in children.get(record["id"], []):
            walk(child, depth + 1)

    for top in tops:
        walk(top, 0)
    accounts = [
        [
            html.escape(email),
            html.escape(a["project_id"]),
            html.escape(a["client_id"]),
            html.escape(", ".join(k[:8] for k in a["keys"])),
            html.escape(a["created"]),
        ]
        for email, a in state.get("service_accounts", {}).items()
    ]
    clients = [
        [
            html.escape(c["name"]),
            f"<code>{html.escape(cid)}</code>",
            f"<code>{html.escape(c['client_secret'])}</code>",
            html.escape(", ".join(c["redirect_uris"]) or "any"),
        ]
        for cid, c in state.get("oauth_clients", {}).items()
    ]
    ttl = state.get("settings", {}).get("access_token_ttl", DEFAULT_TTL)
    refresh_ttl = state.get("settings", {}).get("refresh_token_ttl")
    refresh_note = (
        f" Refresh tokens last {refresh_ttl} s (an app in testing)."
        if refresh_ttl
        else " Refresh tokens last until revoked."
    )
    return [
        Section("Google Drive", ["name", "id", "type", "owner", "shared with"], rows),
        Section(
            "Google service accounts",
            ["client_email", "project", "client_id", "key ids", "created"],
            accounts,
            note=f"Access tokens live {ttl} s.{refresh_note}",
        ),
        Section(
            "Google OAuth clients", ["name", "client_id", "client_secret", "redirect URIs"], clients
        ),
    ]
