"""Prompt sources: seeded synthetic lengths, JSONL files and the bundled set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from factorybench.errors import LoadError
from factorybench.load.config import DatasetConfig, Lengths
from factorybench.load.dataset import load_dataset


@pytest.mark.parametrize("dist", [
    Lengths(kind="fixed", mean=50), Lengths(kind="uniform", min=10, max=90),
    Lengths(kind="normal", mean=50, std=10), Lengths(kind="lognormal", mean=50, std=20)])
def test_length_distributions_have_their_mean(dist: Lengths) -> None:
    values = dist.sample(np.random.default_rng(1), 20000)
    assert abs(values.mean() - 50) < 1.5
    if dist.kind == "lognormal":
        assert abs(values.std() - 20) < 1.5


def test_synthetic_is_reproducible_and_sized() -> None:
    cfg = DatasetConfig(pool_size=50, seed=7, prompt_tokens=Lengths(kind="normal", mean=40, std=5))
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a == b
    assert load_dataset(cfg.model_copy(update={"seed": 8})) != a
    for item in a.items:
        assert len(item.text().split()) == item.prompt_tokens


def test_bundled_and_jsonl(tmp_path: Path) -> None:
    bundled = load_dataset(DatasetConfig(kind="bundled"))
    assert len(bundled.items) >= 50
    assert any(i.messages for i in bundled.items) and any(i.prompt for i in bundled.items)
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "hello there"}) + "\n\n" +
                 json.dumps({"messages": [{"role": "user", "content": "hi"}], "output_tokens": 5}) + "\n")
    items = load_dataset(DatasetConfig(kind="jsonl", path=str(f))).items
    assert [i.output_tokens for i in items] == [32, 5]
    assert items[1].chat() == [{"role": "user", "content": "hi"}]
    f.write_text('{"text": "no prompt"}\n')
    with pytest.raises(LoadError, match="needs 'prompt' or 'messages'"):
        load_dataset(DatasetConfig(kind="jsonl", path=str(f)))
