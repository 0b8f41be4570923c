"""Operators, their sessions, workspaces and memberships; the workspace's plan (the upgrade) and
money settings."""
