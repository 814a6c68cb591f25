"""`compare --search web` settings on the command line: --region, --safesearch, --timelimit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_grounding_web import Factory

from playground import __main__ as cli
from playground.backends.pool import ModelPool
from playground.grounding import snapshot
from playground.grounding.snapshot import SearchProviders

SEARCH_ENV = ("PLAYGROUND_SEARCH_REGION", "PLAYGROUND_SEARCH_SAFESEARCH", "PLAYGROUND_SEARCH_TIMELIMIT")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No search settings from the caller's environment; runs saved nowhere that matters."""
    for name in SEARCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYGROUND_DB", str(tmp_path / "runs.sqlite3"))
    return monkeypatch


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before any model loads (which would also make these tests slow)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the search settings were checked")

    monkeypatch.setattr(ModelPool, "get", refuse)


def _compare(*extra: str) -> list[str]:
    return ["compare", "--model", "smollm2-135m", "--no-save", "--search", "web", *extra, "What is Python?"]


@pytest.mark.usefixtures("env", "no_model_loads")
def test_invalid_region_is_exit_status_2_before_any_model_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(_compare("--region", "XX_bad")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("playground: error: search region 'XX_bad' is not valid")
    assert "like wt-wt or us-en" in err


@pytest.mark.usefixtures("no_model_loads")
def test_invalid_environment_default_is_exit_status_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("PLAYGROUND_SEARCH_SAFESEARCH", "strict")
    assert cli.main(_compare()) == 2
    err = capsys.readouterr().err
    assert "safe-search 'strict' is not valid" in err and "on, moderate, off" in err


@pytest.mark.usefixtures("env", "no_model_loads")
@pytest.mark.parametrize("flag", [["--safesearch", "strict"], ["--timelimit", "h"]])
def test_argparse_refuses_other_choices(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(_compare(*flag))
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_flags_and_environment_reach_the_search(
    env: pytest.MonkeyPatch, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flags win over the environment, the environment fills in the rest (one real, tiny run)."""
    factory = Factory()
    env.setattr(snapshot, "_default", SearchProviders(client_factory=factory, min_interval_s=0.0))
    env.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    env.setenv("PLAYGROUND_SEARCH_REGION", "XX_bad")  # overridden by --region, so never checked
    env.setenv("PLAYGROUND_SEARCH_SAFESEARCH", "on")
    env.setenv("PLAYGROUND_SEARCH_TIMELIMIT", "m")
    argv = _compare("--region", "us-en", "--timelimit", "w", "--sources", "2", "--max-new-tokens", "1",
                    "--no-attention", "--device", "cpu", "--json")
    assert cli.main(argv) == 0
    (call,) = factory.calls
    settings = (call["region"], call["safesearch"], call["timelimit"], call["max_results"])
    assert settings == ("us-en", "on", "w", 2)
    record = json.loads(capsys.readouterr().out)
    assert record["search"]["provider"] == "web" and len(record["search"]["results"]) == 2
