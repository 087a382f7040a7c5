"""Adam that updates only the rows of chosen agents in stacked parameters.

Batch-sequential updates must leave agents outside the current batch untouched:
their parameters *and* their optimizer state (moments, step counts). A plain
``torch.optim.Adam`` over stacked ``[N, ...]`` tensors would decay every agent's
moments and move them by momentum; this optimizer keeps a step count per agent
and applies the Adam rule only on the selected rows, with gradient clipping by
each agent's own gradient norm.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class AgentMaskedAdam:
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
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-5,
        max_grad_norm: float | None = None,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        for p in self.params:
            if p.dim() < 1 or p.shape[0] != n_agents:
                raise ValueError(
                    f"AgentMaskedAdam needs parameters with leading dimension n_agents={n_agents}, "
                    f"got shape {list(p.shape)}"
                )
        self.n_agents = n_agents
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.max_grad_norm = max_grad_norm
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(n_agents, dtype=torch.float64)

    def zero_grad(self) -> None:
        """Drop the gradients of all parameters."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def agent_grad_norms(self) -> torch.Tensor:
        """L2 norm of each agent's gradient over all parameters, ``[N]``."""
        total = torch.zeros(self.n_agents, dtype=torch.float32)
        for p in self.params:
            if p.grad is not None:
                total += p.grad.reshape(self.n_agents, -1).pow(2).sum(1).float()
        return total.sqrt()

    @torch.no_grad()
    def step(self, agents: torch.Tensor) -> None:
        """Apply one Adam step to the rows of ``agents`` only (LongTensor of ids)."""
        agents = agents.to(torch.long)
        scale = torch.ones(self.n_agents)
        if self.max_grad_norm is not None:
            norms = self.agent_grad_norms()
            scale = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        self.steps[agents] += 1
        step = self.steps[agents]
        beta1, beta2 = self.betas
        bias1 = (1 - beta1**step).float()
        bias2 = (1 - beta2**step).float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad[agents] * scale[agents].view(shape).to(p.dtype)
            m_rows = m[agents].mul_(beta1).add_(g, alpha=1 - beta1)
            v_rows = v[agents].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            m[agents] = m_rows
            v[agents] = v_rows
            denom = (v_rows / bias2.view(shape)).sqrt_().add_(self.eps)
            p[agents] = p[agents] - self.lr * (m_rows / bias1.view(shape)) / denom

    def state_dict(self) -> dict:
        """Moments and per-agent step counts (tensors only: safe to ``torch.load``)."""
        return {
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
            "steps": self.steps.clone(),
            "lr": self.lr,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError("optimizer state does not match the parameters (different model?)")
        for dst, src in zip(self.exp_avg, state["exp_avg"]):
            dst.copy_(src)
        for dst, src in zip(self.exp_avg_sq, state["exp_avg_sq"]):
            dst.copy_(src)
        self.steps.copy_(state["steps"])
        self.lr = float(state["lr"])
