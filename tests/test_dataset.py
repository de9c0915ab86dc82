"""The loader: round trip through dsrl's own reader, and each bad-input case with its message."""

import h5py
import numpy as np
import pytest

from tcdp_lib.data import dataset as dsmod
from tcdp_lib.data.dataset import DatasetError, DatasetNotFoundError, load_dataset
from tcdp_lib.data.generate import write_dataset


def test_round_trip_through_dsrl(small_file, monkeypatch):
    path, episodes = small_file
    calls = []
    from tcdp_lib.data import compat

    compat.apply()
    from dsrl.offline_env import OfflineEnv

    original = OfflineEnv.get_dataset

    def spy(self, h5path=None):
        calls.append(h5path)
        return original(self, h5path)

    monkeypatch.setattr(OfflineEnv, "get_dataset", spy)
    ds = load_dataset("OfflineBallCircle-v0", path)
    assert calls == [str(path)]  # dsrl's own loader read the file
    ep = ds.episodes
    assert ep.num_episodes == len(episodes)
    np.testing.assert_allclose(ep.returns, [e["rewards"].sum() for e in episodes], rtol=1e-5)
    np.testing.assert_allclose(ep.cost_returns, [e["costs"].sum() for e in episodes])
    np.testing.assert_allclose(ep.observations[: len(episodes[0]["rewards"])], episodes[0]["observations"])
    assert ds.meta.budgets == (10.0, 20.0, 40.0)
    assert ds.meta.generator == {"seed": 0}
    r, c = ds.normalized(ds.meta.max_episode_reward, 20.0, 40.0)
    assert r == pytest.approx(1.0) and c == pytest.approx(0.5)


def test_dsrl_dataset_dir_is_honoured(small_file, tmp_path, monkeypatch):
    path, _ = small_file
    folder = tmp_path / "dsrl_dir"
    folder.mkdir()
    (folder / "OfflineBallCircle-v0.hdf5").write_bytes(path.read_bytes())
    monkeypatch.setenv("DSRL_DATASET_DIR", str(folder))
    monkeypatch.setattr(dsmod, "DATA_DIR", tmp_path / "nothing")
    assert load_dataset("OfflineBallCircle-v0").path == folder / "OfflineBallCircle-v0.hdf5"


def test_no_local_file_runs_dsrl_download_and_explains(tmp_path, monkeypatch):
    from tcdp_lib.data import compat

    compat.apply()
    import dsrl.offline_env as offline_env

    urls = []

    def fake_download(url):  # the network is not reachable here; fail as urlretrieve would
        urls.append(url)
        raise OSError("network unreachable")

    monkeypatch.setattr(offline_env, "download_dataset_from_url", fake_download)
    monkeypatch.setenv("DSRL_DATASET_DIR", str(tmp_path))
    monkeypatch.setattr(dsmod, "DATA_DIR", tmp_path / "shipped")
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("OfflineBallRun-v0")
    msg = str(info.value)
    assert urls and urls[0].endswith(".hdf5")  # dsrl's own download path was taken
    assert str(tmp_path / "OfflineBallRun-v0.hdf5") in msg
    assert str(tmp_path / "shipped" / "OfflineBallRun-v0.hdf5") in msg
    assert "tcdp generate-data OfflineBallRun-v0" in msg


def test_missing_explicit_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.hdf5"):
        load_dataset("OfflineBallCircle-v0", tmp_path / "nope.hdf5")


