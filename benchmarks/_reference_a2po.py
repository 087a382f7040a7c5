"""A2PO the way its reference code runs: one network and one Adam per agent, a Python loop.

Only for ``training_time.py``: the same math as mapograph's ``a2po`` preset (semi-greedy
order, trace-corrected advantage, clipped ratio product of the agents already updated,
5 epochs of clipped PPO per agent) but with ``N`` separate ``nn.Sequential`` actors that
are acted with and updated one after another, as A2PO's and HARL's code do. It makes
the cost of the per-agent loop measurable on the same data and machine.
"""

from __future__ import annotations

import time

import torch
from _bench import per_agent_networks

from mapograph.algos import a2po_scores
from mapograph.algos._advantages import gae, normalize
from mapograph.partition import semi_greedy_order


class LoopA2PO:
    """Per-agent networks updated in a loop, on a mapograph a2po trainer's env and critic."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.nets = per_agent_networks(trainer.actor)
        self.optims = [torch.optim.Adam(net.parameters(), lr=trainer.cfg.lr) for net in self.nets]
        self.gen = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def behaviour(self, ts):
        actions, log_probs = [], []
        for i, net in enumerate(self.nets):  # the per-agent loop of the reference code
            logits = net(ts.obs[:, i]).masked_fill(~ts.avail_actions[:, i], -1e9)
            dist = torch.distributions.Categorical(logits=logits)
            a = dist.sample()
            actions.append(a)
            log_probs.append(dist.log_prob(a))
        return torch.stack(actions, 1), torch.stack(log_probs, 1)

    def iteration(self) -> dict[str, float]:
        tr, hp = self.trainer, self.trainer.cfg
        ppo = tr.algorithm.optimizer
        clip_c = tr.algorithm.preset.correction_clip
        t0 = time.perf_counter()
        rollout, _, _ = tr.collector.collect(self.behaviour, tr.cfg.rollout_length)
        t1 = time.perf_counter()
        values = ppo.values(rollout.state)
        adv = gae(rollout.rewards, values, rollout.dones, hp.gamma, hp.gae_lambda)
        ppo.update_critic(rollout, values[:-1] + adv)
        order = semi_greedy_order(a2po_scores(rollout, adv, values), self.gen)
        rho = torch.ones_like(adv)
        for i in order:
            trace = rho.clamp(1 - clip_c, 1 + clip_c)
            corrected = gae(rollout.rewards, values, rollout.dones, hp.gamma, hp.gae_lambda, trace)
            target = (normalize(corrected) * trace).reshape(-1, 1).squeeze(-1)
            obs = rollout.obs[:, :, i].reshape(-1, rollout.obs.shape[-1])
            avail = rollout.avail[:, :, i].reshape(-1, rollout.avail.shape[-1])
            acts = rollout.actions[:, :, i].reshape(-1)
            old = rollout.log_probs[:, :, i].reshape(-1)
            net, optim = self.nets[i], self.optims[i]
            for _ in range(hp.epochs):
                dist = torch.distributions.Categorical(logits=net(obs).masked_fill(~avail, -1e9))
                ratio = torch.exp(dist.log_prob(acts) - old)
                surrogate = torch.min(
                    ratio * target, ratio.clamp(1 - hp.clip, 1 + hp.clip) * target
                )
                loss = -surrogate.mean() - hp.entropy_coef * dist.entropy().mean()
                optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), hp.max_grad_norm)
                optim.step()
            with torch.no_grad():
                logits = net(obs).masked_fill(~avail, -1e9)
                new = torch.distributions.Categorical(logits=logits).log_prob(acts)
                rho = rho * torch.exp(new - old).reshape(rho.shape)
        t2 = time.perf_counter()
        return {"update_s": t2 - t1, "total_s": t2 - t0}
