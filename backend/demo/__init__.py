"""The demo data `make run` seeds, so a newcomer can click through every capability."""
