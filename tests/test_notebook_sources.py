"""The notebooks' sources, read without running them: every notebook records its figures with
``tcdp_lib.notebook.record`` (no copied recording cell), the smoke run's sizes live in
``reports/params/smoke.yaml`` (no ``if smoke`` size branches), notebook 02 draws the budget prior
that training uses, and notebooks 04 and 05 state their equations as plain text and cite their
sources. The executed notebooks are checked in ``test_notebooks.py``."""

import ast
import json

import nbformat
import numpy as np
import pytest
import yaml

from tcdp_lib.notebook import record
from tcdp_lib.paths import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMOKE = yaml.safe_load((ROOT / "reports" / "params" / "smoke.yaml").read_text())["notebooks"]


def _cells(path, kind):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == kind]


def _code(path) -> str:
    """The notebook's code without its parameters cell."""
    return "\n\n".join(c.source for c in _cells(path, "code") if "parameters" not in c.metadata.get("tags", []))


def _markdown(path) -> list[str]:
    return [c.source for c in _cells(path, "markdown")]


def _names(code: str) -> list[str]:
    return [n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)]


def _notebook(stem):
    (path,) = [p for p in NOTEBOOKS if p.stem == stem]
    return path


# -- record() -------------------------------------------------------------------------------------

def test_record_writes_json_and_returns_the_figures(tmp_path):
    out = tmp_path / "x.figures.json"
    figures = {"n": np.int64(3), "mean": np.float32(0.5), "values": np.arange(3), "nested": {"ok": True}}
    assert record(figures, out) is figures
    assert json.loads(out.read_text()) == {"n": 3, "mean": 0.5, "values": [0, 1, 2], "nested": {"ok": True}}
    assert out.read_text().startswith('{\n "n": 3')  # indent 1, as the reports always had


def test_record_without_a_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert record({"a": 1}, None) == {"a": 1} and record({"a": 1}, "") == {"a": 1}
    assert list(tmp_path.iterdir()) == []


def test_record_refuses_what_json_cannot_hold(tmp_path):
    out = tmp_path / "x.json"
    with pytest.raises(TypeError, match="cannot record a value of type object"):
        record({"a": object()}, out)
    assert not out.exists()
    with pytest.raises(TypeError, match="figures must be a dict"):
        record([1, 2], out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_records_with_the_helper_and_has_no_copy_of_the_old_cell(path):
    code = _code(path)
    assert "from tcdp_lib.notebook import record" in code
    calls = [n for n in ast.walk(ast.parse(code))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "record"]
    assert len(calls) == 1 and ast.unparse(calls[0].args[1]) == "figures_path"
    assert "write_text(json.dumps" not in code and "record = {" not in code


# -- the smoke run's sizes --------------------------------------------------------------------------

def test_smoke_sizes_are_in_smoke_yaml_not_in_notebook_code():
    readers = {p.stem: _names(_code(p)).count("smoke") for p in NOTEBOOKS}
    # Only the model and grid choices read the switch: 04 trains the tiny model, 05 trains it when
    # no checkpoint is shipped, 06 runs (and names, and lists the cells of) the smoke preset's grid,
    # 07 runs (and names) the ablation grid of smoke models.
    assert {k: v for k, v in readers.items() if v} == {"04_training": 1, "05_budget_planner": 1, "06_benchmark": 3,
                                                       "07_ablations": 3}
    assert "train_if_missing=smoke" in _code(_notebook("05_budget_planner"))
    params = {p.name: _cells(p, "code")[0].source for p in NOTEBOOKS}
    for key, sizes in SMOKE.items():
        name = key.partition("@")[0]
        for param in sizes:  # every size the smoke run sets is a parameter of its notebook
            assert f"\n{param} = " in params[name], (key, param)
    planner = [v for k, v in SMOKE.items() if k.startswith("05_budget_planner")]
    assert {len(v["sweep_budgets"]) for v in planner} == {2} and {v["sweep_episodes"] for v in planner} == {2}


# -- notebook 02: the prior that training uses -------------------------------------------------------

def test_ctgda_notebook_draws_the_training_prior():
    code = _code(_notebook("02_ctgda_relabeling"))
    for call in ("budget_prior_max(budgets, ep.cost_returns)", "default_model_config(task)",
                 ".budget_prior()", ".window_cdf(windows)", "window_cdf=window_cdf"):
        assert call in code, call
    assert "BudgetPrior" not in code and "max C₀]" not in "".join(_markdown(_notebook("02_ctgda_relabeling")))


# -- notebooks 04 and 05: equations and references ----------------------------------------------------

def _fenced(markdown: list[str]) -> str:
    """The text of the markdown cells' fenced blocks (what reads as plain text without MathJax)."""
    return "\n".join(block for md in markdown for block in md.split("```")[1::2])


def test_training_notebook_states_the_loss_and_adaln_zero_as_plain_text():
    md = _markdown(_notebook("04_training"))
    text = _fenced(md)
    for line in ("x_k  = √ᾱ_k · x₀ + √(1 − ᾱ_k) · ε", "m ~ Bernoulli(p_uncond)", "L_diff = Σ w ⊙ (ε_θ(x_k, k, c) − ε)² / Σ w",
                 "L_energy =", "L_inv    =", "L = L_diff + λ_E · L_energy + λ_inv · L_inv",
                 "shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ = Linear(SiLU(c))",
                 "h ← h + gate₁ ⊙ Attention( LN(h) ⊙ (1 + scale₁) + shift₁ )"):
        assert line in text, line
    assert any(m.startswith("## How the condition enters the denoiser: adaLN-Zero") for m in md)
    assert "$" not in "".join(md)  # no TeX that an offline page would show as source


def test_planner_notebook_states_guided_sampling_and_the_choice_as_plain_text():
    md = _markdown(_notebook("05_budget_planner"))
    text = _fenced(md)
    for line in ("ε = ε_u + w_cfg · (ε_c − ε_u) − β · √(1 − ᾱ_k) · ∇ₓ E(x_k, k, b_t)",
                 "E(x_k, k, b_t) = V(x_k, k, b_t, T) − n · max(C(x_k, k, T) − b_t / budget_scale, 0)",
                 "chosen = argmax { vᵢ : cᵢ ≤ b_t }", "= argmin cᵢ"):
        assert line in text, line
    assert "$" not in "".join(md)


REFERENCES = {
    "04_training": ("AAMAS 2025", "Peebles", "Ho and Tim Salimans", "Janner", "Ajay", "Contrastive Energy Prediction",
                    "Datasets and Benchmarks for Offline Safe"),
    "05_budget_planner": ("AAMAS 2025", "Ho and Tim Salimans", "Contrastive Energy Prediction", "Janner", "Ajay",
                          "Denoising Diffusion Implicit Models", "Datasets and Benchmarks for Offline Safe"),
    "06_benchmark": ("AAMAS 2025", "Real-Time Budget Constraints", "Constrained Decision Transformer",
                     "Datasets and Benchmarks for Offline Safe"),
    "07_ablations": ("AAMAS 2025", "Ho and Tim Salimans", "Contrastive Energy Prediction",
                     "Datasets and Benchmarks for Offline Safe"),
}


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_notebooks_cite_what_they_build_on(stem):
    refs = [m for m in _markdown(_notebook(stem)) if m.startswith("## References")]
    assert len(refs) == 1
    for name in REFERENCES[stem]:
        assert name in refs[0], name
