"""E-mail the hub sends for a workspace (issue 15): templates by purpose, the tracking rows
written with the outbox job that sends them, the batched send, suppressions and one-click
unsubscribes."""
