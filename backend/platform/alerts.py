"""The text of an alert: every incident's message is shortened here the same way, never
mid-word. Incidents are raised through ``backend/platform/incidents.py``; people act on them
through ``backend/health/alert_actions.py``."""

from __future__ import annotations

# An alert is read in a table row: long enough for a provider's sentence, short enough to read.
MESSAGE_LIMIT = 600
ELLIPSIS = "…"


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` in at most ``limit`` characters, cut after a whole word with an ellipsis.
    Only a single word longer than the limit (a URL, say) is cut inside it."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = max(0, limit - len(ELLIPSIS))
    head = text[:room]
    if not text[room].isspace():
        # The cut fell inside a word: go back to the space before it, if there is one.
        space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if space > 0:
            head = head[:space]
    return head.rstrip(" \t\n,;:-") + ELLIPSIS
