"""Health monitoring: each provider's state now and over the day, the alert rules
and their minute's evaluation, the dashboard's figures."""
