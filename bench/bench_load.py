"""Many users on one server: concurrent API clients, cross-talk checks, and the visible streaming rate.

One playground server (the real page, the two bundled models on CPU) in this
process. First one client alone, then N clients at once through `gradio_client`
against the documented `compare` endpoint, each a two-column run with a unique
marker in its prompt. Checked: no errors, no cross-talk (a record holds its own
marker and nobody else's), attention captured in every column. Reported: p50 /
p95 time to first token (from the record: model ready -> first token) and the
client's wall time per request, against the client alone in the same run.

Then the page in headless Chromium: one run streamed into a column, the output's
growth timed in the browser (MutationObserver), against the backend's own decode
time for the same run: rate ratio = backend decode seconds / visible seconds
for the same text (1.0 = the page shows tokens as fast as the model makes them).

    python bench/bench_load.py [--clients 20] [--tokens 32] [--out bench/results/load_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gradio_client import Client  # noqa: E402

from playground.config import Settings  # noqa: E402
from playground.ui.app import build_app, launch_kwargs  # noqa: E402

MODELS = ["smollm2-135m", "gemma3-270m"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(settings: Settings) -> tuple[object, str]:
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=None)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs())
    return demo, f"http://127.0.0.1:{port}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def one_request(client: Client, marker: str, tokens: int) -> dict:
    prompt = f"Reference {marker}. Repeat the reference exactly once, then name a colour."
    started = time.perf_counter()
    try:
        result = client.predict(prompt, "", MODELS, {"max_new_tokens": tokens}, "none", api_name="/compare")
        error = ""
    except Exception as exc:  # noqa: BLE001 - a failed request is counted, not fatal
        result, error = None, f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - started
    record = result if isinstance(result, dict) else (json.loads(result) if result else None)
    return {"marker": marker, "wall_s": wall, "record": record, "error": error}


def check(results: list[dict]) -> dict:
    """Errors, cross-talk and attention over all results."""
    markers = [r["marker"] for r in results]
    errors, crosstalk, missing_attention = [], [], []
    ttft, total = [], []
    for r in results:
        if r["error"] or r["record"] is None:
            errors.append(r["error"] or "no record")
            continue
        text = json.dumps(r["record"], ensure_ascii=False)
        others = [m for m in markers if m != r["marker"] and m in text]
        if r["marker"] not in r["record"]["prompt"] or others:
            crosstalk.append({"marker": r["marker"], "others": others})
        for model in r["record"]["models"]:
            if model["error"]:
                errors.append(f"{model['identity']['catalog_id']}: {model['error']}")
                continue
            if model["attention"] is None:
                missing_attention.append(f"{r['marker']}/{model['identity']['catalog_id']}: "
                                         f"{model['attention_note']}")
            ttft.append(model["metrics"]["ttft_s"])
            total.append(model["metrics"]["total_s"])
    walls = [r["wall_s"] for r in results]
    return {
        "requests": len(results),
        "errors": len(errors),
        "error_samples": errors[:5],
        "crosstalk": len(crosstalk),
        "crosstalk_samples": crosstalk[:5],
        "columns_without_attention": len(missing_attention),
        "attention_samples": missing_attention[:5],
        "ttft_s": {"p50": pct(ttft, 0.5), "p95": pct(ttft, 0.95), "max": max(ttft, default=0.0)},
        "column_total_s": {"p50": pct(total, 0.5), "p95": pct(total, 0.95)},
        "request_wall_s": {"p50": pct(walls, 0.5), "p95": pct(walls, 0.95), "max": max(walls, default=0.0)},
    }


def load_test(url: str, clients: int, tokens: int) -> dict:
    solo_client = Client(url, verbose=False)
    alone = [one_request(solo_client, f"solo-{uuid.uuid4().hex[:8]}", tokens) for _ in range(3)]
    pool = [Client(url, verbose=False) for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def go(i: int) -> dict:
        barrier.wait()
        return one_request(pool[i], f"m{i}-{uuid.uuid4().hex[:8]}", tokens)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as executor:
        together = list(executor.map(go, range(clients)))
    wall = time.perf_counter() - started
    solo, crowd = check(alone), check(together)
    return {
        "alone": solo,
        "concurrent": crowd,
        "concurrent_wall_s": wall,
        "ratios_vs_alone": {
            "ttft_p50": crowd["ttft_s"]["p50"] / max(solo["ttft_s"]["p50"], 1e-9),
            "ttft_p95": crowd["ttft_s"]["p95"] / max(solo["ttft_s"]["p95"], 1e-9),
            "request_wall_p50": crowd["request_wall_s"]["p50"] / max(solo["request_wall_s"]["p50"], 1e-9),
            "request_wall_p95": crowd["request_wall_s"]["p95"] / max(solo["request_wall_s"]["p95"], 1e-9),
        },
    }


OBSERVE_JS = """() => {
  const out = document.querySelector('#out-0');
  window.__pgTimeline = [];
  new MutationObserver(() => {
    window.__pgTimeline.push([performance.now(), out.innerText.length]);
  }).observe(out, {childList: true, subtree: true, characterData: true});
}"""


def streaming_rate(url: str, tokens: int, store_path: Path) -> dict:
    """The page's visible streaming against the backend's decode time for the same run."""
    from playwright.sync_api import sync_playwright

    from playground.sessions.store import SessionStore
    from tests.browser.helpers import fill_number  # the browser tests' way past a mounting number box

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        page.wait_for_selector("#prompt textarea")
        page.evaluate("() => { const c = document.querySelector('#col-1'); if (c) c.querySelector("
                      "'#remove-1')?.click(); }")
        page.locator("#col-0 button:has-text('Parameters')").first.click()
        fill_number(page, "#col-0 input[aria-label='Max new tokens']", str(tokens))
        page.fill("#prompt textarea", "Write a long story about a lighthouse keeper and a storm.")
        page.evaluate(OBSERVE_JS)
        page.click("#run-btn")
        page.wait_for_function(
            "() => (document.querySelector('#share-link textarea, #share-link input')?.value || '')"
            ".includes('session=')", timeout=600_000)
        timeline = page.evaluate("() => window.__pgTimeline")
        link = page.locator("#share-link textarea, #share-link input").first.input_value()
        browser.close()
    run = SessionStore(store_path).get(link.split("session=", 1)[1].split("&", 1)[0])
    model = run.models[0]
    growing = [(t, n) for t, n in timeline if n > 0]
    first_t = growing[0][0] if growing else 0.0
    final = max((n for _t, n in growing), default=0)
    last_t = next((t for t, n in growing if n >= final), first_t)
    visible_s = (last_t - first_t) / 1000
    backend_s = model.metrics.total_s - model.metrics.ttft_s
    return {
        "output_tokens": model.metrics.output_tokens,
        "backend_decode_tok_s": model.metrics.decode_tok_s,
        "backend_decode_s": backend_s,
        "visible_s": visible_s,
        "visible_updates": len(growing),
        "rate_ratio": backend_s / visible_s if visible_s > 0 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--stream-tokens", type=int, default=128)
    parser.add_argument("--data-dir", help="model caches (default: PLAYGROUND_DATA_DIR or the per-user dir)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "load_cpu.json"))
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.data_dir:
        settings.data_dir = Path(args.data_dir)
    db = settings.data_dir / "bench" / f"load-{uuid.uuid4().hex[:8]}.sqlite3"
    settings.db_path, settings.default_models, settings.device = db, MODELS, "cpu"
    demo, url = serve(settings)
    try:
        warm = one_request(Client(url, verbose=False), "warm-up", 4)  # loads both models once
        if warm["error"]:
            raise SystemExit(f"warm-up failed: {warm['error']}")
        load = load_test(url, args.clients, args.tokens)
        stream = streaming_rate(url, args.stream_tokens, db)
    finally:
        demo.close()
    result = {
        "benchmark": "bench_load",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
        "python": platform.python_version(),
        "clients": args.clients,
        "tokens_per_column": args.tokens,
        "models": MODELS,
        "load": load,
        "streaming": stream,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    c, r = load["concurrent"], load["ratios_vs_alone"]
    print(f"{args.clients} clients x {len(MODELS)} columns x {args.tokens} tokens: errors {c['errors']}, "
          f"cross-talk {c['crosstalk']}, columns without attention {c['columns_without_attention']}")
    print(f"TTFT p50 {c['ttft_s']['p50']:.2f} s / p95 {c['ttft_s']['p95']:.2f} s "
          f"({r['ttft_p50']:.2f}x / {r['ttft_p95']:.2f}x one client alone)")
    print(f"request wall p50 {c['request_wall_s']['p50']:.1f} s / p95 {c['request_wall_s']['p95']:.1f} s "
          f"({r['request_wall_p50']:.1f}x / {r['request_wall_p95']:.1f}x alone)")
    print(f"page streaming: {stream['rate_ratio']:.2f}x the backend's rate "
          f"({stream['output_tokens']} tokens, {stream['visible_updates']} visible updates)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
