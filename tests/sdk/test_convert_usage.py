"""Usage reports, queue entries and tenants survive the wire; the CLI's CSV reads as a table."""

from __future__ import annotations

import csv
import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computenet import convert
from computenet.cli.accounting import usage_dict
from computenet.usage import (
    USAGE_FIELDS,
    QueuedJob,
    TenantModelStatus,
    TenantStatus,
    UsageGrouping,
    UsageRecord,
    UsageTotals,
    WaitReason,
    group_usage,
    usage_csv,
)

amounts = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
names = st.text("abcdefghij-0123456789", min_size=1, max_size=12)
totals = st.builds(UsageTotals, amounts, amounts, amounts, amounts, amounts)
records = st.lists(
    st.builds(
        UsageRecord, names, names, names, st.sampled_from(["2026-12-04", "2026-12-05"]), totals
    ),
    max_size=12,
)


@given(records, st.sampled_from(list(UsageGrouping)))
def test_usage_reports_round_trip(items: list[UsageRecord], by: UsageGrouping) -> None:
    report = group_usage(items, by, tenant="t", since_day="2026-12-01", until_day="")
    assert convert.usage_report_from_proto(convert.usage_report_to_proto(report)) == report


@given(records, st.sampled_from(list(UsageGrouping)))
def test_groups_partition_the_records(items: list[UsageRecord], by: UsageGrouping) -> None:
    report = group_usage(items, by)
    assert [g.key for g in report.groups] == sorted({getattr(r, by.value) for r in items})
    assert report.total.card_hours == pytest.approx(
        math.fsum(r.totals.card_hours for r in items), rel=1e-9, abs=1e-6
    )


@given(records, st.sampled_from(list(UsageGrouping)))
def test_the_csv_is_a_table_with_a_header_whose_sums_are_the_total(
    items: list[UsageRecord], by: UsageGrouping
) -> None:
    report = group_usage(items, by)
    rows = list(csv.DictReader(io.StringIO(usage_csv(report))))
    assert [r[by.value] for r in rows] == [g.key for g in report.groups]
    for name in USAGE_FIELDS:
        assert math.fsum(float(r[name]) for r in rows) == pytest.approx(
            getattr(report.total, name), rel=1e-9, abs=1e-6
        )
    doc = usage_dict(report)
    assert [g[by.value] for g in doc["groups"]] == [g.key for g in report.groups]


@given(
    st.builds(
        QueuedJob,
        st.integers(1, 10_000),
        names,
        names,
        st.text("a0-", max_size=5),
        st.integers(0, 10_000),
        st.integers(-1000, 1000),
        st.integers(0, 2**62),
        st.sampled_from(list(WaitReason)),
        st.text(max_size=40),
    )
)
def test_queued_jobs_round_trip(job: QueuedJob) -> None:
    assert convert.queued_job_from_proto(convert.queued_job_to_proto(job)) == job


@given(
    st.builds(
        TenantStatus,
        names,
        st.floats(0.01, 1000),
        st.booleans(),
        st.lists(
            st.builds(
                TenantModelStatus,
                names,
                st.integers(0, 10_000),
                st.one_of(st.none(), st.integers(0, 10_000)),
                st.integers(0, 10_000),
                st.integers(0, 10_000),
                amounts,
            ),
            max_size=3,
        ).map(tuple),
        st.floats(0, 10),
    )
)
def test_tenants_round_trip(status: TenantStatus) -> None:
    assert convert.tenant_status_from_proto(convert.tenant_status_to_proto(status)) == status


def test_an_unknown_grouping_is_refused_not_widened() -> None:
    assert convert.grouping_from_proto(0) == UsageGrouping.TENANT
    assert convert.grouping_from_proto(99) is None
