"""Connecting a provider: connect, test, disconnect, settings; credentials sealed at rest; OAuth;
the adapter factory; plan gating (tiers)."""
