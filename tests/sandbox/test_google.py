"""The Google emulator through the official clients: google-api-python-client for Drive v3 and
google-auth's service-account credentials, whose RS256 JWT the emulator really verifies."""

from __future__ import annotations

import html
import io
import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import google_auth_httplib2
import googleapiclient
import httplib2
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

import backend.sandbox.google as google_emulator
from tests.sandbox.conftest import MakeSandbox, RunningSandbox

SCOPES = ["https://www.googleapis.com/auth/drive"]
FOLDER = "application/vnd.google-apps.folder"
DRIVE_DOC = Path(googleapiclient.__file__).parent / "discovery_cache/documents/drive.v3.json"
CALLBACK = "http://localhost:8000/oauth/google/callback"


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[google_emulator])


def service_account_info(sandbox: RunningSandbox) -> dict[str, str]:
    response = httpx.post(f"{sandbox.url}/google/_sandbox/service_accounts", json={"name": "hub"})
    response.raise_for_status()
    info: dict[str, str] = response.json()
    return info


def credentials(sandbox: RunningSandbox) -> service_account.Credentials:
    info = service_account_info(sandbox)
    return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)


def drive(sandbox: RunningSandbox, creds: service_account.Credentials) -> Any:
    """The Drive client as the product builds it: packaged discovery document, emulator root."""
    doc = json.loads(DRIVE_DOC.read_text())
    assert doc["servicePath"] == "drive/v3/"
    doc["rootUrl"] = f"{sandbox.url}/google/"
    return build_from_document(doc, credentials=creds)


def auth_request() -> google_auth_httplib2.Request:
    return google_auth_httplib2.Request(httplib2.Http())


def new_folder(service: Any, name: str, parent: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "mimeType": FOLDER}
    if parent:
        body["parents"] = [parent]
    fields = "id, name, mimeType, parents, webViewLink"
    folder: dict[str, Any] = service.files().create(body=body, fields=fields).execute()
    return folder


def set_ttl(sandbox: RunningSandbox, seconds: int) -> None:
    response = httpx.post(
        f"{sandbox.url}/google/_sandbox/settings", json={"access_token_ttl": seconds}
    )
    response.raise_for_status()


def consent(
    sandbox: RunningSandbox, client_id: str, email: str, decision: str = "allow"
) -> dict[str, str]:
    """What a person does in the browser: open the consent page, submit its form."""
    query = {
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "state": "xyz-123",
        "access_type": "offline",
        "login_hint": email,
    }
    page = httpx.get(f"{sandbox.url}/google/_pages/o/oauth2/auth", params=query)
    assert page.status_code == 200, page.text
    assert "Allow" in page.text and "Deny" in page.text
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    form = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    form["decision"] = decision
    answer = httpx.post(f"{sandbox.url}{action.group(1)}", data=form)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def oauth_client(sandbox: RunningSandbox) -> dict[str, Any]:
    response = httpx.post(
        f"{sandbox.url}/google/_sandbox/oauth_clients",
        json={"name": "Integrations Hub", "redirect_uris": [CALLBACK]},
    )
    response.raise_for_status()
    client: dict[str, Any] = response.json()
    return client


def user_token(sandbox: RunningSandbox, email: str) -> str:
    client = oauth_client(sandbox)
    code = consent(sandbox, client["client_id"], email)["code"]
    response = httpx.post(
        f"{sandbox.url}/google/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "redirect_uri": CALLBACK,
        },
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def test_project_folder_with_five_subfolders_nests_and_lists(sandbox: RunningSandbox) -> None:
    service = drive(sandbox, credentials(sandbox))
    project = new_folder(service, "Spring Gala 2025")
    assert project["mimeType"] == FOLDER and len(project["parents"]) == 1
    names = ["Contracts", "Invoices", "Photos", "Run sheet", "Vendors"]
    for name in names:
        child = new_folder(service, name, project["id"])
        assert child["parents"] == [project["id"]]
    # Neither a file inside the project nor a folder elsewhere belongs in the listing.
    service.files().create(body={"name": "notes.txt", "parents": [project["id"]]}).execute()
    new_folder(service, "Elsewhere")

    q = f"'{project['id']}' in parents and mimeType = '{FOLDER}' and trashed = false"
    listed: list[dict[str, Any]] = []
    request = service.files().list(
        q=q, pageSize=2, orderBy="name", fields="nextPageToken, files(id, name, parents)"
    )
    pages = 0
    while request is not None:
        response = request.execute()
        listed.extend(response["files"])
        pages += 1
        request = service.files().list_next(request, response)
    assert [f["name"] for f in listed] == names
    assert pages == 3
    assert all(f["parents"] == [project["id"]] for f in listed)

    control = httpx.get(sandbox.url + "/").text
    assert "Spring Gala 2025" in control and "Run sheet" in control
    assert "hub@sandbox-project.iam.gserviceaccount.com" in control


