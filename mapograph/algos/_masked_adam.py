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

        The rows are gathered once per parameter and the Adam rule runs as ``torch._foreach``
        operations over all parameters together (one kernel per operation instead of one
        per parameter): the per-step overhead that a batch-by-batch update pays K times.
        A step of every agent (``None``, or a batch of all ``N``) works on the tensors in
        place, without gathering (the rule is the same on every row).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        device = params[0].device
        # a batch of every agent: the rows are the whole tensors, in place (no gather)
        every = agents is None or agents.numel() == self.n_agents
        agents = (
            torch.arange(self.n_agents, device=device)
            if every
            else agents.to(device=device, dtype=torch.long)
        )
        self.steps[agents] += 1  # every agent in the batch counts a step, gradient or not
        step = self.steps[agents]

        def take(x: torch.Tensor) -> torch.Tensor:
            return x if every else x.index_select(0, agents)

        rows = {p: take(p.grad) for p in params if p.grad is not None}
        scale = None
        if self.max_grad_norm is not None and rows:
            norms = _row_norms(rows.values(), agents.numel(), device)
            scale = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for group in self.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            if not live:
                continue
            beta1, beta2 = group["betas"]
            bias1 = (1 - beta1**step).float()
            bias2 = (1 - beta2**step).float()
            shapes = [(-1,) + (1,) * (p.dim() - 1) for p in live]
            grads = [rows[p] for p in live]
            if scale is not None:  # a new tensor: the gradients themselves stay as they are
                grads = torch._foreach_mul(
                    grads, [scale.view(sh).to(p.dtype) for sh, p in zip(shapes, live)]
                )
            m_rows = [take(self.state[p]["exp_avg"]) for p in live]
            v_rows = [take(self.state[p]["exp_avg_sq"]) for p in live]
            torch._foreach_mul_(m_rows, beta1)
            torch._foreach_add_(m_rows, grads, alpha=1 - beta1)
            torch._foreach_mul_(v_rows, beta2)
            torch._foreach_addcmul_(v_rows, grads, grads, value=1 - beta2)
            denom = torch._foreach_div(v_rows, [bias2.view(sh) for sh in shapes])
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(m_rows, [bias1.view(sh) for sh in shapes])
            torch._foreach_mul_(update, group["lr"])
            torch._foreach_div_(update, denom)
            if every:  # the moments were updated in place
                torch._foreach_add_(live, update, alpha=-1)
                continue
            for p, m, v, u in zip(live, m_rows, v_rows, update):
                state = self.state[p]
                state["exp_avg"].index_copy_(0, agents, m)
                state["exp_avg_sq"].index_copy_(0, agents, v)
                p.index_add_(0, agents, u, alpha=-1)
        return loss

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


def _row_norms(grads, rows: int, device: torch.device) -> torch.Tensor:
    """L2 norm of each row over all the ``[rows, ...]`` tensors ``grads``, ``[rows]``."""
    total = torch.zeros(rows, dtype=torch.float32, device=device)
    for g in grads:
        total += g.reshape(rows, -1).pow(2).sum(1).float()
    return total.sqrt()
