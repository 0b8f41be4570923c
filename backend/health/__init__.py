"""Health monitoring: each provider's state now and over the day, the checks that raise alerts, the
dashboard's figures."""
