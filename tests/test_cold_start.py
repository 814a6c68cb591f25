"""Cold start: the converted cache loads fast and the same, the pre-flight never races a load, `serve`
loads the default models in the background from its start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from playground.backends import converted, preflight
from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.backends.weights_lock import weights_lock
from playground.catalog import BUNDLED, Catalog, ModelSpec
from playground.config import Settings
from playground.startup import Startup, default_specs, loadable_specs
from playground.ui.app import HEAD_START_S

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "Hello world", "  two  spaces\n\ttab and newline\n\n", "<|im_end|> <end_of_turn> <bos> <unused5> typed",
    "emoji \U0001F600\U0001F916 and \u65e5\u672c\u8a9e and \u00e9", "", "x", "a" * 80,
    "\u0120the \u2581the <0xF0>", "<pad><eos><mask>",
]


def _cache(backend: LocalBackend, data_dir: Path) -> Path:
    return data_dir / "cache" / backend.identity.sha256


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_cache_tokenizer_is_the_model_classes_tokenizer(name: str, request: pytest.FixtureRequest,
                                                        data_dir: Path) -> None:
    backend: LocalBackend = request.getfixturevalue(name)
    cache = _cache(backend, data_dir)
    fast, slow = converted.load_tokenizer(cache), AutoTokenizer.from_pretrained(cache)
    for text in TEXTS:
        for add in (True, False):
            for split in (True, False):
                assert (fast(text, add_special_tokens=add, split_special_tokens=split)["input_ids"]
                        == slow(text, add_special_tokens=add, split_special_tokens=split)["input_ids"]), text
        ids = slow(text)["input_ids"]
        assert fast.convert_ids_to_tokens(ids) == slow.convert_ids_to_tokens(ids)
        for skip in (True, False):
            assert fast.decode(ids, skip_special_tokens=skip) == slow.decode(ids, skip_special_tokens=skip)
    for attribute in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "all_special_ids",
                      "chat_template", "padding_side", "model_max_length", "model_input_names"):
        assert getattr(fast, attribute) == getattr(slow, attribute), attribute
    assert fast.added_tokens_decoder == slow.added_tokens_decoder and len(fast) == len(slow)
    if slow.chat_template:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_end|>"}]
        kwargs = {"add_generation_prompt": True, "tokenize": True, "return_dict": True}
        assert (fast.apply_chat_template(messages, **kwargs)["input_ids"]
                == slow.apply_chat_template(messages, **kwargs)["input_ids"])
    assert backend.tokenizer.padding_side == slow.padding_side  # what the pool loaded is this fast one


@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_bundled_caches_store_tied_weights_under_the_input_embedding(
    name: str, request: pytest.FixtureRequest, data_dir: Path
) -> None:
    backend: LocalBackend = request.getfixturevalue(name)
    cache = _cache(backend, data_dir)
    header = converted.read_header(cache / converted.WEIGHTS)
    assert "model.embed_tokens.weight" in header and "lm_head.weight" not in header
    assert json.loads((cache / "complete.json").read_text())["format"] == converted.CACHE_FORMAT
    model = backend.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    # the pre-flight's count from the header is the model's own parameter count
    assert converted.parameter_count(cache) == sum(p.numel() for p in model.parameters())


def _tiny(tied: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         tie_word_embeddings=tied)
    config.architectures = ["LlamaForCausalLM"]
    return LlamaForCausalLM(config).eval()


def _old_cache(folder: Path, model: LlamaForCausalLM) -> Path:
    """A cache as format 1 wrote it: safetensors' save_model keeps the tied weight as lm_head.weight."""
    folder.mkdir(parents=True)
    save_model(model, str(folder / converted.WEIGHTS))
    model.config.save_pretrained(folder)
    (folder / "complete.json").write_text(json.dumps({"format": 1, "source": "x.gguf"}))
    return folder


def test_an_old_cache_is_upgraded_once_and_loads_the_same_weights(tmp_path: Path) -> None:
    model = _tiny()
    cache = _old_cache(tmp_path / "cache", model)
    assert "lm_head.weight" in converted.read_header(cache / converted.WEIGHTS)
    converted.upgrade(cache)
    header = converted.read_header(cache / converted.WEIGHTS)
    assert "model.embed_tokens.weight" in header and "lm_head.weight" not in header
    assert json.loads((cache / "complete.json").read_text())["format"] == converted.CACHE_FORMAT
    loaded = AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    stamp = (cache / converted.WEIGHTS).stat().st_mtime_ns
    converted.upgrade(cache)  # already current: the weights file is left alone
    assert (cache / converted.WEIGHTS).stat().st_mtime_ns == stamp


