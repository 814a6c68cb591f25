"""Issue 20, keys and addresses: a key goes only to its own host, a key a server echoes is blanked
before anything keeps it, and a served URL's connections go only to the addresses that were checked
(no redirect followed, no second DNS answer used). Real loopback servers (tests/openai_fake.py)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from openai_fake import FakeOpenAI, echo_words

from playground.__main__ import main
from playground.backends.keys import BLANK, KeyBlanker
from playground.backends.pool import ModelPool
from playground.catalog import Catalog, ModelSpec
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams, Run, TokenAlt, TokenStep
from playground.report import render_report
from playground.sessions.bundle import export_bundle

pytestmark = pytest.mark.timeout(300)
SECRET = "sk-test-secret-4f9a1c77e2"
KEY_ENV = "PLAYGROUND_TEST_HOSTED_KEY"
LOOK_ALIKE = "api.openai.com.attacker.invalid"
REAL_GETADDRINFO = socket.getaddrinfo


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, answers: Callable[[int], str]) -> list[str]:
    """Make `name` resolve, in this process, to answers(n) on the n-th lookup (0-based); returns the
    log of lookups of that name. Every other name (and every IP literal) resolves for real."""
    lookups: list[str] = []

    def fake(host: object, port: object, *args: object, **kwargs: object) -> list:
        if isinstance(host, str) and host.rstrip(".").lower() == name:
            address = answers(len(lookups))
            lookups.append(address)
            return REAL_GETADDRINFO(address, port, *args, **kwargs)
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return lookups


def _ask(engine: Engine, model: str, **params: object) -> Run:
    column = ColumnRequest(model, GenerationParams(**params))
    return engine.run(RunRequest("What is the capital of France?", [column]))


def _web(data_dir: Path, allow: tuple[str, ...]) -> Engine:
    """An engine as the page server builds it: any model reference, served URLs checked."""
    return Engine(Catalog.build(), ModelPool(data_dir, device="cpu"), allow_any_model=True, redact=True,
                  fetch_allow=allow)


# --------------------------------------------------------------------------- a key goes to its own host


def test_a_look_alike_host_gets_no_key(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI() as fake:
        _resolving(monkeypatch, LOOK_ALIKE, lambda _n: "127.0.0.1")
        engine = Engine(Catalog.build(), ModelPool(data_dir, device="cpu"))
        run = _ask(engine, f"openai:gpt-x@http://{LOOK_ALIKE}:{fake.port}/v1")
    assert run.models[0].error == "" and run.models[0].text == "Paris is the capital of France."
    assert fake.seen and all(SECRET not in auth for _path, auth in fake.seen), fake.seen


def test_an_exported_run_imported_and_continued_elsewhere_sends_no_key(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    monkeypatch.delenv("PLAYGROUND_CATALOG", raising=False)
    with FakeOpenAI() as fake:
        _resolving(monkeypatch, LOOK_ALIKE, lambda _n: "127.0.0.1")
        ref = f"openai:gpt-x@http://{LOOK_ALIKE}:{fake.port}/v1"
        monkeypatch.setenv("PLAYGROUND_DB", str(tmp_path / "here.sqlite3"))
        assert main(["compare", "--model", ref, "--json", "--max-new-tokens", "4", "Capital of France?"]) == 0
        first = json.loads(capsys.readouterr().out)["saved_id"]
        bundle = tmp_path / "run.json"
        assert main(["sessions", "export", first, str(bundle)]) == 0
        monkeypatch.setenv("PLAYGROUND_DB", str(tmp_path / "elsewhere.sqlite3"))
        assert main(["sessions", "import", str(bundle)]) == 0
        imported = capsys.readouterr().out.strip()
        assert main(["compare", "--continue", imported, "--json", "And of Italy?"]) == 0
        second = json.loads(capsys.readouterr().out)
    assert second["parent_id"] == imported and second["models"][0]["error"] == ""
    chats = [path for path, _auth in fake.seen if path.endswith("/chat/completions")]
    assert len(chats) == 2, fake.seen
    assert all(SECRET not in auth for _path, auth in fake.seen), fake.seen


# --------------------------------------------------------------------------- an echoed key is blanked


@pytest.fixture
def echoing(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, FakeOpenAI]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAI() as fake:
        specs = {m: ModelSpec(id=m, name=m, source="openai", location=fake.base_url, base_url=fake.base_url,
                              served_model=m, api_key_env=KEY_ENV) for m in ("echo", "broken")}
        yield Engine(Catalog(specs), ModelPool(data_dir, device="cpu")), fake


def test_a_key_the_server_echoes_reaches_no_record_export_report_or_log(
    echoing: tuple[Engine, FakeOpenAI], caplog: pytest.LogCaptureFixture,
) -> None:
    engine, fake = echoing
    caplog.set_level(logging.DEBUG)
    run = engine.run(RunRequest("Say my key.", [ColumnRequest("echo", GenerationParams()),
                                                ColumnRequest("broken", GenerationParams())]))
    echo, broken = run.models
    assert fake.headers[0]["authorization"] == f"Bearer {SECRET}"  # it was sent, to its own server
    assert echo.error == "" and echo.text == f"Your key is {BLANK}."
    assert all(alt.text != SECRET for step in echo.steps for alt in step.top)
    assert echo.identity.fingerprint == f"fp_{BLANK}"
    assert broken.finish_reason == "error" and BLANK in broken.error
    kept = [json.dumps(run.to_dict()), export_bundle(run), render_report(run, "html"),
            render_report(run, "markdown"), caplog.text]
    fragments = [SECRET, *echo_words(SECRET)[4:7]]  # the key and each token it came in
    for text in kept:
        assert not [f for f in fragments if f in text]


@pytest.mark.parametrize("cuts", [(1,), (3, 10), (2, 11, 20), (24,), tuple(range(1, 25))])
def test_a_key_split_over_any_steps_is_blanked_and_the_rest_kept(cuts: tuple[int, ...]) -> None:
    text = f"key: {SECRET} ok"
    bounds = [0, *(5 + c for c in cuts), len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    steps = [TokenStep(-1, p, -0.1, [TokenAlt(-1, p, -0.1), TokenAlt(-1, "x", -2.0)]) for p in pieces]
    out = list(KeyBlanker((SECRET,)).steps(iter(steps)))
    assert "".join(s.text for s in out) == f"key: {BLANK} ok"
    assert len(out) == len(steps)
    assert all(SECRET[i:i + 4] not in alt.text for s in out for alt in s.top for i in range(len(SECRET) - 3))


def test_steps_held_for_a_possible_key_are_kept_when_the_stream_fails() -> None:
    def failing():  # noqa: ANN202
        yield TokenStep(-1, "Paris is", -0.1)  # ends with "s", the key's first letter: held back
        raise RuntimeError("cut")

    out: list[TokenStep] = []
    with pytest.raises(RuntimeError):
        out.extend(KeyBlanker((SECRET,)).steps(failing()))
    assert [s.text for s in out] == ["Paris is"]


def test_a_stream_that_ends_inside_a_key_leaves_no_long_part_of_it() -> None:
    steps = [TokenStep(-1, "it is ", -0.1), TokenStep(-1, SECRET[:12], -0.1)]
    out = list(KeyBlanker((SECRET,)).steps(iter(steps)))
    assert "".join(s.text for s in out) == f"it is {BLANK}"


# --------------------------------------------------------------------------- served URLs: every hop checked


def test_a_redirect_to_another_port_is_not_followed(data_dir: Path) -> None:
    with FakeOpenAI() as second, FakeOpenAI(redirect_to=second.base_url) as first:
        run = _ask(_web(data_dir, (f"127.0.0.1:{first.port}",)), f"openai:m@{first.base_url}")
        cli = _ask(Engine(Catalog.build(), ModelPool(data_dir, device="cpu")), f"openai:m@{first.base_url}")
    assert first.seen and second.seen == []
    for model in (*run.models, *cli.models):
        assert model.finish_reason == "error"
        assert "answered 307, a redirect to" in model.error and str(second.port) in model.error, model.error
        assert "not followed" in model.error


def test_a_name_that_resolves_again_differently_is_not_looked_up_again(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAI(host="127.0.0.1") as checked, FakeOpenAI(host="127.0.0.2", port=checked.port) as other:
        lookups = _resolving(monkeypatch, "rebind.test", lambda n: "127.0.0.1" if n == 0 else "127.0.0.2")
        run = _ask(_web(data_dir, (f"127.0.0.1:{checked.port}",)), f"openai:m@http://rebind.test:{checked.port}/v1")
    (model,) = run.models
    assert model.error == "" and model.text == "Paris is the capital of France."
    assert lookups == ["127.0.0.1"]  # the check's own lookup; every connection went to its answer
    assert checked.seen and other.seen == []


def test_a_web_users_url_that_resolves_to_a_refused_address_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAI() as server:
        _resolving(monkeypatch, "inside.test", lambda _n: "127.0.0.1")
        run = _ask(_web(data_dir, ()), f"openai:m@http://inside.test:{server.port}/v1")
    assert "private or local address (127.0.0.1)" in run.models[0].error
    assert server.seen == []


def test_a_pinned_connection_reaches_only_its_own_host_and_tries_each_checked_address() -> None:
    from playground.backends.pinned import PinnedBackend, PinnedConnectError

    with FakeOpenAI() as server:
        backend = PinnedBackend("served.test", ("127.0.0.3", "127.0.0.1"))  # nothing listens on .3
        with pytest.raises(PinnedConnectError, match="may only reach served.test"):
            backend.connect_tcp("elsewhere.test", server.port, timeout=2.0)
        stream = backend.connect_tcp("served.test", server.port, timeout=2.0)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
        stream.close()
