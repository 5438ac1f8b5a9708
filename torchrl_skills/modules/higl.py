"""HIGL's two levels acting as one TorchRL policy over a batch of envs (SPEC B1-B2).

:class:`HIGLPolicy` is the acting side of HIGL: every step it encodes the window of recent
observations, asks the high level for a new latent goal in the rows whose goal is due (a new
episode, or ``k`` steps with the current goal), and lets the goal-conditioned low level act.
The goal and its age are carried from step to step as policy state, the way TorchRL carries
recurrent states: :meth:`HIGLPolicy.make_tensordict_primer` declares them in the env, and
:class:`~torchrl.envs.InitTracker` flags new episodes. Any TorchRL collector or rollout over a
batched env then runs both levels, with one batched call of each network per step.

Goals live in the encoder's latent space. Three goal maps turn the high level's action into one:

- :class:`UnitGoal` (the seed's design): the high-level action, projected onto the unit sphere
  where the L2-normalised latents live.
- :class:`ResidualLatentGoal` (goal-conditioned high level): ``z_g = normalize(E(g) + scale * a)``,
  a correction around the latent of the task's goal observation ``g``. Its zero action
  (the initial deterministic high level) pursues the task goal itself, so the hierarchy starts
  from goal-conditioned control and the high level learns detours (around walls) from there.
- :class:`RelativeSubgoal` (default of the examples): ``z_g = E(s_hat)``, ``s_hat`` the current
  observation at rest with its position moved by at most ``max_distance`` towards the task goal,
  plus ``max_distance * a``. The high level then searches a 2-d space of nearby positions
  rather than a 16-d sphere, and every goal it proposes is a nearby state, where the latent
  distance that rewards the low level is informative (temporal InfoNCE makes distant states
  near-orthogonal, so the reward towards a far latent is flat).
- :class:`LandmarkSubgoal`: :class:`RelativeSubgoal` whose zero action follows the shortest route
  to the task goal through a graph of the agent's own visited positions (landmarks), instead of
  the straight line through walls.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torch.nn import functional as F

from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import TensorDictPrimer
from torchrl.envs.utils import ExplorationType
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator

__all__ = ["UnitGoal", "ResidualLatentGoal", "RelativeSubgoal", "LandmarkSubgoal", "HIGLPolicy", "make_high_level_actor", "make_high_level_value"]


class UnitGoal(TensorDictModuleBase):
    """Latent goal = the high-level action projected onto the unit sphere (the seed's continuous goals).

    Args:
        action_key (NestedKey): the high-level action. Defaults to ``"high_action"``.
        out_key (NestedKey): the proposed goal. Defaults to ``"goal_proposal"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.higl import UnitGoal
        >>> td = UnitGoal()(TensorDict({"high_action": torch.tensor([[3.0, 4.0]])}, [1]))
        >>> td["goal_proposal"]
        tensor([[0.6000, 0.8000]])
    """

    def __init__(self, action_key: NestedKey = "high_action", out_key: NestedKey = "goal_proposal") -> None:
        super().__init__()
        self.in_keys = [action_key]
        self.out_keys = [out_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict.set(self.out_keys[0], F.normalize(tensordict.get(self.in_keys[0]), dim=-1))


class ResidualLatentGoal(TensorDictModuleBase):
    """Latent goal ``normalize(E(g) + scale * a)``: a learned correction around the task goal's latent.

    Args:
        encoder (nn.Module): ``E``, the same encoder as the low level's (its latents L2-normalised).

    Keyword Args:
        scale (float): how far (in latent units) an action of norm 1 moves the goal. Defaults to 1.0.
        action_key (NestedKey): the high-level action. Defaults to ``"high_action"``.
        goal_observation_key (NestedKey): the task goal as an observation. Defaults to ``"goal_observation"``.
        out_key (NestedKey): the proposed goal. Defaults to ``"goal_proposal"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> from torchrl_skills.modules.higl import ResidualLatentGoal
        >>> encoder = MLPEncoder(4, 8, normalize=True)
        >>> td = TensorDict({"high_action": torch.zeros(2, 8), "goal_observation": torch.randn(2, 4)}, [2])
        >>> torch.allclose(ResidualLatentGoal(encoder)(td)["goal_proposal"], encoder(td["goal_observation"]))
        True
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        scale: float = 1.0,
        action_key: NestedKey = "high_action",
        goal_observation_key: NestedKey = "goal_observation",
        out_key: NestedKey = "goal_proposal",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.scale = scale
        self.in_keys = [action_key, goal_observation_key]
        self.out_keys = [out_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        action, goal_obs = (tensordict.get(key) for key in self.in_keys)
        with torch.no_grad():  # goals are data for the low level; the encoder learns from its own loss
            anchor = self.encoder(goal_obs)
        return tensordict.set(self.out_keys[0], F.normalize(anchor + self.scale * action, dim=-1))


class RelativeSubgoal(TensorDictModuleBase):
    """Latent goal ``E(s_hat)`` of a nearby state: the high-level action moves the agent's position (towards the task goal).

    ``s_hat`` is the observation with its first ``position_dims`` entries replaced by
    ``p + clip(g - p, max_distance) + action_scale * a`` (``p`` the position, ``g`` the task goal's
    position, ``clip`` shortening the vector to at most ``max_distance``; without ``toward_goal``
    just ``p + action_scale * a``) and its other entries (velocities) set to 0, as for the task goal
    observation. So the zero action proposes the point ``max_distance`` along the straight line to
    the goal, and the high level learns where to deviate from it (walls). ``s_hat`` is written too
    (``subgoal_key``), for plots.

    Args:
        encoder (nn.Module): ``E``.

    Keyword Args:
        max_distance (float): reach of one goal, in the observation's position units. Defaults to 1.5.
        action_scale (float, optional): how far a unit high-level action moves the proposal.
            Defaults to ``max_distance``.
        position_dims (int): leading observation entries that are the position. Defaults to 2.
        toward_goal (bool): add the clipped direction to the task goal (needs ``goal_observation``). Defaults to ``True``.
        action_key, observation_key, goal_observation_key, out_key, subgoal_key (NestedKey): entry names.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.higl import RelativeSubgoal
        >>> goal_map = RelativeSubgoal(torch.nn.Identity(), max_distance=1.0)
        >>> td = TensorDict({"high_action": torch.tensor([[0.0, 0.5]]), "observation": torch.tensor([[0.0, 0.0, 3.0, 3.0]]),
        ...                  "goal_observation": torch.tensor([[4.0, 0.0, 0.0, 0.0]])}, [1])
        >>> goal_map(td)["subgoal_observation"]
        tensor([[1.0000, 0.5000, 0.0000, 0.0000]])
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        max_distance: float = 1.5,
        action_scale: float | None = None,
        position_dims: int = 2,
        toward_goal: bool = True,
        action_key: NestedKey = "high_action",
        observation_key: NestedKey = "observation",
        goal_observation_key: NestedKey = "goal_observation",
        out_key: NestedKey = "goal_proposal",
        subgoal_key: NestedKey = "subgoal_observation",
    ) -> None:
        super().__init__()
        action_scale = max_distance if action_scale is None else action_scale
        if max_distance <= 0 or position_dims < 1 or action_scale < 0:
            raise ValueError(
                f"max_distance must be > 0, action_scale >= 0 and position_dims >= 1, got {max_distance}, "
                f"{action_scale} and {position_dims}."
            )
        self.encoder = encoder
        self.max_distance = max_distance
        self.action_scale = action_scale
        self.position_dims = position_dims
        self.toward_goal = toward_goal
        self.in_keys = [action_key, observation_key, *([goal_observation_key] if toward_goal else [])]
        self.out_keys = [out_key, subgoal_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        p = self.position_dims
        action, observation = tensordict.get(self.in_keys[0]), tensordict.get(self.in_keys[1])
        position = observation[..., :p]
        target = position + self.action_scale * action
        if self.toward_goal:
            to_goal = self.waypoint(position, tensordict.get(self.in_keys[2])[..., :p]) - position
            norm = to_goal.norm(dim=-1, keepdim=True)
            target = target + to_goal * (self.max_distance / norm.clamp_min(1e-6)).clamp(max=1.0)
        subgoal = torch.cat([target, torch.zeros_like(observation[..., p:])], -1)
        with torch.no_grad():
            goal = self.encoder(subgoal)
        tensordict.set(self.out_keys[1], subgoal)
        return tensordict.set(self.out_keys[0], goal)

    def waypoint(self, position: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Where the zero action heads from ``position``: the task goal itself (the straight line)."""
        return goal


class LandmarkSubgoal(RelativeSubgoal):
    """:class:`RelativeSubgoal` along the route to the task goal through the agent's own experience.

    The zero action of :class:`RelativeSubgoal` heads straight for the task goal, through walls;
    the high level must then learn every detour itself. Here it heads for a *landmark* on the
    shortest route to the goal through a graph of visited positions, in the spirit of HIGL's
    landmark-guided subgoals (Kim et al., NeurIPS 2021) and search on the replay buffer
    (Eysenbach et al., NeurIPS 2019): :meth:`update_graph` picks landmarks among the positions the
    agent has visited (farthest-point sampling) and joins two of them when one of its trajectories
    went from near one to near the other within ``max_edge_steps`` steps (a
    :class:`~torchrl_skills.envs.GraphDistanceCost`; no map of the maze is used). Among the
    landmarks the graph reaches within ``max_distance`` of the agent's nearest one, the waypoint
    is the one closest to the goal through the graph; when none is closer than the agent already
    is (or before the first graph), the goal itself, as in :class:`RelativeSubgoal`. The high
    level's action still moves the proposal by up to ``action_scale``, so it learns corrections
    around the route rather than the route.

    The graph is derived data, rebuilt from the replay buffer (call :meth:`update_graph` after
    each collector batch and after loading a checkpoint); it is kept out of ``state_dict()``.

    Args:
        encoder (nn.Module): ``E``.

    Keyword Args:
        num_landmarks (int): graph nodes. Defaults to 300.
        max_edge_steps (int): two landmarks are joined when a trajectory went from near one to near
            the other within this many steps. Defaults to 5.
        min_positions (int): :meth:`update_graph` keeps the straight line until this many positions
            have been seen. Defaults to ``4 * num_landmarks``.
        **kwargs: the other keyword arguments of :class:`RelativeSubgoal` (``max_distance``,
            ``action_scale``, ``position_dims`` and the entry names).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules import LandmarkSubgoal
        >>> # experience: along y = 0 to x = 4, up to y = 2, back along y = 2 (a wall between the corridors)
        >>> t = torch.linspace(0, 1, 200)
        >>> path = torch.cat([torch.stack([4 * t, 0 * t], -1), torch.stack([4 + 0 * t, 2 * t], -1),
        ...                   torch.stack([4 - 4 * t, 2 + 0 * t], -1)])
        >>> goal_map = LandmarkSubgoal(torch.nn.Identity(), max_distance=1.0, num_landmarks=60)
        >>> _ = goal_map.update_graph(path, torch.zeros(600, dtype=torch.long))
        >>> td = TensorDict({"high_action": torch.zeros(1, 2), "observation": torch.tensor([[0.0, 0.0, 0.0, 0.0]]),
        ...                  "goal_observation": torch.tensor([[0.0, 2.0, 0.0, 0.0]])}, [1])
        >>> goal_map(td)["subgoal_observation"].round()  # along the corridor, not through the wall at y = 1
        tensor([[1., 0., 0., 0.]])
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_landmarks: int = 300,
        max_edge_steps: int = 5,
        min_positions: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(encoder, toward_goal=True, **kwargs)
        if num_landmarks < 2 or max_edge_steps < 1:
            raise ValueError(f"num_landmarks must be >= 2 and max_edge_steps >= 1, got {num_landmarks} and {max_edge_steps}.")
        self.num_landmarks = num_landmarks
        self.max_edge_steps = max_edge_steps
        self.min_positions = 4 * num_landmarks if min_positions is None else min_positions
        # Not a submodule: the graph's size follows the data, and a state_dict must load into a
        # fresh goal map that has none yet.
        self.__dict__["graph"] = None

    @torch.no_grad()
    def update_graph(self, positions: torch.Tensor, episode: torch.Tensor, seed: int = 0):
        """Rebuilds the landmark graph from visited positions ``[M, P]`` in time order within each episode.

        Args:
            positions (torch.Tensor): ``[M, position_dims]`` positions (or full observations, whose
                leading ``position_dims`` entries are used).
            episode (torch.Tensor): ``[M]`` trajectory id of each position (e.g. the collector's
                ``("collector", "traj_ids")``); positions of different trajectories are never joined.
            seed (int, optional): seed of the landmark sampling. Defaults to ``0``.

        Returns:
            the :class:`~torchrl_skills.envs.GraphDistanceCost` now in use, or ``None`` while fewer
            than ``min_positions`` positions have been seen.
        """
        from torchrl_skills.envs.graph_cost import GraphDistanceCost  # envs import modules: no cycle at import time

        positions = torch.as_tensor(positions)[..., : self.position_dims].reshape(-1, self.position_dims)
        if positions.shape[0] < max(self.min_positions, self.num_landmarks):
            return self.graph
        self.__dict__["graph"] = GraphDistanceCost.from_trajectories(
            positions.float(), torch.as_tensor(episode).reshape(-1).to(positions.device),
            num_nodes=self.num_landmarks, max_edge_steps=self.max_edge_steps, seed=seed,
        )  # fmt: skip
        return self.graph

    def waypoint(self, position: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        graph = self.graph
        if graph is None:
            return goal
        if graph.nodes.device != position.device:
            graph = graph.to(position.device)
            self.__dict__["graph"] = graph
        batch = position.shape[:-1]
        here, there = position.reshape(-1, self.position_dims), goal.expand_as(position).reshape(-1, self.position_dims)
        distances, node_here, node_there = graph.distances, graph.node_index(here), graph.node_index(there)
        # landmarks the graph reaches within one goal's reach of the agent's nearest landmark
        reachable = distances[node_here] <= self.max_distance  # [B, N]
        # each landmark's distance to the goal: the straight line near it, the graph elsewhere
        # (GraphDistanceCost.distance, with the node lookups done once)
        to_goal = torch.maximum(torch.cdist(there, graph.nodes), distances[:, node_there].T)
        best, index = to_goal.masked_fill(~reachable, float("inf")).min(-1)
        closer = best < torch.maximum((here - there).norm(dim=-1), distances[node_here, node_there])
        waypoint = torch.where(closer.unsqueeze(-1), graph.nodes[index], there)
        return waypoint.reshape(*batch, self.position_dims)


class HIGLPolicy(TensorDictModuleBase):
    """Both HIGL levels as one policy: a new latent goal every ``k`` steps (or at a new episode), an action every step.

    Per step, for a batch of envs (any batch shape):

    1. ``due = is_init | goal_age >= k``: rows that start an episode or have pursued their goal
       for ``k`` steps;
    2. the high level (one batched call) samples ``high_action``; ``goal_map`` turns it into a
       latent goal; rows in ``due`` take it, the others keep their goal;
    3. the low level reads the latent window ``E(s_{t-L+1} .. s_t)`` and the goal, writes ``action``.

    The tensordict gets ``goal`` (the goal pursued at this step), ``goal_age`` (steps with it,
    this one included), ``goal_set`` (``True`` where a new goal was drawn: the high level's
    decision steps, see :func:`~torchrl_skills.envs.hierarchical.high_level_transitions`),
    ``high_action`` and its log-probability, and ``latent_window``. ``goal`` and ``goal_age`` must
    come back at the next step: add :meth:`make_tensordict_primer` and
    :class:`~torchrl.envs.InitTracker` to the env.

    Both levels follow the exploration type in force: a collector samples (``RANDOM``), an
    evaluation under ``set_exploration_type(DETERMINISTIC)`` takes the modes.

    Args:
        encoder (nn.Module): ``E``, applied to every observation of the window in one call.
        high_level (TensorDictModuleBase): reads its own in-keys (e.g. the observation and the
            task goal), writes ``high_action`` (and its log-probability): see :func:`make_high_level_actor`.
        low_level (TensorDictModuleBase): reads ``latent_window`` and ``goal``, writes ``action``
            (e.g. :func:`~torchrl_skills.modules.transformer_policy.make_transformer_actor`).
        goal_dim (int): latent goal size.

    Keyword Args:
        k (int): low-level steps per goal. Defaults to 10.
        goal_map (TensorDictModuleBase, optional): writes ``goal_proposal`` from ``high_action``
            (and context). Defaults to :class:`UnitGoal`.
        observation_window_key (NestedKey): the window of raw observations (``CatFrames``).
            Defaults to ``"observation_window"``.
        latent_window_key, goal_key, goal_age_key, goal_set_key, is_init_key, high_action_key,
        goal_proposal_key (NestedKey): entry names (defaults: their names).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> from torchrl_skills.modules.higl import HIGLPolicy, make_high_level_actor
        >>> from torchrl_skills.modules.transformer_policy import make_transformer_actor
        >>> encoder = MLPEncoder(4, 8, normalize=True)
        >>> high = make_high_level_actor(["observation"], 4, goal_dim=8)
        >>> low = make_transformer_actor(Bounded(-1, 1, (2,)), 8, 8, seq_len=3, d_model=16)
        >>> policy = HIGLPolicy(encoder, high, low, goal_dim=8, k=5)
        >>> td = TensorDict({"observation": torch.randn(4, 4), "observation_window": torch.randn(4, 3, 4),
        ...                  "goal": torch.zeros(4, 8), "goal_age": torch.zeros(4, 1, dtype=torch.long),
        ...                  "is_init": torch.ones(4, 1, dtype=torch.bool)}, [4])
        >>> td = policy(td)
        >>> td["action"].shape, td["goal"].shape, td["goal_age"].squeeze(-1).tolist(), bool(td["goal_set"].all())
        (torch.Size([4, 2]), torch.Size([4, 8]), [1, 1, 1, 1], True)
    """

    def __init__(
        self,
        encoder: nn.Module,
        high_level: TensorDictModuleBase,
        low_level: TensorDictModuleBase,
        goal_dim: int,
        *,
        k: int = 10,
        goal_map: TensorDictModuleBase | None = None,
        observation_window_key: NestedKey = "observation_window",
        latent_window_key: NestedKey = "latent_window",
        goal_key: NestedKey = "goal",
        goal_age_key: NestedKey = "goal_age",
        goal_set_key: NestedKey = "goal_set",
        is_init_key: NestedKey = "is_init",
        high_action_key: NestedKey = "high_action",
        goal_proposal_key: NestedKey = "goal_proposal",
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        self.encoder = encoder
        self.high_level = high_level
        self.low_level = low_level
        self.goal_map = goal_map if goal_map is not None else UnitGoal(high_action_key, goal_proposal_key)
        self.goal_dim = goal_dim
        self.k = k
        self.keys = dict(
            observation_window=observation_window_key, latent_window=latent_window_key, goal=goal_key,
            goal_age=goal_age_key, goal_set=goal_set_key, is_init=is_init_key, high_action=high_action_key,
            goal_proposal=goal_proposal_key,
        )  # fmt: skip
        extra = [key for key in (*high_level.in_keys, *self.goal_map.in_keys) if key != high_action_key]
        self.in_keys = list(dict.fromkeys([observation_window_key, goal_key, goal_age_key, is_init_key, *extra]))
        self.out_keys = list(
            dict.fromkeys([*low_level.out_keys, *high_level.out_keys, goal_key, goal_age_key, goal_set_key, latent_window_key])
        )

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """The env transform that declares ``goal`` and ``goal_age`` and carries them to the next step.

        Use it with :class:`~torchrl.envs.InitTracker`, which writes the ``is_init`` flag the
        policy reads to draw a goal at every new episode.
        """
        k = self.keys
        return TensorDictPrimer(
            {k["goal"]: Unbounded((self.goal_dim,)), k["goal_age"]: Unbounded((1,), dtype=torch.int64)},
            expand_specs=True,
        )

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        k = self.keys
        age = tensordict.get(k["goal_age"])
        due = tensordict.get(k["is_init"]) | (age >= self.k)
        # one batched high-level call for every row; only the rows in `due` keep its goal
        tensordict = self.high_level(tensordict)
        proposal = self.goal_map(tensordict).get(k["goal_proposal"])
        goal = torch.where(due, proposal, tensordict.get(k["goal"]))
        tensordict.set(k["goal"], goal)
        tensordict.set(k["goal_age"], torch.where(due, torch.zeros_like(age), age) + 1)
        tensordict.set(k["goal_set"], due)
        window = tensordict.get(k["observation_window"])
        with torch.no_grad():  # acting needs no encoder gradient
            tensordict.set(k["latent_window"], self.encoder(window))
        return self.low_level(tensordict)


def make_high_level_actor(
    in_keys: Sequence[NestedKey],
    in_features: int,
    goal_dim: int,
    *,
    num_cells: Sequence[int] = (256, 256),
    action_key: NestedKey = "high_action",
    init_scale: float = 0.3,
    backbone: nn.Module | None = None,
) -> ProbabilisticActor:
    """The high level's stochastic policy: an MLP on the concatenated ``in_keys`` -> TanhNormal over ``[-1, 1]^goal_dim``.

    The last layer starts at zero, so the initial mode is the zero action: with
    :class:`ResidualLatentGoal` the untrained high level pursues the task goal itself.

    Args:
        in_keys (sequence of NestedKey): entries read and concatenated (e.g. the observation and
            the task goal).
        in_features (int): their total size.
        goal_dim (int): action size (the latent goal size).

    Keyword Args:
        num_cells (sequence of int): hidden sizes. Defaults to ``(256, 256)``.
        action_key (NestedKey): output action entry; its log-probability goes to
            ``<action_key>_log_prob``. Defaults to ``"high_action"``.
        init_scale (float): initial exploration scale of the pre-tanh Gaussian. Defaults to 0.3.
        backbone (nn.Module, optional): applied to the ``in_keys`` first, e.g. a
            :class:`~torchrl_skills.modules.encoders.ConvEncoder` for pixels; ``in_features`` is
            then its output size. Defaults to none (the entries go to the MLP as they are).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.higl import make_high_level_actor
        >>> actor = make_high_level_actor(["observation", "goal_observation"], 8, goal_dim=16)
        >>> td = actor(TensorDict({"observation": torch.randn(3, 4), "goal_observation": torch.randn(3, 4)}, [3]))
        >>> td["high_action"].shape, td["high_action_log_prob"].shape
        (torch.Size([3, 16]), torch.Size([3]))
        >>> from torchrl_skills.modules.encoders import ConvEncoder
        >>> pixels = make_high_level_actor(["pixels"], 32, goal_dim=16, backbone=ConvEncoder((3, 64, 64), 32))
        >>> pixels(TensorDict({"pixels": torch.zeros(3, 3, 64, 64, dtype=torch.uint8)}, [3]))["high_action"].shape
        torch.Size([3, 16])
    """
    # torchrl's MLP concatenates its inputs, so it reads several tensordict entries as they are
    net = MLP(in_features=in_features, out_features=2 * goal_dim, num_cells=list(num_cells), activation_class=nn.ReLU)
    last = net[-1]
    nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.zero_()
        # softplus(b) + 1e-4 = init_scale on the scale half
        last.bias[goal_dim:] = float(torch.log(torch.expm1(torch.tensor(max(init_scale - 1e-4, 1e-6)))))
    module = TensorDictSequential(
        *_backbone(backbone, in_keys, "high_features"),
        TensorDictModule(net, in_keys=["high_features"] if backbone is not None else list(in_keys), out_keys=["high_params"]),
        TensorDictModule(
            NormalParamExtractor(scale_mapping="softplus", scale_lb=1e-4), in_keys=["high_params"],
            out_keys=["high_loc", "high_scale"],
        ),
    )  # fmt: skip
    spec = Bounded(-1.0, 1.0, (goal_dim,))
    log_prob_key = f"{action_key}_log_prob" if isinstance(action_key, str) else (*action_key[:-1], f"{action_key[-1]}_log_prob")
    return ProbabilisticActor(
        module,
        in_keys={"loc": "high_loc", "scale": "high_scale"},
        out_keys=[action_key],
        spec=Composite({action_key: spec}),
        distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
        return_log_prob=True,
        log_prob_key=log_prob_key,
        default_interaction_type=ExplorationType.RANDOM,
    )


def _backbone(backbone: nn.Module | None, in_keys: Sequence[NestedKey], out_key: str) -> list[TensorDictModule]:
    return [] if backbone is None else [TensorDictModule(backbone, in_keys=list(in_keys), out_keys=[out_key])]


def make_high_level_value(
    in_keys: Sequence[NestedKey], in_features: int, *, num_cells: Sequence[int] = (256, 256), backbone: nn.Module | None = None
) -> ValueOperator | TensorDictSequential:
    """``V(s, g)`` of the high level's semi-MDP, an MLP on the concatenated ``in_keys`` writing ``"state_value"``.

    ``backbone`` (optional, e.g. a ConvEncoder for pixels) is applied to the ``in_keys`` first,
    as in :func:`make_high_level_actor`; ``in_features`` is then its output size.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules.higl import make_high_level_value
        >>> value = make_high_level_value(["observation"], 4)
        >>> value(TensorDict({"observation": torch.randn(3, 4)}, [3]))["state_value"].shape
        torch.Size([3, 1])
    """
    mlp = MLP(in_features=in_features, out_features=1, num_cells=list(num_cells), activation_class=nn.ReLU)
    if backbone is None:
        return ValueOperator(mlp, in_keys=list(in_keys))
    return TensorDictSequential(*_backbone(backbone, in_keys, "value_features"), ValueOperator(mlp, in_keys=["value_features"]))

