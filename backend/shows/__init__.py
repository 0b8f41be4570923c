"""The Shows list, and a show's claims imported from CSV."""
