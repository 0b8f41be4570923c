"""A show's invoices: the panel (read side), generation (write side), checkout links, buyers,
reconciliation with Stripe and what Stripe's invoice events do."""
