"""tcdp_lib: a thin library for offline safe RL with the Trajectory-Constrained Diffusion Planner.

Layers, each importing only the ones before it:
``data`` (DSRL datasets, simulators, generator) -> ``method`` (TCDP model parts)
-> ``planner`` -> ``runs`` (training, evaluation, reports, CLI) -> notebooks.

Importing the package is cheap and silent: simulators and ``dsrl`` load on first use.
"""

__version__ = "0.1.0"
