"""Sanity checks: did the server do what the client asked?

A benchmark of a server that ignored the prompt (a broken chat template rendered every prompt
as one word), stopped early, or served another model measures the wrong thing, however fast it
was. Each check compares the responses with the requests, from the raw samples, so it merges
exactly across processes. A failed check makes the run invalid unless the config lists it in
`sanity.warn_only`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from factorybench.load.config import LoadConfig
from factorybench.load.guard import assess
from factorybench.load.samples import Sample, TokenSource
from factorybench.load.stats import ClientHealth, SanityCheck, Summary, summarize


def judged(samples: Sequence[Sample], config: LoadConfig, health: ClientHealth) -> Summary:
    """The summary of these samples with the client guard and the sanity checks applied."""
    summary = assess(summarize(samples, config.slo, health), config.guard)
    return apply(summary, check(samples, config))


def apply(summary: Summary, checks: list[SanityCheck]) -> Summary:
    summary.sanity = checks
    for c in checks:
        if not c.passed and not c.warn_only:
            summary.invalid_reasons.append(f"sanity check {c.name} failed: {c.observed}; expected {c.expected}"
                                           + (f" ({c.message})" if c.message else ""))
    summary.valid = not summary.invalid_reasons
    return summary


def check(samples: Sequence[Sample], config: LoadConfig) -> list[SanityCheck]:
    ok = [s for s in samples if not s.warmup and s.error is None]
    found = [_prompt_tokens(ok, config), _output_tokens(ok, config), _model(ok, config)]
    checks = [c for c in found if c is not None]
    for c in checks:
        c.warn_only = c.name in config.sanity.warn_only
    return checks


def _prompt_tokens(ok: list[Sample], config: LoadConfig) -> SanityCheck | None:
    cfg = config.sanity
    rows = [s for s in ok if s.prompt_tokens_source is TokenSource.USAGE and s.intended_prompt_tokens
            and s.prompt_tokens is not None]
    if not cfg.prompt_tokens or not rows:
        return None
    server = sum(s.prompt_tokens or 0 for s in rows)
    intended = sum(s.intended_prompt_tokens or 0 for s in rows)
    ratio = server / intended
    passed = cfg.prompt_ratio_min <= ratio <= cfg.prompt_ratio_max
    return SanityCheck(
        name="prompt_tokens", passed=passed,
        observed=f"{server / len(rows):.1f} prompt tokens per request in the server's usage (ratio {ratio:.2f})",
        expected=f"about {intended / len(rows):.1f} as sent (ratio {cfg.prompt_ratio_min:g} to "
                 f"{cfg.prompt_ratio_max:g})",
        message="" if passed else "the server did not see the prompt that was sent: check its chat template "
                                  "or tokenizer")


def _output_tokens(ok: list[Sample], config: LoadConfig) -> SanityCheck | None:
    cfg = config.sanity
    wanted = cfg.output_tokens == "on" or (cfg.output_tokens == "auto" and config.ignore_eos)
    rows = [s for s in ok if s.max_tokens and s.output_tokens_source is TokenSource.USAGE]
    if not wanted or not config.protocol.is_llm or not rows:
        return None
    early = [s for s in rows if (s.output_tokens or 0) < (s.max_tokens or 0)]
    fraction = len(early) / len(rows)
    passed = fraction <= cfg.max_early_fraction
    mean_out = sum(s.output_tokens or 0 for s in rows) / len(rows)
    mean_max = sum(s.max_tokens or 0 for s in rows) / len(rows)
    return SanityCheck(
        name="output_tokens", passed=passed,
        observed=f"{len(early)} of {len(rows)} requests stopped before max_tokens (mean {mean_out:.1f} of "
                 f"{mean_max:.1f} tokens)",
        expected=f"every request max_tokens long (at most {cfg.max_early_fraction:.0%} early)",
        message="" if passed else "the server ended answers early: ignore_eos unsupported, or the context too short")


def _same_model(echoed: str, requested: str) -> bool:
    """Ollama answers `name:latest` for `name`."""
    return echoed == requested or (":" not in requested and echoed == f"{requested}:latest")


def _model(ok: list[Sample], config: LoadConfig) -> SanityCheck | None:
    echoed = Counter(s.model_echo for s in ok if s.model_echo)
    if not config.sanity.model or not config.model or not echoed:
        return None
    wrong = {m: n for m, n in echoed.items() if not _same_model(m, config.model)}
    shown = ", ".join(f"{m!r} in {n} responses" for m, n in echoed.most_common(3))
    return SanityCheck(name="model", passed=not wrong, observed=f"the server named {shown}",
                       expected=repr(config.model),
                       message="" if not wrong else "the server serves another model than the recipe names")
