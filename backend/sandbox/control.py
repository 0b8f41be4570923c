"""The sandbox's own page at `/`: what it holds, the webhook deliveries, and the switches.

Tested in tests/sandbox/test_demo_accounts.py and the emulators' summary tests in
tests/sandbox/."""

from __future__ import annotations

import html
import time

from backend.sandbox.context import SandboxContext, Section


def _table(section: Section) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
    if section.rows:
        body = "".join(
            "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in section.rows
        )
    else:
        body = f'<tr><td colspan="{len(section.columns)}" class="empty">nothing yet</td></tr>'
    note = f'<p class="note">{section.note}</p>' if section.note else ""
    return f"<h3>{html.escape(section.title)}</h3>{note}<table><tr>{head}</tr>{body}</table>"


def deliveries_section(ctx: SandboxContext) -> Section:
    log = ctx.store.read("deliveries").get("log", [])
    rows = []
    for entry in reversed(log[-100:]):
        outcome = (
            "delivered"
            if entry["delivered"]
            else (f"retry in {entry['retry_in']:.0f}s" if entry["retry_in"] else "gave up")
        )
        rows.append(
            [
                html.escape(time.strftime("%H:%M:%S", time.gmtime(entry["at"]))),
                html.escape(entry["provider"]),
                html.escape(entry["label"]),
                html.escape(entry["url"]),
                str(entry["attempts"]),
                html.escape(str(entry["status"] or "—")),
                html.escape(outcome),
                f"<code>{html.escape(entry['response'][:120])}</code>",
            ]
        )
    return Section(
        "Webhook deliveries",
        ["at (UTC)", "provider", "event", "to", "attempts", "status", "outcome", "response"],
        rows,
    )


def switches_form(ctx: SandboxContext, providers: list[str]) -> str:
    rows = []
    for name in providers:
        state = ctx.switches.of(name)
        options = "".join(
            f'<option value="{o}"{" selected" if state.outage == o else ""}>{o}</option>'
            for o in ("none", "errors", "timeouts")
        )
        rows.append(
            f"<tr><td>{name}</td><td><select name='{name}.outage'>{options}</select></td>"
            f"<td><input name='{name}.rate_limit' size='6' "
            f"value='{'' if state.rate_limit is None else state.rate_limit}' "
            "placeholder='none'> requests/s</td></tr>"
        )
    delivery = ctx.switches.delivery
    checks = "".join(
        f"<label><input type='checkbox' name='delivery.{flag}'"
        f"{' checked' if getattr(delivery, flag) else ''}> {flag} Stripe events</label> "
        for flag in ("duplicate", "reorder")
    )
    return (
        "<h3>Switches</h3><form method='post' action='/_sandbox/switches/form'>"
        "<table><tr><th>provider</th><th>outage</th><th>rate limit</th></tr>"
        + "".join(rows)
        + f"</table><p>{checks}</p><button type='submit'>Apply</button></form>"
    )


def render(ctx: SandboxContext, sections: list[Section], providers: list[str]) -> str:
    body = "".join(_table(s) for s in sections)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Provider sandbox</title><meta http-equiv="refresh" content="15">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem; color: #1c2024; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
td, th {{ border: 1px solid #d9d9e0; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f3; }} .empty {{ color: #80838d; }} .note {{ color: #60646c; }}
code {{ font-size: 12px; }}
</style></head><body>
<h1>Provider sandbox</h1>
<p>Offline emulators of Stripe, SendGrid, Google Drive, Messenger and Slack, reached by the
product through the official SDKs. Base URL: <code>{html.escape(ctx.public_url)}</code></p>
{switches_form(ctx, providers)}
{body}
{_table(deliveries_section(ctx))}
</body></html>"""
