"""Routing rules: an ordered list of conditions, each naming a model, and a default.

The file (YAML or JSON) has the shape of EXAMPLE_RULES below; the first rule whose `when`
holds wins, and every condition inside one `when` must hold.

Pure code: no model is loaded here. Token counts and anomaly kinds come with the prompt
(`PromptFacts`); when nobody measured them, `approx_tokens` and `approx_anomalies` give
labelled approximations.

A rules file comes from anyone who can type one (the page's editor, a file handed around), so
reading one is bounded: MAX_RULES_BYTES before parsing, YAML anchors and aliases refused (a
"billion laughs" file expands to gigabytes), at most MAX_RULES rules, `matches:` patterns run with
a time budget (playground/patterns.py), and messages quote only a short prefix of a bad value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from playground.patterns import PatternError, PatternTimeout, TimeBudget, UserPattern, quote

EXAMPLE_RULES = """\
# First match wins; every condition in one `when` must hold.
# On the bundled sample set: summaries to Gemma, everything else to SmolLM2 (assets/rules/sample.yaml).
default: smollm2-135m
rules:
  - when: {category: [summarisation]}
    model: gemma3-270m
  - when: {matches: "(?i)\\\\bsummar(?:y|i[sz]e)"}
    model: gemma3-270m
  - when: {anomaly: special_token_literal}
    model: smollm2-135m
  - when: {prompt_tokens_below: 400, matches: "(?i)step by step|prove"}
    model: gemma3-270m
"""  # the page's rules editor starts with it: it splits the bundled sample set between both models

# The committed rules files (the page's "Load sample rules"); read through load_rules' bounds too.
RULES_DIR = Path(__file__).resolve().parents[2] / "assets" / "rules"
SAMPLE_RULES = RULES_DIR / "sample.yaml"


def sample_rules_text() -> str:
    """The committed sample rules file as typed (comments kept), checked to parse."""
    text = _read_capped(SAMPLE_RULES)
    loads_rules(text)
    return text


# The anomaly kinds of playground/inspect/tokens.py (Anomaly.kind).
ANOMALY_KINDS = ("special_literal", "blowup", "repeat_run", "byte_fallback", "context_overflow")
# Names a rules file may use for them: the spelling of the special-token check too.
ANOMALY_ALIASES = {"special_token_literal": "special_literal"}

CONDITION_KEYS = ("category", "prompt_tokens_below", "matches", "anomaly")
RULE_KEYS = ("when", "model")
TOP_KEYS = ("default", "rules")

MAX_RULES_BYTES = 256 * 1024  # a rules file (UTF-8), checked before it is parsed
MAX_RULES = 200  # rules in one file
MAX_NAME_CHARS = 200  # a model id
ROUTE_BUDGET_S = 2.0  # all `matches:` searches for one prompt together


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule index and key."""


class RuleTimeout(RulesError):
    """A rule's `matches:` pattern ran out of time on a prompt (the message names the rule)."""


@dataclass(frozen=True)
class Condition:
    """One `when`: every field that is set must hold (None = not part of this rule)."""

    category: tuple[str, ...] | None = None
    prompt_tokens_below: int | None = None
    matches: str | None = None
    anomaly: str | None = None  # canonical kind (aliases resolved)
    pattern: UserPattern | None = field(init=False, default=None, compare=False, repr=False)  # `matches`

    def __post_init__(self) -> None:
        """Compile `matches` once (PatternError when it cannot be), so routing many prompts reuses it."""
        if self.matches is not None:
            object.__setattr__(self, "pattern", UserPattern.compile(self.matches))

    def to_dict(self) -> dict:
        out: dict = {}
        if self.category is not None:
            out["category"] = list(self.category)
        if self.prompt_tokens_below is not None:
            out["prompt_tokens_below"] = self.prompt_tokens_below
        if self.matches is not None:
            out["matches"] = self.matches
        if self.anomaly is not None:
            out["anomaly"] = self.anomaly
        return out


@dataclass(frozen=True)
class Rule:
    when: Condition
    model: str


