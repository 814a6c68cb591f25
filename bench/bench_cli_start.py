"""CLI start-up: a second launch of `compare` on both bundled models against a bare torch import.

Each launch is a fresh process, timed from spawn to exit (the interpreter's own start
included), the three kinds taking turns so that they share the machine's state alike:

- bare: `python -c "import torch, transformers"`, the floor any command that runs a
  model pays;
- after: `python -m playground compare --model smollm2-135m --model gemma3-270m
  --max-new-tokens 1 --no-save --no-attention hi` with this working tree's code, on a
  data dir whose converted caches exist (a second launch: one untimed warm-up run of each
  code version comes first), with PLAYGROUND_STARTUP_TRACE set, so its own timeline says
  when torch was imported, when the engine was built and when each model was ready;
- before (--before REV): the same command with that commit's code, extracted with
  `git archive` into a temporary folder (the working tree is not touched).

It prints the medians and their ratios; the goal is after / bare <= 2.2. Each round's
1-minute load average is kept beside its times (other sessions share the dev box).

--serve N adds N second launches of `python -m playground serve` on the same data dir
(bench/bench_cold_start.py's serve_once: its own trace, until the page is served): when
both bundled models were ready, and when the page was served, seconds since the process
started (README's claim about `serve` start-up).

    PYTHONPATH=. .venv/bin/python bench/bench_cli_start.py [--reps 5] [--data-dir DIR] [--skip-before]
        [--serve 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MACHINE = "2-core dev box, CPU"
BEFORE_REV = "6ee4982"  # the last commit before the CLI took serve's start-up path (issue 21, item 6)
COMPARE = ["compare", "--model", "smollm2-135m", "--model", "gemma3-270m", "--max-new-tokens", "1",
           "--no-save", "--no-attention", "hi"]
BARE = ["-c", "import torch, transformers"]
GOAL = 2.2  # after / bare, medians


def base_env(data_dir: Path, code: Path) -> dict[str, str]:
    """The caller's environment without its PLAYGROUND_* settings: CPU, this data dir, this code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")}
    return env | {"PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_DEVICE": "cpu", "PYTHONPATH": str(code),
                  "GRADIO_ANALYTICS_ENABLED": "False"}


