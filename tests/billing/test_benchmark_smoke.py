"""The billing benchmark's runner at toy size (5 customers, 20,000 records), so it cannot rot: it
sets up its own database, loads the records, turns the repeated keys away, and the measured closes
issue one retail invoice per customer and one wholesale invoice whose lines cover every customer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from benchmarks.billing.run import main
from tests.conftest import DATABASE_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_billing_benchmark_runs_at_toy_size(tmp_path: Path) -> None:
    admin = make_url(DATABASE_URL).set(database="postgres").render_as_string(hide_password=False)
    main(
        [
            "--label",
            "smoke",
            "--admin-url",
            admin,
            "--database",
            "andon_bench_billing_smoke",
            "--customers",
            "5",
            "--records",
            "20000",
            "--results",
            str(tmp_path),
        ]
    )
    results = json.loads((tmp_path / "smoke.json").read_text())
    setup = results["setup"]
    assert (setup["records"], setup["per_customer"], setup["duplicates_accepted"]) == (20000, 4000, 0)
    assert setup["duplicates_offered_about"] > 0
    steps = {row["step"]: row for row in results["steps"]}
    assert set(steps) == {"baseline", "retail", "wholesale"}
    # The floor: one (customer, meter) row per meter with usage, eight meters for each customer.
    assert steps["baseline"]["lines"] == 5 * 8
    assert steps["retail"]["documents"] == 5 and steps["retail"]["total"] > 0
    assert steps["wholesale"]["documents"] == 1
    # Per customer: the fee, three event tiers, steps, sites; the same for all five.
    assert steps["wholesale"]["lines"] % 5 == 0 and steps["wholesale"]["lines"] >= 5 * 4
    assert all(row["peak_rss_mib"] > 0 and row["wall_s"] >= 0 for row in steps.values())
