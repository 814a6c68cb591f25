"""Routing rules (which model answers which prompt) and their evaluation on scored results.

rules.py: the file format, validation and matching; evaluate.py: preview and threshold sweep (APGR);
figures.py: the sweep as a plotly figure; cli.py: `python -m playground route`.
"""

from playground.routing.evaluate import (
    ModelResult,
    Preview,
    PromptRow,
    ResultTable,
    Summary,
    Sweep,
    SweepPoint,
    TableError,
    apgr,
    preview,
    sweep,
)
from playground.routing.rules import (
    ANOMALY_KINDS,
    Condition,
    Decision,
    PromptFacts,
    Rule,
    RulesError,
    RuleSet,
    approx_tokens,
    load_rules,
    loads_rules,
    parse_rules,
    route,
)

__all__ = [
    "ANOMALY_KINDS", "Condition", "Decision", "ModelResult", "Preview", "PromptFacts", "PromptRow",
    "ResultTable", "Rule", "RuleSet", "RulesError", "Summary", "Sweep", "SweepPoint", "TableError",
    "apgr", "approx_tokens", "load_rules", "loads_rules", "parse_rules", "preview", "route", "sweep",
]
