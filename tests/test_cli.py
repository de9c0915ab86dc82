"""The CLI's one error path: an expected error (a TcdpError) is one line on stderr and exit code 2;
--debug or TCDP_DEBUG=1 shows the traceback; anything else keeps its traceback."""

import numpy as np
import pytest
import torch

from tcdp_lib.cli import main
from tcdp_lib.data.dataset import DatasetError, load_dataset
from tcdp_lib.files import atomic_save

TASK = "OfflineBallCircle-v0"


@pytest.fixture
def no_training(monkeypatch):
    """`tcdp train` must stop before training: if a check were missing, the test fails at once."""
    from tcdp_lib.runs import methods

    def refuse(*args, **kwargs):
        raise AssertionError("training was reached")

    monkeypatch.setattr(methods, "train_method", refuse)


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tcdp: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _truncated(_, src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


BAD_FILES = {
    # name: (make it from the good file with the rewrite_h5 fixture, what the error line must name)
    "truncated": (_truncated, "unreadable hdf5 file, truncated or damaged"),
    "lengths": (lambda w, s, d: w(s, d, lambda a, _: a.update(rewards=a["rewards"][:-3])), "'rewards' has"),
    "zero_rows": (lambda w, s, d: w(s, d, lambda a, _: a.update({k: v[:0] for k, v in a.items()})), "zero episodes"),
    "negative_costs": (lambda w, s, d: w(s, d, lambda a, _: a["costs"].__setitem__(7, -1.0)), "'costs'"),
    "bytes_rewards": (lambda w, s, d: w(s, d, lambda a, _: a.update(rewards=a["rewards"].astype("S12"))),
                      "'rewards' holds byte strings"),
    "nan": (lambda w, s, d: w(s, d, lambda a, _: a["observations"].__setitem__((5, 2), np.nan)), "'observations'"),
    "no_timeouts": (lambda w, s, d: w(s, d, lambda a, _: a.pop("timeouts")), "missing key 'timeouts'"),
    "obs_dim": (lambda w, s, d: w(s, d, lambda a, _: a.update(observations=a["observations"][:, :7])),
                "'observations' has shape"),
    "other_task": (lambda w, s, d: w(s, d, lambda _, attrs: attrs.update(task_id="OfflineCarCircle-v0")),
                   "'OfflineCarCircle-v0'"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_train_on_a_broken_file_is_one_error_line(small_file, tmp_path, capsys, no_training, rewrite_h5, name):
    path, _ = small_file
    make, needle = BAD_FILES[name]
    bad = make(rewrite_h5, path, tmp_path / f"{name}.hdf5")
    assert main(["train", TASK, "--dataset", str(bad), "--out", str(tmp_path / "run")]) == 2
    _one_error_line(capsys, f"{name}.hdf5", needle)


def test_debug_flag_and_variable_show_the_traceback(tmp_path, monkeypatch, no_training):
    bad = tmp_path / "bad.hdf5"
    bad.write_text("not a dataset")
    for argv in (["--debug", "train", TASK, "--dataset", str(bad)], ["train", TASK, "--dataset", str(bad), "--debug"]):
        with pytest.raises(DatasetError, match="bad.hdf5 is not an hdf5 file"):
            main(argv)
    monkeypatch.setenv("TCDP_DEBUG", "1")
    with pytest.raises(DatasetError):
        main(["train", TASK, "--dataset", str(bad)])
    monkeypatch.setenv("TCDP_DEBUG", "0")
    assert main(["train", TASK, "--dataset", str(bad)]) == 2


def test_unexpected_errors_keep_their_traceback(small_file, monkeypatch):
    from tcdp_lib.runs import methods

    def bug(*args, **kwargs):
        raise ValueError("a bug, not a bad input")

    monkeypatch.setattr(methods, "train_method", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["train", TASK, "--dataset", str(small_file[0])])


def test_unknown_task_and_missing_package(small_file, capsys, monkeypatch, no_training):
    assert main(["train", "OfflineNope-v0"]) == 2
    _one_error_line(capsys, "unknown task 'OfflineNope-v0'; known tasks:")
    from tcdp_lib.data import compat

    compat.apply()
    monkeypatch.setitem(compat.FAMILY_STATUS, "bullet", "ModuleNotFoundError: No module named 'pybullet'")
    assert main(["train", TASK, "--dataset", str(small_file[0])]) == 2
    _one_error_line(capsys, "package bullet-safety-gym", "No module named 'pybullet'")


def test_dataset_card_takes_the_task_when_the_name_does_not_say_it(small_file, tmp_path, capsys, rewrite_h5):
    path, _ = small_file
    other = rewrite_h5(path, tmp_path / "collected.hdf5", lambda _, attrs: attrs.update(generator="my collector v1"))
    assert main(["dataset-card", str(other)]) == 2
    _one_error_line(capsys, "collected.hdf5: the file name does not say the task", "--task")
    assert main(["dataset-card", str(other), "--task", TASK]) == 0
    assert f"| {TASK} |" in capsys.readouterr().out


# ------------------------------------------------------------------------- model files and budgets


def _model_file(small_file, tmp_path, task=TASK):
    """A model file as `tcdp train` writes it (untrained weights: nothing here plans)."""
    from tcdp_lib.method.model import TCDP
    from tcdp_lib.runs.checkpoint import model_payload
    from tcdp_lib.runs.train import SMOKE_MODEL

    ds = load_dataset(TASK, small_file[0])
    model = TCDP.from_episodes(ds.episodes, SMOKE_MODEL)
    path = tmp_path / task / "model.pt"
    atomic_save(model_payload(model, task, {"task": task}), path)
    return path, model


def _evaluate(small_file, model, *extra):
    return main(["evaluate", TASK, "--model", str(model), "--dataset", str(small_file[0]), "--seeds", "0",
                 "--episodes", "1", "--quiet", *extra])


@pytest.fixture
def no_rollouts(monkeypatch):
    """`tcdp evaluate` stops before the simulator: the checks under test come first."""
    from tcdp_lib.runs import evaluate

    calls = []
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: calls.append(k["budgets"]) or ([], []))
    return calls


def test_garbage_checkpoint_is_not_a_tcdp_model_file(small_file, tmp_path, capsys, no_rollouts):
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"\x80\x04garbage" * 50)
    assert _evaluate(small_file, garbage) == 2
    line = _one_error_line(capsys, "model.pt: not a tcdp model file")
    assert "weights_only` argument" not in line and len(line) < 300
    state_dict = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, state_dict)  # a torch file, but not a model file
    assert _evaluate(small_file, state_dict) == 2
    _one_error_line(capsys, "weights.pt: not a tcdp model file (kind None")
    assert no_rollouts == []


