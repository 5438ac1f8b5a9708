"""GraphDistanceCost: shortest paths through dataset states, as a planning cost."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from torchrl_skills.envs import GoalDistanceCost, GraphDistanceCost, OffDataPenalty, SkillModelEnv
from torchrl_skills.envs.skill_model_env import SkillTransition
from torchrl_skills.modules import SkillModel, make_skill_planner


def _u_corridor(n: int = 300) -> torch.Tensor:
    """A walk along a U: right along y=0 to x=4, up to y=2, back left along y=2 (a wall in between)."""
    t = torch.linspace(0, 1, n)
    return torch.cat(
        [
            torch.stack([4 * t, 0 * t], -1),
            torch.stack([4 + 0 * t, 2 * t], -1),
            torch.stack([4 - 4 * t, 2 + 0 * t], -1),
        ]
    )


def test_distance_goes_around_the_wall():
    path = _u_corridor()
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=80)
    assert cost.num_components == 1
    start, goal = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 2.0])
    # the path through the data is 4 + 2 + 4 = 10; the straight line is 2
    assert cost.distance(start, goal).item() == pytest.approx(10.0, abs=0.3)
    assert cost(start, goal).item() == pytest.approx(cost.distance(start, goal).item() ** 2)
    # the cost is exactly zero at the goal and grows towards the start along the U
    along = torch.cat([path[::30], path[-1:]])
    values = cost(along, goal.expand_as(along)).squeeze(-1)
    assert values[-1].item() == pytest.approx(0.0, abs=1e-6)
    assert (values[:-1] >= values[1:] - 0.2).all()


def test_open_space_distance_is_the_straight_line():
    g = torch.Generator().manual_seed(0)
    # a dense random walk filling the unit square, in 20 episodes
    steps = 0.05 * torch.randn(20, 500, 2, generator=g)
    walk = (torch.rand(20, 1, 2, generator=g) + steps.cumsum(1)).remainder(1.0).reshape(-1, 2)
    episode = torch.arange(20).repeat_interleave(500)
    cost = GraphDistanceCost.from_trajectories(walk, episode, num_nodes=200, max_edge_steps=5)
    a, b = torch.rand(100, 2, generator=g) * 0.8 + 0.1, torch.rand(100, 2, generator=g) * 0.8 + 0.1
    straight = (a - b).norm(dim=-1)
    through = cost.distance(a, b)
    assert (through >= straight - 1e-6).all()
    # graph paths zig-zag between nodes a little, but stay close to the straight line
    assert ((through - straight) / straight.clamp_min(0.1)).median() < 0.25


def test_disconnected_data_is_not_trusted():
    left = torch.stack([torch.linspace(0, 1, 100), torch.zeros(100)], -1)
    right = left + torch.tensor([5.0, 0.0])
    episode = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    cost = GraphDistanceCost.from_trajectories(torch.cat([left, right]), episode, num_nodes=20)
    assert cost.num_components == 2
    across = cost.distance(torch.tensor([1.0, 0.0]), torch.tensor([5.0, 0.0]))
    # the unconnected pair gets the largest distance of all, longer than the 4 m straight line
    assert across.item() == pytest.approx(cost.distances.max().item())
    assert across.item() > 4.0 + 1.0


def test_grid_lookup_matches_exact_nearest_node():
    g = torch.Generator().manual_seed(1)
    nodes = torch.rand(300, 2, generator=g) * 10
    cost = GraphDistanceCost(nodes, torch.cdist(nodes, nodes))
    queries = torch.rand(2000, 2, generator=g) * 10
    exact = torch.cdist(queries, nodes).argmin(-1)
    approx = cost.node_index(queries)
    gap = (queries - nodes[approx]).norm(dim=-1) - (queries - nodes[exact]).norm(dim=-1)
    # snapping moves a query by at most half a cell diagonal, so the gap is at most a cell diagonal
    assert gap.max() <= 2**0.5 * cost.resolution
    # points far outside the data are clamped onto the grid, not out of bounds
    assert cost.node_index(torch.tensor([[1e6, -1e6]])).shape == (1,)


def test_from_trajectories_builds_the_lookup_grid_once(monkeypatch):
    import torchrl_skills.envs.graph_cost as graph_cost

    built = []
    original = graph_cost._NearestNodeGrid.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(graph_cost._NearestNodeGrid, "__init__", counting_init)
    path = _u_corridor()
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=80)
    assert len(built) == 1
    # the kept grid is the one the constructor builds from the same nodes
    again = GraphDistanceCost(cost.nodes, cost.distances)
    assert torch.equal(again.grid_node, cost.grid_node) and again.resolution == cost.resolution


def test_state_indices_and_batch_shapes():
    path = _u_corridor(100)
    cost = GraphDistanceCost.from_trajectories(
        path, torch.zeros(len(path), dtype=torch.long), num_nodes=30, xy_indices=(2, 3)
    )
    state = torch.zeros(7, 5, 4)
    state[..., 2:] = path[:35].reshape(7, 5, 2)
    out = cost(state, torch.tensor([0.0, 2.0]).expand(7, 5, 2))
    assert out.shape == (7, 5, 1)
    assert torch.isfinite(out).all()


def test_plugs_into_the_planner():
    torch.manual_seed(0)
    path = _u_corridor(100)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=30)
    model = SkillModel(state_dim=2, action_dim=2, z_dim=4, hidden_dim=16)
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2, cost=cost)
    assert planner.env.goal_dim == 2
    td = TensorDict({"observation": torch.zeros(3, 2), "goal": torch.tensor([0.0, 2.0]).expand(3, 2)}, [3])
    td = planner.env.reset(td)
    assert torch.allclose(td["min_cost"].squeeze(-1), torch.full((3,), cost.distance(path[0], path[-1]).item() ** 2))
    assert planner(td)["action"].shape == (3, 4)
    # the off-data penalty with its detour check plans the same batch (one start, many candidate ends)
    careful = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2, cost=cost,
                                 skill_penalty=OffDataPenalty(cost, 100.0, detour_slack=1.0))  # fmt: skip
    assert careful(careful.env.reset(td))["action"].shape == (3, 4)


def test_same_scale_as_the_euclidean_cost_in_the_open():
    path = _u_corridor(200)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=60)
    s, g = torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    assert cost(s, g).item() == pytest.approx(GoalDistanceCost()(s, g).item(), rel=0.1)


def test_off_data_penalty_by_hand():
    path = _u_corridor(200)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=60)
    penalty = OffDataPenalty(cost, weight=3.0)
    states = torch.tensor([[2.0, 0.0, 9.0], [0.0, 1.0, 9.0], [2.0, 1.0, 9.0], [-1.0, 0.0, 9.0]])  # x, y, other
    exact = torch.cdist(states[:, :2], cost.nodes).min(-1).values  # the nearest node, searched exhaustively
    assert torch.allclose(penalty.distance(states).squeeze(-1), exact, atol=cost.resolution)
    # the support radius: how far the data's own positions lie from their nearest node (99th percentile)
    off_path = torch.cdist(path, cost.nodes).min(-1).values
    assert cost.support_radius == pytest.approx(torch.quantile(off_path, 0.99).item(), abs=cost.resolution)
    assert 0 < cost.support_radius < 0.5 * (10 / 60) * 1.5  # about half the node spacing (10 m of path, 60 nodes)
    assert penalty.radius == cost.support_radius
    beyond = (exact - cost.support_radius).clamp_min(0)
    assert torch.allclose(penalty(states).squeeze(-1), 3.0 * beyond.pow(2), atol=0.1)
    assert penalty(states)[0].item() == 0.0 and penalty(states)[1].item() > 2.0  # corridor: free; 1 m into the wall
    no_radius = OffDataPenalty(cost, weight=3.0, radius=0.0)
    assert torch.allclose(no_radius(states), 3.0 * no_radius.distance(states).pow(2))
    assert penalty(states.reshape(2, 2, 3)).shape == (2, 2, 1)


def test_off_data_penalty_checks_the_skill_segment():
    path = _u_corridor(200)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=60)
    start = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    end = torch.tensor([[0.0, 2.0], [3.0, 0.0], [4.0, 1.0]])  # through the wall; along the data; around the corner
    penalty = OffDataPenalty(cost, weight=1.0, radius=0.0, segment_points=3)
    # every end is on the data; the wall crossing's worst checked point is its middle, (0, 1), 1 m from the data
    assert penalty(end).max().item() < 0.01
    d = penalty.distance(start, end).squeeze(-1)
    assert d[0].item() == pytest.approx(1.0, abs=0.05) and d[1].item() < 0.1
    # the corner cut from (1, 0) to (4, 1): the point at 3/4, (3.25, 0.75), is 0.75 m from the data
    assert d[2].item() == pytest.approx(0.75, abs=0.05)
    ends_only = OffDataPenalty(cost, weight=1.0, radius=0.0, segment_points=0)
    assert torch.allclose(ends_only(start, end), ends_only(end))
    assert penalty(start.expand(4, 3, 2), end.expand(4, 3, 2)).shape == (4, 3, 1)


def test_detour_penalty_by_hand():
    # the U's corridors are 2 m apart: a skill straight across keeps within 1 m of the data all the
    # way, so a 1.1 m radius lets it through, but the data only joins its ends round the U (10 m)
    path = _u_corridor(300)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=80)
    start = torch.tensor([[0.5, 0.0], [0.5, 0.0], [3.0, 0.0]])
    end = torch.tensor([[0.5, 2.0], [3.0, 0.0], [4.0, 1.0]])  # across the wall; along the corridor; round the corner
    plain = OffDataPenalty(cost, weight=2.0, radius=1.1)
    detours = OffDataPenalty(cost, weight=2.0, radius=1.1, detour_slack=0.5)
    assert plain(start, end).max().item() == 0.0
    detour = detours.detour(start, end).squeeze(-1)
    straight = (end - start).norm(dim=-1)
    assert torch.allclose(detour, cost.distance(start, end) - straight)
    assert detour[0].item() == pytest.approx(3.5 + 2 + 3.5 - 2, abs=0.3)  # 9 m of path for 2 m across
    # along a corridor the path is the segment; round a corner it is the two legs (1 + 1 for 1.41)
    assert abs(detour[1].item()) < 0.2 and detour[2].item() == pytest.approx(2 - 2**0.5, abs=0.2)
    expected = 2.0 * (detour - 0.5).clamp_min(0).pow(2)
    assert torch.allclose(detours(start, end).squeeze(-1), expected, atol=1e-5)
    assert detours(start, end)[1].item() == 0.0 and detours(start, end)[0].item() > 2.0 * 6**2
    assert torch.equal(detours(end), plain(end))  # single positions have no detour
    assert detours(start.expand(4, 3, 2), end.expand(4, 3, 2)).shape == (4, 3, 1)
    # one start per episode against many candidate ends, as the planner asks
    many = detours(start[:, None], end[:, None].expand(3, 5, 2))
    assert many.shape == (3, 5, 1) and torch.allclose(many[:, 0], detours(start, end))
    assert "detour_slack=0.5" in repr(detours) and "detour" not in repr(plain)


class _Teleport(SkillTransition):
    """A world model that ends each skill where the first two noise entries say: imagined ends set by hand."""

    def next_state(self, state, eps):
        return eps[..., :2]


def test_off_data_penalty_stops_the_planner_cutting_through_walls():
    path = _u_corridor(200)
    cost = GraphDistanceCost.from_trajectories(path, torch.zeros(len(path), dtype=torch.long), num_nodes=60)
    model = SkillModel(state_dim=2, action_dim=2, z_dim=2, hidden_dim=8)
    start, goal = torch.zeros(2, 2), torch.tensor([0.0, 2.0]).expand(2, 2)
    # one skill each: into the wall between the corridors next to the goal, or 2 m along the data
    ends = torch.tensor([[[0.0, 1.2]], [[2.0, 0.0]]])
    min_cost = cost(start, goal)
    plain = _Teleport(model, cost, eps_penalty=0.0).returns(start, ends, goal, min_cost).squeeze(-1)
    assert plain[0] > plain[1]  # the short cut through the wall looks best
    careful = _Teleport(model, cost, eps_penalty=0.0, skill_penalty=OffDataPenalty(cost, 1000.0))
    kept = careful.returns(start, ends, goal, min_cost).squeeze(-1)
    # a large weight forbids the wall and costs the corridor nothing: it is within the support radius
    assert kept[1] > kept[0] and kept[1] == plain[1]
    # without the radius, the same weight also charges the corridor for its distance to the nearest node
    strict = _Teleport(model, cost, eps_penalty=0.0, skill_penalty=OffDataPenalty(cost, 1000.0, radius=0.0))
    assert strict.returns(start, ends, goal, min_cost)[1] < plain[1]
    # forward's per-step rewards carry the same penalty and sum to returns
    two = torch.cat([ends, ends.flip(0)], 1)  # two skills each
    total, state, m = 0, start, min_cost
    for t in range(2):
        state, m, reward = careful(state, two[:, t], goal, m)
        total = total + reward
    assert torch.allclose(careful.returns(start, two, goal, min_cost), total, atol=1e-4)


def test_entry_nodes_by_hand():
    # three nodes on a line, 0 - 1 - 2, one unit apart; the goal sits at node 2
    nodes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    D = torch.cdist(nodes, nodes)
    flat = GraphDistanceCost(nodes, D)
    entry = GraphDistanceCost(nodes, D, entry_nodes=2)
    goal = torch.tensor([2.0, 0.0])
    # inside node 0's cell (x < 0.5) the nearest-node cost is flat at D[0, 2] = 2
    p = torch.tensor([[0.1, 0.3], [0.4, 0.3]])
    assert flat.distance(p, goal).tolist() == pytest.approx([2.0, 2.0])
    # with two entry nodes, both 0 and 1 are candidates: min(|p - n0| + 2, |p - n1| + 1)
    expected = torch.minimum((p - nodes[0]).norm(dim=-1) + 2, (p - nodes[1]).norm(dim=-1) + 1)
    assert entry.distance(p, goal) == pytest.approx(expected, abs=1e-4)
    assert entry.distance(p[1], goal) < entry.distance(p[0], goal)  # deeper along the route costs less
    # the straight line still bounds it from below, and the goal costs 0
    assert entry.distance(goal, goal).item() == pytest.approx(0.0, abs=1e-6)
    assert "entry_nodes=2" in repr(entry) and "entry_nodes" not in repr(flat)


def test_entry_nodes_make_the_cost_decrease_inside_a_cell():
    path = _u_corridor(600)
    episode = torch.zeros(len(path), dtype=torch.long)
    flat = GraphDistanceCost.from_trajectories(path, episode, num_nodes=30)
    entry = GraphDistanceCost.from_trajectories(path, episode, num_nodes=30, entry_nodes=4)
    goal = torch.tensor([0.0, 2.0])
    along = path[:200:4]  # the first leg, away from the goal's leg across the wall
    f, e = flat.distance(along, goal), entry.distance(along, goal)
    # nearest-node: a staircase (many equal neighbours); entry nodes: strictly decreasing
    assert (f[1:] == f[:-1]).sum() > len(f) // 2
    assert (e[1:] < e[:-1]).all()
    # still the path around the wall, not the 2 m straight line
    assert e[0].item() == pytest.approx(10.0, abs=0.5)
    assert (e - f).abs().max() < 1.0  # within about a node spacing of the nearest-node cost


def test_bad_inputs():
    with pytest.raises(ValueError, match="entry_nodes must be an int >= 1"):
        GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4), entry_nodes=0)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        OffDataPenalty(GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4)), -1.0)
    with pytest.raises(ValueError, match="segment_points must be an integer >= 0"):
        OffDataPenalty(GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4)), 1.0, segment_points=-1)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        OffDataPenalty(GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4)), 1.0, radius=-0.1)
    with pytest.raises(ValueError, match="detour_slack must be >= 0"):
        OffDataPenalty(GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4)), 1.0, detour_slack=-1.0)
    with pytest.raises(ValueError, match="support_radius must be >= 0"):
        GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4), support_radius=-1.0)
    with pytest.raises(TypeError, match="GraphDistanceCost"):
        OffDataPenalty(GoalDistanceCost(), 1.0)
    with pytest.raises(ValueError, match="num_nodes"):
        GraphDistanceCost.from_trajectories(torch.zeros(10, 2), torch.zeros(10), num_nodes=20)
    with pytest.raises(ValueError, match="one episode id"):
        GraphDistanceCost.from_trajectories(torch.zeros(10, 2), torch.zeros(9), num_nodes=5)
    with pytest.raises(ValueError, match="max_edge_steps"):
        GraphDistanceCost.from_trajectories(torch.rand(10, 2), torch.zeros(10), num_nodes=5, max_edge_steps=0)
    with pytest.raises(ValueError, match=r"\[N, N\]"):
        GraphDistanceCost(torch.rand(4, 2), torch.zeros(3, 3))
    cost = GraphDistanceCost(torch.rand(4, 2), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="compares 2 coordinates"):
        cost(torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="goal_dim|does not match|custom cost"):
        SkillModelEnv(SkillModel(2, 2, z_dim=4, hidden_dim=8), cost=lambda s, g: s.sum(-1, keepdim=True))
