"""The engine package's column state machine and backend contract (issue 21, item 4).

A column's life is an enum and a transition table (playground/engine/column.py), not booleans:
these tests hold the table itself, then the paths real runs take through it, local (the bundled
SmolLM2 on transformers) and served (the managed llama.cpp server), stopped and refused ones
included. The backend contract (playground/backends/base.py) is met by every backend without the
engine or the pool probing for optional methods.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground.backends.base import BackendDefaults, ColumnStream, StreamIteration
from playground.backends.local import LocalBackend, StepStream
from playground.backends.remote import RemoteBackend
from playground.backends.served_stream import ServedStream
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.engine.column import TRANSITIONS, Column, ColumnState, IllegalTransition
from playground.record import GenerationParams, ModelIdentity, ModelRun

pytestmark = pytest.mark.timeout(600)

S = ColumnState
ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Name a colour."


def _column() -> Column:
    identity = ModelIdentity(catalog_id="m", name="m", source="gguf", location="m.gguf")
    return Column(0, ModelRun(column=0, identity=identity, params=GenerationParams()))


@pytest.mark.parametrize("path", [
    [S.LOADING, S.DECODING, S.ENDED],
    [S.LOADING, S.PREPARING, S.STREAMING, S.ENDED],
    [S.LOADING, S.PREPARING, S.ENDED],
    [S.LOADING, S.ENDED],
    [S.ENDED],
])
def test_every_life_a_column_can_have_is_allowed(path: list[ColumnState]) -> None:
    col = _column()
    for state in path:
        col.move(state)
    assert col.done and col.state is S.ENDED


@pytest.mark.parametrize(("start", "to"), [
    (S.WAITING, S.DECODING), (S.LOADING, S.STREAMING), (S.DECODING, S.STREAMING),
    (S.STREAMING, S.DECODING), (S.ENDED, S.LOADING), (S.ENDED, S.ENDED),
])
def test_a_move_the_table_does_not_allow_raises(start: ColumnState, to: ColumnState) -> None:
    col = _column()
    col.state = start
    with pytest.raises(IllegalTransition, match=f"{start.value} -> {to.value}"):
        col.move(to)
    assert col.state is start


def test_every_state_but_ended_can_end_and_ended_is_final() -> None:
    assert set(TRANSITIONS) == set(ColumnState)
    assert all(S.ENDED in allowed for state, allowed in TRANSITIONS.items() if state is not S.ENDED)
    assert TRANSITIONS[S.ENDED] == frozenset()


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, list[ColumnState]]]:
    """Every transition each column of the runs in a test takes, by column index."""
    seen: dict[int, list[ColumnState]] = {}
    real = Column.move

    def move(self: Column, state: ColumnState) -> None:
        real(self, state)
        seen.setdefault(self.index, []).append(state)

    monkeypatch.setattr(Column, "move", move)
    yield seen


def _col(model: str, **params: object) -> ColumnRequest:
    return ColumnRequest(model, GenerationParams(**{"max_new_tokens": 6, **params}))


def test_local_and_served_columns_take_their_paths(engine: Engine, llamacpp, moves) -> None:  # noqa: ANN001
    run = engine.run(RunRequest(prompt=PROMPT, capture_attention=False,
                                columns=[_col("smollm2-135m"), _col("smollm2-135m-llamacpp")]))
    assert [m.error for m in run.models] == ["", ""]
    assert moves[0] == [S.LOADING, S.DECODING, S.ENDED]
    assert moves[1] == [S.LOADING, S.PREPARING, S.STREAMING, S.ENDED]


def test_tokenizing_only_ends_before_any_stream(engine: Engine, llamacpp, moves) -> None:  # noqa: ANN001
    engine.tokenize(RunRequest(prompt=PROMPT, columns=[_col("smollm2-135m"), _col("smollm2-135m-llamacpp")]))
    assert moves[0] == [S.LOADING, S.ENDED]
    assert moves[1] == [S.LOADING, S.PREPARING, S.ENDED]


def test_a_refused_column_ends_without_loading(engine: Engine, moves) -> None:  # noqa: ANN001
    run = engine.run(RunRequest(prompt=PROMPT, columns=[_col("no-such-model"), _col("smollm2-135m")]))
    assert "no-such-model" in run.models[0].error
    assert moves[0] == [S.ENDED]
    assert moves[1][-1] is S.ENDED and run.models[1].error == ""


def test_stop_ends_every_column_from_whatever_state(engine: Engine, llamacpp, moves) -> None:  # noqa: ANN001
    cancel = threading.Event()
    request = RunRequest(prompt=PROMPT, capture_attention=False,
                         columns=[_col("smollm2-135m", max_new_tokens=64),
                                  _col("smollm2-135m-llamacpp", max_new_tokens=64)])
    run, events = engine.stream(request, cancel)
    for event in events:
        if event.kind == "token":
            cancel.set()
    assert {m.finish_reason for m in run.models} <= {"cancelled", "eos", "length"}
    assert all(path[-1] is S.ENDED and path.count(S.ENDED) == 1 for path in moves.values())


def test_every_backend_and_stream_meets_the_contract() -> None:
    """The members the engine and the pool call are there on every backend and stream class."""
    for backend in (LocalBackend, RemoteBackend):
        assert issubclass(backend, BackendDefaults)
        for member in ("open_stream", "column_capabilities", "workspace_bytes", "failure", "close",
                       "encode_prompt", "count_tokens", "decode", "kv_cache_bytes", "allocator_probe",
                       "capture_attention"):
            assert callable(getattr(backend, member)), f"{backend.__name__}.{member}"
    for stream in (StepStream, ServedStream):
        assert issubclass(stream, StreamIteration)
        for member in ColumnStream.__dict__:
            if not member.startswith("_"):
                assert callable(getattr(stream, member)), f"{stream.__name__}.{member}"


def test_the_engine_and_the_pool_never_probe_a_backend() -> None:
    """No getattr/hasattr on a backend or a stream: the contract says what is there."""
    files = [*sorted((ROOT / "playground" / "engine").glob("*.py")), ROOT / "playground/backends/pool.py"]
    probes = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                    "getattr", "hasattr"):
                probes.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert probes == []


def test_closing_a_served_stream_from_another_thread_unblocks_its_reader() -> None:
    """The engine ends a served column from its own thread while the worker blocks in next()."""
    entered, release = threading.Event(), threading.Event()

    def steps() -> Iterator:
        entered.set()
        release.wait(10)  # a server that sends nothing
        yield from ()

    stream = ServedStream()
    stream.attach(steps())
    stream.opened(release.set)  # closing the connection is what wakes a blocked read
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(stream.next()))
    reader.start()
    assert entered.wait(5)
    stream.close()
    reader.join(5)
    assert not reader.is_alive() and got == [None]
    assert stream.next() is None
