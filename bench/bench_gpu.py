"""The GPU fast path against plain `generate()` and the eager path, on a lent GPU, in one process.

Random-weight models of real shapes (SmolLM2-135M, Gemma3-270M, a 1.3B Llama; an 8B Llama for
the bandwidth floor) are saved as local folders and loaded through the project's own catalog,
pool and engine; `--gguf FILE` adds a real model (the bundled SmolLM2 GGUF). Every ratio
compares figures from this same run. Greedy, 128 new tokens, EOS ignored (random weights
would stop anywhere), so every method decodes the same number of tokens.

    python3 bench/bench_gpu.py --out results.json [--gguf SmolLM2-135M-Instruct.Q4_1.gguf]
        [--sections identity,alone,three,batch,attention,oom,preflight,floor]

Sections (each recorded separately; one failing does not stop the others):
- alone: decode tok/s alone for generate(), the eager path and the fast path, with greedy token
  identity of the fast path against the eager path;
- three: three models in one engine run vs the slowest alone (fast path, then eager);
- batch: four columns of one model (four seeds, sampled) vs one column, each row checked
  token-identical to its seed run alone;
- attention: attention capture and token probabilities after a fast-path run;
- oom: an out-of-memory during a run (forced with set_per_process_memory_fraction) ends that
  column only; the other column finishes, and a later run works;
- preflight: a model too big for the GPU is refused before loading, with numbers;
- launch: the host's cost of launching one step, one step's time, and one round of all models;
- floor: the 8B shape's fast-path step time against the weight-bandwidth floor, plain and fused;
- fused: per model, the fused step's verdict (against fp32) and compile time (cold, then from
  the disk cache), one step's time plain vs fused, and single-stream tok/s and greedy identity
  with the eager path for the plain and the fused (default) step;
- users: 32 concurrent runs on the 135M shape with different prompts (continuous batching):
  per-user decode tok/s against one user alone, aggregate tok/s, the largest batch seen, and
  each user's tokens against its run alone; through the engine and straight from the backend,
  on the plain step and then on the fused one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3TextConfig, LlamaConfig  # noqa: E402

from playground.backends.base import StreamInfo  # noqa: E402
from playground.backends.fast_warm import PROBE_TEXT  # noqa: E402
from playground.backends.pool import ModelPool  # noqa: E402
from playground.backends.workspace import ROW_BUCKETS, Workspace, WorkspaceKey  # noqa: E402
from playground.catalog import Catalog  # noqa: E402
from playground.engine import ColumnRequest, Engine, RunRequest  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

PROMPT = "Write a short story about a robot who learns to paint. Describe its first painting in detail."
NEW_TOKENS = 128
SHAPES = {
    "smollm2-135m-shape": LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
    ),
    "gemma3-270m-shape": Gemma3TextConfig(
        vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
        max_position_embeddings=32768, query_pre_attn_scalar=256, bos_token_id=2, eos_token_id=1,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 3,
    ),
    "llama-1.3b-shape": LlamaConfig(
        # vocabulary: SmolLM2's tokenizer (its ids must fit)
        vocab_size=49152, hidden_size=2048, intermediate_size=5504, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=65536,
        bos_token_id=1, eos_token_id=2,
    ),
}
USERS = 32
TOPICS = ("a lighthouse", "the sea", "a red kite", "winter", "a small town", "trains", "a violin",
          "the moon", "bread", "a garden", "rain", "a library", "mountains", "a cat", "clocks", "a river")
EIGHT_B = LlamaConfig(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
)


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.fast_mode = "auto" if self.device == "cuda" else "on"  # a CPU dry run: static cache, no graphs
        self.root = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
        self.tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        self.result: dict = {
            "machine": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU",
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "new_tokens": NEW_TOKENS,
            "compile": args.compile,
            "sections": {},
        }
        import transformers
        self.result["transformers"] = transformers.__version__
        self.refs: list[str] = []
        for name, config in SHAPES.items():
            if name not in args.shapes.split(","):
                continue
            if args.tiny:  # a CPU dry run of the script itself
                config.num_hidden_layers = 2
                if hasattr(config, "layer_types"):
                    config.layer_types = config.layer_types[:2]
            self.refs.append(str(self.save_shape(name, config)))
        if args.gguf:
            self.refs.append(args.gguf)
        self.catalog = Catalog.build(extra=self.refs)
        self.pool = ModelPool(self.root / "data", device=self.device)
        self.engine = Engine(self.catalog, self.pool)
        self.ids = {Path(r).name: self.catalog.get(r).id for r in self.refs}

    def save_shape(self, name: str, config: object) -> Path:
        path = self.root / name
        torch.manual_seed(0)
        with torch.device(self.device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        del model
        torch.cuda.empty_cache()
        return path

    def backend(self, model_id: str):  # noqa: ANN201 - a LocalBackend
        compile_was = os.environ.get("PLAYGROUND_COMPILE", "off")
        os.environ["PLAYGROUND_COMPILE"] = "on" if self.args.compile else "off"  # no compile behind our back
        try:
            backend = self.pool.get(self.catalog.get(model_id))
            backend.fast.warmer.wait()  # the load's captures, done before anything is timed
        finally:
            os.environ["PLAYGROUND_COMPILE"] = compile_was
        backend.eos_ids.clear()  # random weights: decode all NEW_TOKENS (the fast path shares this set)
        return backend

    # -- measurements -------------------------------------------------------------

    def timed_stream(self, backend, params: GenerationParams, fast: bool, info: StreamInfo | None = None):  # noqa: ANN001, ANN201
        """Token ids and tok/s of one stream; `info` gets a copy of the stream's report."""
        os.environ["PLAYGROUND_FAST_PATH"] = self.fast_mode if fast else "off"
        encoding = backend.encode_prompt(PROMPT, "")
        stamps, ids = [], []
        stream = backend.open_stream(encoding, params, lambda: False)
        for step in stream:  # each token is on the host here
            stamps.append(time.perf_counter())
            ids.append(step.token_id)
        if info is not None:
            vars(info).update(vars(stream.report()))
        return ids, (len(ids) - 1) / (stamps[-1] - stamps[0])

    def generate_rate(self, backend) -> tuple[list[int], float]:  # noqa: ANN001
        from transformers.generation.streamers import BaseStreamer

        class Stamps(BaseStreamer):
            def __init__(self) -> None:
                self.times: list[float] = []

            def put(self, value: torch.Tensor) -> None:
                self.times.append(time.perf_counter())

            def end(self) -> None:
                pass

        encoding = backend.encode_prompt(PROMPT, "")
        ids = torch.tensor([encoding.token_ids], device=backend.model.device)
        stamps = Stamps()
        out = backend.model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                     do_sample=False, streamer=stamps, attention_mask=torch.ones_like(ids))
        times = stamps.times[1:]  # the first put() is the prompt
        return out[0, ids.shape[1]:].tolist(), (len(times) - 1) / (times[-1] - times[0])

    def section_alone(self) -> dict:
        rows = {}
        greedy = GenerationParams(max_new_tokens=NEW_TOKENS)
        for ref, model_id in self.ids.items():
            backend = self.backend(model_id)
            self.generate_rate(backend)  # warm-up
            self.timed_stream(backend, greedy, fast=False)
            info = StreamInfo()
            self.timed_stream(backend, greedy, fast=True, info=info)  # captures the graph
            gen_ids, gen = self.generate_rate(backend)
            eager_ids, eager = self.timed_stream(backend, greedy, fast=False)
            fast_ids, fast = self.timed_stream(backend, greedy, fast=True)
            pairs = enumerate(zip(eager_ids, fast_ids, strict=True))
            same = next((i for i, (a, b) in pairs if a != b), len(fast_ids))
            rows[ref] = {
                "generate_tok_s": gen, "eager_tok_s": eager, "fast_tok_s": fast,
                "fast_vs_generate": fast / gen, "eager_vs_generate": eager / gen,
                "greedy_identical_tokens": same, "of": len(fast_ids),
                "eager_equals_generate": eager_ids == gen_ids[: len(eager_ids)],
                "graph_capture_s": info.graph_capture_s, "decode_path": info.decode_path,
            }
            log(ref, {k: round(v, 3) if isinstance(v, float) else v for k, v in rows[ref].items()})
        return rows

    def run_wall(self, columns: list[ColumnRequest], fast: bool, capture: bool = False):  # noqa: ANN201
        os.environ["PLAYGROUND_FAST_PATH"] = self.fast_mode if fast else "off"
        request = RunRequest(prompt=PROMPT, columns=columns, capture_attention=capture)
        started = time.perf_counter()
        run = self.engine.run(request)
        return time.perf_counter() - started, run

    def section_three(self) -> dict:
        shapes = [self.ids[name] for name in SHAPES if name in self.ids]
        for model_id in shapes:
            self.backend(model_id)
        cols = [ColumnRequest(m, GenerationParams(max_new_tokens=NEW_TOKENS)) for m in shapes]
        out = {}
        for fast in (True, False):
            self.run_wall(cols, fast)  # warm-up (captures on the fast path)
            alone = {c.model: self.run_wall([c], fast)[0] for c in cols}
            together, run = self.run_wall(cols, fast)
            errors = [m.error for m in run.models if m.error]
            slowest = max(alone.values())
            key = "fast" if fast else "eager"
            out[key] = {"alone_s": alone, "three_s": together, "vs_slowest_alone": together / slowest,
                        "vs_sum_alone": together / sum(alone.values()), "errors": errors,
                        "decode_paths": [m.identity.decode_path for m in run.models]}
            log("three", key, round(together, 3), "vs slowest", round(together / slowest, 3), errors)
        return out

    def section_launch(self) -> dict:
        """Where a round's time goes: the host's cost of launching one graph, one step's wall time,
        and one round of every model's step launched together then collected."""
        from playground.backends.fast_decode import WorkspaceKey

        workspaces = {}
        for name in SHAPES:
            if name in self.ids:
                backend = self.backend(self.ids[name])
                workspaces[name] = (backend, backend.fast.acquire(WorkspaceKey(1, 256, False))[0])
        out = {}
        for name, (backend, ws) in workspaces.items():
            launch, step = [], []
            for _ in range(40):
                started = time.perf_counter()
                ws.launch(backend.lock)
                launched = time.perf_counter()
                ws.wait()
                launch.append(launched - started)
                step.append(time.perf_counter() - started)
            ws.reset()
            out[name] = {"launch_ms": sorted(launch)[20] * 1e3, "step_ms": sorted(step)[20] * 1e3}
        rounds = []
        for _ in range(40):
            started = time.perf_counter()
            for backend, ws in workspaces.values():
                ws.launch(backend.lock)
            for _backend, ws in workspaces.values():
                ws.wait()
            rounds.append(time.perf_counter() - started)
        out["round_all_ms"] = sorted(rounds)[20] * 1e3
        for backend, ws in workspaces.values():
            backend.fast.release(ws, keep=True)
        log("launch", out)
        return out

    def section_batch(self) -> dict:
        model_id = self.ids["smollm2-135m-shape"]
        self.backend(model_id)
        seeds = [11, 12, 13, 14]
        cols = [ColumnRequest(model_id, GenerationParams(max_new_tokens=NEW_TOKENS, temperature=0.8,
                                                         top_p=0.95, seed=s)) for s in seeds]
        out = {}
        for fast in (True, False):
            self.run_wall(cols, fast)  # warm-up: captures the four-row and the one-row workspaces
            self.run_wall(cols[:1], fast)
            one, _ = self.run_wall(cols[:1], fast)
            four, run = self.run_wall(cols, fast)
            alone_ids = [self.run_wall([c], fast)[1].models[0].output_token_ids for c in cols]
            identical = [m.output_token_ids == a for m, a in zip(run.models, alone_ids, strict=True)]
            key = "fast" if fast else "eager"
            out[key] = {"one_s": one, "four_s": four, "four_vs_one": four / one,
                        "rows_identical_to_alone": identical,
                        "decode_paths": [m.identity.decode_path for m in run.models]}
            log("batch", key, round(four / one, 3), identical)
        return out

    def section_attention(self) -> dict:
        model_id = self.ids["smollm2-135m-shape"]
        cols = [ColumnRequest(model_id, GenerationParams(max_new_tokens=32))]
        _, run = self.run_wall(cols, fast=True, capture=True)
        m = run.models[0]
        return {"decode_path": m.identity.decode_path, "attention": m.attention is not None,
                "attention_note": m.attention_note,
                "steps_with_logprobs": sum(s.logprob <= 0 for s in m.steps),
                "steps": len(m.steps), "top_alternatives": len(m.steps[0].top) if m.steps else 0}

    def section_oom(self) -> dict:
        small, big = self.ids["smollm2-135m-shape"], self.ids["llama-1.3b-shape"]
        self.backend(small)
        self.backend(big)
        cols = [ColumnRequest(small, GenerationParams(max_new_tokens=64)),
                ColumnRequest(big, GenerationParams(max_new_tokens=30000))]
        self.run_wall(cols[:1], fast=True)  # the small model's workspace is captured before the squeeze
        total = torch.cuda.get_device_properties(0).total_memory
        used = torch.cuda.memory_reserved(0)
        fraction = min(1.0, (used + 2 * 2**30) / total)  # 2 GB of room: the 1.3B's 30k-token cache needs ~12
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
        try:
            _, run = self.run_wall(cols, fast=True)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        after, again = self.run_wall([ColumnRequest(big, GenerationParams(max_new_tokens=16))], fast=True)
        return {"fraction": fraction,
                "columns": [{"model": m.identity.catalog_id, "finish": m.finish_reason, "error": m.error,
                             "tokens": len(m.steps)} for m in run.models],
                "later_run": {"finish": again.models[0].finish_reason, "tokens": len(again.models[0].steps),
                              "decode_path": again.models[0].identity.decode_path}}

    def section_preflight(self) -> dict:
        path = self.root / "llama-70b-shape"
        config = LlamaConfig(vocab_size=128256, hidden_size=8192, intermediate_size=28672,
                             num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                             max_position_embeddings=8192)
        config.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        catalog = Catalog.build(extra=[str(path)])
        engine = Engine(catalog, self.pool)
        run = engine.run(RunRequest(prompt=PROMPT, columns=[ColumnRequest(catalog.get(str(path)).id,
                                                                          GenerationParams(max_new_tokens=8))]))
        m = run.models[0]
        return {"finish": m.finish_reason, "error": m.error, "free_gb": torch.cuda.mem_get_info()[0] / 2**30}

    def section_floor(self) -> dict:
        from playground.backends.local import LocalBackend
        from playground.record import ModelIdentity

        self.pool.close()
        torch.cuda.empty_cache()
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(EIGHT_B, dtype=torch.bfloat16).eval()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        backend = LocalBackend(ModelIdentity("llama-8b-shape", "llama-8b-shape", "dir", ""), model,
                               self.tokenizer, 0.0, False)
        backend.eos_ids.clear()
        src = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        for _ in range(3):
            dst.copy_(src)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10):
            dst.copy_(src)
        torch.cuda.synchronize()
        bandwidth = 2 * src.numel() * 10 / (time.perf_counter() - started)  # read + write
        del src, dst
        greedy = GenerationParams(max_new_tokens=NEW_TOKENS)
        self.timed_stream(backend, greedy, fast=True)
        _, fast = self.timed_stream(backend, greedy, fast=True)
        _, gen = self.generate_rate(backend)
        floor_ms = weights / bandwidth * 1e3
        step_ms = 1e3 / fast
        out = {"weights_gb": weights / 1e9, "copy_bandwidth_tb_s": bandwidth / 1e12, "floor_ms": floor_ms,
               "fast_step_ms": step_ms, "of_floor": floor_ms / step_ms, "fast_tok_s": fast,
               "generate_tok_s": gen, "fast_vs_generate": fast / gen}
        log("floor", out)
        if self.args.fuse_8b:
            out.update(self.step_times(backend, WorkspaceKey(1, 256, False)))
            out["fused_of_floor"] = floor_ms / out["fused_step_ms"]
        return out

    # -- the fused step and many users --------------------------------------------

    def step_ms(self, backend, workspace: Workspace, steps: int = 60) -> float:  # noqa: ANN001
        """The median wall time of one launched-and-read step (a workspace fresh from its capture)."""
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            workspace.launch(backend.lock)
            workspace.wait()
            times.append(time.perf_counter() - started)
        workspace.reset()
        return sorted(times)[len(times) // 2] * 1e3

    def step_times(self, backend, key: WorkspaceKey) -> dict:  # noqa: ANN001
        """One step of `key`'s shape, plain and fused, built here (not from the idle set)."""
        plain = Workspace(backend.model, key)
        plain.prepare(backend.lock)
        started = time.perf_counter()
        fused = backend.fast.warmer.fused_workspace(key)
        compile_s = time.perf_counter() - started
        out = {"rows": key.rows, "plain_step_ms": self.step_ms(backend, plain),
               "fused_step_ms": self.step_ms(backend, fused), "compile_s": compile_s}
        out["fused_vs_plain"] = out["plain_step_ms"] / out["fused_step_ms"]
        del plain, fused
        torch.cuda.empty_cache()
        log("steps", key, {k: round(v, 3) for k, v in out.items()})
        return out

    def judge(self, backend) -> dict:  # noqa: ANN001
        warmer = backend.fast.warmer
        warmer._probe = backend.tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
        warmer._root = self.root / "data" / "cache" / "fused"
        started = time.perf_counter()
        warmer._judge_once()
        verdict = dict(vars(warmer.verdict), judge_and_compile_s=time.perf_counter() - started)
        log("verdict", backend.identity.catalog_id, verdict)
        return verdict

    def section_fused(self) -> dict:
        out = {}
        greedy = GenerationParams(max_new_tokens=NEW_TOKENS)
        for ref, model_id in self.ids.items():
            if ref.startswith("gemma") or self.args.fused_models not in ref:
                continue  # GPU time: the Llama shapes and the real SmolLM2 answer the question
            backend = self.backend(model_id)
            backend.fast.warmer.wait()  # the load's captures, done before anything is timed
            backend.fast.close()
            os.environ["PLAYGROUND_COMPILE"] = "off"
            eager_ids, eager = self.timed_stream(backend, greedy, fast=False)
            self.timed_stream(backend, greedy, fast=True)
            plain_ids, plain = self.timed_stream(backend, greedy, fast=True)  # a 1 x 256 workspace
            backend.fast.close()
            backend.fast.release(backend.fast.acquire(WorkspaceKey(1, 512, False))[0], keep=True)
            long_ids, _ = self.timed_stream(backend, greedy, fast=True)  # a 1 x 512 one (as warmed at load)
            backend.fast.close()
            os.environ["PLAYGROUND_COMPILE"] = "on"
            row: dict = {"verdict": self.judge(backend)}
            key = WorkspaceKey(1, 256, False)
            row["steps_1_row"] = self.step_times(backend, key)
            torch._dynamo.reset()
            started = time.perf_counter()
            backend.fast.warmer.fused_workspace(key)
            row["compile_from_disk_cache_s"] = time.perf_counter() - started
            backend.fast.close()
            if backend.fast.warmer.verdict.accepted:
                backend.fast.release(backend.fast.warmer.fused_workspace(key), keep=True)
            info = StreamInfo()
            fused_ids, fused = self.timed_stream(backend, greedy, fast=True, info=info)
            if self.args.emulate_both:  # the same fused step without eager's bf16 roundings
                os.environ["PLAYGROUND_COMPILE_EMULATE"] = "0"
                torch._dynamo.reset()
                backend.fast.close()
                backend.fast.release(backend.fast.warmer.fused_workspace(key), keep=True)
                raw_ids, raw = self.timed_stream(backend, greedy, fast=True)
                row["no_emulate"] = {"tok_s": raw, "identical_to_eager": _same_prefix(eager_ids, raw_ids)}
                os.environ["PLAYGROUND_COMPILE_EMULATE"] = "1"
                torch._dynamo.reset()
            row.update({
                "eager_tok_s": eager, "plain_tok_s": plain, "default_tok_s": fused,
                "default_path": info.decode_path, "default_vs_plain": fused / plain,
                "plain_identical_to_eager": _same_prefix(eager_ids, plain_ids), "of": len(eager_ids),
                "plain_512_identical_to_eager": _same_prefix(eager_ids, long_ids),
                "default_identical_to_eager": _same_prefix(eager_ids, fused_ids),
            })
            out[ref] = row
            log("fused", ref, {k: v for k, v in row.items() if not isinstance(v, dict)})
        return out

    def users_round(self, model_id: str, backend, fast_kind: str) -> dict:  # noqa: ANN001
        """USERS runs at once through the engine, then the same straight from the backend."""
        prompts = [f"{PROMPT} Set it near {TOPICS[i % len(TOPICS)]}." + " Please." * (i % 5)
                   for i in range(USERS)]
        requests = [RunRequest(prompt=prompts[i],
                               columns=[ColumnRequest(model_id, GenerationParams(
                                   max_new_tokens=NEW_TOKENS, temperature=0.8 if i % 2 else 0.0, seed=i))],
                               capture_attention=False) for i in range(USERS)]
        os.environ["PLAYGROUND_FAST_PATH"] = self.fast_mode
        self.engine.run(requests[0])
        alone_runs = [self.engine.run(r).models[0] for r in requests]
        alone_rate = sorted(m.metrics.decode_tok_s for m in alone_runs)[USERS // 2]
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.extend(backend.fast.batch_rows())
                stop.wait(0.002)

        results: dict[int, object] = {}
        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, self.engine.run(requests[i])))
                   for i in range(USERS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        stop.set()
        watcher.join()
        models = [results[i].models[0] for i in range(USERS)]
        rates = sorted(m.metrics.decode_tok_s for m in models)
        tokens = sum(len(m.steps) for m in models)
        out = {
            "path": fast_kind, "decode_paths": sorted({m.identity.decode_path for m in models}),
            "alone_user_tok_s": alone_rate, "user_tok_s_p50": rates[USERS // 2], "user_tok_s_min": rates[0],
            "user_vs_alone": rates[USERS // 2] / alone_rate, "aggregate_tok_s": tokens / wall,
            "aggregate_vs_alone": tokens / wall / alone_rate, "wall_s": wall,
            "largest_batch": max(seen, default=0),
            "errors": [m.error for m in models if m.error],
            "identical_to_alone": sum(m.output_token_ids == a.output_token_ids
                                      for m, a in zip(models, alone_runs, strict=True)),
            "of": USERS,
        }
        out["direct"] = self.users_direct(backend, requests)
        log("users", fast_kind, {k: v for k, v in out.items() if not isinstance(v, (list, dict))})
        return out

    def users_direct(self, backend, requests: list[RunRequest]) -> dict:  # noqa: ANN001
        """The same users straight from the backend's streams: the batch without the engine's host work."""
        rates: dict[int, float] = {}

        def user(i: int) -> None:
            request = requests[i]
            encoding = backend.encode_prompt(request.prompt, "")
            stamps = [time.perf_counter() for _ in backend.open_stream(encoding, request.columns[0].params,
                                                                       lambda: False)]
            rates[i] = (len(stamps) - 1) / (stamps[-1] - stamps[0])

        user(0)
        alone = rates[0]
        threads = [threading.Thread(target=user, args=(i,)) for i in range(USERS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        ordered = sorted(rates.values())
        return {"alone_user_tok_s": alone, "user_tok_s_p50": ordered[USERS // 2],
                "user_vs_alone": ordered[USERS // 2] / alone, "aggregate_tok_s": USERS * NEW_TOKENS / wall}

    def section_users(self) -> dict:
        model_id = self.ids["smollm2-135m-shape"]
        backend = self.backend(model_id)
        backend.fast.warmer.wait()
        backend.fast.close()
        os.environ["PLAYGROUND_COMPILE"] = "off"
        for rows in ROW_BUCKETS:  # captured before anybody waits, as warm() does at load
            backend.fast.release(backend.fast.acquire(WorkspaceKey(rows, 256, True))[0], keep=True)
        out = {"plain": self.users_round(model_id, backend, "plain")}
        os.environ["PLAYGROUND_COMPILE"] = "on"
        if backend.fast.warmer.verdict is None:
            out["verdict"] = self.judge(backend)
        if backend.fast.warmer.verdict.accepted:
            for rows in (1, USERS):  # the rest run plain (GPU time: each shape is its own compile)
                started = time.perf_counter()
                fused = backend.fast.warmer.fused_workspace(WorkspaceKey(rows, 256, True))
                backend.fast.release(fused, keep=True)
                out.setdefault("fused_compile_s", {})[rows] = time.perf_counter() - started
            out["fused"] = self.users_round(model_id, backend, "fused")
        return out


def _same_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two decodes share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", required=True, help="a tokenizer folder (SmolLM2's converted cache)")
    parser.add_argument("--compile", action="store_true", help="PLAYGROUND_COMPILE=1: the step fused first")
    parser.add_argument("--gguf", default="", help="a real model to add (the bundled SmolLM2 GGUF)")
    parser.add_argument("--sections", default="alone,three,batch,attention,oom,preflight,floor")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="which random-weight shapes to build")
    parser.add_argument("--tiny", action="store_true", help="two-layer shapes, 8 tokens: a dry run on CPU")
    parser.add_argument("--fuse-8b", action="store_true", help="floor: also compile the 8B shape's step")
    parser.add_argument("--fused-models", default="", help="fused: only models whose name holds this")
    parser.add_argument("--emulate-both", action="store_true",
                        help="fused: also measure the fused step without emulated bf16 casts")
    args = parser.parse_args()
    # Loads compile nothing in the background unless asked: the sections fuse where they measure it.
    os.environ["PLAYGROUND_COMPILE"] = "on" if args.compile else "off"
    if args.tiny:
        global NEW_TOKENS
        NEW_TOKENS = 8
    bench = Bench(args)
    for name in args.sections.split(","):
        log("section", name)
        try:
            bench.result["sections"][name] = getattr(bench, f"section_{name}")()
        except Exception as exc:  # noqa: BLE001 - one section failing keeps the others' figures
            traceback.print_exc()
            bench.result["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        args.out.write_text(json.dumps(bench.result, indent=2, default=str))
    print(json.dumps(bench.result, indent=1, default=str)[-6000:])


if __name__ == "__main__":
    main()
