"""How Handoff writes quantities for people, the same on every page of every app. It lives in
``runs`` so the approvals (which may import ``runs``, never the other way) share it."""

from __future__ import annotations


def duration(ms: int | float | None) -> str:
    """A duration in milliseconds as a short human string: ``850 ms``, ``12.3 s``, ``4m 12s``,
    ``2h 05m`` (whole units, rounded down; hours go on counting past a day); an em dash for
    ``None`` or ``""``.

    The one duration format of the project: an interaction's length, a run's, and the time left
    before (or past) an approval's deadline. It is the form the run pages always showed,
    kept over the approval desk's former "1 h 05 min" because it stays compact in a table cell
    and keeps the seconds while they still matter (under an hour) for a deadline counting down
    as much as for an interaction."""
    if ms is None or ms == "":
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
