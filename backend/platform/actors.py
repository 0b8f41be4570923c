"""Who is acting, in which workspace, with which role: passed to every service that changes data.

Tested in tests/accounts/test_service.py and every service test that checks a role."""

from __future__ import annotations

from dataclasses import dataclass

from backend.platform.errors import PermissionDenied
from models import Role

# What each role may do. Owners decide (plan, keys); admins operate; viewers only look.
_CHANGE_ROLES = frozenset({Role.OWNER, Role.ADMIN})
_OWNER_ROLES = frozenset({Role.OWNER})


@dataclass(frozen=True, slots=True)
class Actor:
    operator_id: int
    workspace_id: int
    role: Role
    email: str = ""
    name: str = ""

    @property
    def label(self) -> str:
        """How the audit log names this actor."""
        return f"operator:{self.operator_id}"

    @property
    def can_change(self) -> bool:
        return self.role in _CHANGE_ROLES

    def require_change(self, what: str = "make changes") -> None:
        if self.role not in _CHANGE_ROLES:
            raise PermissionDenied(
                f"Your role in this workspace is {self.role.value}: you can view but not {what}. "
                "Ask an owner or admin to do it, or to change your role."
            )

    def require_owner(self, what: str) -> None:
        if self.role not in _OWNER_ROLES:
            raise PermissionDenied(
                f"Only a workspace owner can {what}; your role is {self.role.value}."
            )


SYSTEM_ACTORS = frozenset({"scheduler", "sidecar", "seed", "cli"})
