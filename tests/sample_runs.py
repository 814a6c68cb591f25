"""Hand-built run records for the session tests: realistic shapes, no model needed.

Also imported by the child processes of test_sessions_store.py (they put this
directory on sys.path), so it imports nothing from the tests themselves.
"""

from __future__ import annotations

import json

from playground.record import GenerationParams, Metrics, ModelIdentity, ModelRun, Run, TokenAlt, TokenStep

XSS_PROMPT = "Explain <script>alert(1)</script> and <img src=x onerror=alert(1)> & \"quotes\" 'too'"


def identity(catalog_id: str = "smollm2-135m") -> ModelIdentity:
    return ModelIdentity(
        catalog_id=catalog_id,
        name=f"{catalog_id} (Q4)",
        source="gguf",
        location=f"/models/{catalog_id}.gguf",
        sha256="0123456789abcdef" * 4,
        dtype="float32",
        device="cpu",
        context_window=8192,
        prompt_format="chat template",
        libraries={"torch": "2.5.1", "transformers": "4.57.0", "gguf": "0.17.1"},
    )


def steps_for(pieces: list[str], first_id: int = 100) -> list[TokenStep]:
    """One token per piece; token ids derived from the text so equal text gives equal ids."""
    steps = []
    for i, piece in enumerate(pieces):
        token_id = first_id + sum(map(ord, piece)) % 5000
        steps.append(
            TokenStep(
                token_id=token_id,
                text=piece,
                logprob=-0.01 * (i + 1),
                top=[TokenAlt(token_id, piece, -0.01 * (i + 1)), TokenAlt(token_id + 1, "?", -5.25)],
            )
        )
    return steps


def model_run(
    column: int,
    pieces: list[str],
    catalog_id: str = "smollm2-135m",
    params: GenerationParams | None = None,
    error: str = "",
) -> ModelRun:
    steps = [] if error else steps_for(pieces)
    return ModelRun(
        column=column,
        identity=identity(catalog_id),
        params=params or GenerationParams(max_new_tokens=32, seed=7, stop=["\n\n"]),
        prompt_token_ids=[1, 9690, 198, 2683, 314],
        steps=steps,
        text="".join(s.text for s in steps),
        finish_reason="error" if error else "eos",
        error=error,
        metrics=Metrics(
            load_s=1.5,
            loaded_from_cache=True,
            prompt_tokens=5,
            output_tokens=len(steps),
            ttft_s=0.125,
            decode_tok_s=27.5,
            total_s=0.75,
            peak_memory_bytes=123_456_789,
            memory_kind="process RSS growth",
        ),
    )


def make_run(
    prompt: str = "What is the capital of France?",
    outputs: tuple[str, ...] = ("The capital of France is Paris.", "Paris, of course."),
    created_at: float | None = None,
    system_prompt: str = "Be brief.",
) -> Run:
    """A two-column run (SmolLM2 and Gemma) whose outputs are `outputs`, one token per word."""
    catalog_ids = ["smollm2-135m", "gemma3-270m"]
    models = [
        model_run(i, _words(text), catalog_ids[i % 2]) for i, text in enumerate(outputs)
    ]
    run = Run(prompt=prompt, system_prompt=system_prompt, models=models)
    if created_at is not None:
        run.created_at = created_at
    return run


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]] if words else []


# A three-prompt set (JSONL) over both bundled models: the batch and routing tests share it.
THREE_PROMPTS = "\n".join(json.dumps(row) for row in [
    {"id": "add", "prompt": "What is 7 + 5? Answer with a number only.", "expected": "12",
     "category": "arithmetic"},
    {"id": "city", "prompt": "Extract the city: \"Maria moved to Lisbon last spring.\" City:",
     "expected": "Lisbon", "category": "extraction"},
    {"id": "def", "prompt": "Which Python keyword starts a function definition?", "expected": "def",
     "category": "code"},
]) + "\n"
BUNDLED_MODELS = ("smollm2-135m", "gemma3-270m")
