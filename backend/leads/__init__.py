"""Leads: capturing an inquiry (the sidecar's lead form), deduplicated per workspace and e-mail."""
