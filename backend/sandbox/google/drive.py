"""The slice of Drive v3 the product uses: callers and their scopes, files, folders, sharing.

Drive keeps Google's access model in small: a file is visible to its owner and to whoever it
(or a folder above it) is shared with, and each principal has a "My Drive" root folder.

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext
from backend.sandbox.google.errors import GoogleError
from backend.sandbox.google.query import (
    FieldTree,
    QueryError,
    parse_fields,
    select_fields,
)
from backend.sandbox.google.state import FOLDER, PREFIX, b64decode, open_state, rfc3339
from backend.sandbox.store import new_id

_SCOPE = "https://www.googleapis.com/auth/"
WRITE_SCOPES = {_SCOPE + s for s in ("drive", "drive.file", "drive.appdata")}
READ_SCOPES = WRITE_SCOPES | {
    _SCOPE + s for s in ("drive.readonly", "drive.metadata", "drive.metadata.readonly")
}
_ROLE_RANK = {
    "reader": 1,
    "commenter": 2,
    "writer": 3,
    "fileOrganizer": 3,
    "organizer": 3,
    "owner": 4,
}
# What files.create/update accept in the body; Drive refuses read-only fields (id, webViewLink).
_WRITABLE = {
    "name",
    "mimeType",
    "parents",
    "description",
    "appProperties",
    "properties",
    "starred",
    "folderColorRgb",
    "originalFilename",
    "createdTime",
    "modifiedTime",
    "writersCanShare",
    "copyRequiresWriterPermission",
    "contentHints",
    "trashed",
}
DEFAULT_FILE_FIELDS: FieldTree = {"kind": None, "id": None, "name": None, "mimeType": None}
DEFAULT_PERMISSION_FIELDS: FieldTree = {"kind": None, "id": None, "type": None, "role": None}
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def caller(state: dict[str, Any], request: Request, *, write: bool) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    record = state["access_tokens"].get(token.strip()) if scheme.lower() == "bearer" else None
    if record is None or record["expires_at"] <= time.time():
        raise GoogleError(
            401,
            _UNAUTHENTICATED,
            "authError",
            location="Authorization",
            location_type="header",
            detail="Invalid Credentials",
        )
    if not set(record["scope"].split()) & (WRITE_SCOPES if write else READ_SCOPES):
        raise GoogleError(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            detail="Insufficient Permission",
        )
    return str(record["subject"])


def _permission_id(email: str) -> str:
    # Drive gives a user the same permission id on every file.
    return str(int(hashlib.sha256(email.lower().encode()).hexdigest(), 16))[:20]


def _new_file(state: dict[str, Any], owner: str, fields: dict[str, Any]) -> dict[str, Any]:
    stamp = rfc3339()
    file_id = new_id("1", 32)
    owner_permission = {
        "kind": "drive#permission",
        "id": _permission_id(owner),
        "type": "user",
        "role": "owner",
        "emailAddress": owner,
        "displayName": owner,
    }
    record: dict[str, Any] = {
        "kind": "drive#file",
        "id": file_id,
        "name": "Untitled",
        "mimeType": "application/octet-stream",
        "parents": [],
        "createdTime": stamp,
        "modifiedTime": stamp,
        "explicitlyTrashed": False,
        "starred": False,
        "spaces": ["drive"],
        "version": "1",
        "shared": False,
        "writersCanShare": True,
        "owners": [
            {
                "kind": "drive#user",
                "emailAddress": owner,
                "displayName": owner,
                "permissionId": owner_permission["id"],
            }
        ],
        "permissions": [owner_permission],
        "permissionIds": [owner_permission["id"]],
    }
    record.update(fields)
    state["files"][file_id] = record
    return record


def root_id(state: dict[str, Any], subject: str) -> str:
    if subject not in state["roots"]:
        state["roots"][subject] = _new_file(
            state, subject, {"name": "My Drive", "mimeType": FOLDER}
        )["id"]
    return str(state["roots"][subject])


def _ancestry(state: dict[str, Any], record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The file and every folder above it (sharing a folder shares what it holds)."""
    seen: set[str] = set()
    stack = [record]
    while stack:
        current = stack.pop()
        if current["id"] in seen:
            continue
        seen.add(current["id"])
        yield current
        stack.extend(state["files"][p] for p in current.get("parents", []) if p in state["files"])