@dataclass(frozen=True)
class RuleSet:
    default: str
    rules: tuple[Rule, ...] = ()

    def to_dict(self) -> dict:
        return {"default": self.default,
                "rules": [{"when": r.when.to_dict(), "model": r.model} for r in self.rules]}

    def models(self) -> list[str]:
        """Every model the rules can pick, default first, each once."""
        return list(dict.fromkeys([self.default, *(r.model for r in self.rules)]))

    def needs_tokens(self) -> bool:
        return any(r.when.prompt_tokens_below is not None for r in self.rules)

    def needs_anomalies(self) -> bool:
        return any(r.when.anomaly is not None for r in self.rules)


# -- parsing ---------------------------------------------------------------------------------


def _model_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RulesError(f"{where}: must be a model id (a non-empty string), got {quote(value)}")
    if len(value.strip()) > MAX_NAME_CHARS:
        raise RulesError(f"{where}: {quote(value.strip())} is {len(value.strip()):,} characters, too long "
                         f"for a model id (the limit is {MAX_NAME_CHARS})")
    return value.strip()


def _condition(when: object, where: str) -> Condition:
    if not isinstance(when, Mapping) or not when:
        raise RulesError(f"{where}: must hold one or more conditions "
                         f"({', '.join(CONDITION_KEYS)}), got {quote(when)}")
    unknown = [str(k) for k in when if k not in CONDITION_KEYS]
    if unknown:
        raise RulesError(f"{where}: unknown condition {_names(unknown)} "
                         f"(known: {', '.join(CONDITION_KEYS)})")
    fields: dict = {}
    if "category" in when:
        value = when["category"]
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, list) or not value
                or not all(isinstance(c, str) and c.strip() for c in value)):
            raise RulesError(f"{where}.category: must be a non-empty list of category names, "
                             f"got {quote(value)}")
        fields["category"] = tuple(c.strip() for c in value)
    if "prompt_tokens_below" in when:
        value = when["prompt_tokens_below"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RulesError(f"{where}.prompt_tokens_below: must be a whole number of tokens >= 1, "
                             f"got {quote(value)}")
        fields["prompt_tokens_below"] = value
    if "matches" in when:
        value = when["matches"]
        if not isinstance(value, str) or not value:
            raise RulesError(f"{where}.matches: must be a regular expression (a non-empty string), "
                             f"got {quote(value)}")
        try:
            UserPattern.compile(value)  # here, to name the rule; Condition keeps it (compiled once)
        except PatternError as exc:
            raise RulesError(f"{where}.matches: {exc}") from exc
        fields["matches"] = value
    if "anomaly" in when:
        value = when["anomaly"]
        kind = ANOMALY_ALIASES.get(value, value) if isinstance(value, str) else value
        if kind not in ANOMALY_KINDS:
            names = ", ".join([*ANOMALY_KINDS, *ANOMALY_ALIASES])
            raise RulesError(f"{where}.anomaly: unknown anomaly kind {quote(value)} (known: {names})")
        fields["anomaly"] = kind
    return Condition(**fields)


def _names(keys: list[str]) -> str:
    """Unknown keys for a message: a few, each cut short (a file may hold thousands of long ones)."""
    shown = ", ".join(quote(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def parse_rules(data: object) -> RuleSet:
    """A RuleSet from parsed YAML/JSON; RulesError names the rule index and key of the first problem."""
    if not isinstance(data, Mapping):
        raise RulesError("the rules file must be a mapping with 'default' and 'rules', "
                         f"got {type(data).__name__}")
    unknown = [str(k) for k in data if k not in TOP_KEYS]
    if unknown:
        raise RulesError(f"unknown key {_names(unknown)} at the top level "
                         f"(known: {', '.join(TOP_KEYS)})")
    if "default" not in data:
        raise RulesError("default: missing (the model for prompts no rule matches)")
    default = _model_name(data["default"], "default")
    raw_rules = data.get("rules", [])
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        raise RulesError(f"rules: must be a list of {{when, model}} entries, got {type(raw_rules).__name__}")
    if len(raw_rules) > MAX_RULES:
        raise RulesError(f"rules: {len(raw_rules):,} rules; the limit is {MAX_RULES}")
    rules = []
    for i, raw in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            raise RulesError(f"{where}: must be a mapping with 'when' and 'model', got {quote(raw)}")
        unknown = [str(k) for k in raw if k not in RULE_KEYS]
        if unknown:
            raise RulesError(f"{where}: unknown key {_names(unknown)} "
                             f"(known: {', '.join(RULE_KEYS)})")
        for key in RULE_KEYS:
            if key not in raw:
                raise RulesError(f"{where}.{key}: missing")
        when = _condition(raw["when"], f"{where}.when")
        rules.append(Rule(when, _model_name(raw["model"], f"{where}.model")))
    return RuleSet(default, tuple(rules))


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases before anything is expanded: a few lines of
    nested aliases ("billion laughs") would otherwise build gigabytes. Rules never need them."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise RulesError(f"line {event.start_mark.line + 1}: YAML anchors and aliases (& and *) are "
                             "not allowed in a rules file: write each value out")
        return super().compose_node(parent, index)


def _size(text: str) -> int:
    """UTF-8 bytes, without encoding a text that is too long in characters already."""
    return len(text) if len(text) > MAX_RULES_BYTES else len(text.encode("utf-8", "surrogatepass"))


def loads_rules(text: str, fmt: str = "yaml") -> RuleSet:
    """Parse rules text; fmt "json" or "yaml" (YAML also reads JSON, which is a subset of it)."""
    size = _size(text)
    if size > MAX_RULES_BYTES:
        raise RulesError(f"the rules are {size:,} bytes; the limit is {MAX_RULES_BYTES // 1024} KiB")
    try:
        # yaml.load with a SafeLoader subclass: safe_load's loader, with aliases refused
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506
    except json.JSONDecodeError as exc:
        raise RulesError(f"not valid JSON: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {' '.join(str(exc).split())[:300]}") from exc
    except RecursionError as exc:
        raise RulesError("the rules are nested too deeply") from exc
    return parse_rules(data)


def _read_capped(path: Path) -> str:
    """The file's text, refusing it unread past MAX_RULES_BYTES (a huge file, /dev/zero, a pipe)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RULES_BYTES + 1)
    except OSError as exc:
        raise RulesError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_RULES_BYTES:
        raise RulesError(f"{path} is larger than {MAX_RULES_BYTES // 1024} KiB, the limit for a rules file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"{path} is not UTF-8 text") from exc


def load_rules(path: str | Path) -> RuleSet:
    """A rules file: .json is read as JSON, anything else as YAML."""
    path = Path(path)
    text = _read_capped(path)
    try:
        return loads_rules(text, "json" if path.suffix.lower() == ".json" else "yaml")
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from exc


def dumps_rules(rules: RuleSet, fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(rules.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(rules.to_dict(), sort_keys=False, allow_unicode=True)


# -- approximations (no tokenizer at hand) --------------------------------------------------

# A word, a number or one other visible character: roughly a subword tokenizer's count on English
# prose (real tokenizers split long or rare words further, so this tends to count low).
_APPROX_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# Strings that chat tokenizers turn into control tokens: <|im_end|>, <s>, </s>, <start_of_turn> ...
_SPECIAL_LIKE = re.compile(
    r"<\|[A-Za-z0-9_]+\|>|</?s>|<(?:start|end)_of_turn>|<(?:bos|eos|pad|unk|mask)>|\[(?:INST|/INST)\]"
)

APPROX_TOKENS_NOTE = ("prompt tokens counted by approximation (one token per word, number or punctuation "
                      "mark), not by a model's tokenizer")
APPROX_ANOMALIES_NOTE = ("anomalies found by approximation (special-token-like strings such as <|im_end|> "
                         "only), not by a model's tokenizer")


def approx_tokens(text: str) -> int:
    """APPROXIMATE token count: words, numbers and single punctuation marks (see APPROX_TOKENS_NOTE)."""
    return len(_APPROX_TOKEN.findall(text))


def approx_anomalies(text: str) -> tuple[str, ...]:
    """APPROXIMATE anomaly kinds without a tokenizer: only special_literal, by pattern."""
    return ("special_literal",) if _SPECIAL_LIKE.search(text) else ()


# -- matching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptFacts:
    """What the rules look at for one prompt. None = not measured: computed by approximation."""

    prompt: str
    category: str = ""
    prompt_tokens: int | None = None
    anomalies: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Decision:
    model: str
    rule: int | None  # index into RuleSet.rules; None = the default
    reason: str
    prompt_tokens: int | None = None  # the count the rules used, when a rule looked at it
    approximate: list[str] = field(default_factory=list)  # which facts were approximated

    def to_dict(self) -> dict:
        return {"model": self.model, "rule": self.rule, "reason": self.reason,
                "prompt_tokens": self.prompt_tokens, "approximate": list(self.approximate)}


def _holds(cond: Condition, facts: PromptFacts, tokens: Callable[[], int],
           anomalies: Callable[[], tuple[str, ...]], budget: TimeBudget) -> bool:
    if cond.category is not None and facts.category not in cond.category:
        return False
    if cond.prompt_tokens_below is not None and not tokens() < cond.prompt_tokens_below:
        return False
    if cond.pattern is not None and not cond.pattern.search(facts.prompt, budget):
        return False
    return cond.anomaly is None or cond.anomaly in anomalies()


def _reason(cond: Condition, tokens: int | None) -> str:
    parts = []
    if cond.category is not None:
        parts.append(f"category in [{', '.join(cond.category)}]")
    if cond.prompt_tokens_below is not None:
        parts.append(f"prompt tokens {tokens} < {cond.prompt_tokens_below}")
    if cond.matches is not None:
        parts.append(f"prompt matches /{cond.matches}/")
    if cond.anomaly is not None:
        parts.append(f"anomaly {cond.anomaly} present")
    return " and ".join(parts)


def route(rules: RuleSet, facts: PromptFacts, count_tokens: Callable[[str], int] | None = None,
          budget: TimeBudget | None = None) -> Decision:
    """The model the rules pick for one prompt, and why. First matching rule wins.

    count_tokens is used when facts.prompt_tokens is None (default: approx_tokens, labelled as such
    in Decision.approximate); missing anomaly kinds fall back to approx_anomalies. `matches:`
    searches share `budget` (default: ROUTE_BUDGET_S for this prompt); RuleTimeout names the rule
    whose pattern ran out of time.
    """
    budget = budget or TimeBudget(ROUTE_BUDGET_S)
    approximate: list[str] = []
    counted: list[int] = []  # the token count, once something asked for it
    kinds: list[tuple[str, ...]] = []

    def tokens() -> int:
        if not counted:
            if facts.prompt_tokens is not None:
                counted.append(facts.prompt_tokens)
            elif count_tokens is not None:
                counted.append(count_tokens(facts.prompt))
            else:
                counted.append(approx_tokens(facts.prompt))
                approximate.append("prompt_tokens")
        return counted[0]

    def anomalies() -> tuple[str, ...]:
        if not kinds:
            if facts.anomalies is not None:
                kinds.append(tuple(ANOMALY_ALIASES.get(k, k) for k in facts.anomalies))
            else:
                kinds.append(approx_anomalies(facts.prompt))
                approximate.append("anomalies")
        return kinds[0]

    for i, rule in enumerate(rules.rules):
        try:
            held = _holds(rule.when, facts, tokens, anomalies, budget)
        except PatternTimeout as exc:
            raise RuleTimeout(f"rules[{i}].when.matches: {exc}") from exc
        if held:
            used = counted[0] if counted else None
            return Decision(rule.model, i, f"rule {i}: {_reason(rule.when, used)}", used, approximate)
    return Decision(rules.default, None, "no rule matched: the default",
                    counted[0] if counted else None, approximate)
