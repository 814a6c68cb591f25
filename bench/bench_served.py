"""Managed llama.cpp through the playground vs llama-cpp-python called directly vs in-process transformers.

The same GGUF (the bundled SmolLM2 Q4_1), the same prompt, up to 128 new tokens,
greedy, the same thread count, measured in one process with the methods taking
turns in every repetition:

- playground column on the managed llama.cpp server (HTTP streaming, worker thread)
- llama-cpp-python's `Llama.create_chat_completion(stream=True)` in this process
- the managed server read with plain httpx (no SDK, no engine): the wire's own ceiling
- the playground's in-process transformers column on the same file
- with PLAYGROUND_VLLM set (`make vllm` builds .venv-vllm): a managed vLLM column on the
  same weights (the file's converted folder), against vLLM's own figure for the same requests
  (its /metrics: generation tokens over decode time) and against the transformers column

Decode tok/s counts the tokens after the first over the time after the first.
The playground asks served models for top-5 logprobs (the probabilities panel),
which costs llama-cpp-python's server ~25 ms a token in Python: both llama.cpp
variants are measured with and without them (catalog `logprobs = false`).
The managed server's own figure is read from its log (llama.cpp prints
"eval time = … tokens per second" after each request): the playground's
observed rate against the server's own.

    python bench/bench_served.py [--reps 3] [--tokens 128] [--out bench/results/served_cpu.json]
    PLAYGROUND_VLLM=.venv-vllm/bin/python python bench/bench_served.py   # adds the vLLM column
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from playground.backends import llamacpp  # noqa: E402
from playground.backends.pool import ModelPool  # noqa: E402
from playground.catalog import SMOLLM2, SMOLLM2_LLAMACPP, Catalog, ModelSpec, bundled_file  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import ColumnRequest, Engine, RunRequest  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper who befriends a storm."
THREADS = os.cpu_count() or 2
EVAL_LINE = re.compile(r"^(?!.*prompt eval).*\beval time =.*?([\d.]+) tokens per second", re.MULTILINE)


def column_rate(engine: Engine, model: str, tokens: int) -> dict:
    request = RunRequest(PROMPT, [ColumnRequest(model, GenerationParams(max_new_tokens=tokens))],
                         capture_attention=False)
    record = engine.run(request).models[0]
    if record.error:
        raise SystemExit(f"{model}: {record.error}")
    return {"tokens": record.metrics.output_tokens, "decode_tok_s": record.metrics.decode_tok_s,
            "ttft_s": record.metrics.ttft_s, "text": record.text}


def direct_rate(llm: object, tokens: int, logprobs: bool) -> dict:
    """llama-cpp-python in this process, streamed the same way (chat template from the GGUF)."""
    llm.reset()  # no prompt-cache reuse between repetitions
    started = time.perf_counter()
    first = 0.0
    count = 0
    text = []
    messages = [{"role": "user", "content": PROMPT}]
    extra = {"logprobs": True, "top_logprobs": 5} if logprobs else {}
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=tokens, temperature=0.0,
                                            repeat_penalty=1.0, top_k=0, stream=True, **extra):
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            count += 1
            text.append(content)
            if count == 1:
                first = time.perf_counter()
    end = time.perf_counter()
    return {"tokens": count, "decode_tok_s": (count - 1) / (end - first) if count > 1 else 0.0,
            "ttft_s": first - started, "text": "".join(text)}


def raw_http_rate(base_url: str, tokens: int) -> dict:
    """The same server read with plain httpx (no SDK, no engine): what the wire itself allows."""
    import httpx

    body = {"model": "smollm2-135m-llamacpp-noprobs", "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": tokens, "temperature": 0.0, "repeat_penalty": 1.0, "top_k": 0, "stream": True}
    times = []
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                times.append(time.perf_counter())
    count = len(times)
    rate = (count - 1) / (times[-1] - times[0]) if count > 1 else 0.0
    return {"tokens": count, "decode_tok_s": rate, "ttft_s": 0.0, "text": ""}


def vllm_counters(base_url: str) -> tuple[float, float]:
    """vLLM's own running totals: decode seconds and generation tokens (Prometheus /metrics)."""
    import httpx

    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    totals = {"vllm:request_decode_time_seconds_sum": 0.0, "vllm:generation_tokens_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals["vllm:request_decode_time_seconds_sum"], totals["vllm:generation_tokens_total"]


def vllm_column(engine: Engine, model: str, base_url: str, tokens: int) -> tuple[dict, float]:
    """The playground's vLLM column, and vLLM's own decode rate for that request."""
    seconds, generated = vllm_counters(base_url)
    row = column_rate(engine, model, tokens)
    for _ in range(20):  # the counters land just after the request ends
        after_s, after_n = vllm_counters(base_url)
        if after_s > seconds:
            break
        time.sleep(0.1)
    own = (after_n - generated - 1) / (after_s - seconds) if after_s > seconds else 0.0
    return row, own


def server_reported_rate(port: int) -> float:
    """The managed server's own decode rate for its last request, from its log."""
    server = next(s for s in llamacpp._LIVE if s.port == port)
    for _ in range(20):  # the server prints its figures just after the request ends
        matches = EVAL_LINE.findall(server.log_path.read_text(errors="replace"))
        if matches:
            return float(matches[-1])
        time.sleep(0.1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "served_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    from llama_cpp import Llama

    settings = Settings.from_env()
    pool = ModelPool(settings.data_dir, "cpu")
    no_probs = replace(SMOLLM2_LLAMACPP, id="smollm2-135m-llamacpp-noprobs", logprobs=False)
    specs = {**Catalog.build().specs, no_probs.id: no_probs}
    engine = Engine(Catalog(specs), pool)
    served = pool.get(no_probs)
    pool.get(SMOLLM2_LLAMACPP)
    pool.get(SMOLLM2)
    vllm_spec = None
    if os.environ.get("PLAYGROUND_VLLM"):
        vllm_spec = ModelSpec(id="smollm2-135m-vllm", name="SmolLM2 135M (vLLM)", source="vllm",
                              location=SMOLLM2.location, bundled=True, max_model_len=2048,
                              extra_args=("--dtype", "float32"))  # as the transformers column on CPU
        engine = Engine(Catalog({**specs, vllm_spec.id: vllm_spec}), pool)
        vllm_url = pool.get(vllm_spec).spec.base_url
    port = int(served.spec.base_url.rsplit(":", 1)[1].split("/")[0])
    llm = Llama(model_path=str(bundled_file(SMOLLM2, settings.data_dir)), n_threads=THREADS, n_ctx=8192,
                logits_all=True, verbose=False)  # as the server loads it (logits_all: it serves logprobs)
    rows: dict[str, list[dict]] = {k: [] for k in (
        "managed_llamacpp", "raw_http_llamacpp", "direct_llamacpp", "managed_llamacpp_logprobs",
        "direct_llamacpp_logprobs", "transformers")}
    server_rates: list[float] = []
    vllm_own: list[float] = []
    if vllm_spec is not None:
        rows["vllm"] = []
    for _rep in range(args.reps):
        if vllm_spec is not None:
            row, own = vllm_column(engine, vllm_spec.id, vllm_url, args.tokens)
            rows["vllm"].append(row)
            vllm_own.append(own)
        rows["managed_llamacpp"].append(column_rate(engine, no_probs.id, args.tokens))
        server_rates.append(server_reported_rate(port))
        rows["raw_http_llamacpp"].append(raw_http_rate(served.spec.base_url, args.tokens))
        rows["direct_llamacpp"].append(direct_rate(llm, args.tokens, logprobs=False))
        rows["managed_llamacpp_logprobs"].append(column_rate(engine, SMOLLM2_LLAMACPP.id, args.tokens))
        rows["direct_llamacpp_logprobs"].append(direct_rate(llm, args.tokens, logprobs=True))
        rows["transformers"].append(column_rate(engine, SMOLLM2.id, args.tokens))
    pool.close()
    median = {k: statistics.median(r["decode_tok_s"] for r in v) for k, v in rows.items()}
    observed = statistics.median(r["decode_tok_s"] for r in rows["managed_llamacpp"])
    server_own = statistics.median(server_rates) if all(server_rates) else 0.0
    result = {
        "benchmark": "bench_served",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
        "model": "SmolLM2-135M-Instruct Q4_1 (bundled GGUF)",
        "threads": THREADS,
        "max_new_tokens": args.tokens,
        "reps": args.reps,
        "decode_tok_s_median": median,
        "managed_vs_direct": median["managed_llamacpp"] / median["direct_llamacpp"],
        "managed_vs_raw_http": median["managed_llamacpp"] / median["raw_http_llamacpp"],
        "raw_http_vs_direct": median["raw_http_llamacpp"] / median["direct_llamacpp"],
        "managed_vs_direct_with_logprobs": median["managed_llamacpp_logprobs"]
        / median["direct_llamacpp_logprobs"],
        "logprobs_cost_on_direct": median["direct_llamacpp_logprobs"] / median["direct_llamacpp"],
        "managed_vs_transformers": median["managed_llamacpp"] / median["transformers"],
        "managed_with_logprobs_vs_transformers": median["managed_llamacpp_logprobs"] / median["transformers"],
        "server_reported_decode_tok_s": server_own,
        "observed_vs_server_reported": observed / server_own if server_own else None,
        "same_text_managed_and_direct": rows["managed_llamacpp"][0]["text"]
        == rows["direct_llamacpp"][0]["text"],
        "runs": {k: [{x: y for x, y in r.items() if x != "text"} for r in v] for k, v in rows.items()},
    }
    if vllm_spec is not None:
        own = statistics.median(vllm_own)
        result["vllm"] = {
            "dtype": "float32", "decode_tok_s": median["vllm"], "vllm_reported_decode_tok_s": own,
            "observed_vs_vllm_reported": median["vllm"] / own if own else None,
            "vs_transformers": median["vllm"] / median["transformers"],
            "same_text_as_transformers": rows["vllm"][0]["text"] == rows["transformers"][0]["text"],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, rate in median.items():
        print(f"{name:<18} {rate:7.1f} tok/s (decode, median of {args.reps})")
    print(f"managed llama.cpp / llama-cpp-python direct: {result['managed_vs_direct']:.2f}x (target >= 0.9)")
    print(f"  the server read with plain httpx: {result['raw_http_vs_direct']:.2f}x direct; the playground "
          f"column {result['managed_vs_raw_http']:.2f}x that")
    print(f"  both with top-5 logprobs: {result['managed_vs_direct_with_logprobs']:.2f}x; logprobs cost "
          f"llama-cpp-python itself {1 / result['logprobs_cost_on_direct']:.1f}x")
    print(f"managed llama.cpp / in-process transformers: {result['managed_vs_transformers']:.2f}x")
    if server_own:
        print(f"observed / server's own rate: {result['observed_vs_server_reported']:.2f}x "
              f"({server_own:.1f} tok/s reported by the server)")
    if vllm_spec is not None:
        v = result["vllm"]
        print(f"vLLM column {v['decode_tok_s']:.1f} tok/s: {v['observed_vs_vllm_reported'] or 0:.2f}x "
              f"vLLM's own rate ({v['vllm_reported_decode_tok_s']:.1f}), "
              f"{v['vs_transformers']:.2f}x transformers")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
