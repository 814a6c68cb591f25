"""Grounding: fetch evidence (web search, a local corpus, single pages), fit it into each
model's context window as numbered sources, and check the [n] citations in the answers.

Nothing here builds HTML: titles, snippets and page text are plain data, and escaping them is
the UI's job.
"""
