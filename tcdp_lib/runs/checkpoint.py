"""Checkpoint files: written atomically, read with ``weights_only=True``, tied to their task.

A *model file* holds what planning needs: the task id, the run config and the EMA weights of a
TCDP model. A *training checkpoint* adds the raw weights, optimiser, step and RNG states, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from tcdp_lib.errors import BudgetRangeWarning, check_budget
from tcdp_lib.files import CheckpointError, atomic_save, safe_load  # noqa: F401  (the runs layer's file API)
from tcdp_lib.method.model import TCDP, TCDPConfig, frontier_from_state_dict

MODEL_KEYS = ("task", "run_config", "model_config", "obs_dim", "act_dim", "state_dict")
"""What a model file holds besides its ``kind``."""


def model_payload(model: TCDP, task: str, run_config: dict) -> dict:
    return {
        "kind": "tcdp-model",
        "task": task,
        "run_config": run_config,
        "model_config": model.config.to_dict(),
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def model_from_payload(payload: dict, action_model=None) -> TCDP:
    """The model of a model file's payload. ``action_model`` (an ``ActionModelConfig``): build it
    with this action model instead of the file's, every other weight loaded and the action model's
    left untrained (for ``train.fit_action_model``)."""
    # A shipped file may store its weights in float16 (``export_model(..., half=True)``); the
    # model always computes in float32.
    sd = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    from tcdp_lib.method.windows import Normalizer

    config = TCDPConfig.from_dict(payload["model_config"])
    if action_model is not None:
        config = dataclasses.replace(config, action_model=action_model)
    model = TCDP(
        config, payload["obs_dim"], payload["act_dim"],
        Normalizer(sd["obs_mean"].numpy(), sd["obs_std"].numpy()),
        sd["inv_dyn.action_low"].numpy(), sd["inv_dyn.action_high"].numpy(),
        frontier=frontier_from_state_dict(sd),
    )
    if action_model is None:
        model.load_state_dict(sd)
    else:
        model.load_all_but_action_model(sd)
    return model


def read_model_file(path: Path, map_location="cpu") -> dict:
    """The payload of a model file (see :func:`model_payload`); :class:`CheckpointError` for any
    other file."""
    payload = safe_load(path, map_location)
    kind = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
    if kind != "tcdp-model":
        raise CheckpointError(f"{path}: not a tcdp model file (kind {kind!r}; a model.pt of `tcdp train` "
                              f"has kind 'tcdp-model')")
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: tcdp model file without the keys {missing}")
    return payload


def load_model(path: Path, task: str | None = None, map_location="cpu") -> tuple[TCDP, dict]:
    """Load a model file; refuse one made for another task. Returns ``(model, run_config)``."""
    payload = read_model_file(path, map_location)
    if task is not None and payload["task"] != task:
        raise CheckpointError(
            f"{path}: holds a model trained on {payload['task']!r}, not on the requested task {task!r}"
        )
    try:
        model = model_from_payload(payload)
    except (KeyError, RuntimeError) as err:  # weights of another version of the model (load_state_dict)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: tcdp model file whose weights do not fit this version of the model "
                              f"({type(err).__name__}: {first}); train or export it again") from err
    model.eval()
    return model, payload["run_config"]


def trained_budget_range(model: TCDP) -> tuple[float, float]:
    """``(b_min, b_max)``: the budgets the model was trained on (its CTGDA prior, ``config.budget``)."""
    prior = model.budget_prior()
    return float(prior.low), float(prior.high)


def warn_untrained_budgets(model: TCDP, budgets) -> list[float]:
    """One :class:`BudgetRangeWarning` naming the budgets outside :func:`trained_budget_range`
    (the planner extrapolates its budget condition there); returns them. Each budget is checked
    first (:func:`tcdp_lib.errors.check_budget`)."""
    low, high = trained_budget_range(model)
    outside = [b for b in (check_budget(x) for x in budgets) if not low <= b <= high]
    if outside:
        named = ", ".join(f"{b:g}" for b in outside)
        warnings.warn(
            f"budget{'s' if len(outside) > 1 else ''} {named}: outside the range the model was trained on, "
            f"[{low:g}, {high:g}]; the planner extrapolates its budget condition there",
            BudgetRangeWarning, stacklevel=2)
    return outside


def export_model(src: Path, dst: Path, half: bool = False, **guidance) -> Path:
    """Copy a model file to ``dst`` (e.g. ``data/checkpoints/<task>/model.pt``) with its planning-time
    guidance set (``guidance``: fields of ``GuidanceConfig``, e.g. ``w_cfg=3``; ``None`` keeps the
    file's), and its run config beside it as ``config.json``.

    ``half``: store the learned weights in float16, half the file; they are read back into
    float32. Buffers (schedule, normaliser, bounds) are kept in float32.
    """
    import json

    from tcdp_lib.method.config import GuidanceConfig

    fields = {f.name for f in dataclasses.fields(GuidanceConfig)}
    unknown = sorted(set(guidance) - fields)
    if unknown:
        raise TypeError(f"export_model: {unknown} are not guidance settings; expected some of {sorted(fields)}")
    payload = read_model_file(src)
    guidance = {**payload["model_config"]["guidance"], **{k: v for k, v in guidance.items() if v is not None}}
    GuidanceConfig(**guidance)  # checked (ranges) before anything is written
    payload["model_config"] = {**payload["model_config"], "guidance": guidance}
    if half:
        # only the learned weights: buffers (the noise schedule, the normaliser, the data bounds,
        # action bounds) stay float32. Halving alphas_cumprod put sqrt(1 - alpha_bar) at k = 0 off
        # by 12%.
        weights = {name for name, _ in model_from_payload(payload).named_parameters()}
        payload["state_dict"] = {k: v.half() if k in weights and v.is_floating_point() else v
                                 for k, v in payload["state_dict"].items()}
    payload["weights_dtype"] = "float16" if half else "float32"
    model_from_payload(payload)  # the edited config must still build
    dst = Path(dst)
    atomic_save(payload, dst)
    (dst.parent / "config.json").write_text(json.dumps(
        {"task": payload["task"], "run_config": payload["run_config"], "guidance": guidance,
         "weights_dtype": payload["weights_dtype"]}, indent=1))
    return dst