def launch(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> float:
    """Seconds from spawn to exit of one fresh process; a failed one stops the bench with its stderr."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return round(wall, 3)


def traced(env: dict[str, str], timeout_s: float) -> tuple[float, dict]:
    """One `compare` of this working tree, with its own start-up timeline."""
    with tempfile.TemporaryDirectory(prefix="pg-cli-") as tmp:
        trace = Path(tmp) / "trace.json"
        wall = launch(["-m", "playground", *COMPARE], env | {"PLAYGROUND_STARTUP_TRACE": str(trace)}, REPO,
                      timeout_s)
        try:
            timeline = json.loads(trace.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            timeline = {}
    return wall, milestones(timeline)


def milestones(timeline: dict) -> dict[str, float]:
    """Seconds since the process started: the start-up's stages, and when each model was ready."""
    found = {e["stage"]: e["t"] for e in timeline.get("events", []) if not e["model"]}
    found |= {f"{model} ready": m["ready_at"] for model, m in timeline.get("models", {}).items()}
    return found


def extract(rev: str, into: Path) -> Path:
    """The code of `rev` (playground and assets), without touching the working tree."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "playground", "assets"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def facts() -> dict[str, object]:
    """The machine and versions the figures belong to."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                    if line.startswith("Model name:")), "")
    except (OSError, subprocess.CalledProcessError):
        cpu = ""
    return {"machine": MACHINE, "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "cpu_model": cpu,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}


def run(args: argparse.Namespace, before_code: Path | None) -> dict[str, object]:
    """Warm-ups, then --reps rounds of bare, after (and before), taking turns."""
    env = base_env(args.data_dir, REPO)
    old_env = base_env(args.data_dir, before_code) if before_code else {}
    print("warm-up (untimed: converted caches and the file cache) ...", flush=True)
    launch(BARE, env, REPO, args.timeout)
    traced(env, args.timeout)
    if before_code:
        launch(["-m", "playground", *COMPARE], old_env, before_code, args.timeout)
    times: dict[str, list[float]] = {"bare": [], "after": []} | ({"before": []} if before_code else {})
    traces = []
    loads = []
    for i in range(args.reps):
        loads.append(round(os.getloadavg()[0], 2))
        times["bare"].append(launch(BARE, env, REPO, args.timeout))
        wall, stages = traced(env, args.timeout)
        times["after"].append(wall)
        traces.append(stages)
        if before_code:
            times["before"].append(launch(["-m", "playground", *COMPARE], old_env, before_code, args.timeout))
        print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    medians = {k: round(statistics.median(v), 3) for k, v in times.items()}
    ratios = {"after / bare": round(medians["after"] / medians["bare"], 3)}
    if before_code:
        ratios["before / bare"] = round(medians["before"] / medians["bare"], 3)
        ratios["after / before"] = round(medians["after"] / medians["before"], 3)
    stage_medians = {stage: round(statistics.median(t[stage] for t in traces if stage in t), 3)
                     for stage in traces[0]}
    return {"times_s": times, "medians_s": medians, "ratios": ratios, "after_stages_s": stage_medians,
            "loadavg_1m_per_round": loads}


def serve_ready(data_dir: Path, launches: int, timeout_s: float) -> dict[str, object]:
    """Second launches of `serve` (bench_cold_start.serve_once): medians of when both default models
    were ready and when the page was served, seconds since the process started."""
    from bench_cold_start import serve_once  # this folder is on sys.path when the bench runs as a script

    runs = []
    for _ in range(launches):
        runs.append(serve_once(data_dir, timeout_s) | {"loadavg_1m": round(os.getloadavg()[0], 2)})
        print(f"  serve: models ready {runs[-1]['models_ready_s']:.2f} s, "
              f"serving {runs[-1]['milestones_s']['serving']:.2f} s", flush=True)
    return {"launches": launches,
            "models_ready_s": [r["models_ready_s"] for r in runs],
            "serving_s": [r["milestones_s"]["serving"] for r in runs],
            "loadavg_1m": [r["loadavg_1m"] for r in runs],
            "median_models_ready_s": round(statistics.median(r["models_ready_s"] for r in runs), 3),
            "median_serving_s": round(statistics.median(r["milestones_s"]["serving"] for r in runs), 3)}


def report(result: dict) -> None:
    medians, ratios = result["medians_s"], result["ratios"]
    print(f"\nCLI start-up on {MACHINE}: seconds from spawn to exit, medians of {result['config']['reps']}")
    for name, seconds in medians.items():
        print(f"  {name:<7}{seconds:>7.2f} s   runs {result['times_s'][name]}")
    print("  after, its own timeline (seconds since the process started): " + ", ".join(
        f"{stage} {t:.2f}" for stage, t in result["after_stages_s"].items()))
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f}x")
    verdict = "meets" if ratios["after / bare"] <= GOAL else "misses"
    print(f"after / bare {ratios['after / bare']:.2f}x {verdict} the goal of <= {GOAL}x")
    serve = result.get("serve_second_launch")
    if serve:
        print(f"serve, second launch (median of {serve['launches']}): both models ready "
              f"{serve['median_models_ready_s']:.2f} s, page served {serve['median_serving_s']:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (the median is reported)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("PLAYGROUND_DATA_DIR") or REPO / "data" / "bench"),
                        help="data dir of the runs (its converted caches are made by the warm-up once)")
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the code before the change")
    parser.add_argument("--skip-before", action="store_true", help="do not time the old code")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one launch may take")
    parser.add_argument("--serve", type=int, default=0, help="second launches of `serve` to time (0: none)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cli_start_cpu.json")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"machine": MACHINE, "facts": facts(),
                                 "config": {"command": ["python", "-m", "playground", *COMPARE],
                                            "bare": ["python", *BARE], "reps": args.reps,
                                            "before": None if args.skip_before else args.before,
                                            "statistic": "median wall time, spawn to exit", "goal": GOAL}}
    with tempfile.TemporaryDirectory(prefix="pg-cli-code-") as tmp:
        before_code = None if args.skip_before else extract(args.before, Path(tmp) / "before")
        result |= run(args, before_code)
    if args.serve:
        result["serve_second_launch"] = serve_ready(args.data_dir, args.serve, args.timeout)
    result["facts"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
