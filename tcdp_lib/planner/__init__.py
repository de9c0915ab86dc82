"""Planner layer: receding-horizon planning with a trained TCDP (imports only ``method``/``data``)."""

from tcdp_lib.planner.planner import Plan, Planner, PlannerConfig, online_remaining_budget

__all__ = ["Plan", "Planner", "PlannerConfig", "online_remaining_budget"]
