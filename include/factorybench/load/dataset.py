"""Prompts: synthetic with seeded token-length distributions, JSONL files, or the bundled set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from factorybench.errors import LoadError
from factorybench.load.config import DatasetConfig

# Short common words: about one token each in the usual BPE vocabularies, so a
# prompt of n words is close to n tokens whatever the server's tokenizer.
_WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up "
    "other about out many then them these so some her would make like him into time has look two more write "
    "go see number no way could people my than first water been call who oil its now find long down day did "
    "get come made may part over new sound take only little work know place year live me back give most very "
    "after thing our just name good sentence man think say great where help through much before line right"
).split()


@dataclass(frozen=True)
class PromptItem:
    """One request's input; `prompt_tokens` is an estimate used only when the server reports no usage."""

    prompt: str | None
    messages: tuple[dict, ...] | None
    prompt_tokens: int
    output_tokens: int

    def text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        return "\n".join(str(m.get("content", "")) for m in self.messages or ())

    def chat(self) -> list[dict]:
        return list(self.messages) if self.messages else [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class Dataset:
    items: tuple[PromptItem, ...]


def load_dataset(config: DatasetConfig) -> Dataset:
    rng = np.random.default_rng(config.seed)
    if config.kind == "synthetic":
        return Dataset(_synthetic(config, rng))
    if config.kind == "bundled":
        records = resources.files("factorybench.load").joinpath("data/prompts.jsonl").read_text()
        source = "bundled prompts.jsonl"
    else:
        path = Path(config.path or "")
        try:
            records = path.read_text()
        except OSError as e:
            raise LoadError(f"cannot read dataset {path}: {e}") from e
        source = str(path)
    rows = [json.loads(line) for line in records.splitlines() if line.strip()]
    if not rows:
        raise LoadError(f"dataset {source} is empty")
    outputs = config.output_tokens.sample(rng, len(rows))
    return Dataset(tuple(_record(row, int(out), source, n) for n, (row, out) in enumerate(zip(rows, outputs))))


def _synthetic(config: DatasetConfig, rng: np.random.Generator) -> tuple[PromptItem, ...]:
    n = config.pool_size
    prompt_lens = config.prompt_tokens.sample(rng, n)
    output_lens = config.output_tokens.sample(rng, n)
    words = np.array(_WORDS)
    items = []
    for k in range(n):
        body = words[rng.integers(0, len(words), max(0, prompt_lens[k] - 1))]
        # A distinct first word per prompt keeps server prefix caches from sharing whole prompts.
        items.append(PromptItem(f"p{k} " + " ".join(body), None, int(prompt_lens[k]), int(output_lens[k])))
    return tuple(items)


def _record(row: dict, default_output: int, source: str, n: int) -> PromptItem:
    if "prompt" in row:
        prompt, messages = str(row["prompt"]), None
    elif isinstance(row.get("messages"), list):
        prompt, messages = None, tuple(row["messages"])
    else:
        raise LoadError(f"{source} line {n + 1}: needs 'prompt' or 'messages'")
    item = PromptItem(prompt, messages, 0, int(row.get("output_tokens") or default_output))
    return PromptItem(prompt, messages, max(1, len(item.text()) // 4), item.output_tokens)
