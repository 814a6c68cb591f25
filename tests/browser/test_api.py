"""The /compare API endpoint through gradio_client, against the same test server as the page."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client(app_url):  # noqa: ANN001, ANN201
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_compare_runs_saves_and_returns_the_record(client, store) -> None:  # noqa: ANN001
    result = client.predict(
        "What is the capital of France?",
        "Be brief.",
        ["smollm2-135m", "smollm2-135m"],
        [{"max_new_tokens": 4}, {"max_new_tokens": 3, "seed": 5, "stop": ["\n\n"]}],
        "none",
        api_name="/compare",
    )
    assert result["saved_id"] == result["id"]
    assert result["prompt"] == "What is the capital of France?"
    assert result["summary"].startswith("done: 2 of 2 columns answered")
    first, second = result["models"]
    assert first["params"]["max_new_tokens"] == 4 and first["metrics"]["output_tokens"] == 4
    assert second["params"]["seed"] == 5 and second["params"]["stop"] == ["\n\n"]
    assert first["text"].startswith("The capital of France")
    saved = store.get(result["saved_id"])
    assert saved.prompt == result["prompt"] and len(saved.models) == 2
    assert store.owner_of(result["saved_id"]) == "api"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": -1}, "temperature must be 0 (greedy) or a positive number"),
        ({"max_new_tokens": "many"}, "max_new_tokens must be a number"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"colour": "blue"}, "unknown fields ['colour']"),
        ([{}, {}], "a list of 1 (one per model), got a list of 2"),
    ],
)
def test_compare_refuses_bad_parameters_with_a_message(client, params, message) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        client.predict("Hi", "", ["smollm2-135m"], params, "none", api_name="/compare")


def test_compare_is_documented(client) -> None:  # noqa: ANN001
    api = client.view_api(print_info=False, return_format="dict")
    endpoint = api["named_endpoints"]["/compare"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == ["prompt", "system_prompt", "models", "params", "grounding"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, "", ["smollm2-135m"], None, "none"), "prompt and system_prompt must be strings"),
        (("Hi", "", "smollm2-135m", None, "none"), "models must be a non-empty list"),
        (("Hi", "", ["smollm2-135m"], "fast", "none"), "params must be an object or a list"),
        (("Hi", "", ["smollm2-135m"], None, ["web"]), "grounding must be one of none, local, web"),
        (("  ", "", ["smollm2-135m"], None, "none"), "the prompt is empty"),
    ],
)
def test_compare_refuses_bad_input_with_a_message(client, args, message) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/compare")


def test_delete_run_with_no_run_shown_answers_a_clear_error(client) -> None:  # noqa: ANN001
    """The API runs no confirmation script and its session shows no run: a sentence, not a traceback."""
    from gradio_client.exceptions import AppError

    from playground.ui.session_bar import NO_RUN_SHOWN

    with pytest.raises(AppError, match=r"no saved run is shown in this session") as info:
        client.predict("", "", "", api_name="/delete_run")
    assert str(info.value) == NO_RUN_SHOWN


def test_import_file_without_a_file_answers_a_clear_error(client) -> None:  # noqa: ANN001
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="give a run file"):
        client.predict(None, "", api_name="/import_file")


def test_a_server_fault_in_compare_is_a_sentence_and_a_logged_traceback(caplog) -> None:  # noqa: ANN001
    import gradio as gr

    from playground.config import Settings
    from playground.ui.api import compare_endpoint

    class Broken:
        settings = Settings()

        def run(self, *_args: object, **_kwargs: object) -> None:
            raise RuntimeError("disk on fire")

    compare = compare_endpoint(Broken())  # type: ignore[arg-type]
    with pytest.raises(gr.Error, match=r"the run failed on the server \(RuntimeError\)"):
        compare("Hi", "", ["smollm2-135m"], None, "none")
    assert "disk on fire" in caplog.text


# Handlers that have nothing to draw when no run is shown (or no file, or no batch) answer "no update".
NOTHING_TO_DRAW = ("/pick_column", "/turn_page", "/jump", "/redraw", "/pick_baseline", "/upload",
                   "/poll_results")


def test_endpoints_with_nothing_to_draw_answer_without_an_error(client) -> None:  # noqa: ANN001
    """An empty dict of updates is an error in Gradio (a server traceback, a bare AppError): they skip."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    missing = [name for name in NOTHING_TO_DRAW if name not in endpoints]
    assert not missing, f"renamed endpoints: {missing}; known: {sorted(endpoints)}"
    for name in NOTHING_TO_DRAW:
        args = [p.get("parameter_default") if p.get("parameter_has_default") else None
                for p in endpoints[name]["parameters"]]
        client.predict(*args, api_name=name)  # raises AppError on a server error
