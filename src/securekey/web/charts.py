"""The dashboard's two pictures, laid out here and drawn by templates as inline SVG.

``share_graph``: apps on the left, add-ons on the right, one line per attachment.
``rotation_bars``: rotations per day (scheduled, by hand, emergency) over the last days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from securekey.domain.models import Addon, App, Attachment, AuditEvent

__all__ = ["BarDay", "Graph", "rotation_bars", "share_graph"]

_ROW = 44
_NODE_W = 190
_WIDTH = 640


@dataclass(frozen=True)
class Node:
    """A box with a label at (x, y), linking to ``href``."""

    label: str
    x: int
    y: int
    href: str
    shared: bool = False


@dataclass(frozen=True)
class Edge:
    """A line from an app's box to an add-on's box, named by the attachment."""

    x1: int
    y1: int
    x2: int
    y2: int
    label: str


@dataclass
class Graph:
    """Nodes and edges of the who-shares-what picture, with its size."""

    width: int
    height: int
    node_width: int
    apps: list[Node] = field(default_factory=list)
    addons: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def share_graph(
    apps: Sequence[App], addons: Sequence[Addon], attachments: Iterable[Attachment]
) -> Graph:
    """Apps and add-ons as two columns; an add-on on more than one app is marked shared."""
    apps = list(apps)[:60]
    addons = list(addons)[:60]
    app_at = {a.id: i for i, a in enumerate(apps)}
    addon_at = {a.id: i for i, a in enumerate(addons)}
    links = [a for a in attachments if a.app_id in app_at and a.addon_id in addon_at]
    users: dict[str, set[str]] = {}
    for att in links:
        users.setdefault(att.addon_id, set()).add(att.app_id)
    rows = max(len(apps), len(addons), 1)
    graph = Graph(_WIDTH, rows * _ROW + 16, _NODE_W)
    right = _WIDTH - _NODE_W - 8
    for i, app in enumerate(apps):
        graph.apps.append(Node(app.name, 8, 8 + i * _ROW, f"/ui/apps/{app.name}"))
    for i, addon in enumerate(addons):
        shared = len(users.get(addon.id, ())) > 1
        href = f"/ui/addons/{addon.name}"
        graph.addons.append(Node(addon.name, right, 8 + i * _ROW, href, shared))
    for att in sorted(links, key=lambda a: (app_at[a.app_id], addon_at[a.addon_id], a.name)):
        y1 = 8 + app_at[att.app_id] * _ROW + 16
        y2 = 8 + addon_at[att.addon_id] * _ROW + 16
        graph.edges.append(Edge(8 + _NODE_W, y1, right, y2, att.var_name))
    return graph


@dataclass(frozen=True)
class BarDay:
    """One day's rotations, split by kind, with bar geometry for the chart."""

    day: str
    scheduled: int
    manual: int
    emergency: int
    x: int
    heights: tuple[int, int, int]

    @property
    def total(self) -> int:
        """All rotations that day."""
        return self.scheduled + self.manual + self.emergency


CHART_HEIGHT = 100


def rotation_bars(events: Iterable[AuditEvent], today: datetime, days: int = 14) -> list[BarDay]:
    """Rotations per UTC day for the ``days`` days ending ``today``, oldest first."""
    first = (today - timedelta(days=days - 1)).date()
    counts = {first + timedelta(days=i): [0, 0, 0] for i in range(days)}
    for event in events:
        day = event.at.date()
        if day not in counts:
            continue
        if event.action == "addon.rotate_emergency":
            counts[day][2] += 1
        elif event.actor == "scheduler":
            counts[day][0] += 1
        else:
            counts[day][1] += 1
    peak = max((sum(c) for c in counts.values()), default=0) or 1
    out = []
    for i, (day, (scheduled, manual, emergency)) in enumerate(sorted(counts.items())):
        heights = tuple(round(n * CHART_HEIGHT / peak) for n in (scheduled, manual, emergency))
        out.append(
            BarDay(
                day.isoformat(),
                scheduled,
                manual,
                emergency,
                36 + i * 42,
                (heights[0], heights[1], heights[2]),
            )
        )
    return out
