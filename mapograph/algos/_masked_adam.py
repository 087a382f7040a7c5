"""Adam that updates only the rows of chosen agents in stacked parameters.

Batch-sequential updates must leave agents outside the current batch untouched:
their parameters *and* their optimizer state (moments, step counts). A plain
``torch.optim.Adam`` over stacked ``[N, ...]`` tensors would decay every agent's
moments and move them by momentum; this optimizer keeps a step count per agent
and applies the Adam rule only on the selected rows, with gradient clipping by
each agent's own gradient norm.

It is a :class:`torch.optim.Optimizer`: ``param_groups`` hold ``lr`` (so
learning-rate schedulers work), the state of each parameter (``exp_avg``,
``exp_avg_sq`` and the per-agent ``agent_step`` ``[N]``) lives on the
parameter's device, and ``state_dict``/``load_state_dict`` are torch's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class AgentMaskedAdam(torch.optim.Optimizer):
    """Adam over parameters whose first dimension is the agent axis ``N``.

    Args:
        params: tensors shaped ``[N, ...]`` (stacked per-agent parameters).
        n_agents: ``N``.
        lr: learning rate.
        betas: Adam's moment decays.
        eps: Adam's denominator floor.
        max_grad_norm: clip each agent's gradient to this L2 norm (over all its
            parameters); ``None`` disables clipping.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        n_agents: int,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-5,
        max_grad_norm: float | None = None,
    ) -> None:
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.dim() < 1 or p.shape[0] != n_agents:
                raise ValueError(
                    f"AgentMaskedAdam needs parameters with leading dimension n_agents={n_agents}, "
                    f"got shape {list(p.shape)}"
                )
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self.n_agents = n_agents
        self.max_grad_norm = max_grad_norm
        # one step count per agent, the same tensor in every parameter's state
        steps = torch.zeros(
            n_agents, dtype=torch.float64, device=params[0].device if params else None
        )
        for p in self._params():
            self.state[p] = {
                "exp_avg": torch.zeros_like(p),
                "exp_avg_sq": torch.zeros_like(p),
                "agent_step": steps,
            }

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, during construction only: the parameters share one per-agent step
        count from the first step on, so a group added later is refused (build a new
        optimizer over all the parameters instead)."""
        if "n_agents" in self.__dict__:
            raise ValueError(
                "AgentMaskedAdam takes all its parameters at construction (one step count "
                "per agent, shared by every parameter); build a new optimizer instead"
            )
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        """torch's optimizer state plus the agent count and the clip (copy/pickle keep them)."""
        state = super().__getstate__()
        state.update(n_agents=self.n_agents, max_grad_norm=self.max_grad_norm)
        return state

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @property
    def steps(self) -> torch.Tensor:
        """Adam steps taken by each agent, ``[N]``."""
        return self.state[self._params()[0]]["agent_step"]

    @torch.no_grad()
    def agent_grad_norms(self, agents: torch.Tensor | None = None) -> torch.Tensor:
        """L2 norm of each agent's gradient over all parameters, ``[N]`` (``[len(agents)]``
        for the rows of ``agents``)."""
        grads = [p.grad for p in self._params() if p.grad is not None]
        if agents is not None:
            grads = [g.index_select(0, agents) for g in grads]
        rows = self.n_agents if agents is None else agents.numel()
        return _row_norms(grads, rows, self._params()[0].device)

    @torch.no_grad()
    def step(self, agents: torch.Tensor | None = None, closure: Any = None) -> Any:
        """One Adam step on the rows of ``agents`` (LongTensor of ids; ``None``: all agents).

        The moments of all parameters live side by side in two agent-major ``[N, S]``
        buffers (``S``: one agent's parameter count; each parameter's ``exp_avg`` and
        ``exp_avg_sq`` are views of them), so a step is a fixed handful of operations
        whatever the number of parameters: the gradients are joined into one ``[N, S]``
        tensor, the batch's rows are gathered once, and the Adam rule and the per-agent
        clip run on ``[k, S]`` (the per-step overhead that a batch-by-batch update pays K
        times). A step of every agent (``None``, or a batch of all ``N``) works on the
        buffers in place, without gathering (the rule is the same on every row).
        Parameters without a gradient keep their values and moments.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        if not params:
            return loss
        device = params[0].device
        every = agents is None or agents.numel() == self.n_agents
        agents = (
            torch.arange(self.n_agents, device=device)
            if every
            else agents.to(device=device, dtype=torch.long)
        )
        self.steps[agents] += 1  # once per step, whatever the groups; gradient or not
        step = self.steps[agents].unsqueeze(1)
        for index, group in enumerate(self.param_groups):
            self._step_group(index, group, agents, every, step)
        return loss

    def _step_group(
        self, index: int, group: dict, agents: torch.Tensor, every: bool, step: torch.Tensor
    ) -> None:
        """The Adam rule on one parameter group's rows ``agents`` (``every``: all of them),
        whose step counts (already advanced) are ``step`` ``[k, 1]``."""
        params = group["params"]
        if not params:
            return
        flat = self._flat_moments(index, params)
        live = [p.grad is not None for p in params]
        if not any(live):
            return
        grads = torch.cat(
            [
                (p.grad if has else flat.zeros(i)).reshape(self.n_agents, -1)
                for i, (p, has) in enumerate(zip(params, live))
            ],
            dim=1,
        )  # [N, S], a new tensor: the gradients themselves stay as they are
        partial = not all(live)
        in_place = every and not partial
        if not in_place:
            grads = grads.index_select(0, agents)
        exp_avg = flat.exp_avg if in_place else flat.exp_avg.index_select(0, agents)
        exp_avg_sq = flat.exp_avg_sq if in_place else flat.exp_avg_sq.index_select(0, agents)
        if self.max_grad_norm is not None:
            norms = grads.pow(2).sum(1, keepdim=True).sqrt()
            grads.mul_((self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0))
        beta1, beta2 = group["betas"]
        bias1 = (1 - beta1**step).float()
        bias2 = (1 - beta2**step).float()
        new_avg = exp_avg.mul(beta1).add_(grads, alpha=1 - beta1)
        new_avg_sq = exp_avg_sq.mul(beta2).addcmul_(grads, grads, value=1 - beta2)
        if partial:  # columns of parameters without a gradient keep their moments
            keep = flat.live_columns(live)
            new_avg = torch.where(keep, new_avg, exp_avg)
            new_avg_sq = torch.where(keep, new_avg_sq, exp_avg_sq)
        denom = new_avg_sq.div(bias2).sqrt_().add_(group["eps"])
        update = new_avg.div(bias1).mul_(group["lr"]).div_(denom)
        if in_place:
            flat.exp_avg.copy_(new_avg)
            flat.exp_avg_sq.copy_(new_avg_sq)
            torch._foreach_add_(params, flat.split(update), alpha=-1)
            return
        flat.exp_avg.index_copy_(0, agents, new_avg)
        flat.exp_avg_sq.index_copy_(0, agents, new_avg_sq)
        for p, has, rows in zip(params, live, flat.split(update)):
            if has:
                p.index_add_(0, agents, rows, alpha=-1)

    def _flat_moments(self, index: int, params: list[torch.Tensor]) -> _FlatMoments:
        """Group ``index``'s ``[N, S]`` moment buffers, rebuilt when a parameter's state is
        no longer a view of them (first step, ``load_state_dict``, a copy or unpickling:
        torch's pickled optimizer state does not carry this cache)."""
        flats = self.__dict__.setdefault("_flats", {})
        flat = flats.get(index)
        if flat is None or not flat.holds(self.state, params):
            flat = flats[index] = _FlatMoments(self.state, params, self.n_agents)
        return flat

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state dict (also the format written before this was an Optimizer)."""
        if "exp_avg" in state_dict:  # mapograph <= 0.1.0: lists of moments and one step vector
            state_dict = {
                "state": {
                    i: {"exp_avg": m, "exp_avg_sq": v, "agent_step": state_dict["steps"]}
                    for i, (m, v) in enumerate(zip(state_dict["exp_avg"], state_dict["exp_avg_sq"]))
                },
                "param_groups": [
                    {
                        **self.param_groups[0],
                        "lr": float(state_dict["lr"]),
                        "params": list(range(len(self._params()))),
                    }
                ],
            }
        if len(state_dict["state"]) != len(self._params()):
            raise ValueError("optimizer state does not match the parameters (different model?)")
        super().load_state_dict(state_dict)
        params = self._params()
        # torch casts state to the parameter's dtype: counts stay float64, one shared tensor
        steps = self.state[params[0]]["agent_step"].to(device=params[0].device, dtype=torch.float64)
        for p in params:
            self.state[p]["agent_step"] = steps


class _FlatMoments:
    """Agent-major ``[N, S]`` buffers holding every parameter's Adam moments side by side.

    Each parameter's ``exp_avg`` / ``exp_avg_sq`` in the optimizer state is replaced by
    its view of the buffers (columns ``offset : offset + size``, reshaped to the
    parameter's shape), so torch's ``state_dict`` keeps its format.
    """

    def __init__(self, state: dict, params: list[torch.Tensor], n_agents: int) -> None:
        self.n_agents = n_agents
        self.shapes = [p.shape for p in params]
        self.sizes = [p[0].numel() for p in params]
        self.exp_avg = torch.cat([state[p]["exp_avg"].reshape(n_agents, -1) for p in params], 1)
        self.exp_avg_sq = torch.cat(
            [state[p]["exp_avg_sq"].reshape(n_agents, -1) for p in params], 1
        )
        self.views = []
        for p, avg, avg_sq in zip(params, self.split(self.exp_avg), self.split(self.exp_avg_sq)):
            state[p]["exp_avg"], state[p]["exp_avg_sq"] = avg, avg_sq
            self.views.append((avg, avg_sq))
        self._zeros: dict[int, torch.Tensor] = {}
        self._masks: dict[tuple[bool, ...], torch.Tensor] = {}

    def holds(self, state: dict, params: list[torch.Tensor]) -> bool:
        """Whether ``params``' moments in ``state`` are still this object's views."""
        return len(params) == len(self.views) and all(
            state[p]["exp_avg"] is avg and state[p]["exp_avg_sq"] is avg_sq
            for p, (avg, avg_sq) in zip(params, self.views)
        )

    def split(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """``[k, S]`` as one ``[k, *shape[1:]]`` view per parameter."""
        return [
            part.view(rows.shape[0], *shape[1:])
            for part, shape in zip(rows.split(self.sizes, dim=1), self.shapes)
        ]

    def zeros(self, index: int) -> torch.Tensor:
        """A zero gradient ``[N, size]`` for parameter ``index`` (read only, kept)."""
        if index not in self._zeros:
            self._zeros[index] = self.exp_avg.new_zeros(self.n_agents, self.sizes[index])
        return self._zeros[index]

    def live_columns(self, live: list[bool]) -> torch.Tensor:
        """``[1, S]`` mask of the columns of parameters that have a gradient."""
        key = tuple(live)
        if key not in self._masks:
            flags = torch.tensor(live, device=self.exp_avg.device)
            sizes = torch.tensor(self.sizes, device=self.exp_avg.device)
            self._masks[key] = flags.repeat_interleave(sizes).unsqueeze(0)
        return self._masks[key]


def _row_norms(grads, rows: int, device: torch.device) -> torch.Tensor:
    """L2 norm of each row over all the ``[rows, ...]`` tensors ``grads``, ``[rows]``."""
    total = torch.zeros(rows, dtype=torch.float32, device=device)
    for g in grads:
        total += g.reshape(rows, -1).pow(2).sum(1).float()
    return total.sqrt()