def test_checkpoint_of_another_task_names_both_tasks(small_file, tmp_path, capsys, no_rollouts):
    other, _ = _model_file(small_file, tmp_path, task="OfflineCarCircle-v0")
    assert _evaluate(small_file, other) == 2
    _one_error_line(capsys, "trained on 'OfflineCarCircle-v0'", f"requested task '{TASK}'")


@pytest.mark.parametrize("budget", ["-5", "nan", "inf"])
def test_bad_budget_is_refused_before_anything_slow(tmp_path, capsys, budget, monkeypatch):
    from tcdp_lib.data import dataset

    monkeypatch.setattr(dataset, "load_dataset", lambda *a: pytest.fail("the dataset was loaded"))
    assert main(["evaluate", TASK, "--model", str(tmp_path / "unused.pt"), "--budgets", "10", budget]) == 2
    _one_error_line(capsys, f"budget {float(budget)!r}: expected a finite number >= 0")


@pytest.mark.filterwarnings("default::tcdp_lib.errors.BudgetRangeWarning")  # pyproject ignores UserWarning
def test_budget_outside_the_trained_range_warns_once(small_file, tmp_path, capsys, no_rollouts):
    path, model = _model_file(small_file, tmp_path)
    high = model.config.budget.b_max  # the small file's costliest episode
    assert _evaluate(small_file, path, "--budgets", "0", f"{high / 2}", "1e9", "2e9") == 0
    assert list(no_rollouts[0]) == [0.0, high / 2, 1e9, 2e9]  # refused nothing, warned
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"tcdp: warning: budgets 1e+09, 2e+09: outside the range the model was trained on, "
        f"[0, {high:g}]; the planner extrapolates its budget condition there"], err
    assert _evaluate(small_file, path, "--budgets", "0", f"{high}") == 0
    assert "warning" not in capsys.readouterr().err


def test_model_file_of_another_model_version_is_one_error_line(small_file, tmp_path, capsys, no_rollouts):
    path, model = _model_file(small_file, tmp_path)
    payload = torch.load(path, weights_only=True)
    name = next(k for k in payload["state_dict"] if k.startswith("backbone."))
    payload["state_dict"][name.replace("backbone.", "backbone_v0.")] = payload["state_dict"].pop(name)
    atomic_save(payload, path)
    assert _evaluate(small_file, path) == 2
    _one_error_line(capsys, "model.pt: tcdp model file whose weights do not fit this version of the model")


def test_broken_baseline_manifest_is_one_error_line(small_file, tmp_path, capsys, no_rollouts):
    run = tmp_path / "run"
    run.mkdir()
    (run / "method.json").write_text("{not json")
    assert _evaluate(small_file, run) == 2
    _one_error_line(capsys, "method.json: not a method.json of `tcdp train` (not JSON")


@pytest.mark.parametrize("flag, value, needle", [("--budget-fraction", "2", "budget_fraction must lie in (0, 1], got 2.0"),
                                                 ("--samples", "0", "n_samples must be >= 1, got 0"),
                                                 ("--replan-every", "0", "replan_every must be >= 1, got 0"),
                                                 ("--ensemble", "0", "ensemble must be >= 1, got 0"),
                                                 ("--temporal-ensemble", "0", "temporal_ensemble must be >= 1, got 0"),
                                                 ("--cold-samples", "-1", "cold_samples must be >= 0, got -1"),
                                                 ("--choice", "best", "unknown choice 'best'; choose one of")])
def test_planning_setting_out_of_range_is_one_error_line(small_file, tmp_path, capsys, no_rollouts, flag, value,
                                                         needle):
    path, _ = _model_file(small_file, tmp_path)
    assert _evaluate(small_file, path, flag, value) == 2
    _one_error_line(capsys, needle)
