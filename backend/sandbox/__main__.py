"""`python -m backend.sandbox`: the provider sandbox as its own process (port 8200 by default)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from backend.config import get_settings
from backend.sandbox.app import create_app


def main() -> None:
    settings = get_settings()
    public_url = settings.sandbox_url
    app = create_app(
        public_url=public_url,
        state_file=Path(settings.sandbox_state_file) if settings.sandbox_state_file else None,
        # In `make run` the product's sidecar receives the sandbox's webhooks.
        webhook_targets={
            "stripe": f"{settings.public_sidecar_url}/webhooks/stripe",
            "sendgrid": f"{settings.public_sidecar_url}/webhooks/sendgrid",
            # Replies from the mailbox: to /webhooks/sendgrid-inbound/<demo slug>.
            "sendgrid_inbound": f"{settings.public_sidecar_url}/webhooks/sendgrid-inbound",
        },
    )
    uvicorn.run(app, host=settings.host, port=settings.sandbox_port, log_level="warning")


if __name__ == "__main__":
    main()
