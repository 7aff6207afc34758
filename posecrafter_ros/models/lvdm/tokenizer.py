"""CLIP byte-level BPE tokenizer compatible with `open_clip.tokenize` (77 ids, zero padded).

Reads open_clip's merge list `assets/bpe_simple_vocab_16e6.txt.gz` (MIT, see
assets/OPEN_CLIP_LICENSE.txt) without importing open_clip. Text is cleaned as open_clip's
default "lower" mode does (HTML unescape, whitespace collapse, lowercase), except for
`ftfy.fix_text` mojibake repair (ftfy is not installed here; plain prompts are unaffected).
"""

from __future__ import annotations

import functools
import gzip
import html
from pathlib import Path

VOCAB_PATH = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
CONTEXT_LENGTH = 77
# The vocabulary holds 256 byte symbols, their 256 word-final forms, the merges, and 2 specials.
NUM_MERGES = 49152 - 256 - 2
START_TOKEN = "<start_of_text>"
END_TOKEN = "<end_of_text>"


def byte_symbols() -> dict[int, str]:
    """Reversible byte -> printable unicode character map of GPT-2 / CLIP BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols  # insertion order (printable bytes first) is the vocabulary order


class ClipTokenizer:
    """`tokenizer(["a prompt", ...])` -> int64 tensor [N x 77]: <start>, BPE ids, <end>, zeros."""

    def __init__(self, vocab_path: Path = VOCAB_PATH, context_length: int = CONTEXT_LENGTH):
        import regex

        lines = gzip.open(vocab_path).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
        self.byte_to_symbol = byte_symbols()
        base = list(self.byte_to_symbol.values())
        vocab = (
            base
            + [s + "</w>" for s in base]
            + ["".join(m) for m in merges]
            + [START_TOKEN, END_TOKEN]
        )
        self.token_ids = {token: index for index, token in enumerate(vocab)}
        self.merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id = self.token_ids[START_TOKEN]
        self.end_id = self.token_ids[END_TOKEN]
        self.context_length = context_length
        self._pieces: dict[str, tuple[str, ...]] = {}
        self.pattern = regex.compile(
            rf"{START_TOKEN}|{END_TOKEN}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
            regex.IGNORECASE,
        )

    @staticmethod
    def clean(text: str) -> str:
        text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).lower()

    def word_pieces(self, word: str) -> tuple[str, ...]:
        """Greedy lowest-rank pair merging of one pre-tokenised word (byte symbols)."""
        if word in (START_TOKEN, END_TOKEN):
            return (word,)
        if word in self._pieces:
            return self._pieces[word]
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            ranked = [
                (self.merge_rank.get((a, b), len(self.merge_rank)), i)
                for i, (a, b) in enumerate(zip(pieces, pieces[1:], strict=False))
            ]
            best_rank, best_index = min(ranked)
            if best_rank == len(self.merge_rank):
                break
            pair = (pieces[best_index], pieces[best_index + 1])
            merged: list[str] = []
            i = 0
            while i < len(pieces):
                if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
                    merged.append(pair[0] + pair[1])
                    i += 2
                else:
                    merged.append(pieces[i])
                    i += 1
            pieces = merged
        self._pieces[word] = tuple(pieces)
        return self._pieces[word]

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in self.pattern.findall(self.clean(text)):
            symbols = "".join(self.byte_to_symbol[b] for b in word.encode("utf-8"))
            ids.extend(self.token_ids[piece] for piece in self.word_pieces(symbols))
        return ids

    def __call__(self, texts: str | list[str]):
        import torch

        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.start_id] + self.encode(text) + [self.end_id]
            if len(ids) > self.context_length:
                # Truncate but keep the end token last, as open_clip does.
                ids = ids[: self.context_length]
                ids[-1] = self.end_id
            out[row, : len(ids)] = torch.tensor(ids)
        return out


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> ClipTokenizer:
    """Shared instance (reading the merge list takes ~0.3 s)."""
    return ClipTokenizer()
