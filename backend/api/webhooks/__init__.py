"""Provider webhooks received by the sidecar: common parts, the receiver lookup, the intake fast
lane and one module per provider."""
