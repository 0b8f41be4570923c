"""A show's page: its state (base) and one substate per tab; see base.py."""
