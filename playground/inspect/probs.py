"""Token probabilities of an output: confidence summary from the stored logprobs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from playground.record import TokenStep


@dataclass(frozen=True)
class ProbSummary:
    tokens: int
    mean_logprob: float
    perplexity: float
    lowest: list[tuple[int, TokenStep]]  # (position in the output, step), least confident first


def summarize(steps: list[TokenStep], lowest: int = 5) -> ProbSummary | None:
    if not steps:
        return None
    mean = sum(s.logprob for s in steps) / len(steps)
    ranked = sorted(enumerate(steps), key=lambda pair: pair[1].logprob)[:lowest]
    return ProbSummary(len(steps), mean, math.exp(-mean), ranked)


def probability(step: TokenStep) -> float:
    return math.exp(step.logprob)
