"""Checkpoint state of the built-in games: a few named tensors plus one torch.Generator."""

from __future__ import annotations

from typing import Any, ClassVar


class TensorState:
    """``state_dict``/``load_state_dict`` for envs whose whole state is ``state_tensors``
    (attribute names of tensors) and ``self.generator`` (for exact resume)."""

    state_tensors: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        """The named tensors (cloned) and the generator's state."""
        state: dict[str, Any] = {name: getattr(self, name).clone() for name in self.state_tensors}
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (tensors moved to the env's device)."""
        for name in self.state_tensors:
            setattr(self, name, state[name].to(self.device).clone())
        self.generator.set_state(state["generator"])