def test_not_hdf5(tmp_path):
    bad = tmp_path / "bad.hdf5"
    bad.write_text("not a dataset")
    with pytest.raises(DatasetError, match="bad.hdf5 is not an hdf5 file"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_missing_key(small_file, tmp_path, rewrite_h5):
    path, _ = small_file
    bad = rewrite_h5(path, tmp_path / "nokey.hdf5", lambda d, a: d.pop("costs"))
    with pytest.raises(DatasetError, match="missing key 'costs'"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_observation_shape_mismatch(small_file, tmp_path, rewrite_h5):
    path, _ = small_file

    def change(d, a):
        d["observations"] = d["observations"][:, :7]

    bad = rewrite_h5(path, tmp_path / "shape.hdf5", change)
    with pytest.raises(DatasetError, match=r"'observations' has shape \(\d+, 7\), expected \(N, 8\)"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_file_of_another_task_is_refused(small_file):
    path, _ = small_file
    # BallRun has 7-dimensional observations: a BallCircle file fails its shape check first,
    # so use a task with the same shapes (CarCircle: obs 8, act 2) to reach the task check.
    with pytest.raises(DatasetError, match="holds data of task 'OfflineBallCircle-v0'"):
        load_dataset("OfflineCarCircle-v0", path)


@pytest.mark.parametrize("key", ["observations", "rewards", "costs"])
def test_nan_rows(small_file, tmp_path, key, rewrite_h5):
    path, _ = small_file

    def change(d, a):
        d[key] = d[key].astype(np.float32)
        d[key][5] = np.nan

    bad = rewrite_h5(path, tmp_path / "nan.hdf5", change)
    with pytest.raises(DatasetError, match=rf"'{key}' has 1 rows with NaN or inf \(first at row 5\)"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_zero_episodes(small_file, tmp_path, rewrite_h5):
    path, _ = small_file

    def change(d, a):
        d["terminals"][:] = False
        d["timeouts"][:] = False

    bad = rewrite_h5(path, tmp_path / "zero.hdf5", change)
    with pytest.raises(DatasetError, match="zero episodes"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_unknown_task():
    with pytest.raises(KeyError, match="unknown task 'OfflineNope-v0'"):
        load_dataset("OfflineNope-v0")


def test_writer_is_atomic(small_file, tmp_path):
    path, episodes = small_file
    before = path.read_bytes()
    with pytest.raises(TypeError):  # fails after the arrays were written to the temporary file
        write_dataset(path, episodes, {"task_id": "OfflineBallCircle-v0", "bad": object()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


# ------------------------------------------------ broken files: each refused naming file and key


def _truncate(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _set(key, value):
    def change(d, a):
        d[key] = value(d)
    return change


BROKEN = {
    # name: (how the good file is changed, what the message must say after the file name)
    "lengths": (_set("rewards", lambda d: d["rewards"][:-3]),
                r"'rewards' has \d+ rows, 'observations' has \d+: expected one row per step"),
    "zero_rows": (lambda d, a: d.update({k: v[:0] for k, v in d.items()}), r"zero episodes \(the arrays have no rows\)"),
    "negative_costs": (lambda d, a: d["costs"].__setitem__(7, -1.0),
                       r"'costs' has 1 negative values \(first at row 7: -1\), expected costs >= 0"),
    "bytes_rewards": (_set("rewards", lambda d: np.array([str(x).encode() for x in d["rewards"]])),
                      r"'rewards' holds byte strings \(dtype \|S\d+\), expected numbers"),
    "text_rewards": (_set("rewards", lambda d: np.array(["abc"] * len(d["rewards"]), dtype=h5py.string_dtype())),
                     r"'rewards' holds text or objects \(dtype object\), expected numbers"),
    "bytes_terminals": (_set("terminals", lambda d: np.array([b"x"] * len(d["terminals"]))),
                        r"'terminals' holds byte strings"),
    "inf_costs": (lambda d, a: d["costs"].__setitem__(9, np.inf), r"'costs' has 1 rows with NaN or inf \(first at row 9\)"),
    "no_terminals": (lambda d, a: d.pop("terminals"), r"missing key 'terminals'"),
    "no_timeouts": (lambda d, a: d.pop("timeouts"), r"missing key 'timeouts'"),
    "text_budgets": (lambda d, a: a.__setitem__("budgets", "ten, twenty"),
                     r"attribute 'budgets' is 'ten, twenty', expected a JSON list of finite numbers >= 0"),
    "text_min_reward": (lambda d, a: a.__setitem__("min_episode_reward", "low"),
                        r"attribute 'min_episode_reward' is 'low', expected a finite number"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_is_refused_naming_file_and_key(small_file, tmp_path, name, rewrite_h5):
    path, _ = small_file
    change, message = BROKEN[name]
    bad = rewrite_h5(path, tmp_path / f"{name}.hdf5", change)
    with pytest.raises(DatasetError, match=rf"{name}\.hdf5: {message}"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_truncated_file_is_a_dataset_error(small_file, tmp_path):
    path, _ = small_file
    bad = _truncate(path, tmp_path / "truncated.hdf5")
    with pytest.raises(DatasetError, match=r"truncated\.hdf5: unreadable hdf5 file, truncated or damaged \(.*truncated file"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_dsrl_loader_errors_become_dataset_errors(small_file, monkeypatch):
    """dsrl's own asserts are caught at the boundary (the layout check makes them rare)."""
    path, _ = small_file
    from tcdp_lib.data import compat

    compat.apply()
    from dsrl.offline_env import OfflineEnv

    def refuse(self, h5path=None):
        raise AssertionError("Reward has wrong shape: (3,)")

    monkeypatch.setattr(OfflineEnv, "get_dataset", refuse)
    with pytest.raises(DatasetError, match=r"OfflineBallCircle-v0\.hdf5: dsrl's loader refused the file "
                                           r"\(AssertionError: Reward has wrong shape: \(3,\)\)"):
        load_dataset("OfflineBallCircle-v0", path)


def test_dsrl_progress_bar_is_silenced(small_file, capfd):
    path, _ = small_file
    load_dataset("OfflineBallCircle-v0", path)
    assert "load datafile" not in capfd.readouterr().err


def test_foreign_and_non_json_attributes_are_ignored(small_file, tmp_path, rewrite_h5):
    path, _ = small_file

    def change(d, a):
        a["generator"] = "my own collector v1.2"  # plain text from another tool
        a["note"] = "{not json"
        a["numbers"] = np.arange(3)

    ds = load_dataset("OfflineBallCircle-v0", rewrite_h5(path, tmp_path / "foreign.hdf5", change))
    assert ds.meta.generator == {}
    assert ds.meta.budgets == (10.0, 20.0, 40.0)
    assert dsmod.generator_info('{"seed": 3}') == {"seed": 3}
    assert dsmod.generator_info(b"[1, 2]") == {}