def test_lookup_by_name_finds_the_existing_folder(sandbox: RunningSandbox) -> None:
    service = drive(sandbox, credentials(sandbox))
    existing = new_folder(service, "O'Brien & Sons")
    new_folder(service, "O'Brien & Sons archive")

    def lookup(name: str) -> list[dict[str, Any]]:
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        q = f"name = '{escaped}' and mimeType = '{FOLDER}' and trashed = false"
        found: list[dict[str, Any]] = (
            service.files().list(q=q, fields="files(id)").execute()["files"]
        )
        return found

    assert lookup("O'Brien & Sons") == [{"id": existing["id"]}]
    assert lookup("Nobody") == []
    service.files().update(fileId=existing["id"], body={"trashed": True}).execute()
    assert lookup("O'Brien & Sons") == []

    with pytest.raises(HttpError) as bad_query:
        service.files().list(q="name === 'x'").execute()
    assert bad_query.value.resp.status == 400
    assert json.loads(bad_query.value.content)["error"]["errors"][0]["location"] == "q"


def test_get_returns_web_view_link_and_404_for_unknown_ids(sandbox: RunningSandbox) -> None:
    service = drive(sandbox, credentials(sandbox))
    folder = new_folder(service, "Client files")
    got = service.files().get(fileId=folder["id"], fields="id,name,webViewLink").execute()
    assert set(got) == {"id", "name", "webViewLink"}
    assert got["webViewLink"] == f"{sandbox.url}/google/_pages/drive/folders/{folder['id']}"
    page = httpx.get(got["webViewLink"])
    assert page.status_code == 200 and "Client files" in page.text

    with pytest.raises(HttpError) as missing:
        service.files().get(fileId="1doesNotExist", fields="id").execute()
    assert missing.value.resp.status == 404
    error = json.loads(missing.value.content)["error"]
    assert error["code"] == 404 and error["status"] == "NOT_FOUND"
    assert error["errors"][0]["reason"] == "notFound"


def test_permissions_create_shares_with_a_user(sandbox: RunningSandbox) -> None:
    service = drive(sandbox, credentials(sandbox))
    folder = new_folder(service, "Shared with the planner")
    inside = new_folder(service, "Inside", folder["id"])
    permission = (
        service.permissions()
        .create(
            fileId=folder["id"],
            body={"type": "user", "role": "writer", "emailAddress": "planner@example.com"},
            sendNotificationEmail=False,
            fields="kind,id,type,role,emailAddress",
        )
        .execute()
    )
    assert permission["kind"] == "drive#permission"
    assert (permission["type"], permission["role"]) == ("user", "writer")
    assert permission["emailAddress"] == "planner@example.com"
    got = service.files().get(fileId=folder["id"], fields="shared,permissions(emailAddress,role)")
    shared = got.execute()
    assert shared["shared"] is True
    assert {"emailAddress": "planner@example.com", "role": "writer"} in shared["permissions"]

    # The planner now sees the folder and what is inside it; a stranger sees neither.
    def status_for(email: str, file_id: str) -> int:
        token = user_token(sandbox, email)
        url = f"{sandbox.url}/google/drive/v3/files/{file_id}"
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code

    assert status_for("planner@example.com", inside["id"]) == 200
    assert status_for("stranger@example.com", folder["id"]) == 404


def test_expired_token_gets_401_and_refresh_recovers(sandbox: RunningSandbox) -> None:
    creds = credentials(sandbox)
    set_ttl(sandbox, 1)
    creds.refresh(auth_request())
    stale = creds.token
    time.sleep(1.5)
    files_url = f"{sandbox.url}/google/drive/v3/files"
    refused = httpx.get(files_url, headers={"Authorization": f"Bearer {stale}"})
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request had invalid authentication credentials")

    set_ttl(sandbox, 3599)
    creds.refresh(auth_request())
    assert creds.token != stale
    fresh = httpx.get(files_url, headers={"Authorization": f"Bearer {creds.token}"})
    assert fresh.status_code == 200 and fresh.json()["kind"] == "drive#fileList"

    # A token the client still believes in (its clock says valid) but the server has expired:
    # the client library gets the 401, refreshes once and repeats the call.
    creds.token = stale
    service = drive(sandbox, creds)
    assert service.files().list(q="trashed = false").execute()["files"] == []
    assert creds.token != stale

    missing = httpx.get(files_url)
    assert missing.status_code == 401


def test_jwt_signed_with_the_wrong_key_is_refused(sandbox: RunningSandbox) -> None:
    info = service_account_info(sandbox)
    impostor_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = info | {
        "private_key": impostor_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    }
    creds = service_account.Credentials.from_service_account_info(forged, scopes=SCOPES)
    with pytest.raises(RefreshError) as refused:
        creds.refresh(auth_request())
    assert "invalid_grant" in str(refused.value)
    assert "Invalid JWT Signature" in str(refused.value)

    genuine = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    genuine.refresh(auth_request())
    assert genuine.token.startswith("ya29.")


