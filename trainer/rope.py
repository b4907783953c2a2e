"""RoPE changes for longer stages, composed with the model's own scaling.

A stage's RoPE setting is relative to the *base* model as loaded (so resuming or re-applying a
stage gives the same result):

* ``theta``: only ``rope_theta`` changes; the model's scaling type (llama3, yarn, ...) is kept.
* ``linear`` / ``yarn`` / ``dynamic`` with factor ``f`` on a model without scaling: that type with
  ``factor=f`` and ``original_max_position_embeddings`` = the model's context.
* the same on a model that already scales (llama3, yarn, linear, dynamic): transformers cannot stack
  two RoPE types, so the model's own type is kept and its factor is multiplied by ``f``
  (``original_max_position_embeddings``, ``low/high_freq_factor``, ``beta_*`` unchanged). For llama3 this
  is its by-parts interpolation stretched ``f`` times further; high-frequency dims stay untouched.

``max_position_embeddings`` never shrinks. A stage longer than the context in force and without any
RoPE setting gets YaRN with the needed factor (logged), unless ``auto_rope`` is off (then an error).
The chosen parameters are saved beside the adapter when they differ from the base model's:
``ROPE_FILE`` holds the ``config.rope_parameters`` dict to set (the format readers already use), and
``CONTEXT_FILE`` the ``config.max_position_embeddings`` to set with them (for llama3 it is not
``original x factor``) plus the base values and where the setting came from::

    {"max_position_embeddings": 262144, "base_rope_parameters": {...},
     "base_max_position_embeddings": 131072, "source": "..."}
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer.config import RopeConfig

log = logging.getLogger(__name__)
ROPE_FILE = "lengthwise_rope.json"
CONTEXT_FILE = "lengthwise_context.json"
FACTOR_TYPES = ("linear", "yarn", "dynamic", "llama3")


@dataclass(frozen=True)
class RopeState:
    """RoPE parameters and context length of the model, and where they came from."""

    params: dict
    max_positions: int
    source: str = "base model"

    @property
    def context(self) -> int:
        """Tokens the model is meant to handle with these parameters (dynamic scales at run time)."""
        if self.params.get("rope_type") == "dynamic":
            return int(self.max_positions * self.params.get("factor", 1.0))
        return self.max_positions


def base_state(config) -> RopeState:
    """The model's own RoPE parameters as loaded."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if any(isinstance(v, dict) for v in params.values()):
        raise NotImplementedError(
            "per-layer-type RoPE parameters (e.g. Gemma) are not supported by lengthwise RoPE stages"
        )
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    return RopeState(params, int(config.max_position_embeddings))


def compose(base: RopeState, rope: RopeConfig | None, source: str = "stage setting") -> RopeState:
    """``rope`` applied on top of the model's own scaling (see the module docstring)."""
    if rope is None:
        return base
    params = copy.deepcopy(base.params)
    kind = params.get("rope_type", "default")
    if rope.type == "theta":
        params["rope_theta"] = float(rope.theta)
        return RopeState(params, base.max_positions, f"{source}: rope_theta {rope.theta:g} ({kind} kept)")
    if kind == "default":
        params.update(rope_type=rope.type, factor=rope.factor, original_max_position_embeddings=base.max_positions)
        what = f"{rope.type} x{rope.factor:g}"
    elif kind in FACTOR_TYPES:
        old = float(params.get("factor", 1.0))
        params["factor"] = old * rope.factor
        what = f"model's {kind} (factor {old:g}) stretched x{rope.factor:g} -> factor {params['factor']:g}"
        if rope.type != kind:
            what += f" (stage asked for {rope.type}; transformers cannot stack two RoPE types)"
    else:
        raise NotImplementedError(f"cannot compose a {rope.type} stage with the model's {kind} RoPE scaling")
    grown = base.max_positions if params["rope_type"] == "dynamic" else int(base.max_positions * rope.factor)
    return RopeState(params, max(base.max_positions, grown), f"{source}: {what}")


def plan_ropes(base: RopeState, stages, auto: bool) -> list[RopeState]:
    """The RoPE state of every stage: the latest explicit setting, else automatic YaRN when too long."""
    out, explicit = [], None
    for i, stage in enumerate(stages):
        if stage.rope is not None:
            explicit = stage.rope
        if explicit is not None:
            state = compose(base, explicit, f"stages[{i}].rope")
            if stage.max_length > state.context:
                log.warning(
                    "stage %d (%d tokens) is longer than the context %d of its RoPE setting (%s)",
                    i, stage.max_length, state.context, state.source,
                )
        elif stage.max_length > base.context:
            if not auto:
                raise ValueError(
                    f"stages[{i}]: max_length {stage.max_length} is longer than the model's context "
                    f"{base.context} and the stage has no rope setting; set stages[{i}].rope "
                    f"(e.g. {{type: yarn, factor: {stage.max_length / base.context:g}}}) or auto_rope: true"
                )
            factor = stage.max_length / base.context
            state = compose(base, RopeConfig(type="yarn", factor=factor), f"automatic for stages[{i}]")
            log.warning(
                "stage %d (%d tokens) is longer than the model's context %d: RoPE %s",
                i, stage.max_length, base.context, state.source,
            )
        else:
            state = base
        out.append(state)
    return out


def apply(model, state: RopeState) -> None:
    """Set the model's RoPE parameters and context length and rebuild its rotary tables."""
    config = model.config
    if config.rope_parameters == state.params and config.max_position_embeddings == state.max_positions:
        return
    config.rope_parameters = copy.deepcopy(state.params)
    config.max_position_embeddings = state.max_positions
    rebuild_rotary(model)


def rebuild_rotary(model) -> None:
    """Re-create every rotary-embedding module from the (changed) model config."""
    for name, module in list(model.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding"):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            fresh = type(module)(module.config).to(module.inv_freq.device)
            setattr(parent, name.rsplit(".", 1)[-1], fresh)


def save(folder: Path, state: RopeState, base: RopeState) -> None:
    """Write ``ROPE_FILE`` and ``CONTEXT_FILE`` beside an adapter when its RoPE differs from the base's."""
    if state.params == base.params and state.max_positions == base.max_positions:
        return
    context = {
        "max_position_embeddings": state.max_positions,
        "base_rope_parameters": base.params,
        "base_max_position_embeddings": base.max_positions,
        "source": state.source,
    }
    (Path(folder) / ROPE_FILE).write_text(json.dumps(state.params, indent=2))
    (Path(folder) / CONTEXT_FILE).write_text(json.dumps(context, indent=2))


def load(folder: Path, base_config) -> RopeState | None:
    """The RoPE state saved beside an adapter (files without ``CONTEXT_FILE`` too)."""
    path = Path(folder) / ROPE_FILE
    if not path.exists():
        return None
    params = json.loads(path.read_text())
    context = Path(folder) / CONTEXT_FILE
    if context.exists():
        doc = json.loads(context.read_text())
        return RopeState(params, int(doc["max_position_embeddings"]), doc.get("source", ""))
    max_pos = base_config.max_position_embeddings  # older adapters: the parameters only
    if params.get("rope_type") not in (None, "default", "dynamic"):
        max_pos = max(max_pos, int(params["original_max_position_embeddings"] * params.get("factor", 1.0)))
    return RopeState(params, max_pos, "lengthwise_rope.json without context")
