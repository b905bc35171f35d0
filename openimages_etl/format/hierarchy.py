"""The class hierarchy JSON as a graph: Subcategory edges only (a DAG: a class may have several parents),
pruned copies."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from openimages_etl.format.layout import Layout
from openimages_etl.storage.locations import member_path

EDGE = "Subcategory"  # "Part" edges (a wheel is part of a car) do not make a wheel a car


@dataclass(frozen=True)
class Hierarchy:
    tree: dict[str, Any]  # the JSON as read
    children: dict[str, tuple[str, ...]]  # MID -> its subcategories, in the file's order

    @classmethod
    def read(cls, layout: Layout) -> Hierarchy:
        """The source's hierarchy, or an empty one (every class then stands alone)."""
        if not layout.hierarchy:
            return cls({}, {})
        fs, base = layout.root.open_fs()
        with fs.open(member_path(base, layout.hierarchy), "rb") as raw:
            return cls.from_tree(json.load(raw))

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> Hierarchy:
        children: dict[str, list[str]] = {}
        stack = [tree]
        while stack:  # validation already checked the shape; anything else is skipped, not trusted
            node = stack.pop()
            if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
                continue
            for edge in (EDGE, "Part"):
                nodes = [n for n in node.get(edge) or [] if isinstance(n, dict) and isinstance(n.get("LabelName"), str)]
                if edge == EDGE:
                    known = children.setdefault(node["LabelName"], [])
                    known.extend(n["LabelName"] for n in nodes if n["LabelName"] not in known)
                stack.extend(nodes)
        return cls(tree, {mid: tuple(kids) for mid, kids in children.items()})

    def nodes(self) -> set[str]:
        """Every class in the tree (through both edges), the root included."""
        found, stack = set(), [self.tree] if self.tree else []
        while stack:
            node = stack.pop()
            found.add(node["LabelName"])
            stack.extend(n for edge in (EDGE, "Part") for n in node.get(edge) or [])
        return found

    def distances(self, mid: str) -> dict[str, int]:
        """Every class reachable from `mid` through Subcategory edges (itself included) with its shortest distance."""
        seen, queue = {mid: 0}, deque([mid])
        while queue:
            node = queue.popleft()
            for child in self.children.get(node, ()):
                if child not in seen:
                    seen[child] = seen[node] + 1
                    queue.append(child)
        return seen

    def descendants(self, mids: list[str]) -> set[str]:
        return {d for mid in mids for d in self.distances(mid)}

    def merge_map(self, requested: list[str], kept: set[str]) -> dict[str, str]:
        """Each kept descendant -> the nearest requested class it descends from (a tie goes to the first requested)."""
        best: dict[str, tuple[int, int, str]] = {}
        for order, mid in enumerate(requested):
            for node, distance in self.distances(mid).items():
                if node in kept and (distance, order) < best.get(node, (distance + 1, 0, ""))[:2]:
                    best[node] = (distance, order, mid)
        return {node: target for node, (_, _, target) in best.items() if node != target}

    def pruned(self, keep: set[str]) -> dict[str, Any]:
        """The tree with only the paths from the root to the classes in `keep` (both edges kept, as read)."""

        def prune(node: dict[str, Any]) -> dict[str, Any] | None:
            kept = {edge: [p for p in map(prune, node.get(edge) or []) if p] for edge in (EDGE, "Part")}
            out = {"LabelName": node["LabelName"], **{edge: nodes for edge, nodes in kept.items() if nodes}}
            return out if node["LabelName"] in keep or len(out) > 1 else None

        if not self.tree:
            return {}
        root = prune(self.tree)
        return root or {"LabelName": self.tree["LabelName"]}