def test_write_cache_keeps_each_shared_tensor_once_under_its_first_name() -> None:
    tied, untied = converted.unique_tensors(_tiny(True)), converted.unique_tensors(_tiny(False))
    assert "model.embed_tokens.weight" in tied and "lm_head.weight" not in tied
    assert "model.embed_tokens.weight" in untied and "lm_head.weight" in untied


def test_the_preflight_builds_an_empty_model_only_under_the_weights_lock(tmp_path: Path) -> None:
    """accelerate's init_empty_weights patches nn.Module for the whole process: beside another model's
    load it put that model's weights on the meta device. It must wait for the weights lock."""
    folder = tmp_path / "tiny"
    _tiny().save_pretrained(folder)
    spec = ModelSpec(id="tiny", name="tiny", source="dir", location=str(folder))
    done = threading.Event()
    with weights_lock():
        worker = threading.Thread(target=lambda: (preflight.estimate(spec, tmp_path, torch.float32, 0),
                                                  done.set()), daemon=True)
        worker.start()
        assert not done.wait(1.0), "the pre-flight built a model while another load held the weights lock"
    assert done.wait(30)


def test_two_bundled_models_load_at_once_with_real_weights(data_dir: Path, smollm2: LocalBackend,
                                                            gemma: LocalBackend) -> None:
    """What the start-up does: both default models in two threads, through a fresh pool; each gives
    the same logits as the session's copy (loaded on its own), so no weight was left random or empty."""
    pool = ModelPool(data_dir, device="cpu")
    results: dict[str, object] = {}

    def load(spec: ModelSpec) -> None:
        try:
            results[spec.id] = pool.get(spec)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[spec.id] = exc

    threads = [threading.Thread(target=load, args=(spec,)) for spec in BUNDLED]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    ids = torch.tensor([[2, 651, 6037, 576, 6081, 603]])
    for spec, reference in zip(BUNDLED, (smollm2, gemma), strict=True):
        backend = results[spec.id]
        assert isinstance(backend, LocalBackend), backend
        assert backend.loaded_from_cache
        assert not any(p.is_meta for p in backend.model.parameters())
        model = backend.model
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        with torch.inference_mode():
            assert torch.equal(model(ids).logits, reference.model(ids).logits), spec.id


class _FakePool:
    def __init__(self, stages: list[str]) -> None:
        self.stages = stages
        self.asked: list[str] = []

    def get(self, spec: ModelSpec, progress=lambda _m: None) -> object:  # noqa: ANN001
        self.asked.append(spec.id)
        for stage in self.stages:
            progress(stage)
        if spec.id == "broken":
            raise RuntimeError("no such file")
        return type("Backend", (), {"loaded_from_cache": True})()


