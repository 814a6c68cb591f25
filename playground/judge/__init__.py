"""Model-graded scoring: any catalog model as a judge of a batch's answers (issue 22).

- spec.py: what to judge with (model, method, rubric), stored with the batch (batch/spec.py)
- prompts.py / parse.py: the judge's prompts, and reading its verdict (a small model rambles)
- verdict.py: a verdict as data, and how it fills the result table's cells (batch/summary.py Cell)
- judging.py: running the judge through the run service, like any column (greedy, short answers)
- book.py: verdicts in the session store (migration 6), so a reopened batch shows them
- agreement.py: how often the judge's pairwise verdicts agree with people's blind votes

Nothing here imports torch: the judge is a column like any other, run by the engine.
"""
