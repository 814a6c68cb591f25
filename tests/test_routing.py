"""Routing rules: parsing, matching, the preview, the threshold sweep (APGR) and the `route` CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from playground.__main__ import main
from playground.routing import (
    ModelResult,
    PromptFacts,
    PromptRow,
    ResultTable,
    RulesError,
    TableError,
    apgr,
    approx_tokens,
    loads_rules,
    parse_rules,
    preview,
    route,
    sweep,
)
from playground.routing.evaluate import p95, table_from_batch
from playground.routing.figures import sweep_figure
from playground.routing.rules import dumps_rules, load_rules

# The issue's example, byte for byte.
ISSUE_YAML = """\
default: gemma3-270m
rules:
  - when: {category: [extraction, summarisation]}
    model: smollm2-135m
  - when: {prompt_tokens_below: 64}
    model: smollm2-135m
  - when: {matches: "(?i)step by step|prove"}
    model: gemma3-270m
  - when: {anomaly: special_token_literal}
    model: smollm2-135m
"""

LONG = "word " * 100  # 100 approximate tokens: past prompt_tokens_below 64


# -- parsing -----------------------------------------------------------------------------------


def test_the_issue_yaml_parses_exactly() -> None:
    rules = loads_rules(ISSUE_YAML)
    assert rules.default == "gemma3-270m"
    assert [r.model for r in rules.rules] == ["smollm2-135m", "smollm2-135m", "gemma3-270m", "smollm2-135m"]
    assert rules.rules[0].when.category == ("extraction", "summarisation")
    assert rules.rules[1].when.prompt_tokens_below == 64
    assert rules.rules[2].when.matches == "(?i)step by step|prove"
    assert rules.rules[3].when.anomaly == "special_literal"  # the issue's name for tokens.py's kind
    assert rules.models() == ["gemma3-270m", "smollm2-135m"]
    assert loads_rules(dumps_rules(rules)) == rules == loads_rules(dumps_rules(rules, "json"), "json")


def test_json_file_and_yaml_file(tmp_path: Path) -> None:
    data = {"default": "b",
            "rules": [{"when": {"category": ["code"], "prompt_tokens_below": 10}, "model": "a"}]}
    (tmp_path / "r.json").write_text(json.dumps(data))
    (tmp_path / "r.yaml").write_text(ISSUE_YAML)
    assert load_rules(tmp_path / "r.json").to_dict() == data
    assert load_rules(tmp_path / "r.yaml") == loads_rules(ISSUE_YAML)
    assert parse_rules({"default": "x"}).rules == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: a\nrules:\n  - when: {categry: [x]}\n    model: b\n",
         "rules[0].when: unknown condition 'categry'"),
        ("default: a\nrules:\n  - when: {category: [x]}\n    model: b\n    timeout: 3\n",
         "rules[0]: unknown key 'timeout'"),
        ("default: a\nfallback: b\n", "unknown key 'fallback' at the top level"),
        ("rules: []\n", "default: missing"),
        ("default: a\nrules:\n  - when: {category: [x]}\n    model: b\n  - when: {matches: '(unclosed'}\n"
         "    model: b\n", "rules[1].when.matches: bad regular expression '(unclosed'"),
        ("default: a\nrules:\n  - when: {prompt_tokens_below: -3}\n    model: b\n",
         "rules[0].when.prompt_tokens_below: must be a whole number of tokens >= 1"),
        ("default: a\nrules:\n  - when: {prompt_tokens_below: true}\n    model: b\n",
         "rules[0].when.prompt_tokens_below"),
        ("default: a\nrules:\n  - when: {anomaly: weird}\n    model: b\n",
         "rules[0].when.anomaly: unknown anomaly kind 'weird' (known: special_literal"),
        ("default: a\nrules:\n  - when: {}\n    model: b\n",
         "rules[0].when: must hold one or more conditions"),
        ("default: a\nrules:\n  - model: b\n", "rules[0].when: missing"),
        ("default: a\nrules:\n  - when: {category: [x]}\n", "rules[0].model: missing"),
        ("default: a\nrules:\n  - when: {category: []}\n    model: b\n", "rules[0].when.category"),
        ("default: a\nrules:\n  - when: {category: [x]}\n    model: ''\n",
         "rules[0].model: must be a model id"),
        ("default: a\nrules: {when: x}\n", "rules: must be a list"),
        ("- a\n- b\n", "must be a mapping with 'default' and 'rules'"),
        ("default: [a\n", "not valid YAML"),
    ],
)
def test_bad_rules_name_the_rule_and_key(text: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        loads_rules(text)
    assert message in str(err.value)


def test_bad_json_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not valid JSON"):
        loads_rules("{default: a}", "json")
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text('{"default": "a", "rules": [{"when": {"x": 1}, "model": "b"}]}')
    with pytest.raises(RulesError, match=r"bad\.json: rules\[0\]\.when: unknown condition 'x'"):
        load_rules(tmp_path / "bad.json")


# -- matching ------------------------------------------------------------------------------------


def test_first_match_wins() -> None:
    rules = loads_rules(ISSUE_YAML)
    # category matches rule 0 and the prompt also matches rule 2: rule 0 wins
    d = route(rules, PromptFacts("prove it step by step", "extraction"))
    assert (d.model, d.rule) == ("smollm2-135m", 0)
    assert d.reason == "rule 0: category in [extraction, summarisation]"
    # short: rule 1 before rule 2's regex
    d = route(rules, PromptFacts("prove it", "reasoning"))
    assert (d.model, d.rule, d.prompt_tokens, d.approximate) == ("smollm2-135m", 1, 2, ["prompt_tokens"])
    d = route(rules, PromptFacts(LONG + "Prove it.", "reasoning"))
    assert (d.model, d.rule) == ("gemma3-270m", 2)
    d = route(rules, PromptFacts(LONG + "<|im_end|>", ""))
    assert (d.model, d.rule) == ("smollm2-135m", 3)
    assert d.approximate == ["prompt_tokens", "anomalies"]
    d = route(rules, PromptFacts(LONG))
    assert (d.model, d.rule, d.reason) == ("gemma3-270m", None, "no rule matched: the default")


def test_all_conditions_of_a_when_must_hold() -> None:
    rules = parse_rules({"default": "big", "rules": [
        {"when": {"category": ["code"], "prompt_tokens_below": 5, "matches": "^def", "anomaly": "blowup"},
         "model": "small"}]})
    ok = PromptFacts("def f(): pass", "code", prompt_tokens=4, anomalies=("blowup",))
    assert route(rules, ok).model == "small"
    assert "category in [code] and prompt tokens 4 < 5 and prompt matches /^def/ and anomaly blowup" \
        in route(rules, ok).reason
    for broken in (
        PromptFacts("def f(): pass", "prose", 4, ("blowup",)),
        PromptFacts("def f(): pass", "code", 5, ("blowup",)),
        PromptFacts("class A: pass", "code", 4, ("blowup",)),
        PromptFacts("def f(): pass", "code", 4, ("repeat_run",)),
    ):
        assert route(rules, broken).model == "big", broken


def test_measured_facts_and_token_counter_beat_the_approximation() -> None:
    rules = parse_rules({"default": "big", "rules": [
        {"when": {"prompt_tokens_below": 3}, "model": "small"},
        {"when": {"anomaly": "special_literal"}, "model": "x"}]})
    text = "one two three four <|im_end|>"
    assert approx_tokens(text) == 9  # labelled approximation: words and punctuation marks
    d = route(rules, PromptFacts(text, prompt_tokens=2, anomalies=()))
    assert (d.model, d.approximate) == ("small", [])
    d = route(rules, PromptFacts(text), count_tokens=lambda s: 2)
    assert (d.model, d.prompt_tokens, d.approximate) == ("small", 2, [])
    d = route(rules, PromptFacts(text, prompt_tokens=9, anomalies=("special_token_literal",)))
    assert (d.model, d.approximate) == ("x", [])  # the alias is accepted in measured facts too


# -- preview ---------------------------------------------------------------------------------------


def _table() -> ResultTable:
    """Four prompts, two models; the small model is fast, free and wrong on the reasoning prompts."""
    def row(i: int, category: str, tokens: int, small: float, big: float) -> PromptRow:
        return PromptRow(f"p{i}", f"prompt {i}", category, tokens, (), {
            "small": ModelResult(small, 0.1 * i, None),
            "big": ModelResult(big, 1.0 * i, 0.01),
        })

    return ResultTable((row(1, "extraction", 10, 1.0, 1.0), row(2, "extraction", 20, 1.0, 1.0),
                        row(3, "reasoning", 30, 0.0, 1.0), row(4, "reasoning", 40, 0.0, 0.5)))


def test_preview_known_answers() -> None:
    rules = parse_rules({"default": "big",
                         "rules": [{"when": {"category": ["extraction"]}, "model": "small"}]})
    result = preview(rules, _table())
    assert [(a.prompt_id, a.model, a.rule) for a in result.assignments] == [
        ("p1", "small", 0), ("p2", "small", 0), ("p3", "big", None), ("p4", "big", None)]
    routed = result.routed
    assert routed.mean_score == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert routed.p95_total_s == pytest.approx(p95([0.1, 0.2, 3.0, 4.0]))
    assert routed.p95_total_s == pytest.approx(3.0 + 0.85 * 1.0)  # numpy's linear method
    assert routed.cost == pytest.approx(0.02)
    assert routed.shares == {"small": 0.5, "big": 0.5}
    assert set(result.baselines) == {"small", "big"}
    assert result.baselines["small"].mean_score == 0.5 and result.baselines["small"].cost is None
    assert result.baselines["big"].mean_score == pytest.approx(0.875)
    assert result.baselines["big"].p95_total_s == pytest.approx(3.85)
    assert result.baselines["big"].cost == pytest.approx(0.04)
    assert result.approximate == []
    json.dumps(result.to_dict())


def test_preview_missing_scores_and_unknown_models() -> None:
    table = ResultTable((PromptRow("a", "x", results={"m": ModelResult(None, None)}),
                         PromptRow("b", "y", results={"m": ModelResult(1.0, 2.0)})))
    summary = preview(parse_rules({"default": "m"}), table).routed
    assert (summary.mean_score, summary.unscored, summary.p95_total_s) == (1.0, 1, 2.0)
    with pytest.raises(TableError, match="the rules name 'nope', which these results do not have"):
        preview(parse_rules({"default": "m", "rules": [{"when": {"matches": "x"}, "model": "nope"}]}), table)


def test_table_round_trips_through_json() -> None:
    table = _table()
    assert ResultTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table
    with pytest.raises(TableError, match=r"rows\[0\]"):
        ResultTable.from_dict({"rows": [{"id": "x"}]})


# -- sweep and APGR --------------------------------------------------------------------------------


def test_apgr_on_known_curves() -> None:
    assert apgr([(0, 0), (1, 1)]) == pytest.approx(0.5)  # the random router's straight line
    assert apgr([(0, 0), (0, 1), (1, 1)]) == pytest.approx(1.0)  # the strong model's quality at no cost
    assert apgr([(0, 0), (0.5, 1), (1, 1)]) == pytest.approx(0.75)
    assert apgr([(0, 0), (1, 0)]) == 0.0


def _pair_table(strong: list[float], weak: list[float], tokens: list[int] | None = None) -> ResultTable:
    tokens = tokens or list(range(len(strong)))
    return ResultTable(tuple(
        PromptRow(f"p{i}", f"prompt {i}", "", tokens[i], (), {"S": ModelResult(s), "W": ModelResult(w)})
        for i, (s, w) in enumerate(zip(strong, weak, strict=True))))


def test_router_equal_to_the_strong_model_recovers_everything() -> None:
    # The weak model is as good as the strong one except on one prompt; the oracle margin router
    # sends that one first: at 1 of 100 calls it already has the strong model's quality.
    n = 100
    table = _pair_table([1.0] * n, [1.0] * (n - 1) + [0.0])
    result = sweep(table, "S", "W", "margin")
    assert (result.weak_quality, result.strong_quality) == (0.99, 1.0)
    assert result.points[0].strong_share == 0 and result.points[-1].strong_share == 1
    assert result.points[1].strong_share == pytest.approx(0.01) and result.points[1].pgr == pytest.approx(1.0)
    assert result.apgr == pytest.approx(1.0, abs=0.01)


def test_random_router_recovers_about_half() -> None:
    rng = random.Random(7)
    strong = [float(rng.random() < 0.8) for _ in range(200)]
    weak = [float(rng.random() < 0.4) for _ in range(200)]
    table = _pair_table(strong, weak)
    areas = [sweep(table, "S", "W", {f"p{i}": rng.random() for i in range(200)}).apgr for _ in range(50)]
    assert sum(areas) / len(areas) == pytest.approx(0.5, abs=0.03)


def test_prompt_length_sweep_marks_the_chosen_threshold() -> None:
    # longer prompts are the hard ones: sending them to the strong model recovers the gap early
    table = _pair_table([1, 1, 1, 1], [1, 1, 0, 0], tokens=[10, 20, 30, 40])
    result = sweep(table, "S", "W", "prompt_tokens", chosen=30)
    assert [(p.threshold, p.strong_share, p.quality) for p in result.points] == [
        (41, 0.0, 0.5), (40, 0.25, 0.75), (30, 0.5, 1.0), (20, 0.75, 1.0), (10, 1.0, 1.0)]
    assert result.apgr == pytest.approx(0.25 * 0.25 + 0.25 * 0.75 + 0.5)
    assert result.chosen is not None and (result.chosen.strong_share, result.chosen.pgr) == (0.5, 1.0)
    figure = sweep_figure(result)
    names = [t.name for t in figure.data]
    assert names == ["random router", "router: prompt_tokens", "chosen threshold"]
    assert list(figure.data[1].x) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert "APGR 75%" in figure.layout.title.text
    json.dumps(result.to_dict())


def test_sweep_ties_and_errors() -> None:
    same = _pair_table([1, 0], [1, 0])
    assert sweep(same, "S", "W", "margin").apgr is None  # no gap to recover
    with pytest.raises(TableError, match="no results for 'X'"):
        sweep(same, "X", "W")
    with pytest.raises(ValueError, match="unknown router score"):
        sweep(same, "S", "W", "length")


# -- the CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(ISSUE_YAML)
    return path


def test_cli_prints_the_model_and_why(rules_file: Path, capsys) -> None:
    assert main(["route", "--rules", str(rules_file), "Prove that 2+2=4"]) == 0
    out, err = capsys.readouterr()
    assert out == "smollm2-135m\n"
    assert "because rule 1: prompt tokens 7 < 64" in err and "approximation" in err
    assert main(["route", "--rules", str(rules_file), "--json", "--category", "summarisation", LONG]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "smollm2-135m" and data["rule"] == 0 and data["notes"] == []
    assert main(["route", "--rules", str(rules_file), "--json", LONG]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["model"], data["rule"], data["prompt_tokens"]) == ("gemma3-270m", None, 100)
    assert data["approximate"] == ["prompt_tokens", "anomalies"] and len(data["notes"]) == 2


def test_cli_bad_rules_and_input_exit_2(rules_file: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: a\nrules:\n  - when: {matches: '[a-'}\n    model: b\n")
    assert main(["route", "--rules", str(bad), "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("playground: error: ") and "rules[0].when.matches: bad regular expression" in err
    assert main(["route", "--rules", str(tmp_path / "none.yaml"), "hello"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["route", "--rules", str(rules_file)]) == 2
    assert "give a PROMPT" in capsys.readouterr().err
    assert main(["route", "--rules", str(rules_file), "--prompts", "set.csv"]) == 2
    assert "--prompts goes with --batch ID" in capsys.readouterr().err


def test_cli_reads_its_settings_as_every_command_does(rules_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys) -> None:
    """route's settings come from the CLI's one builder: a malformed variable is the same one line."""
    monkeypatch.setenv("PLAYGROUND_PORT", "eighty")
    assert main(["route", "--rules", str(rules_file), "hello"]) == 2
    assert capsys.readouterr().err == "playground: error: PLAYGROUND_PORT must be an integer, got 'eighty'\n"


def test_cli_unknown_batch_exits_2(rules_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys) -> None:
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path))
    assert main(["route", "--rules", str(rules_file), "--db", str(tmp_path / "runs.sqlite3"),
                 "--batch", "A" * 23]) == 2
    err = capsys.readouterr().err
    # without the batch package: "needs a saved batch (python -m playground batch)"
    assert err.startswith("playground: error: ") and ("needs a saved batch" in err or "no saved batch" in err)


def test_table_from_batch_cells() -> None:
    from types import SimpleNamespace as NS

    items = [NS(id="a", prompt="Extract the date", category="extraction"),
             NS(id="b", prompt="2+2?", category="")]

    def cell(i: int, col: int, model: str, status: str = "done", **kw) -> NS:
        base = {"score": 1.0, "total_s": 1.0, "cost_usd": 0.0, "prompt_tokens": 30 + col, "anomalies": []}
        return NS(prompt_index=i, column=col, model=f"{col + 1} · {model}", status=status, **{**base, **kw})

    cells = [cell(0, 0, "small", score=0.0, anomalies=["special_literal"]), cell(0, 1, "big", cost_usd=0.02),
             cell(1, 0, "small", status="failed", score=None), cell(1, 1, "big", status="error", score=0.0)]
    table = table_from_batch(items, cells, count_model="big")
    assert table.models == ["small", "big"]
    a, b = table.rows
    assert (a.id, a.category, a.prompt_tokens, a.anomalies) == ("a", "extraction", 31, ())
    assert a.results == {"small": ModelResult(0.0, 1.0, None), "big": ModelResult(1.0, 1.0, 0.02)}
    assert b.results == {"big": ModelResult(0.0, 1.0, None)}  # the prompt that could not run on "small"
    assert table_from_batch(items, cells).rows[0].anomalies == ("special_literal",)  # first column's view
    twice = table_from_batch(items[:1], [cell(0, 0, "m"), cell(0, 1, "m")])
    assert twice.models == ["1 · m", "2 · m"]


def test_cli_preview_and_sweep_over_a_results_table(tmp_path: Path, capsys) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"default": "big", "rules": [
        {"when": {"category": ["extraction"]}, "model": "small"}]}))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_table().to_dict()))
    figure = tmp_path / "sweep.html"
    argv = ["route", "--rules", str(rules), "--results", str(results), "--sweep", "prompt_tokens",
            "--strong", "big", "--weak", "small", "--threshold", "30"]
    assert main([*argv, "--json", "--figure", str(figure)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["model"] for a in data["preview"]["assignments"]] == ["small", "small", "big", "big"]
    assert data["preview"]["routed"]["mean_score"] == pytest.approx(0.875)
    assert data["sweep"]["chosen"]["strong_share"] == 0.5
    assert "<html>" in figure.read_text() and "APGR 71%" in figure.read_text()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rules" in out and "all to big" in out and "APGR" in out and "chosen threshold 30" in out
    results.write_text("[1, 2]")
    assert main(["route", "--rules", str(rules), "--results", str(results)]) == 2
    assert main(["route", "--rules", str(rules), "--sweep", "margin", "hi"]) == 2


def test_cli_real_tokenizer(rules_file: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys) -> None:
    """--tokenizer counts with the model's own tokenizer and finds its anomalies (the special literal)."""
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    prompt = LONG + "<|im_end|>"
    assert main(["route", "--rules", str(rules_file), "--json", "--device", "cpu",
                 "--tokenizer", "smollm2-135m", prompt]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["model"], data["rule"], data["tokenizer"], data["approximate"]) == \
        ("smollm2-135m", 3, "smollm2-135m", [])
    assert data["reason"] == "rule 3: anomaly special_literal present"
    assert data["prompt_tokens"] >= 64  # rule 1 looked at the real count and did not match


