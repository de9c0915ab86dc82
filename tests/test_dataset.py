"""The loader: round trip through dsrl's own reader, and each bad-input case with its message."""

import h5py
import numpy as np
import pytest

from tcdp_lib.data import dataset as dsmod
from tcdp_lib.data.dataset import DatasetError, DatasetNotFoundError, load_dataset
from tcdp_lib.data.generate import write_dataset


def _rewrite(src, dst, change):
    with h5py.File(src, "r") as f:
        data = {k: f[k][:] for k in f.keys()}
        attrs = dict(f.attrs)
    change(data, attrs)
    with h5py.File(dst, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
        for k, v in attrs.items():
            f.attrs[k] = v
    return dst


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


def test_missing_key(small_file, tmp_path):
    path, _ = small_file
    bad = _rewrite(path, tmp_path / "nokey.hdf5", lambda d, a: d.pop("costs"))
    with pytest.raises(DatasetError, match="missing key 'costs'"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_observation_shape_mismatch(small_file, tmp_path):
    path, _ = small_file

    def change(d, a):
        d["observations"] = d["observations"][:, :7]

    bad = _rewrite(path, tmp_path / "shape.hdf5", change)
    with pytest.raises(DatasetError, match=r"'observations' has shape \(\d+, 7\), expected \(N, 8\)"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_file_of_another_task_is_refused(small_file):
    path, _ = small_file
    # BallRun has 7-dimensional observations: a BallCircle file fails its shape check first,
    # so use a task with the same shapes (CarCircle: obs 8, act 2) to reach the task check.
    with pytest.raises(DatasetError, match="holds data of task 'OfflineBallCircle-v0'"):
        load_dataset("OfflineCarCircle-v0", path)


@pytest.mark.parametrize("key", ["observations", "rewards", "costs"])
def test_nan_rows(small_file, tmp_path, key):
    path, _ = small_file

    def change(d, a):
        d[key] = d[key].astype(np.float32)
        d[key][5] = np.nan

    bad = _rewrite(path, tmp_path / "nan.hdf5", change)
    with pytest.raises(DatasetError, match=rf"'{key}' has 1 rows with NaN or inf \(first at row 5\)"):
        load_dataset("OfflineBallCircle-v0", bad)


def test_zero_episodes(small_file, tmp_path):
    path, _ = small_file

    def change(d, a):
        d["terminals"][:] = False
        d["timeouts"][:] = False

    bad = _rewrite(path, tmp_path / "zero.hdf5", change)
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
