"""Who sees which tenant's usage, queue and tenants; which day ranges a usage request takes."""

from __future__ import annotations

import pytest

from broker.jobs_api.accounting import Caller, checked_days, scoped_tenant
from computenet.errors import InvalidArgumentError, PermissionDeniedError


def test_users_see_their_own_tenant_and_operators_any() -> None:
    user = Caller("lab-a", operator=False)
    assert scoped_tenant(user, "") == "lab-a" == scoped_tenant(user, "lab-a")
    with pytest.raises(PermissionDeniedError, match="may not see tenant 'lab-b'"):
        scoped_tenant(user, "lab-b")
    ops = Caller("ops", operator=True)
    assert scoped_tenant(ops, "") is None and scoped_tenant(ops, "lab-b") == "lab-b"


@pytest.mark.parametrize(
    ("since", "until", "fields"),
    [("2026-13-01", "", ["since_day"]), ("", "yesterday", ["until_day"]),
     ("2026-12-05", "2026-12-01", ["until_day"])],
)  # fmt: skip
def test_bad_day_ranges_name_their_fields(since: str, until: str, fields: list[str]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        checked_days(since, until)
    assert [v.field for v in info.value.violations] == fields
    assert checked_days("2026-12-01", "2026-12-01") == ("2026-12-01", "2026-12-01")
