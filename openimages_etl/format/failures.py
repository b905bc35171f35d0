"""Bounded bookkeeping of failures: exact counts per (file, column, check), the first few rows of each."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from openimages_etl.config import FAILURES_KEPT_PER_CHECK
from openimages_etl.errors import Failure

FAILURE_COLUMNS = {"file": pl.String, "row": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String}
GROUP = ["file", "column", "check"]


def failure_frame(rows: list[dict] | None = None) -> pl.DataFrame:
    return pl.DataFrame(rows or [], schema=FAILURE_COLUMNS)


@dataclass
class FailureLog:
    """Accumulates failure frames without growing with the data: counts are exact, samples capped."""

    keep: int = FAILURES_KEPT_PER_CHECK
    samples: pl.DataFrame = field(default_factory=failure_frame)
    counts: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={**{k: pl.String for k in GROUP}, "count": pl.Int64})
    )

    def add(self, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        frame = frame.select(FAILURE_COLUMNS.keys()).cast(FAILURE_COLUMNS)
        self.counts = (
            pl.concat([self.counts, frame.group_by(GROUP, maintain_order=True).len("count").cast({"count": pl.Int64})])
            .group_by(GROUP, maintain_order=True)
            .agg(pl.col("count").sum())
        )
        self.samples = pl.concat([self.samples, frame]).group_by(GROUP, maintain_order=True).head(self.keep)

    @property
    def total(self) -> int:
        return int(self.counts.get_column("count").sum())

    def summary(self) -> FailureSummary:
        return FailureSummary(
            total=self.total,
            counts=[{**row} for row in self.counts.iter_rows(named=True)],
            samples=[Failure(**row) for row in self.samples.iter_rows(named=True)],
        )


@dataclass(frozen=True)
class FailureSummary:
    """Small enough to return from a task: totals per check and the first failing rows of each."""

    total: int = 0
    counts: list[dict] = field(default_factory=list)
    samples: list[Failure] = field(default_factory=list)

    @staticmethod
    def merge(parts: list[FailureSummary]) -> FailureSummary:
        return FailureSummary(
            total=sum(p.total for p in parts),
            counts=[c for p in parts for c in p.counts],
            samples=[s for p in parts for s in p.samples],
        )
