"""A planning cost that goes around walls: shortest paths through a graph of dataset states.

The paper's cost, the squared Euclidean distance between a predicted skill end point and the goal
(:class:`~torchrl_skills.envs.GoalDistanceCost`), is blind to walls: in a maze it rewards skills
that end on the far side of a wall from the start, and a planner that looks a few skills ahead
gets stuck in dead ends that point towards the goal. :class:`GraphDistanceCost` replaces the
straight line by a distance through the offline data itself, with no map of the maze and no
further training, in the spirit of search on the replay buffer (Eysenbach et al., NeurIPS 2019):

1. ``num_nodes`` dataset positions spread over the visited space are picked as graph nodes
   (farthest-point sampling);
2. two nodes are joined when some trajectory of the dataset went from near one to near the other
   within ``max_edge_steps`` steps; the edge is as long as the straight segment between them;
3. all-pairs shortest paths over that graph give ``D[i, j]`` (Floyd-Warshall, vectorised);
4. a position is mapped to its nearest node through a precomputed lookup grid, so the cost of a
   whole batch of planning candidates is two table lookups.

The distance from ``s`` to ``g`` is ``max(||s - g||, D[node(s), node(g)])``: the straight line
near the goal (so the cost is 0 at the goal and smooth around it) and the path through the data
wherever the data has to go around something. The cost is its square, on the scale of
:class:`~torchrl_skills.envs.GoalDistanceCost`, so ``eps_penalty`` keeps its meaning.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GraphDistanceCost", "OffDataPenalty"]


def _farthest_point_sampling(points: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``num`` points spread over ``points`` [M, d]: each pick is the farthest from all previous."""
    first = torch.randint(points.shape[0], (1,), generator=generator, device="cpu").to(points.device)
    chosen = torch.empty(num, dtype=torch.long, device=points.device)
    chosen[0] = first
    nearest = (points - points[first]).pow(2).sum(-1)
    for i in range(1, num):  # sequential by nature: each pick depends on all earlier ones
        nxt = nearest.argmax()
        chosen[i] = nxt
        nearest = torch.minimum(nearest, (points - points[nxt]).pow(2).sum(-1))
    return chosen


def _nearest(queries: torch.Tensor, nodes: torch.Tensor, k: int | None = None, chunk: int = 65536) -> torch.Tensor:
    """Index of the nearest node (``[M]``), or of the ``k`` nearest (``[M, k]``), per query; chunked to bound memory."""
    shape = (queries.shape[0],) if k is None else (queries.shape[0], k)
    out = torch.empty(shape, dtype=torch.long, device=queries.device)
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start : start + chunk], nodes)
        out[start : start + chunk] = d.argmin(-1) if k is None else d.topk(k, dim=-1, largest=False).indices
    return out


def _all_pairs_shortest_paths(weights: torch.Tensor) -> torch.Tensor:
    """Floyd-Warshall on a dense ``[N, N]`` weight matrix (``inf`` = no edge), one vector op per pivot."""
    dist = weights.clone()
    dist.fill_diagonal_(0.0)
    for k in range(dist.shape[0]):
        torch.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :], out=dist)
    return dist


class _NearestNodeGrid:
    """A regular grid over the nodes' bounding box holding each cell centre's nearest node.

    Exact nearest-node search costs ``O(N)`` per query; a planner asks for hundreds of thousands of
    queries per imagined step, so queries are snapped to the grid instead (error at most half a
    cell diagonal, far below the node spacing at the default resolution).
    """

    def __init__(self, nodes: torch.Tensor, resolution: float | None, margin: float | None):
        self.nodes = nodes
        low, high = nodes.min(0).values, nodes.max(0).values
        extent = float((high - low).max().clamp_min(1e-6))
        if margin is None:
            margin = 0.1 * extent
        if resolution is None:
            resolution = (extent + 2 * margin) / 512
        if resolution <= 0:
            raise ValueError(f"resolution must be > 0, got {resolution}.")
        low = low - margin
        shape = ((high + margin - low) / resolution).ceil().long().clamp_min(1) + 1
        if int(shape.prod()) > 50_000_000:
            raise ValueError(
                f"The lookup grid would have {int(shape.prod()):,} cells; pass a coarser resolution (now {resolution})."
            )
        axes = [low[i] + resolution * torch.arange(int(n), device=nodes.device) for i, n in enumerate(shape)]
        centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, nodes.shape[1])
        strides = torch.ones_like(shape)
        for i in range(len(shape) - 2, -1, -1):  # row-major strides, for flat indexing in any dimension
            strides[i] = strides[i + 1] * shape[i + 1]
        self.centres = centres
        self.node = _nearest(centres, nodes).reshape(*shape.tolist())
        self.low, self.shape, self.strides, self.resolution = low, shape, strides, float(resolution)

    def nearest_k(self, k: int) -> torch.Tensor:
        """``[*shape, k]``: the ``k`` nodes nearest to each cell centre, nearest first."""
        k = min(k, self.nodes.shape[0])
        return _nearest(self.centres, self.nodes, k).reshape(*self.shape.tolist(), k)

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        return self.node.reshape(-1)[_grid_cell(positions, self.low, self.shape, self.strides, self.resolution)]


