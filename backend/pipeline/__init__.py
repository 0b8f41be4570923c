"""Leads to booked events: proposals, contracts, payments, the handoff; today the
orphaned-contract sweep."""
