"""Cold start: process start -> both default models ready, through the real `serve` start-up.

Each launch is a fresh `python -m playground serve` process (the code path `make run`
takes) on a free port, with PLAYGROUND_STARTUP_TRACE set: the server writes its own
timeline (seconds since the process started, per stage and per model; see
playground/startup.py). The bench waits until the default models are ready and the
page is served, reads the timeline, and stops the server (SIGTERM).

- first launch: an empty data dir, so each bundled GGUF file is converted and cached;
- second launch: the same data dir again (--reps times; the median is reported).

Before (--before REV, default: the commit before the cold-start work): that commit's
code, extracted with `git archive` into a temporary folder (the working tree is not
touched), run as `python -m playground prepare` - its way of loading both bundled models
in one process (its server loaded nothing before the first Run) - on a data dir of its
own, first and second launch, timed by the process's wall time and its per-model lines.

    PYTHONPATH=. .venv/bin/python bench/bench_cold_start.py [--reps 3] [--skip-before] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MACHINE = "dev box: 2-core x86_64 CPU, no GPU"
MACHINE_SLUG = "devbox-2core-cpu"
BEFORE_REV = "d35bd7f"  # the last commit before the cold-start work (issue 12, item 8)
DEFAULT_MODELS = "smollm2-135m,gemma3-270m"
TARGET_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")}
    return env | {"PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_DEFAULT_MODELS": DEFAULT_MODELS,
                  "PLAYGROUND_DEVICE": "cpu", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}


def serve_once(data_dir: Path, timeout_s: float) -> dict[str, object]:
    """One `serve` process until its default models are ready and it serves; its own timeline."""
    with tempfile.TemporaryDirectory(prefix="pg-cold-") as tmp:
        trace = Path(tmp) / "trace.json"
        env = base_env(data_dir) | {"PYTHONPATH": str(REPO), "PLAYGROUND_STARTUP_TRACE": str(trace),
                                    "PLAYGROUND_PORT": str(free_port()),
                                    "PLAYGROUND_DB": str(Path(tmp) / "runs.sqlite3")}
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "playground", "serve"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        timeline: dict = {}
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"serve exited with {proc.returncode}:\n{proc.stderr.read()[-3000:]}")
                timeline = _read(trace)
                stages = {e["stage"] for e in timeline.get("events", [])}
                if timeline.get("ready") and "serving" in stages:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"serve was not ready within {timeout_s:.0f} s: {timeline}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()
    failed = {m: r for m, r in timeline["models"].items() if not r.get("ok")}
    if failed:
        raise RuntimeError(f"models failed to load: {failed}")
    return summarise(timeline, timeline["process_started"] - started)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def summarise(timeline: dict, spawn_s: float) -> dict[str, object]:
    """Milestones (seconds since the process started) and each model's stages (seconds each)."""
    events = timeline["events"]

    def at(stage: str) -> float:
        return next(e["t"] for e in events if e["stage"] == stage and not e["model"])

    models: dict[str, dict[str, float]] = {}
    for model in timeline["models"]:
        mine = [e for e in events if e["model"] == model]
        stages: dict[str, float] = {}
        for event, following in zip(mine, mine[1:], strict=False):
            stages[event["stage"]] = round(stages.get(event["stage"], 0.0) + following["t"] - event["t"], 3)
        models[model] = {"started_at": mine[0]["t"], "ready_at": timeline["models"][model]["ready_at"],
                         "from_cache": timeline["models"][model]["from_cache"], "stages_s": stages}
    return {
        "milestones_s": {name: at(name) for name in (
            "playground imported", "torch, transformers imported", "engine built", "default models ready",
            "gradio imported", "page built", "serving")},
        "models": models,
        "models_ready_s": at("default models ready"),
        "serving_s": at("serving"),
        "spawn_s": round(spawn_s, 3),  # from Popen to the child's own start (the child's clock starts later)
    }


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    ordered = sorted(runs, key=lambda r: r["models_ready_s"])
    return ordered[len(ordered) // 2]


# ---------------------------------------------------------------- before: the old code, extracted


def extract(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "playground", "assets"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def prepare_once(code: Path, data_dir: Path, timeout_s: float) -> dict[str, object]:
    """The old code's `prepare`: both bundled models loaded in one process, one after another."""
    env = base_env(data_dir) | {"PYTHONPATH": str(code)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "playground", "prepare"], cwd=code, env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"old prepare failed:\n{done.stderr[-3000:]}")
    models = {}
    for line in done.stdout.splitlines():  # "smollm2-135m: ready (from converted cache, 2.3 s)"
        name, _, rest = line.partition(": ready (")
        if rest:
            how, _, seconds = rest.rstrip(")").rpartition(", ")
            models[name] = {"how": how, "load_s": float(seconds.removesuffix(" s"))}
    return {"models_ready_s": round(wall, 3), "models": models}


# ---------------------------------------------------------------- report


def facts() -> dict[str, object]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                    if line.startswith("Model name:")), "")
    except (OSError, subprocess.CalledProcessError):
        cpu = ""
    import torch
    import transformers

    return {"machine": MACHINE, "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "cpu_model": cpu, "torch": torch.__version__,
            "transformers": transformers.__version__,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def report(result: dict) -> None:
    after = result["after"]
    first, second = after["first_launch"], after["second_launch"]
    print(f"\ncold start on {MACHINE} (seconds since the process started)")
    print(f"{'milestone':<32}{'first launch':>14}{'second launch':>15}")
    for name in second["milestones_s"]:
        print(f"{name:<32}{first['milestones_s'][name]:>14.2f}{second['milestones_s'][name]:>15.2f}")
    for model, info in second["models"].items():
        stages = ", ".join(f"{stage} {s:.2f}" for stage, s in info["stages_s"].items())
        print(f"  second launch, {model}: started {info['started_at']:.2f}, ready {info['ready_at']:.2f} "
              f"({stages})")
    print(f"second launch runs (models ready): {[r['models_ready_s'] for r in after['second_launch_runs']]}")
    print(f"\nboth default models ready: first launch {first['models_ready_s']:.2f} s, second launch "
          f"{second['models_ready_s']:.2f} s (target <= {TARGET_S:.0f} s) -> second/first "
          f"{result['ratios']['second / first launch (models ready)']:.3f}")
    before = result.get("before")
    if before:
        old_first, old_second = before["first_launch"], before["second_launch"]
        print(f"before ({before['rev']}, `prepare`): first launch {old_first['models_ready_s']:.2f} s, "
              f"second launch {old_second['models_ready_s']:.2f} s "
              f"(runs {[r['models_ready_s'] for r in before['second_launch_runs']]})")
        print(f"after / before, second launch: {result['ratios']['after / before, second launch']:.3f}; "
              f"first launch: {result['ratios']['after / before, first launch']:.3f}")


def time_after(data: Path, reps: int, timeout_s: float) -> dict[str, object]:
    print("after: first launch (empty data dir: conversion included) ...", flush=True)
    first = serve_once(data, timeout_s)
    print(f"  models ready {first['models_ready_s']:.2f} s, serving {first['serving_s']:.2f} s", flush=True)
    runs = []
    for i in range(reps):
        runs.append(serve_once(data, timeout_s))
        print(f"  second launch {i + 1}: models ready {runs[-1]['models_ready_s']:.2f} s, serving "
              f"{runs[-1]['serving_s']:.2f} s", flush=True)
    return {"path": "python -m playground serve (its own start-up trace)", "first_launch": first,
            "second_launch": median_run(runs), "second_launch_runs": runs}


def time_before(rev: str, tmp: Path, reps: int, timeout_s: float) -> dict[str, object]:
    code = extract(rev, tmp / "before-code")
    data = tmp / "before"
    print(f"before ({rev}): first launch (empty data dir) ...", flush=True)
    first = prepare_once(code, data, timeout_s)
    print(f"  models ready {first['models_ready_s']:.2f} s", flush=True)
    runs = []
    for i in range(reps):
        runs.append(prepare_once(code, data, timeout_s))
        print(f"  second launch {i + 1}: models ready {runs[-1]['models_ready_s']:.2f} s", flush=True)
    second = sorted(runs, key=lambda r: r["models_ready_s"])[len(runs) // 2]
    return {"rev": rev, "path": "python -m playground prepare (process wall time)", "first_launch": first,
            "second_launch": second, "second_launch_runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="second launches per code version (median)")
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the code before the change")
    parser.add_argument("--skip-before", action="store_true", help="do not time the old code")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one launch may take")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / f"cold_start-{MACHINE_SLUG}.json")
    args = parser.parse_args()

    result: dict[str, object] = {"machine": MACHINE, "facts": facts(),
                                 "config": {"default_models": DEFAULT_MODELS, "reps": args.reps,
                                            "statistic": "median of the second launches by models-ready time",
                                            "target_s": TARGET_S}}
    with tempfile.TemporaryDirectory(prefix="pg-cold-data-") as tmp:
        result["after"] = time_after(Path(tmp) / "after", args.reps, args.timeout)
        after_second = result["after"]["second_launch"]["models_ready_s"]
        after_first = result["after"]["first_launch"]["models_ready_s"]
        ratios = {"second / first launch (models ready)": ratio(after_second, after_first)}
        if not args.skip_before:
            before = time_before(args.before, Path(tmp), args.reps, args.timeout)
            result["before"] = before
            ratios["after / before, second launch"] = ratio(after_second,
                                                            before["second_launch"]["models_ready_s"])
            ratios["after / before, first launch"] = ratio(after_first,
                                                           before["first_launch"]["models_ready_s"])
        result["ratios"] = ratios
    result["facts"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