def _grid_cell(positions, low, shape, strides, resolution) -> torch.Tensor:
    """Flat index of the lookup-grid cell of each position (positions outside are clamped onto the border)."""
    cell = ((positions - low) / resolution).round().long()
    cell = torch.minimum(cell.clamp_min(0), shape - 1)
    return (cell * strides).sum(-1)


class GraphDistanceCost(nn.Module):
    """Squared shortest-path distance to the goal through a graph built from offline trajectories.

    A drop-in ``cost`` for :class:`~torchrl_skills.envs.SkillModelEnv` (and so for
    :func:`~torchrl_skills.modules.make_skill_planner`): ``cost(state, goal) -> [..., 1]``, where
    the goal holds the positions compared (x-y in the mazes). Build it from the dataset the skill
    model was trained on with :meth:`from_trajectories` (or :meth:`from_dataset` for a Minari id);
    see the module docstring for the construction.

    Args:
        nodes (torch.Tensor): ``[N, P]`` node positions (``P`` = 2 for x-y).
        distances (torch.Tensor): ``[N, N]`` shortest-path lengths between nodes; ``inf`` where the
            data never connects two nodes.
        xy_indices (sequence of int, optional): where the compared positions sit inside the state.
            Defaults to ``(0, 1)``.
        resolution (float, optional): cell size of the nearest-node lookup grid, in position units.
            Defaults to the extent of the nodes divided by 512.
        margin (float, optional): how far beyond the nodes' bounding box the grid extends; positions
            further out are clamped onto its border. Defaults to 10% of the extent.
        support_radius (float, optional): how far from its nearest node a position of the data
            itself can lie (:meth:`from_trajectories` measures it: the 99th percentile over the
            data). Positions farther out are off the data's support; see :class:`OffDataPenalty`.
            Defaults to ``0.0``.
        entry_nodes (int, optional): where a position enters the graph. ``1`` (default): at its
            nearest node, ``D[node(p), node(g)]``, which is flat inside each node's cell, so a
            planner cannot tell apart ends that reach different depths of the same cell. ``k > 1``:
            at whichever of its ``k`` nearest nodes gives the shortest path, the straight line to
            that node included, ``min_i ||p - n_i|| + D[n_i, node(g)]``: continuous, and
            decreasing as ``p`` moves along the route inside a cell. Keep ``k`` small enough that
            the ``k`` nearest nodes lie on the position's side of every wall.

    Attributes:
        nodes, distances (torch.Tensor): as given (buffers: they move with ``.to(device)``).
        num_components (int): connected components of the graph (1 when the data connects
            everything; more means some goals are unreachable through the data).
        support_radius (float): as given or measured.

    Examples:
        >>> # two corridors joined at x = 4: straight lines from (0, 0) to (0, 1) go through a wall
        >>> t = torch.linspace(0, 1, 200)
        >>> path = torch.cat([torch.stack([4 * t, 0 * t], -1), torch.stack([4 + 0 * t, t], -1),
        ...                   torch.stack([4 - 4 * t, 1 + 0 * t], -1)])
        >>> cost = GraphDistanceCost.from_trajectories(path, torch.zeros(600, dtype=torch.long), num_nodes=60)
        >>> start, goal = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> round(cost(start, goal).sqrt().item())  # around the corner, not the 1 m straight line
        9
    """

    def __init__(
        self,
        nodes: torch.Tensor,
        distances: torch.Tensor,
        xy_indices: Sequence[int] = (0, 1),
        resolution: float | None = None,
        margin: float | None = None,
        support_radius: float = 0.0,
        entry_nodes: int = 1,
        *,
        _grid: _NearestNodeGrid | None = None,
    ):
        super().__init__()
        if not (isinstance(entry_nodes, int) and entry_nodes >= 1):
            raise ValueError(f"entry_nodes must be an int >= 1, got {entry_nodes!r}.")
        nodes = torch.as_tensor(nodes, dtype=torch.float32)
        distances = torch.as_tensor(distances, dtype=torch.float32, device=nodes.device)
        if nodes.ndim != 2 or nodes.shape[0] < 2:
            raise ValueError(f"nodes must be [N >= 2, P], got shape {tuple(nodes.shape)}.")
        if distances.shape != (nodes.shape[0], nodes.shape[0]):
            raise ValueError(
                f"distances must be [N, N] = {(nodes.shape[0],) * 2} to match the nodes, got {tuple(distances.shape)}."
            )
        if len(xy_indices) != nodes.shape[1]:
            raise ValueError(
                f"xy_indices {tuple(xy_indices)} must name one state entry per node coordinate ({nodes.shape[1]})."
            )
        if not support_radius >= 0:
            raise ValueError(f"support_radius must be >= 0, got {support_radius}.")
        self.support_radius = float(support_radius)
        self.register_buffer("nodes", nodes)
        self.register_buffer("indices", torch.tensor(list(xy_indices), dtype=torch.long), persistent=False)
        finite = torch.isfinite(distances)
        # Unconnected pairs get a distance larger than any real path, so a planner still prefers
        # getting closer in the straight-line sense over nothing, without ever trusting the link.
        big = 2.0 * float(distances[finite].max()) + float(torch.cdist(nodes, nodes).max()) + 1.0
        self.register_buffer("distances", torch.where(finite, distances, torch.full_like(distances, big)))
        # Components: nodes with a finite distance to each other; the lowest such index labels them.
        labels = torch.where(finite, torch.arange(nodes.shape[0], device=nodes.device), nodes.shape[0]).amin(-1)
        self.num_components = int(labels.unique().numel())

        grid = _grid if _grid is not None else _NearestNodeGrid(nodes, resolution, margin)
        self.register_buffer("grid_node", grid.node)
        self.entry_nodes = entry_nodes
        # [*grid, k]: each cell's k nearest nodes, for the entry into the graph (None: the nearest only)
        self.register_buffer("grid_entry", grid.nearest_k(entry_nodes) if entry_nodes > 1 else None)
        self.register_buffer("grid_low", grid.low)
        self.register_buffer("grid_shape", grid.shape)
        self.register_buffer("grid_strides", grid.strides)
        self.resolution = grid.resolution

    @property
    def goal_dim(self) -> int:
        return self.nodes.shape[1]

    @classmethod
    def from_trajectories(
        cls,
        positions: torch.Tensor,
        episode: torch.Tensor,
        num_nodes: int = 1000,
        max_edge_steps: int = 10,
        symmetric: bool = True,
        max_points: int = 50_000,
        seed: int = 0,
        **kwargs,
    ) -> GraphDistanceCost:
        """Builds the graph from consecutive positions of offline trajectories.

        Args:
            positions (torch.Tensor): ``[M, P]`` positions in time order within each episode.
            episode (torch.Tensor): ``[M]`` episode (or segment) id of each position; positions of
                different episodes are never joined.
            num_nodes (int, optional): graph nodes. Defaults to ``1000``.
            max_edge_steps (int, optional): two nodes are joined when a trajectory went from one
                to the other within this many steps. Defaults to ``10``.
            symmetric (bool, optional): treat every traversal as reversible (true of mazes).
                Defaults to ``True``.
            max_points (int, optional): nodes are sampled among at most this many positions.
                Defaults to ``50_000``.
            seed (int, optional): seed of the node sampling. Defaults to ``0``.
            **kwargs: passed to the constructor (``xy_indices``, ``resolution``, ``margin``).
        """
        positions = torch.as_tensor(positions, dtype=torch.float32)
        episode = torch.as_tensor(episode).reshape(-1)
        if positions.ndim != 2 or positions.shape[0] != episode.shape[0]:
            raise ValueError(
                f"positions must be [M, P] with one episode id each; got {tuple(positions.shape)} and "
                f"{tuple(episode.shape)}."
            )
        if not 2 <= num_nodes <= positions.shape[0]:
            raise ValueError(f"num_nodes must be in [2, {positions.shape[0]}] (the positions), got {num_nodes}.")
        if max_edge_steps < 1:
            raise ValueError(f"max_edge_steps must be >= 1, got {max_edge_steps}.")
        generator = torch.Generator().manual_seed(seed)
        pool = positions
        if positions.shape[0] > max_points:
            pool = positions[torch.randperm(positions.shape[0], generator=generator)[:max_points].to(positions.device)]
        nodes = pool[_farthest_point_sampling(pool, num_nodes, generator)]
        grid = _NearestNodeGrid(nodes, kwargs.get("resolution"), kwargs.get("margin"))  # built once, kept by the cost
        node_of = grid(positions)
        if "support_radius" not in kwargs:
            # A high percentile, not the maximum: a few stray positions (an ant flipped over, a
            # position jump between stitched segments) must not widen the support for everyone.
            off = (positions - nodes[node_of]).norm(dim=-1)
            sample = off[torch.randperm(off.shape[0], generator=generator)[:1_000_000].to(off.device)]
            kwargs["support_radius"] = float(torch.quantile(sample, 0.99))

        n = num_nodes
        codes = []
        for h in range(1, max_edge_steps + 1):  # a handful of offsets, each vectorised over all positions
            same = episode[h:] == episode[:-h]
            a, b = node_of[:-h][same], node_of[h:][same]
            moved = a != b
            codes.append(a[moved] * n + b[moved])
        codes = torch.cat(codes).unique()
        src, dst = codes // n, codes % n
        weights = torch.full((n, n), math.inf, device=positions.device)
        weights[src, dst] = (nodes[src] - nodes[dst]).norm(dim=-1)
        if symmetric:
            weights = torch.minimum(weights, weights.T)
        return cls(nodes, _all_pairs_shortest_paths(weights), **kwargs, _grid=grid)

    @classmethod
    def from_dataset(
        cls,
        dataset_id: str,
        state_key=None,
        xy_indices: Sequence[int] = (0, 1),
        **kwargs,
    ) -> GraphDistanceCost:
        """Builds the graph from the states of a (local) Minari dataset.

        Args:
            dataset_id (str): Minari id, e.g. ``"torchrl_skills/ogbench/pointmaze-medium-navigate-v0"``.
            state_key: the observation entry holding the state (``None`` for array observations);
                see :func:`~torchrl_skills.data.load_minari_transitions`.
            xy_indices (sequence of int, optional): the position entries of the state.
            **kwargs: passed to :meth:`from_trajectories`.
        """
        from torchrl_skills.data import load_minari_transitions

        data = load_minari_transitions(dataset_id, state_key, download=False)
        positions = data["observation"][:, list(xy_indices)]
        return cls.from_trajectories(positions, data["episode"], xy_indices=xy_indices, **kwargs)

    def node_index(self, positions: torch.Tensor) -> torch.Tensor:
        """Index of the (grid-approximated) nearest node of each position ``[..., P]``."""
        return self.grid_node.reshape(-1)[self._cell(positions)]

    def _cell(self, positions: torch.Tensor) -> torch.Tensor:
        return _grid_cell(positions, self.grid_low, self.grid_shape, self.grid_strides, self.resolution)

    def distance(self, positions: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """``max(||p - g||, D[node(p), node(g)])`` for positions ``[..., P]`` and goals ``[..., P]``.

        With ``entry_nodes = k > 1`` the graph term is ``min_i ||p - n_i|| + D[n_i, node(g)]`` over
        the ``k`` nodes nearest to ``p``.
        """
        goal = goal.expand_as(positions)
        n = self.nodes.shape[0]
        goal_node = self.node_index(goal)
        if self.grid_entry is None:
            through_graph = self.distances.reshape(-1)[self.node_index(positions) * n + goal_node]
        else:
            entry = self.grid_entry.reshape(-1, self.grid_entry.shape[-1])[self._cell(positions)]  # [..., k]
            to_entry = (positions.unsqueeze(-2) - self.nodes[entry]).norm(dim=-1)
            through_graph = (to_entry + self.distances.reshape(-1)[entry * n + goal_node.unsqueeze(-1)]).amin(-1)
        return torch.maximum((positions - goal).norm(dim=-1), through_graph)

    def forward(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if goal.shape[-1] != self.goal_dim:
            raise ValueError(
                f"GraphDistanceCost compares {self.goal_dim} coordinates, got a goal of size {goal.shape[-1]}."
            )
        positions = state.index_select(-1, self.indices.to(state.device))
        return self.distance(positions, goal).pow(2).unsqueeze(-1)

    def extra_repr(self) -> str:
        return (
            f"nodes={self.nodes.shape[0]}, dim={self.goal_dim}, components={self.num_components}, "
            f"grid={tuple(self.grid_shape.tolist())} @ {self.resolution:.3g}, support_radius={self.support_radius:.3g}"
            + (f", entry_nodes={self.entry_nodes}" if self.entry_nodes > 1 else "")
        )


class OffDataPenalty(nn.Module):
    """``weight * max(0, d - radius)^2``, with ``d`` how far an imagined skill strays from the nodes of a data graph.

    A world model trained on offline trajectories has seen no state inside a wall, yet it happily
    predicts skill ends there, and a planner then picks exactly those skills because they look
    like short cuts. This penalty, subtracted from every imagined skill's reward (the
    ``skill_penalty`` of :class:`~torchrl_skills.envs.SkillModelEnv`), keeps plans on the support
    of the data: the graph's nodes are spread over every position the data visited, so the
    distance ``d`` to the nearest node stays below the graph's ``support_radius`` along corridors
    and grows with the depth of a point inside a wall. Like the noise penalty
    ``lambda * mean(eps^2)``, it is a pessimism term of the offline-planning kind; it needs no
    training.

    The world model predicts only where a skill ends, and an end on the far side of a wall
    corner is on the data's support even though no skill gets there in one go; so for a skill
    from ``s`` to ``s'``, ``d`` is the largest distance over ``s'`` and ``segment_points`` evenly
    spaced points of the straight segment between them (the ant's skills run nearly straight).
    Positions within ``radius`` of a node are not penalised at all, so a large ``weight`` acts as a
    support constraint: it forbids leaving the data without pulling every plan towards the nodes
    themselves (with ``radius=0``, a weight large enough to stop short cuts through walls also
    drowns the progress term in node-spacing noise).

    A corner cut can also keep every checked point on the support (the wall is thin, or the cut
    clips only its corner). ``detour_slack`` catches those skills by what the data says about
    them instead: the graph joins the skill's start and end by a path, and a skill that the data
    could walk in one go has a path about as long as its straight segment, while one whose path
    runs around a wall is much longer. With ``detour_slack`` set, each skill also pays
    ``weight * max(0, detour - detour_slack)^2``, ``detour`` the path's excess over the segment
    (:meth:`detour`).

    On the scale of :class:`GraphDistanceCost` (squared metres), ``weight`` trades a squared metre
    of predicted progress against a squared metre beyond the data's support.

    Args:
        graph (GraphDistanceCost): the graph whose nodes stand for the data's positions (the
            planning cost itself, usually).
        weight (float): the penalty's weight, ``>= 0``.
        radius (float, optional): the free distance around each node. Defaults to the graph's
            ``support_radius`` (measured on the data by :meth:`GraphDistanceCost.from_trajectories`).
        segment_points (int, optional): interior points of each skill's segment checked besides
            its end. Defaults to ``3`` (chosen on AntMaze validation pairs; see the README).
        detour_slack (float, optional): the detour, in position units, that a skill makes without
            penalty (``D[node(s), node(s')] - ||s' - s||``; the AntMaze data's own 40-step chunks
            stay below 0.64-0.90 m at the 99th percentile). ``None`` (default): detours are not checked.

    ``forward(state, next_state)`` returns the ``[..., 1]`` penalty of skills from ``state`` to
    ``next_state``; ``forward(state)`` that of single positions.

    Examples:
        >>> t = torch.linspace(0, 1, 200)
        >>> corner = torch.cat([torch.stack([4 * t, 0 * t], -1), torch.stack([4 + 0 * t, 4 * t], -1)])  # an L
        >>> graph = GraphDistanceCost.from_trajectories(corner, torch.zeros(400, dtype=torch.long), num_nodes=40)
        >>> penalty = OffDataPenalty(graph, weight=10.0, radius=0.5)
        >>> states = torch.tensor([[2.0, 0.0, 0.5], [2.0, 0.4, 0.5], [2.0, 1.5, 0.5]])  # x, y, anything else
        >>> penalty(states).squeeze(-1).round()  # on the data; within the radius; 1 m beyond it
        tensor([ 0.,  0., 10.])
        >>> start, end = torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[4.0, 4.0, 0.5]])
        >>> penalty(end).item(), penalty(start, end).item() > 10  # the end is on the data, the corner cut is not
        (0.0, True)
        >>> # a U of two corridors 1 m apart: the end is on the data, and so is the whole segment
        >>> u = torch.cat([torch.stack([4 * t, 0 * t], -1), torch.stack([4 + 0 * t, t], -1),
        ...                torch.stack([4 - 4 * t, 1 + 0 * t], -1)])
        >>> graph = GraphDistanceCost.from_trajectories(u, torch.zeros(600, dtype=torch.long), num_nodes=60)
        >>> detours = OffDataPenalty(graph, weight=10.0, radius=1.0, detour_slack=1.0)
        >>> start, across, along = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0, 0.0]])
        >>> round(detours.detour(start, across).item())  # the data goes round the U: 6 m more than the 1 m across
        6
        >>> detours(start, across).item() > 10, detours(start, along).item()  # through the wall; along the corridor
        (True, 0.0)
    """

    def __init__(
        self,
        graph: GraphDistanceCost,
        weight: float,
        radius: float | None = None,
        segment_points: int = 3,
        detour_slack: float | None = None,
    ):
        super().__init__()
        if not isinstance(graph, GraphDistanceCost):
            raise TypeError(f"OffDataPenalty measures distances to a GraphDistanceCost's nodes, got {type(graph).__name__}.")
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, got {weight}.")
        if radius is None:
            radius = graph.support_radius
        if not radius >= 0:
            raise ValueError(f"radius must be >= 0, got {radius}.")
        if isinstance(segment_points, bool) or not isinstance(segment_points, int) or segment_points < 0:
            raise ValueError(f"segment_points must be an integer >= 0, got {segment_points!r}.")
        if detour_slack is not None and not detour_slack >= 0:
            raise ValueError(f"detour_slack must be >= 0 (or None: no detour check), got {detour_slack}.")
        self.graph = graph
        self.weight = float(weight)
        self.radius = float(radius)
        self.segment_points = segment_points
        self.detour_slack = None if detour_slack is None else float(detour_slack)

    def _positions(self, state: torch.Tensor) -> torch.Tensor:
        return state.index_select(-1, self.graph.indices.to(state.device))

    def distance(self, state: torch.Tensor, next_state: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., 1]``: distance from a state's position, or the farthest of a skill's checked points, to the nearest node."""
        positions = self._positions(state).unsqueeze(-2)  # [..., 1, P]
        if next_state is not None:
            start, end = positions, self._positions(next_state).unsqueeze(-2)
            fractions = torch.arange(1, self.segment_points + 2, device=state.device, dtype=state.dtype)
            fractions = (fractions / (self.segment_points + 1)).unsqueeze(-1)  # [k + 1, 1]: interior points, the end
            positions = start + fractions * (end - start)  # [..., k + 1, P]
        nearest = self.graph.nodes[self.graph.node_index(positions)]
        return (positions - nearest).norm(dim=-1).amax(-1, keepdim=True)

    def detour(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        """``[..., 1]``: how much longer the graph's path from each skill's start to its end is than the straight segment."""
        # the planner pairs one start per episode with all its candidates' ends: broadcast them
        start, end = torch.broadcast_tensors(self._positions(state), self._positions(next_state))
        return (self.graph.distance(start, end) - (end - start).norm(dim=-1)).unsqueeze(-1)

    def forward(self, state: torch.Tensor, next_state: torch.Tensor | None = None) -> torch.Tensor:
        excess = (self.distance(state, next_state) - self.radius).clamp_min(0.0).pow(2)
        if next_state is not None and self.detour_slack is not None:
            excess = excess + (self.detour(state, next_state) - self.detour_slack).clamp_min(0.0).pow(2)
        return self.weight * excess

    def extra_repr(self) -> str:
        detour = "" if self.detour_slack is None else f", detour_slack={self.detour_slack:.3g}"
        return f"weight={self.weight:g}, radius={self.radius:.3g}, segment_points={self.segment_points}{detour}"
