"""Each compatibility fix: the failure it prevents happens without it, and not with it.

Every case runs in a fresh interpreter, since the fixes act on import-time state.
"""

import os
import subprocess
import sys
import textwrap

import pytest


def run_py(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DSRL_SUPPRESS_IMPORT_ERROR"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=240, env=env)


SG_MAKE = """
import safety_gymnasium
env = safety_gymnasium.make("SafetyPointCircle1-v0")
env.reset(seed=0)
print("made")
"""


def test_safety_gymnasium_fails_on_311_without_the_color_fix():
    res = run_py(SG_MAKE)
    assert res.returncode != 0
    assert "mutable default <class 'numpy.ndarray'>" in res.stderr


def test_safety_gymnasium_works_with_the_color_fix():
    res = run_py("from tcdp_lib.data import compat; compat.fix_safety_gymnasium_colors()\n" + SG_MAKE)
    assert res.returncode == 0, res.stderr
    assert "made" in res.stdout


KERNEL_STREAMS = """
import io, sys
class KernelStream(io.StringIO):   # like ipykernel's OutStream: no descriptor, odd name
    name = "stderr"
    def fileno(self):
        raise io.UnsupportedOperation("fileno")
sys.stderr = KernelStream()
sys.stdout = KernelStream()
"""

BULLET_MAKE = """
import traceback
try:
    import gymnasium, bullet_safety_gym
    env = gymnasium.make("SafetyBallRun-v0")
    env.reset(seed=0)
    sys.__stdout__.write("made\\n")
except BaseException:
    traceback.print_exc(file=sys.__stderr__)
    sys.exit(1)
"""


def test_bullet_fails_in_a_kernel_like_stream_without_the_fix():
    res = run_py(KERNEL_STREAMS + BULLET_MAKE)
    assert res.returncode != 0
    assert "fileno" in res.stderr or "undefined symbol" in res.stderr


def test_bullet_works_in_a_kernel_like_stream_with_the_fix():
    res = run_py(KERNEL_STREAMS + "from tcdp_lib.data import compat; compat.fix_bullet_stream_redirect()\n"
                 + BULLET_MAKE)
    assert res.returncode == 0, res.stderr
    assert "made" in res.stdout
    assert res.stdout == "made\n"  # pybullet's "argv[0]=" on fd 1 silenced although Python's stdout has no descriptor


def test_import_is_silent_and_lazy():
    res = run_py("""
        import sys, tcdp_lib, tcdp_lib.data
        assert "dsrl" not in sys.modules and "gym" not in sys.modules, "heavy import at import time"
        from tcdp_lib.data import compat
        status = compat.apply()
        assert status == {"bullet": None, "safety_gymnasium": None, "metadrive": None}, status
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""


def test_dsrl_alone_is_noisy_and_all_or_nothing():
    # The cause the family-by-family import works around: a failing family is printed, and
    # families after it in dsrl's single try-block are not registered.
    res = run_py("""
        import sys
        sys.modules["dsrl.offline_bullet_safety_gym"] = None  # the first family fails to import
        import dsrl, gymnasium
        print("OfflinePointCircle1Gymnasium-v0" in gymnasium.registry)
    """)
    assert "Warning: failed to import" in res.stderr
    assert res.stdout.strip() == "False"


def test_one_missing_family_does_not_hide_the_others():
    res = run_py("""
        import sys
        sys.modules["dsrl.offline_bullet_safety_gym"] = None  # the first family fails to import
        from tcdp_lib.data import compat
        status = compat.apply()
        import gymnasium
        print(status["bullet"])
        print("OfflinePointCircle1Gymnasium-v0" in gymnasium.registry)
        from tcdp_lib.data.envs import FamilyUnavailableError, ensure_family
        try:
            ensure_family("OfflineBallRun-v0")
        except FamilyUnavailableError as err:
            print(err)
    """)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("ModuleNotFoundError: import of dsrl.offline_bullet_safety_gym halted")
    assert lines[1] == "True"
    assert "OfflineBallRun-v0 needs the bullet family (package bullet-safety-gym)" in lines[2]


def test_a_missing_simulator_package_is_reported_with_its_name():
    res = run_py("""
        import sys
        sys.modules["bullet_safety_gym"] = None  # as if bullet-safety-gym were not installed
        from tcdp_lib.data.envs import FamilyUnavailableError, make_env
        try:
            make_env("OfflineBallCircle-v0")
        except FamilyUnavailableError as err:
            print(err)
    """)
    assert res.returncode == 0, res.stderr
    assert "needs the bullet family (package bullet-safety-gym)" in res.stdout


def test_metadrive_import_fails_with_protobuf_4_without_the_protos_fix():
    res = run_py("""
        import google.protobuf
        assert int(google.protobuf.__version__.split(".")[0]) >= 4, google.protobuf.__version__  # Ray's
        from tcdp_lib.data import compat
        compat.fix_metadrive_register()
        import metadrive
    """)
    assert res.returncode != 0
    assert "Descriptors cannot be created directly" in res.stderr


def test_metadrive_imports_with_the_protos_fix_and_without_waymo_protos():
    res = run_py("""
        from tcdp_lib.data import compat
        compat.fix_metadrive_register(); compat.fix_metadrive_waymo_protos()
        import metadrive
        import metadrive.utils.waymo_utils.waymo_utils as waymo
        print(hasattr(waymo, "scenario_pb2"))
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == "False"


def test_metadrive_import_fails_on_gym_026_without_the_register_fix():
    res = run_py("from tcdp_lib.data import compat; compat.fix_metadrive_waymo_protos()\nimport metadrive")
    assert res.returncode != 0
    assert "'dict' object has no attribute 'env_specs'" in res.stderr


def test_metadrive_imports_with_the_register_fix():
    res = run_py("""
        from tcdp_lib.data import compat
        compat.fix_metadrive_register(); compat.fix_metadrive_waymo_protos()
        import gym, metadrive
        print(metadrive.SafeMetaDriveEnv.__name__, "MetaDrive-validation-v0" in gym.envs.registry)
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["SafeMetaDriveEnv", "False"]  # MetaDrive's own ids are not needed


# dsrl's MetaDrive env through the old gym registry, stepped once (its lidar uses np.bool).
METADRIVE_STEP = """
import warnings
warnings.simplefilter("ignore")
import gym, numpy
import dsrl.offline_metadrive
env = gym.make("OfflineMetadrive-easysparse-v0")
env.reset(seed=0)
env.step(numpy.zeros(2, numpy.float32))
env.close()
print("stepped", hasattr(numpy, "float"), hasattr(numpy, "bool"))
"""


def test_metadrive_fails_on_numpy_126_without_the_alias_fix():
    res = run_py("from tcdp_lib.data import compat\n"
                 "compat.fix_metadrive_register(); compat.fix_metadrive_waymo_protos()\n" + METADRIVE_STEP)
    assert res.returncode != 0
    assert "module 'numpy' has no attribute" in res.stderr


def test_metadrive_works_with_the_alias_fix_and_numpy_is_unchanged():
    res = run_py("from tcdp_lib.data import compat\n"
                 "compat.fix_metadrive_register(); compat.fix_metadrive_waymo_protos()\n"
                 "compat.fix_metadrive_numpy_aliases()\n" + METADRIVE_STEP)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-3:] == ["stepped", "False", "False"]  # the aliases stay out of numpy


def test_the_alias_fix_reaches_metadrive_modules_imported_before_and_after_it():
    res = run_py("""
        import sys
        from tcdp_lib.data import compat
        compat.fix_metadrive_register(); compat.fix_metadrive_waymo_protos()
        import metadrive  # imports most of MetaDrive, the lidar and math helpers included
        assert "metadrive.obs.top_down_renderer" not in sys.modules  # imported at the first render
        compat.fix_metadrive_numpy_aliases()
        import metadrive.utils.math_utils as before
        import metadrive.obs.top_down_renderer as after
        import numpy
        print(before.np.float is float, after.np.bool is bool, after.np.zeros is numpy.zeros)
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-3:] == ["True", "True", "True"]
