"""Latency of notebook 05's budget panel: slider release -> plans drawn, and -> last redraw.

    python benchmarks/panel_latency.py [--model data/checkpoints/OfflineBallCircle-v0/model.pt]
                                       [--threads N] [--budgets 0 10 20 40 80] [--stream-every 20]

Builds the panel headless (``tcdp_lib.widgets.BudgetPlannerPanel``) on the shipped BallCircle
model, as notebook 05 does (plotly mimetype renderer, placeholder figures first), with its two
figure areas replaced by recorders that serialise every update to JSON (what the kernel sends)
and time it. Then releases the budget slider once per budget, the first release included
(``panel.update()`` right after the panel is shown, as the notebook's cell does), waits for each
whole-episode rollout to stream in, and prints per release:

- release -> plans drawn: the plans figure sent (plan, figure and its serialisation);
- release -> rollout cleared: the old rollout replaced by a placeholder;
- release -> last redraw: the last figure update of the streamed rollout;

and their medians over all releases. A last pair of releases 0.5 s apart shows the second one
cancelling the first's rollout. Headless: the browser's drawing time is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

TASK = "OfflineBallCircle-v0"


class RecordingArea:
    """Stands in for an IPython display handle: serialises and timestamps each update."""

    def __init__(self):
        self.events: list[tuple[float, str, str]] = []

    def update(self, obj, raw=False):
        json.dumps(obj, default=str)  # the kernel's cost of sending it
        kind = "blank" if set(obj) == {"text/html"} else "figure"
        title = ""
        fig = obj.get("application/vnd.plotly.v1+json")
        if fig is not None:
            title = str((fig.get("layout", {}).get("title") or {}).get("text", ""))
            if not title:
                notes = fig.get("layout", {}).get("annotations") or [{}]
                title = str(notes[0].get("text", ""))
        self.events.append((time.perf_counter(), kind, title))


def release(panel, areas, act) -> dict:
    """Run ``act`` (a release), wait for the rollout, and time the figure updates after it."""
    start = [len(a.events) for a in areas]
    t0 = time.perf_counter()
    act()
    returned = time.perf_counter() - t0
    panel.wait()
    plan_ev = [e for e in areas[0].events[start[0]:] if e[1] == "figure"]
    ro_ev = [e for e in areas[1].events[start[1]:] if e[1] == "figure"]
    return {
        "plans_drawn_s": plan_ev[0][0] - t0,
        "cleared_s": ro_ev[0][0] - t0,
        "last_redraw_s": max(e[0] for e in plan_ev + ro_ev) - t0,
        "callback_s": returned,
        "rollout_redraws": len(ro_ev) - 1,
        "steps": panel.last.rollout.length,
        "cost": panel.last.rollout.total_cost,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model file (default: the shipped BallCircle checkpoint)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the workbench's, $TCDP_THREADS else half the CPUs)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.0, 10.0, 20.0, 40.0, 80.0])
    ap.add_argument("--stream-every", type=int, default=20, help="rollout steps between two redraws")
    args = ap.parse_args()
    from tcdp_lib.device import set_threads

    set_threads(args.threads)

    from tcdp_lib import plots
    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.runs.interactive import load_planner_model
    from tcdp_lib.widgets import BudgetPlannerPanel

    plots.setup_notebook()
    ds = load_dataset(TASK)
    loaded = load_planner_model(ds, args.model)
    panel = BudgetPlannerPanel(ds, loaded.model, model_source=loaded.source, stream_every=args.stream_every)
    areas = (RecordingArea(), RecordingArea())
    panel.plan_area, panel.rollout_area = areas
    for area, text in zip(areas, ("the sampled plans appear here", "the rollout appears here")):
        panel._show(area, plots.placeholder(text))  # what display(panel) shows first

    load = os.getloadavg()
    print(f"model: {loaded.source}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; rollout: the whole episode "
          f"({panel.rollout_steps.value} steps), a redraw every {args.stream_every} steps")
    rows = [("first (update)", release(panel, areas, panel.update))]
    for b in args.budgets:
        if b == panel.budget.value:
            continue

        def act(b=b):
            panel.budget.value = b
        rows.append((f"b = {b:g}", release(panel, areas, act)))

    print(f"{'release':>15s} {'plans drawn s':>14s} {'cleared s':>10s} {'last redraw s':>14s} "
          f"{'redraws':>8s} {'steps':>6s} {'cost':>6s}")
    for name, r in rows:
        print(f"{name:>15s} {r['plans_drawn_s']:14.3f} {r['cleared_s']:10.3f} {r['last_redraw_s']:14.3f} "
              f"{r['rollout_redraws']:8d} {r['steps']:6d} {r['cost']:6g}")
    med = {k: statistics.median(r[k] for _, r in rows) for k in ("plans_drawn_s", "cleared_s", "last_redraw_s")}
    print(f"median over {len(rows)} releases (first included): release -> plans drawn {med['plans_drawn_s']:.3f} s, "
          f"-> rollout cleared {med['cleared_s']:.3f} s, -> last redraw {med['last_redraw_s']:.3f} s")

    # A release while a rollout streams: the second release cancels the first's rollout.
    panel.budget.value = 5.0
    time.sleep(0.5)
    first = panel.rollout_task
    t0 = time.perf_counter()
    n0 = len(areas[0].events)
    panel.budget.value = 30.0
    plans = next(e[0] for e in areas[0].events[n0:] if e[1] == "figure") - t0
    panel.wait()
    print(f"release during a rollout: the earlier rollout cancelled after {first.result.length} steps "
          f"({first.result.cancelled}); release -> plans drawn {plans:.3f} s")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
