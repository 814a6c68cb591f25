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


# -- one place builds the parameters and the settings ------------------------------------------------


def test_build_params_takes_defaults_casts_and_refuses_unknown_fields() -> None:
    from playground.params import build_params
    from playground.record import GenerationParams

    assert build_params() == GenerationParams()
    # the page's empty boxes (None, "") take the defaults; its number boxes send floats
    built = build_params({"max_new_tokens": 12.0, "temperature": "", "seed": None, "top_k": 3.0,
                          "stop": ["x"]})
    assert built == GenerationParams(max_new_tokens=12, top_k=3, stop=["x"])
    assert isinstance(built.max_new_tokens, int) and isinstance(built.top_p, float)
    with pytest.raises(ValueError, match=r"unknown parameters \['temp'\]"):
        build_params({"temp": 1.0})


def test_build_params_checked_says_everything_wrong_at_once() -> None:
    from playground.params import ParamsError, build_params

    with pytest.raises(ParamsError) as info:
        build_params({"max_new_tokens": 0, "top_p": 2.0}, check=True)
    assert str(info.value) == ("max new tokens must be between 1 and 32768, got 0; "
                               "top-p must be in (0, 1], got 2.0")
    assert build_params({"max_new_tokens": 0}).max_new_tokens == 0  # unchecked: the run refuses it per column


def test_each_command_reads_the_parameter_flags_it_has() -> None:
    """compare has every flag, batch three, tokenize one: the rest take their defaults."""
    import argparse

    from playground.params import params_from_flags

    batch = argparse.Namespace(max_new_tokens=64, temperature=0.5, timeout=30.0, prompts="set.csv")
    assert (params_from_flags(batch).max_new_tokens, params_from_flags(batch).timeout_s) == (64, 30.0)
    assert params_from_flags(batch).top_k == 0 and params_from_flags(batch).stop == []
    compare = argparse.Namespace(max_new_tokens=4, temperature=0.0, top_p=0.9, top_k=5,
                                 repetition_penalty=1.1, seed=7, stop=["raw"], timeout=9.0)
    built = params_from_flags(compare, stop=["repaired"])
    assert (built.top_p, built.top_k, built.seed, built.stop) == (0.9, 5, 7, ["repaired"])


def test_settings_flags_mean_the_same_in_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    import argparse

    from playground.config import SettingsError, settings_from_args

    monkeypatch.delenv("PLAYGROUND_DB", raising=False)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "env"))
    serve = argparse.Namespace(data_dir=str(tmp_path / "flag"), port=0, host="0.0.0.0", auth="a:b", db=None)
    route = argparse.Namespace(data_dir=None, catalog=None, device="cpu", db=str(tmp_path / "r.sqlite3"))
    got = settings_from_args(serve)
    assert (got.data_dir, got.port, got.host, got.auth) == (tmp_path / "flag", 0, "0.0.0.0", ("a", "b"))
    got = settings_from_args(route)
    assert (got.data_dir, got.device, got.database) == (tmp_path / "env", "cpu", tmp_path / "r.sqlite3")
    with pytest.raises(SettingsError, match="--auth must look like user:password"):
        settings_from_args(argparse.Namespace(auth="nopassword"))
    monkeypatch.setenv("PLAYGROUND_PORT", "eighty")
    with pytest.raises(SettingsError, match="PLAYGROUND_PORT must be an integer"):
        settings_from_args(route)


@pytest.mark.parametrize("command", [["compare", "--model", "smollm2-135m", "hi"], ["sessions", "list"],
                                     ["batch", "--list"], ["catalog"]])
def test_a_malformed_setting_is_exit_2_in_every_command(cli_env: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch, command: list[str]
                                                        ) -> None:
    monkeypatch.setenv("PLAYGROUND_PORT", "eighty")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err == "playground: error: PLAYGROUND_PORT must be an integer, got 'eighty'\n"
