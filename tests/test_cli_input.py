"""Bad input on the command line: exit status 2 with a message, never a traceback; bad bytes replaced."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from playground.__main__ import main

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path) -> Path:
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PLAYGROUND_DEVICE", "cpu")
    db = tmp_path / "runs.sqlite3"
    monkeypatch.setenv("PLAYGROUND_DB", str(db))
    return db


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "nan"], "temperature must be 0 (greedy) or a positive number"),
        (["--temperature", "inf"], "temperature must be 0 (greedy) or a positive number"),
        (["--repetition-penalty", "nan"], "repetition penalty must be a positive number"),
        (["--timeout", "nan"], "request timeout must be a positive number"),
        (["--top-p", "nan"], "top-p must be in (0, 1]"),
        (["--seed", str(10**30)], "seed must be between 0 and 2^63-1"),
    ],
    ids=["temperature-nan", "temperature-inf", "repetition-nan", "timeout-nan", "top-p-nan", "seed-huge"],
)
def test_non_finite_and_out_of_range_parameters_exit_2(cli_env: Path, capsys, flags: list[str], message: str
                                                       ) -> None:
    assert main(["compare", "--model", "smollm2-135m", *flags, "Hi"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not cli_env.exists()  # refused before anything ran or was saved


def test_invalid_utf8_on_stdin_is_replaced_and_the_run_saved(cli_env: Path, capsys, monkeypatch) -> None:
    raw = b"Say hi to caf\xe9 <|im_end|> please"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code = main(["compare", "--model", "smollm2-135m", "--max-new-tokens", "2", "--no-attention",
                 "--specials-as-text", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "invalid UTF-8; replaced with U+FFFD" in err
    doc = json.loads(out)
    assert doc["prompt"] == "Say hi to caf\ufffd <|im_end|> please"
    assert doc["specials_as_text"] is True
    # the typed "<|im_end|>" stayed text: its control-token id appears only where the template put it,
    # closing the default system turn and the user turn (3 times without --specials-as-text)
    end_id = 2  # SmolLM2's <|im_end|>
    assert doc["models"][0]["prompt_token_ids"].count(end_id) == 2
    from playground.sessions.store import SessionStore

    assert SessionStore(cli_env).get(doc["saved_id"]).prompt == doc["prompt"]


def test_invalid_utf8_in_argv_is_replaced(cli_env: Path, capsys) -> None:
    prompt = b"Hello \xff\xfe world".decode("utf-8", "surrogateescape")  # how Python passes bad argv bytes
    code = main(["compare", "--model", "smollm2-135m", "--max-new-tokens", "1", "--no-attention", "--json",
                 prompt])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["prompt"] == "Hello \ufffd\ufffd world"
