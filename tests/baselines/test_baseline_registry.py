import numpy as np
import pytest

from tcdp_lib.baselines import BASELINES, BCSafeConfig, CDTConfig, Policy, get_baseline, train_policies


def test_registry_entries():
    assert set(BASELINES) == {"bc_safe", "cdt"}
    assert BASELINES["bc_safe"].config_cls is BCSafeConfig and BASELINES["bc_safe"].per_budget
    assert BASELINES["cdt"].config_cls is CDTConfig and not BASELINES["cdt"].per_budget
    with pytest.raises(ValueError, match=r"unknown baseline 'cql'.*\['bc_safe', 'cdt'\]"):
        get_baseline("cql")


@pytest.mark.parametrize("name", ["bc_safe", "cdt"])
def test_train_policies_and_round_trip(episodes, tiny_bc, tiny_cdt, tmp_path, name):
    config = {"bc_safe": tiny_bc, "cdt": tiny_cdt}[name]
    budgets = [2.0, 3.0]
    policies = train_policies(name, episodes, budgets, config, seed=0, steps=2, progress=False)
    assert list(policies) == budgets
    distinct = len({id(p) for p in policies.values()})
    assert distinct == (2 if BASELINES[name].per_budget else 1)
    entry = get_baseline(name)
    obs = np.random.default_rng(0).normal(size=(3, 3))
    for b, policy in policies.items():
        assert isinstance(policy, Policy)
        entry.save(policy, tmp_path / f"{name}_{b}.pt")
        loaded = entry.load(tmp_path / f"{name}_{b}.pt")
        for p in (policy, loaded):
            p.reset(3, b)
        np.testing.assert_array_equal(policy.act(obs, np.zeros(3), np.zeros(3)), loaded.act(obs, np.zeros(3), np.zeros(3)))
