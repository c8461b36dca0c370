"""The Partner Center mapping file and config: bad content names the file, line and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from billstate_access_control.providers.partner_center import PartnerCenterConfig, load_mapping

TENANT = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pc-mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_mapping_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"customers:\n  contoso: {TENANT}\n  '12345': {TENANT}\n  67890: {TENANT}\n"
        f"subscriptions:\n  sub-a: {SUB}\n",
    )
    customers, subscriptions = load_mapping(path)
    assert customers == {"contoso": TENANT, "12345": TENANT, "67890": TENANT}
    assert subscriptions == {"sub-a": SUB}


def test_empty_sections_and_an_empty_file_are_empty_mappings(tmp_path: Path) -> None:
    assert load_mapping(write(tmp_path, "customers:\nsubscriptions: {}\n")) == ({}, {})
    assert load_mapping(write(tmp_path, "")) == ({}, {})


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (f"customers:\n  contoso: {TENANT}\nclients: {{}}\n", 3, "unknown key 'clients'"),
        (f"customers:\n  contoso: {TENANT}\n  fabrikam: not-a-guid\n", 3, "fabrikam must map"),
        (f"customers:\n  contoso: {TENANT}\n  contoso: {TENANT}\n", 3, "contoso appears twice"),
        ("customers:\n  - contoso\n", 2, "must be a mapping"),
        (f"customers:\n  contoso: [{TENANT}]\n", 2, "contoso must map to a GUID"),
        (f"subscriptions:\n  ? [a, b]\n  : {SUB}\n", 2, "non-empty string"),
        ("customers: {contoso: x\n", 2, "not valid YAML"),
        ("- customers\n", 1, "must be a YAML mapping"),
        (f"customers: {{}}\ncustomers:\n  contoso: {TENANT}\n", 2, "customers appears twice"),
    ],
)
def test_bad_content_names_the_file_the_line_and_the_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"^\S+:\d+: ") as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.yaml: cannot read the mapping"):
        load_mapping(tmp_path / "nope.yaml")


def test_config_defaults_bounds_and_secrecy() -> None:
    config = PartnerCenterConfig(
        token_url=f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
        client_id="app",
        client_secret=SecretStr("s3cr3t-value"),
        customers={"contoso": TENANT},
    )
    assert config.base_url == "https://api.partnercenter.microsoft.com"
    assert config.scope == "https://api.partnercenter.microsoft.com/.default"
    assert (config.request_timeout, config.max_conflict_retries) == (10.0, 3)
    assert "s3cr3t-value" not in repr(config) + str(config.model_dump())
    with pytest.raises(ValidationError):
        PartnerCenterConfig(
            token_url="https://x", client_id="a", client_secret=SecretStr("b"), request_timeout=0
        )
    with pytest.raises(ValidationError, match="not a GUID"):
        PartnerCenterConfig(
            token_url="https://x", client_id="a", client_secret=SecretStr("b"), customers={"c": "t"}
        )
