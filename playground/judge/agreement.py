"""How often a judge's pairwise verdicts agree with people's blind votes on the same runs.

A vote is compared with a verdict when both are on the same saved run and the vote's models include
the two judged columns' models. Both sides become a result for that pair (first model won, tie, second
won): a vote for a third model counts as a tie between the two, "both bad" as a tie, and a judge whose
two orders disagreed gave a tie. Ties are counted, not dropped: a tie and a tie agree, a tie and a win
do not; the figures on decisive pairs alone (both picked a winner) are given apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.inspect.leaderboard import Vote, comparisons
from playground.judge.verdict import Verdict


@dataclass(frozen=True)
class JudgeAgreement:
    judge: str  # the judge model ("" : every judge's verdicts)
    compared: int = 0  # (vote, verdict) pairs on the same run and the same two models
    agreed: int = 0
    human_ties: int = 0  # of the compared: the vote was a tie (or both bad, or for neither model)
    judge_ties: int = 0  # of the compared: the judge's verdict was a tie
    both_ties: int = 0  # both a tie (these count as agreeing)
    decisive: int = 0  # both picked a winner
    decisive_agreed: int = 0
    no_verdict: int = 0  # votes on judged runs whose verdict could not be read (left out of `compared`)
    judged_runs: int = 0  # runs with a readable pairwise verdict

    @property
    def rate(self) -> float | None:
        """Share of compared pairs where the judge and the vote agree (None: nothing compared)."""
        return self.agreed / self.compared if self.compared else None

    @property
    def decisive_rate(self) -> float | None:
        return self.decisive_agreed / self.decisive if self.decisive else None


def _human(vote: Vote, a: str, b: str) -> float | None:
    """The vote as a result of a against b: 1 a won, 0.5 a tie, 0 b won; None: the vote lacks one of them."""
    if a not in vote.models or b not in vote.models:
        return None
    for x, y, score in comparisons([vote]):
        if (x, y) == (a, b):
            return score
        if (x, y) == (b, a):
            return 1.0 - score
    return 0.5  # the vote chose a third model: neither of the two won


def judge_agreement(votes: list[Vote], verdicts: list[Verdict], judge: str = "") -> JudgeAgreement:
    """Agreement of pairwise verdicts (of `judge`, or every judge) with the votes on the same runs."""
    pairwise = [v for v in verdicts if v.method == "pairwise" and (not judge or v.judge == judge)
                and len(v.models) == 2 and v.models[0] != v.models[1]]
    by_run: dict[str, list[Verdict]] = {}
    for v in pairwise:
        by_run.setdefault(v.run_id, []).append(v)
    counts = dict(compared=0, agreed=0, human_ties=0, judge_ties=0, both_ties=0, decisive=0,
                  decisive_agreed=0, no_verdict=0)
    for vote in votes:
        for v in by_run.get(vote.run_id, []):
            a, b = v.models
            human = _human(vote, a, b)
            if human is None:
                continue
            if v.outcome not in ("win", "tie"):
                counts["no_verdict"] += 1
                continue
            machine = 0.5 if v.outcome == "tie" else 1.0 if v.winner == v.columns[0] else 0.0
            same = human == machine
            counts["compared"] += 1
            counts["agreed"] += same
            counts["human_ties"] += human == 0.5
            counts["judge_ties"] += machine == 0.5
            counts["both_ties"] += human == 0.5 and machine == 0.5
            if human != 0.5 and machine != 0.5:
                counts["decisive"] += 1
                counts["decisive_agreed"] += same
    judged = len({v.run_id for v in pairwise if v.outcome in ("win", "tie")})
    return JudgeAgreement(judge, **counts, judged_runs=judged)
