"""Credentials at rest: round trips, tamper evidence, row binding, rotation and missing keys."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.connections import credentials
from backend.security.crypto import CryptoError, KeyRing, KeyRingError, generate_key_entry
from models import Integration, IntegrationStatus, Plan
from tests import factories

K1 = generate_key_entry("k1")
K2 = generate_key_entry("k2")
AD = b"7:stripe:3"


def test_round_trip() -> None:
    ring = KeyRing.parse(K1)
    key_id, blob = ring.encrypt(b"sk_test_secret", associated_data=AD)
    assert key_id == "k1"
    assert ring.decrypt(blob, key_id=key_id, associated_data=AD) == b"sk_test_secret"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    ring = KeyRing.parse(K1)
    assert (
        ring.encrypt(b"same", associated_data=AD)[1] != ring.encrypt(b"same", associated_data=AD)[1]
    )


def test_any_flipped_bit_fails() -> None:
    ring = KeyRing.parse(K1)
    key_id, blob = ring.encrypt(b"sk", associated_data=AD)
    for index in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << bit
            with pytest.raises(CryptoError):
                ring.decrypt(bytes(tampered), key_id=key_id, associated_data=AD)


def test_truncated_ciphertext_fails() -> None:
    ring = KeyRing.parse(K1)
    key_id, blob = ring.encrypt(b"sk", associated_data=AD)
    with pytest.raises(CryptoError, match="truncated"):
        ring.decrypt(blob[:20], key_id=key_id, associated_data=AD)


def test_wrong_key_fails() -> None:
    key_id, blob = KeyRing.parse(K1).encrypt(b"sk", associated_data=AD)
    other = KeyRing.parse(generate_key_entry("k1"))
    with pytest.raises(CryptoError):
        other.decrypt(blob, key_id=key_id, associated_data=AD)


@pytest.mark.parametrize("setting", ["", "k1", "k1:not-base64!", "k1:QUJD", f"{K1},{K1}"])
def test_malformed_rings_are_refused(setting: str) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.parse(setting)


def _integration(
    session: Session, ws_id: int, provider: str, secret: str, ring: KeyRing
) -> Integration:
    row = Integration(
        workspace_id=ws_id,
        provider=provider,
        display_name=provider,
        status=IntegrationStatus.ACTIVE,
    )
    session.add(row)
    session.flush()
    credentials.seal(row, {"secret_key": secret}, ring)
    return row


@pytest.mark.parametrize("move_to", ["workspace", "provider", "integration"])
def test_ciphertext_moved_to_another_row_fails(session: Session, move_to: str) -> None:
    ring = KeyRing.parse(K1)
    a = factories.workspace(session, slug="a", plan=Plan.BUSINESS)
    b = factories.workspace(session, slug="b", plan=Plan.BUSINESS)
    source = _integration(session, a.id, "stripe", "sk_test_a", ring)
    target = {
        "workspace": _integration(session, b.id, "stripe", "sk_test_b", ring),
        "provider": _integration(session, a.id, "sendgrid", "SG.x", ring),
        "integration": None,
    }[move_to]
    if target is None:
        # Same workspace and provider, another id: delete and re-create the row.
        session.delete(source)
        session.flush()
        target = _integration(session, a.id, "stripe", "sk_test_new", ring)
    target.credentials_enc, target.key_id = source.credentials_enc, source.key_id
    with pytest.raises(CryptoError, match="another row"):
        credentials.unseal(target, ring)


def _rows(session: Session, ring: KeyRing, count: int = 3) -> list[Integration]:
    ws = factories.workspace(session, plan=Plan.BUSINESS)
    return [_integration(session, ws.id, f"p{i}", f"secret-{i}", ring) for i in range(count)]


def test_rotation_reencrypts_every_row_under_the_new_key(session: Session) -> None:
    rows = _rows(session, KeyRing.parse(K1))
    ring = KeyRing.parse(f"{K2},{K1}")
    report = credentials.rotate(session, ring)
    assert (report.reencrypted, report.current, report.unreadable) == (3, 0, [])
    assert str(report) == "re-encrypted 3, already current 0, unreadable 0"
    assert {row.key_id for row in rows} == {"k2"}
    assert [credentials.unseal(r, ring)["secret_key"] for r in rows] == [
        "secret-0",
        "secret-1",
        "secret-2",
    ]
    again = credentials.rotate(session, ring)
    assert (again.reencrypted, again.current) == (0, 3)


def test_old_key_removed_after_rotation_still_reads_everything(session: Session) -> None:
    rows = _rows(session, KeyRing.parse(K1))
    credentials.rotate(session, KeyRing.parse(f"{K2},{K1}"))
    session.commit()
    only_new = KeyRing.parse(K2)
    assert credentials.check_ring(session, only_new) == []
    for row in session.scalars(select(Integration)):
        assert credentials.unseal(row, only_new)["secret_key"].startswith("secret-")
    assert len(rows) == 3


def test_rotation_reports_unreadable_rows_and_leaves_them(session: Session) -> None:
    rows = _rows(session, KeyRing.parse(K1), count=2)
    lost = KeyRing.parse(generate_key_entry("k0"))
    _integration(session, rows[0].workspace_id, "old", "x", lost)
    report = credentials.rotate(session, KeyRing.parse(f"{K2},{K1}"))
    assert report.reencrypted == 2 and len(report.unreadable) == 1
    assert "key 'k0'" in report.unreadable[0]


def test_missing_key_id_is_reported(session: Session) -> None:
    _rows(session, KeyRing.parse(K1))
    ring = KeyRing.parse(K2)
    assert credentials.check_ring(session, ring) == ["k1"]
    assert credentials.missing_keys_message(["k1"]) == (
        "Stored credentials use key id 'k1', which is not in HUB_CREDENTIAL_KEYS: add it back "
        "(newest first) or run keys rotate before removing it."
    )