def role_of(state: dict[str, Any], record: dict[str, Any], subject: str, *, by_link: bool) -> int:
    best = 0
    for item in _ancestry(state, record):
        for perm in item.get("permissions", []):
            # "anyone" permissions open a file to whoever has its link, not to searches.
            if perm.get("emailAddress") == subject or (by_link and perm["type"] == "anyone"):
                best = max(best, _ROLE_RANK.get(perm["role"], 0))
    return best


def find_file(
    state: dict[str, Any], file_id: str, subject: str, *, need: int = 1, location: str = "fileId"
) -> dict[str, Any]:
    file_id = root_id(state, subject) if file_id == "root" else file_id
    record: dict[str, Any] | None = state["files"].get(file_id)
    role = 0 if record is None else role_of(state, record, subject, by_link=True)
    if record is None or role == 0:
        raise GoogleError(404, f"File not found: {file_id}.", "notFound", location=location)
    if role < need:
        raise GoogleError(
            403,
            "The user does not have sufficient permissions for this file.",
            "insufficientFilePermissions",
        )
    return record


def present(ctx: SandboxContext, state: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The stored file plus what Drive derives: webViewLink and inherited trash."""
    base = f"{ctx.public_url}{PREFIX}/_pages"
    link = (
        f"{base}/drive/folders/{record['id']}"
        if record["mimeType"] == FOLDER
        else f"{base}/file/d/{record['id']}/view"
    )
    trashed = any(f.get("explicitlyTrashed") for f in _ancestry(state, record))
    return record | {"webViewLink": link, "trashed": trashed}


def requested_fields(request: Request, default: FieldTree) -> FieldTree:
    spec = request.query_params.get("fields")
    if not spec:
        return default
    try:
        return parse_fields(spec)
    except QueryError as error:
        raise GoogleError(400, str(error), "invalidParameter", location="fields") from None


def apply_body(record: dict[str, Any], body: dict[str, Any]) -> None:
    refused = sorted(set(body) - _WRITABLE)
    if refused:
        raise GoogleError(
            403,
            "The resource body includes fields which are not directly "
            f"writable: {', '.join(refused)}.",
            "fieldNotWritable",
        )
    for key, value in body.items():
        if key == "parents":
            continue
        if key == "trashed":
            record["explicitlyTrashed"] = bool(value)
            if value:
                record["trashedTime"] = rfc3339()
        elif key in ("appProperties", "properties") and isinstance(value, dict):
            # Drive merges property maps; a null value deletes the key.
            merged = {**record.get(key, {}), **value}
            record[key] = {k: str(v) for k, v in merged.items() if v is not None}
        else:
            record[key] = value
    record["modifiedTime"] = rfc3339()


def set_parents(
    state: dict[str, Any], record: dict[str, Any], parents: list[str], subject: str
) -> None:
    if len(parents) > 1:
        raise GoogleError(
            403, "Increasing the number of parents is not allowed.", "cannotAddParent"
        )
    resolved = []
    for parent_id in parents:
        parent = find_file(state, parent_id, subject, need=3, location="parents")
        if parent["mimeType"] != FOLDER:
            raise GoogleError(400, "The specified parent is not a folder.", "invalidParent")
        resolved.append(parent["id"])
    record["parents"] = resolved


def create_file(
    ctx: SandboxContext, request: Request, body: dict[str, Any], media: bytes | None
) -> Response:
    with open_state(ctx) as state:
        subject = caller(state, request, write=True)
        record = _new_file(state, subject, {})
        try:
            apply_body(record, body)
            set_parents(state, record, list(body.get("parents") or ["root"]), subject)
        except GoogleError:
            del state["files"][record["id"]]
            raise
        if media is not None:
            record |= {
                "size": str(len(media)),
                "md5Checksum": hashlib.md5(media, usedforsecurity=False).hexdigest(),
                "sha256Checksum": hashlib.sha256(media).hexdigest(),
            }
        tree = requested_fields(request, DEFAULT_FILE_FIELDS)
        return JSONResponse(select_fields(present(ctx, state, record), tree))


def parse_related(content_type: str, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A multipart/related upload: JSON metadata, then the media."""
    message = BytesParser(EmailMessage, policy=policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) != 2:
        raise GoogleError(400, "Multipart upload needs metadata and media parts.", "badContent")
    metadata_raw, media = (part.get_payload(decode=True) for part in parts)
    try:
        metadata = json.loads(bytes(metadata_raw or b"{}"))
    except ValueError:
        raise GoogleError(400, "Invalid JSON payload received.", "parseError") from None
    if not isinstance(metadata, dict) or not isinstance(media, bytes):
        raise GoogleError(400, "Invalid multipart upload.", "badContent")
    return metadata, media


def page_size(request: Request) -> int:
    raw = request.query_params.get("pageSize", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise GoogleError(
            400,
            f"Invalid value '{raw}'. Values must be within the range: [1, 1000]",
            "invalid",
            location="pageSize",
        )
    return int(raw)


def page_offset(request: Request) -> int:
    token = request.query_params.get("pageToken")
    if not token:
        return 0
    try:
        return int(json.loads(b64decode(token))["o"])
    except (ValueError, KeyError, TypeError):
        raise GoogleError(400, "Invalid Value", "invalid", location="pageToken") from None


def ordered(records: list[dict[str, Any]], order_by: str) -> list[dict[str, Any]]:
    # Stable sorts applied last key first give a multi-key order with per-key direction.
    for part in reversed([p.strip() for p in order_by.split(",") if p.strip()]):
        key, _, direction = part.partition(" ")
        if key == "folder":
            records.sort(key=lambda f: f["mimeType"] != FOLDER, reverse=direction == "desc")
        else:
            field = "name" if key == "name_natural" else key
            records.sort(
                key=lambda f: (
                    str(f.get(field, "")).lower() if field == "name" else str(f.get(field, ""))
                ),
                reverse=direction == "desc",
            )
    return records


def drop_file(state: dict[str, Any], file_id: str) -> None:
    state["files"].pop(file_id, None)
    for child in [f["id"] for f in state["files"].values() if file_id in f.get("parents", [])]:
        drop_file(state, child)


def add_permission(
    request: Request, state: dict[str, Any], record: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    kind, role = body.get("type"), body.get("role")
    for field, value in (("type", kind), ("role", role)):
        if not value:
            raise GoogleError(
                400,
                f"The permission {field} field is required.",
                "required",
                location=f"permission.{field}",
            )
    if kind not in ("user", "group", "domain", "anyone") or role not in _ROLE_RANK:
        raise GoogleError(400, "Invalid Value", "invalid", location="permission")
    email = body.get("emailAddress")
    if kind in ("user", "group") and (not isinstance(email, str) or "@" not in email):
        raise GoogleError(
            400,
            "The permission emailAddress field is required.",
            "required",
            location="permission.emailAddress",
        )
    if role == "owner" and request.query_params.get("transferOwnership") != "true":
        raise GoogleError(
            403,
            "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            "forbidden",
            location="transferOwnership",
        )
    permission: dict[str, Any] = {"kind": "drive#permission", "type": kind, "role": role}
    if kind in ("user", "group"):
        permission |= {
            "id": _permission_id(str(email)),
            "emailAddress": email,
            "displayName": email,
        }
    elif kind == "domain":
        permission |= {
            "id": body.get("domain", "") + "dn",
            "domain": body.get("domain", ""),
            "allowFileDiscovery": bool(body.get("allowFileDiscovery", False)),
        }
    else:
        discoverable = bool(body.get("allowFileDiscovery", False))
        permission |= {
            "id": "anyone" if discoverable else "anyoneWithLink",
            "allowFileDiscovery": discoverable,
        }
    if role == "owner":
        for old in record["permissions"]:
            if old["role"] == "owner":
                old["role"] = "writer"
        record["owners"] = [
            {
                "kind": "drive#user",
                "emailAddress": email,
                "displayName": email,
                "permissionId": permission["id"],
            }
        ]
    # Sharing again with the same principal changes the role rather than adding a duplicate.
    record["permissions"] = [p for p in record["permissions"] if p["id"] != permission["id"]]
    record["permissions"].append(permission)
    record["permissionIds"] = [p["id"] for p in record["permissions"]]
    record["shared"] = True
    notify = request.query_params.get("sendNotificationEmail", "true") != "false"
    if kind in ("user", "group") and notify:
        state["notifications"].append(
            {
                "file_id": record["id"],
                "to": email,
                "role": role,
                "at": time.time(),
                "message": request.query_params.get("emailMessage", ""),
            }
        )
    return permission
