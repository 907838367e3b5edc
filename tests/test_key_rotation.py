"""Rotating the PII key (docs/operations.md): the new key first, the old after it; reseal; drop
the old key. The buyer's data opens under the new key alone and no longer under the old."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from refundlens.cli import app
from refundlens.config import Settings
from refundlens.errors import RefundlensError
from refundlens.store import Database
from refundlens.store.crypto import PiiCipher
from refundlens.store.sql.models import Order, Sku, Tenant

BUYER = {"name": "张三", "phone": "13800138000"}


def test_rotating_the_pii_key_reseals_every_order_under_the_new_key(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings(data_dir=str(tmp_path), pii_key=old)
    database = Database(settings)
    database.upgrade()
    with database.session() as session:
        session.add(Tenant(id="shop", kind="merchant", name="shop"))
        session.flush()
        session.add(Sku(id="sku_1", merchant_id="shop", external_id="mug"))
        session.flush()
        session.add(
            Order(
                id="ord_1",
                merchant_id="shop",
                external_id="o-1",
                sku_id="sku_1",
                buyer_id="b1",
                amount=100.0,
                buyer_pii=PiiCipher.from_settings(settings).seal(BUYER),
            )
        )
    database.dispose()

    # During the rotation both keys open (new first: it seals); the command reseals.
    env = {"REFUNDLENS_DATA_DIR": str(tmp_path), "REFUNDLENS_PII_KEY": f"{new},{old}"}
    result = CliRunner().invoke(app, ["keys", "rotate-pii"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 orders" in result.output

    database = Database(settings)
    with database.session() as session:
        order = session.get(Order, "ord_1")
        assert order is not None and order.buyer_pii is not None
        sealed = order.buyer_pii
    database.dispose()
    assert PiiCipher(new.encode()).open(sealed) == BUYER
    with pytest.raises(RefundlensError, match="decrypted"):
        PiiCipher(old.encode()).open(sealed)
    verify = CliRunner().invoke(app, ["audit", "verify"], env=env)
    assert verify.exit_code == 0, verify.output


def test_the_embedded_key_file_may_hold_the_new_key_above_the_old(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = PiiCipher(old).seal(BUYER)
    (tmp_path / "pii.key").write_bytes(new + b"\n" + old + b"\n")
    cipher = PiiCipher.from_settings(Settings(data_dir=str(tmp_path)))
    assert cipher.open(sealed) == BUYER
    assert PiiCipher(new).open(cipher.reseal(sealed)) == BUYER


def test_readiness_says_so_when_the_pii_key_does_not_open_the_sealed_orders(
    tmp_path: Path,
) -> None:
    """A restore that forgot the key: the embedded default makes a new one and starts, so
    /readyz is where an operator sees it (the walkthrough of issue 24 found the gap)."""
    from types import SimpleNamespace

    from refundlens.runtime import Runtime
    from refundlens.service.readiness import readiness

    settings = Settings(data_dir=str(tmp_path))  # the embedded default's key file
    runtime = Runtime(settings)
    runtime.db.upgrade()
    with runtime.db.session() as session:
        session.add(Tenant(id="shop", kind="merchant", name="shop"))
        session.flush()
        session.add(Sku(id="sku_1", merchant_id="shop", external_id="mug"))
        session.flush()
        session.add(
            Order(
                id="ord_1",
                merchant_id="shop",
                external_id="o-1",
                sku_id="sku_1",
                buyer_id="b1",
                amount=100.0,
                buyer_pii=PiiCipher.from_settings(settings).seal(BUYER),
            )
        )
    no_broker = SimpleNamespace(celery=False)
    assert readiness(runtime, no_broker)["pii_key"] == "ok"  # type: ignore[arg-type]
    (tmp_path / "pii.key").unlink()  # restored without its key: a new one is made
    checks = readiness(runtime, no_broker)  # type: ignore[arg-type]
    assert checks["pii_key"].startswith("cannot open")
    # What /readyz tells anyone: the verdict, not the error's text (the log has it).
    from refundlens.service.readiness import public_checks

    told = public_checks({**checks, "broker": "unreachable: OperationalError: 10.0.0.7:5672"})
    assert told["pii_key"] == "cannot open sealed personal data"
    assert told["broker"] == "unreachable" and told["database"] == "ok"
