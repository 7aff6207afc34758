"""Keep A and B connected: the widest path through the candidates' match graph.

The paper's FMS keeps the k candidates with the most inliers against I0 plus IT. On a long
bridge those cluster near one end or the other and the views in the middle, the ones that join
the two halves, are dropped: the multi-view pose then has no chain of overlapping views from A
to B. The chain mode chooses the frames so that A and B are joined with the strongest weakest
link: a maximum-bottleneck ("widest") path from A to B with at most k intermediate frames, the
edge weight of a view pair being its RANSAC inlier count. Remaining slots first support the
path's links, weakest first, each with the frame that overlaps both of its views best, then go
to the paper's score.

Graph nodes are 0 = A, 1..m = candidates, m + 1 = B; weights {(i, j): inliers} with i < j.
"""

from __future__ import annotations

from typing import Iterable


def widest_path(
    num_nodes: int, weights: dict[tuple[int, int], float], start: int, goal: int, max_hops: int
) -> tuple[list[int], float] | None:
    """(path start..goal, bottleneck) of the path with the largest minimum edge weight using at
    most `max_hops` edges; among equally wide paths the one with the fewest hops. None when
    `goal` cannot be reached within `max_hops`.

    Dynamic programming over the hop count (a hop-limited Bellman-Ford with (max, min) in place
    of (min, +)): O(max_hops * edges). The fewest-hop optimum is a simple path, since a walk
    that repeats a node is never wider than the walk with the loop cut out.
    """
    neighbours: dict[int, list[tuple[int, float]]] = {v: [] for v in range(num_nodes)}
    for (i, j), w in weights.items():
        neighbours[i].append((j, float(w)))
        neighbours[j].append((i, float(w)))
    # reach[v] = (width, hops, predecessor entry) of the widest path to v found so far.
    reach: dict[int, tuple[float, int, tuple | None]] = {start: (float("inf"), 0, None)}
    frontier = {start}
    for _ in range(max_hops):
        improved: dict[int, tuple[float, int, tuple | None]] = {}
        for u in frontier:
            w_u, hops_u, _ = reach[u]
            for v, w in neighbours[u]:
                width = min(w_u, w)
                if width > max(
                    reach.get(v, (float("-inf"),))[0], improved.get(v, (float("-inf"),))[0]
                ):
                    improved[v] = (width, hops_u + 1, (u, reach[u]))
        if not improved:
            break
        reach.update(improved)
        frontier = set(improved) - {goal}
    if goal not in reach:
        return None
    bottleneck = reach[goal][0]
    path, entry = [goal], reach[goal]
    while entry[2] is not None:
        node, entry = entry[2]
        path.append(node)
    return path[::-1], bottleneck


def bounded_pairs(num_candidates: int, window: int) -> Iterable[tuple[int, int]]:
    """Candidate pairs (graph nodes i < j) matched against each other: sequence neighbours
    within `window` positions (candidates come in capture or trajectory order)."""
    for i in range(1, num_candidates + 1):
        for j in range(i + 1, min(i + window, num_candidates) + 1):
            yield i, j


def chain_selection(
    num_candidates: int,
    weights: dict[tuple[int, int], float],
    paper_scores: list[int],
    eligible: list[int],
    top_k: int,
    min_edge: float,
) -> list[int] | None:
    """Candidate indices (chain first) or None when A and B do not connect.

    weights: inliers of every matched pair of graph nodes (0 = A, 1..m candidates, m+1 = B);
    pairs below `min_edge` are not edges. The chain comes first in path order, then the
    `eligible` candidates with the best paper scores fill the remaining slots.
    """
    goal = num_candidates + 1
    edges = {
        pair: w for pair, w in weights.items() if w >= min_edge and pair != (0, goal)
    }  # the direct A-B edge is what the bridge is for: never a chain of zero frames
    found = widest_path(num_candidates + 2, edges, 0, goal, max_hops=top_k + 1)
    if found is None:
        return None
    path = found[0]
    kept = [node - 1 for node in path[1:-1]]
    # Support the chain's links, weakest first, with a third view that overlaps both of its
    # views (a triangle): its three-view tracks are what lets an incremental mapper register
    # the view across that link, where a pair seen by no third view leaves too few
    # triangulated points (an end linked by one weak pair goes unregistered).
    links = sorted(zip(path, path[1:]), key=lambda link: edges.get(tuple(sorted(link)), 0.0))
    for u, v in links:
        if len(kept) >= top_k:
            break
        support = [
            (min(edges.get(tuple(sorted((u, c))), 0.0), edges.get(tuple(sorted((c, v))), 0.0)), c)
            for c in range(1, goal)
            if c - 1 not in kept
        ]
        width, best = max(support, default=(0.0, None))
        if best is not None and width >= min_edge:
            kept.append(best - 1)
    fill = [i for i in sorted(eligible, key=lambda i: -paper_scores[i]) if i not in kept]
    return kept + fill[: max(top_k - len(kept), 0)]
