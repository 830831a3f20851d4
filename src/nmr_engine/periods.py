"""Dates and periods.

The engine has its own small period type; pendulum stays behind this module and
plugins never see a pendulum object. Month arithmetic is an explicit policy:
contract periods are cut at an *anchor* month-day whose day is at most 28, so
"31 January + 1 month" never arises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import attrs
import pendulum


@attrs.frozen(order=True)
class DateRange:
    """A closed interval of days [start, end] (both included)."""

    start: dt.date
    end: dt.date

    def __attrs_post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"période vide : fin {self.end} avant début {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def overlaps(self, other: DateRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def intersect(self, other: DateRange) -> DateRange | None:
        if not self.overlaps(other):
            return None
        return DateRange(max(self.start, other.start), min(self.end, other.end))

    @property
    def id(self) -> str:
        """Stable identifier, e.g. '2012-07-01/2013-06-30'."""
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def __str__(self) -> str:
        return f"du {self.start:%d/%m/%Y} au {self.end:%d/%m/%Y}"


def parse_date(text: str | dt.date) -> dt.date:
    """ISO date 'YYYY-MM-DD' -> date (strict)."""
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    return dt.date.fromisoformat(str(text).strip())


def add_months(day: dt.date, months: int) -> dt.date:
    """Add months; the day of month must be ≤ 28 (the engine's explicit policy)."""
    if day.day > 28:
        raise ValueError(f"jour d'ancrage {day.day} > 28 : l'ajout de mois serait ambigu")
    moved = pendulum.date(day.year, day.month, day.day).add(months=months)
    return dt.date(moved.year, moved.month, moved.day)


def anchored_periods(span: DateRange, anchor_month: int, anchor_day: int, months: int = 12) -> Iterator[DateRange]:
    """Cut ``span`` into periods that start on the anchor (month, day) every ``months`` months.

    The first and last periods may be partial (when the span does not start or end on
    an anchor)."""
    if not 1 <= anchor_day <= 28:
        raise ValueError("le jour d'ancrage des périodes doit être compris entre 1 et 28")
    # Latest anchor on or before span.start.
    anchor = dt.date(span.start.year, anchor_month, anchor_day)
    while anchor > span.start:
        anchor = add_months(anchor, -months)
    while add_months(anchor, months) <= span.start:
        anchor = add_months(anchor, months)
    start = span.start
    while start <= span.end:
        nxt = add_months(anchor, months)
        end = min(nxt - dt.timedelta(days=1), span.end)
        yield DateRange(start, end)
        anchor, start = nxt, nxt
