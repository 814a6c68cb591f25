"""Per-row sampling on tensors: what transformers' logits processors do, for a batch whose rows
each have their own temperature, top-k, top-p, repetition penalty and seed.

The fast decode path (backends/fast_decode.py) runs this inside a captured CUDA graph, so it
must be pure tensor work with static shapes: no Python branching on values, no host syncs.
Both paths draw with `gumbel_argmax`, a counter-based draw keyed by (seed, step, token id):
a row's draw never depends on which other rows share its batch, so a column gives the same
tokens alone or batched, on the eager path or the fast one. tests/test_sampling.py checks
`process_rows` against transformers' own processors, row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from playground.record import GenerationParams

TOP_ALTERNATIVES = 5
_M32 = 0xFFFFFFFF
# Odd multipliers below 2^31: a 32-bit value times one stays inside int64 (no overflow).
_MUL_A = 0x7FEB352D
_MUL_B = 0x5BD1E995
_GOLDEN = 0x27D4EB2F


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply) on int64 tensors holding values below 2^32."""
    x = x ^ (x >> 16)
    x = (x * _MUL_A) & _M32
    x = x ^ (x >> 15)
    x = (x * _MUL_B) & _M32
    return x ^ (x >> 16)


def seed_words(seed: int) -> tuple[int, int]:
    """A 63-bit seed as two 32-bit words (the hash works on 32-bit values)."""
    return seed & _M32, (seed >> 32) & _M32


def uniform_noise(
    seed_lo: torch.Tensor, seed_hi: torch.Tensor, step: torch.Tensor, vocab: int
) -> torch.Tensor:
    """Uniform (0, 1) floats of shape [rows, vocab], a pure function of (seed, step, token id).

    seed_lo, seed_hi: int64 [rows]; step: int64 [rows] or [1]."""
    row_key = _mix(_mix(seed_lo) ^ seed_hi)
    step_key = _mix(row_key ^ _mix((step + _GOLDEN) & _M32))
    ids = torch.arange(vocab, device=seed_lo.device, dtype=torch.long)
    bits = _mix((step_key[:, None] + ids[None, :] * _GOLDEN) & _M32)
    bits = _mix(bits ^ step_key[:, None])
    return ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))


def gumbel_argmax(
    scores: torch.Tensor, seed_lo: torch.Tensor, seed_hi: torch.Tensor, step: torch.Tensor
) -> torch.Tensor:
    """One draw per row from softmax(scores): argmax of scores plus Gumbel noise (-inf stays out)."""
    noise = uniform_noise(seed_lo, seed_hi, step, scores.shape[-1])
    return (scores - torch.log(-torch.log(noise))).argmax(dim=-1)


@dataclass
class RowParams:
    """Each row's sampling settings as tensors [rows] (static buffers on the fast path)."""

    temperature: torch.Tensor  # float32; 1.0 for greedy rows
    top_k: torch.Tensor  # int64; the vocabulary size where top-k is off
    top_p: torch.Tensor  # float32; 1.0 where top-p is off
    penalty: torch.Tensor  # float32; 1.0 where repetition penalty is off
    greedy: torch.Tensor  # bool
    seed_lo: torch.Tensor  # int64
    seed_hi: torch.Tensor  # int64

    @classmethod
    def empty(cls, rows: int, device: torch.device | str) -> RowParams:
        def full(value: float, dtype: torch.dtype) -> torch.Tensor:
            return torch.full((rows,), value, dtype=dtype, device=device)

        return cls(full(1.0, torch.float32), full(0, torch.long), full(1.0, torch.float32),
                   full(1.0, torch.float32), full(True, torch.bool), full(0, torch.long), full(0, torch.long))

    def fill(self, rows: list[GenerationParams], vocab: int) -> None:
        """Copy each row's settings in place (the tensors' addresses stay, for a captured graph)."""
        names = ("temperature", "top_k", "top_p", "penalty", "greedy", "seed_lo", "seed_hi")
        columns = zip(*[_row_values(p, vocab) for p in rows], strict=True)
        for name, column in zip(names, columns, strict=True):
            target: torch.Tensor = getattr(self, name)
            target.copy_(torch.tensor(column, dtype=target.dtype))

    def set_row(self, index: int, params: GenerationParams, vocab: int) -> None:
        """One row's settings in place (a row joining a running batch)."""
        names = ("temperature", "top_k", "top_p", "penalty", "greedy", "seed_lo", "seed_hi")
        for name, value in zip(names, _row_values(params, vocab), strict=True):
            getattr(self, name)[index] = value

    def row(self, index: int) -> RowParams:
        """Row `index` alone, as views of these tensors (one row's first pick, eagerly)."""
        return RowParams(*(getattr(self, f.name)[index : index + 1] for f in fields(self)))

    def take(self, source: RowParams, sources: torch.Tensor, targets: torch.Tensor) -> None:
        """Copy rows `sources` of another batch's settings into rows `targets` (a batch that moves)."""
        for f in fields(self):
            getattr(self, f.name)[targets] = getattr(source, f.name)[sources]


def _row_values(p: GenerationParams, vocab: int) -> tuple:
    lo, hi = seed_words(p.seed)
    if p.greedy:
        return 1.0, vocab, 1.0, p.repetition_penalty, True, lo, hi
    top_k = min(p.top_k, vocab) if p.top_k > 0 else vocab
    return p.temperature, top_k, p.top_p, p.repetition_penalty, False, lo, hi


def penalize(scores: torch.Tensor, presence: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor, per row: seen tokens' scores shrink toward 0."""
    p = penalty[:, None]
    return torch.where(presence, torch.where(scores < 0, scores * p, scores / p), scores)


def process_rows(scores: torch.Tensor, presence: torch.Tensor, rows: RowParams) -> torch.Tensor:
    """Repetition penalty, temperature, top-k, top-p: transformers' warpers in generate()'s order."""
    scores = penalize(scores, presence, rows.penalty) / rows.temperature[:, None]
    descending = scores.sort(dim=-1, descending=True).values
    kth = descending.gather(1, (rows.top_k - 1).clamp(min=0)[:, None])
    scores = scores.masked_fill(scores < kth, float("-inf"))
    ascending, order = scores.sort(dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - rows.top_p[:, None])
    drop_sorted[:, -1] = False  # min_tokens_to_keep=1
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


@dataclass
class Picked:
    """One step's choice per row, with the raw distribution's view of it (before any warping)."""

    token: torch.Tensor  # int64 [rows]
    logprob: torch.Tensor  # float32 [rows]
    top_ids: torch.Tensor  # int64 [rows, TOP_ALTERNATIVES]
    top_logprobs: torch.Tensor  # float32 [rows, TOP_ALTERNATIVES]


def pick(
    logits: torch.Tensor, presence: torch.Tensor, rows: RowParams, step: torch.Tensor, sampling: bool
) -> Picked:
    """Choose each row's next token from float32 logits [rows, vocab].

    Greedy rows take the argmax of the penalized logits; with sampling=True the other rows draw
    from the processed distribution. sampling=False leaves out the sorts (an all-greedy batch)."""
    logprobs = torch.log_softmax(logits, dim=-1)
    top = torch.topk(logprobs, TOP_ALTERNATIVES, dim=-1)
    greedy = penalize(logits, presence, rows.penalty).argmax(dim=-1)
    if sampling:
        drawn = gumbel_argmax(process_rows(logits, presence, rows), rows.seed_lo, rows.seed_hi, step)
        token = torch.where(rows.greedy, greedy, drawn)
    else:
        token = greedy
    return Picked(token, logprobs.gather(1, token[:, None]).squeeze(1), top.indices, top.values)
