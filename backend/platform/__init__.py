"""What every domain stands on: the outbox and inbox, circuits (breakers and rate limits), audit,
alerts, heartbeat, readiness, retention, actors and errors."""
