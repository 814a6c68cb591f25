"""Prompt sets, batch runs over them, scoring and per-model summaries (issue 14).

prompt_set.py parses sets; score.py and summary.py are pure; book.py stores batches in the
session database; runner.py runs them through the run service; bundle.py exports and imports them.
"""