def test_authorization_code_and_refresh_token_flow(sandbox: RunningSandbox) -> None:
    client = oauth_client(sandbox)
    answer = consent(sandbox, client["client_id"], "owner@example.com")
    assert answer["state"] == "xyz-123"
    token_url = f"{sandbox.url}/google/oauth2/token"
    exchange = {
        "grant_type": "authorization_code",
        "code": answer["code"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "redirect_uri": CALLBACK,
    }
    wrong_secret = httpx.post(token_url, data=exchange | {"client_secret": "GOCSPX-nope"})
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"

    granted = httpx.post(token_url, data=exchange)
    assert granted.status_code == 200, granted.text
    tokens = granted.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3599
    assert tokens["scope"] == SCOPES[0] and tokens["refresh_token"].startswith("1//")
    assert "refresh_token_expires_in" not in tokens  # a published app's: until revoked
    reused = httpx.post(token_url, data=exchange)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    files_url = f"{sandbox.url}/google/drive/v3/files"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(files_url, headers=bearer).status_code == 200

    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    refreshed = httpx.post(token_url, data=refresh)
    assert refreshed.status_code == 200, refreshed.text
    assert "refresh_token" not in refreshed.json()
    new_access = refreshed.json()["access_token"]
    assert new_access != tokens["access_token"]
    bearer = {"Authorization": f"Bearer {new_access}"}
    assert httpx.get(files_url, headers=bearer).status_code == 200
    bogus = httpx.post(token_url, data=refresh | {"refresh_token": "1//bogus"})
    assert bogus.status_code == 400 and bogus.json()["error"] == "invalid_grant"

    denied = consent(sandbox, client["client_id"], "owner@example.com", decision="deny")
    assert denied == {"error": "access_denied", "state": "xyz-123"}
    mismatch = httpx.get(
        f"{sandbox.url}/google/_pages/o/oauth2/auth",
        params={
            "client_id": client["client_id"],
            "redirect_uri": "https://evil.example/cb",
            "response_type": "code",
            "scope": SCOPES[0],
        },
    )
    assert mismatch.status_code == 400 and "redirect_uri_mismatch" in mismatch.text


def _exchange(sandbox: RunningSandbox, client: dict[str, Any]) -> dict[str, Any]:
    code = consent(sandbox, client["client_id"], "owner@example.com")["code"]
    granted = httpx.post(
        f"{sandbox.url}/google/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "redirect_uri": CALLBACK,
        },
    )
    assert granted.status_code == 200, granted.text
    answer: dict[str, Any] = granted.json()
    return answer


def test_a_testing_apps_refresh_token_says_its_lifetime_and_ends(sandbox: RunningSandbox) -> None:
    """Google gives an app in "testing" refresh tokens of 7 days and says so in the token answer
    (``refresh_token_expires_in``, the remaining lifetime in seconds); once over, refused."""
    week = 7 * 24 * 3600
    settings_url = f"{sandbox.url}/google/_sandbox/settings"
    assert httpx.get(settings_url).json()["refresh_token_ttl"] is None
    httpx.post(settings_url, json={"refresh_token_ttl": week}).raise_for_status()
    client = oauth_client(sandbox)
    tokens = _exchange(sandbox, client)
    assert tokens["refresh_token_expires_in"] == week
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    token_url = f"{sandbox.url}/google/oauth2/token"
    refreshed = httpx.post(token_url, data=refresh)
    assert refreshed.status_code == 200, refreshed.text
    assert week - 5 <= refreshed.json()["refresh_token_expires_in"] <= week

    httpx.post(settings_url, json={"refresh_token_ttl": 1}).raise_for_status()
    short = _exchange(sandbox, client)
    time.sleep(1.1)
    ended = httpx.post(token_url, data=refresh | {"refresh_token": short["refresh_token"]})
    assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"
    # Tokens issued before the setting changed keep their own lifetime.
    assert httpx.post(token_url, data=refresh).status_code == 200
    httpx.post(settings_url, json={"refresh_token_ttl": None}).raise_for_status()
    assert "refresh_token_expires_in" not in _exchange(sandbox, client)


def test_multipart_upload_and_outage(sandbox: RunningSandbox) -> None:
    service = drive(sandbox, credentials(sandbox))
    folder = new_folder(service, "Uploads")
    media = MediaIoBaseUpload(io.BytesIO(b"guest list\n"), mimetype="text/plain")
    uploaded = (
        service.files()
        .create(
            body={"name": "guests.txt", "parents": [folder["id"]]},
            media_body=media,
            fields="id,name,mimeType,size,parents",
        )
        .execute()
    )
    assert uploaded["size"] == "11" and uploaded["parents"] == [folder["id"]]
    assert uploaded["name"] == "guests.txt"

    sandbox.switch(google={"outage": "errors"})
    with pytest.raises(HttpError) as outage:
        service.files().get(fileId=folder["id"]).execute()
    assert outage.value.resp.status == 500
    assert json.loads(outage.value.content)["error"]["status"] == "INTERNAL"