def test_startup_loads_each_default_model_and_writes_its_timeline(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    startup = Startup(trace=str(trace))
    specs = [ModelSpec(id="a", name="a", source="gguf", location="a.gguf"),
             ModelSpec(id="broken", name="b", source="gguf", location="b.gguf")]
    startup.preload(_FakePool(["loading converted cache", "warming up"]), specs)
    assert startup.wait(10)
    timeline = json.loads(trace.read_text())
    assert timeline["ready"] and timeline["models"]["a"]["ok"] and not timeline["models"]["broken"]["ok"]
    stages = [(e["model"], e["stage"]) for e in timeline["events"]]
    assert ("a", "warming up") in stages and ("broken", "failed") in stages
    assert stages[-1] == ("", "default models ready")
    assert all(e["t"] >= 0 for e in timeline["events"])


def test_head_start_ends_when_a_load_turns_out_to_be_a_conversion() -> None:
    startup = Startup(trace="")
    gate = threading.Event()

    class SlowPool(_FakePool):
        def get(self, spec: ModelSpec, progress=lambda _m: None) -> object:  # noqa: ANN001
            progress("first load: converting GGUF tokenizer")
            gate.wait(30)
            return object()

    startup.preload(SlowPool([]), [ModelSpec(id="a", name="a", source="gguf", location="a.gguf")])
    started = time.monotonic()
    startup.head_start(20)
    assert time.monotonic() - started < 10 and not startup.ready.is_set()
    gate.set()
    assert startup.wait(10)


def test_default_specs_are_the_columns_defaults_without_served_models(catalog: Catalog) -> None:
    settings = Settings(default_models=["gemma3-270m", "smollm2-135m", "gemma3-270m", "nope"])
    assert [s.id for s in default_specs(settings, catalog)] == ["gemma3-270m", "smollm2-135m"]
    served = next(s for s in catalog.specs.values() if s.source == "openai")
    assert default_specs(Settings(default_models=[served.id]), catalog) == []


def test_loadable_specs_are_each_named_model_once_without_served_ones(catalog: Catalog) -> None:
    served = next(s for s in catalog.specs.values() if s.source == "openai")
    specs = loadable_specs(catalog, ["gemma3-270m", served.id, "smollm2-135m", "gemma3-270m"])
    assert [s.id for s in specs] == ["gemma3-270m", "smollm2-135m"]


@pytest.mark.parametrize("quiet", [False, True])
def test_a_quiet_startup_prints_nothing_and_leaves_failures_to_the_columns(
    quiet: bool, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """`compare` preloads quietly: its stderr stays the run's (the column reports a failed load)."""
    startup = Startup(trace="", quiet=quiet)
    startup.preload(_FakePool([]), [ModelSpec(id="broken", name="b", source="gguf", location="b.gguf")])
    assert startup.wait(10)
    err = capsys.readouterr().err
    assert ("default models loaded" in err) is not quiet
    warned = [r for r in caplog.records if "preloading broken failed" in r.getMessage()
              and r.levelname == "WARNING"]
    assert bool(warned) is not quiet


# What `compare` has no use for: the page, the served-model clients, web search, figures.
NOT_FOR_COMPARE = ("gradio", "openai", "ddgs", "plotly", "uvicorn", "fastapi")


def test_compare_loads_its_models_from_the_start_and_imports_no_page(tmp_path: Path, data_dir: Path) -> None:
    """The CLI takes serve's start-up path: both models start loading before the run is set up, load
    at once from the converted cache, and nothing of the page or the served clients is imported."""
    trace = tmp_path / "trace.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
           "PLAYGROUND_DEVICE": "cpu", "PLAYGROUND_STARTUP_TRACE": str(trace)}
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS", "PLAYGROUND_DB"):
        env.pop(name, None)
    script = ("import json, sys\nfrom playground.cli import main\nstatus = main(sys.argv[2:])\n"
              "found = {m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(','))\n"
              "print(json.dumps(sorted(found)))\nsys.exit(status)\n")
    argv = ["compare", "--model", "smollm2-135m", "--model", "gemma3-270m", "--max-new-tokens", "1",
            "--no-save", "--no-attention", "hi"]
    done = subprocess.run([sys.executable, "-c", script, ",".join(NOT_FOR_COMPARE), *argv],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "default models loaded" not in done.stderr and "preloading" not in done.stderr
    timeline = json.loads(trace.read_text())
    assert {m: r["ok"] and r["from_cache"] for m, r in timeline["models"].items()} == {
        "smollm2-135m": True, "gemma3-270m": True}, timeline
    at = {e["stage"]: e["t"] for e in timeline["events"] if not e["model"]}
    started = {e["model"]: e["t"] for e in timeline["events"] if e["stage"] == "load started"}
    assert set(started) == {"smollm2-135m", "gemma3-270m"}
    assert at["engine built"] <= min(started.values()) and max(started.values()) <= at["run started"], at


def test_serve_loads_both_default_models_before_building_the_page(tmp_path: Path, data_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    trace = tmp_path / "trace.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False",
           "PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_DB": str(tmp_path / "runs.sqlite3"),
           "PLAYGROUND_DEFAULT_MODELS": "smollm2-135m,gemma3-270m", "PLAYGROUND_PORT": str(port),
           "PLAYGROUND_DEVICE": "cpu", "PLAYGROUND_STARTUP_TRACE": str(trace), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "playground", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"playground: serving on http://127.0.0.1:{port}"), line
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # "serving" is marked just after the line is printed
            timeline = json.loads(trace.read_text())
            if timeline["ready"] and any(e["stage"] == "serving" for e in timeline["events"]):
                break
            time.sleep(0.2)
        assert {m: r["ok"] and r["from_cache"] for m, r in timeline["models"].items()} == {
            "smollm2-135m": True, "gemma3-270m": True}, timeline
        at = {e["stage"]: e["t"] for e in timeline["events"] if not e["model"]}
        # the page is built once the models are ready, or once their head start is over (a busy machine)
        assert (at["page build started"] >= at["default models ready"]
                or at["page build started"] - at["engine built"] >= HEAD_START_S - 0.1), at
        assert at["page built"] < at["serving"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "playground: default models loaded" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_two_threads_converting_the_same_file_each_write_their_own_folder(
    tmp_path: Path, smollm2: LocalBackend,
) -> None:
    """Two loads of one GGUF (say, a bundled id and its path) convert at once: their temporary folders
    were named after the process alone, so each wiped and overwrote the other's."""
    cache = tmp_path / "cache" / smollm2.identity.sha256
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def convert() -> None:
        barrier.wait()
        try:
            converted.write_cache(smollm2.model, smollm2.tokenizer, cache, Path("smollm2.gguf"))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failures.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert converted.is_complete(cache)
    assert converted.parameter_count(cache) == sum(p.numel() for p in smollm2.model.parameters())
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary folder left