# -- the page's starting rules and the committed sample (issue 22 item 8) -----------------------------


def _sample_table() -> ResultTable:
    """The bundled sample set as a results table (no model runs): every prompt answered by both models."""
    from playground.batch.prompt_set import SAMPLE, load_file

    both = {"smollm2-135m": ModelResult(1.0, 1.0), "gemma3-270m": ModelResult(0.0, 2.0)}
    return ResultTable(tuple(PromptRow(str(i.id), i.prompt, i.category, results=dict(both))
                             for i in load_file(SAMPLE)))


def test_the_starting_example_splits_the_sample_set_between_both_models() -> None:
    from playground.routing.rules import EXAMPLE_RULES

    shown = preview(loads_rules(EXAMPLE_RULES), _sample_table())
    assert set(shown.routed.shares) == {"smollm2-135m", "gemma3-270m"}, shown.routed.shares
    assert all(0 < share < 1 for share in shown.routed.shares.values())
    sent = {a.prompt_id: a.model for a in shown.assignments}
    assert sent["sum-rain"] == "gemma3-270m" and sent["math-add"] == "smollm2-135m"
    # the old example's `prompt_tokens_below: 64` caught every prompt of the set: all to one model
    assert set(preview(loads_rules(ISSUE_YAML), _sample_table()).routed.shares) == {"smollm2-135m"}


def test_the_committed_sample_rules_load_as_typed_and_split_the_set() -> None:
    from playground.routing.rules import SAMPLE_RULES, sample_rules_text

    text = sample_rules_text()
    assert text == SAMPLE_RULES.read_text(encoding="utf-8") and text.startswith("# Routing rules")
    shown = preview(loads_rules(text), _sample_table())
    assert shown.routed.shares == {"smollm2-135m": 0.75, "gemma3-270m": 0.25}
