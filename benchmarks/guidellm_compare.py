"""(c) Side by side with GuideLLM 0.8.1: same simulator, same load, same prompt/output lengths.

GuideLLM lives in its own venv (.cache/guidellm-venv: `pip install torch==2.13.0 guidellm`)
and needs a local tokenizer, trained here in a second with the `tokenizers` package.

    .venv/bin/python benchmarks/guidellm_compare.py [--streams 64 256] [--requests-per-stream 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from common import simulator, table

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.config import DatasetConfig, Lengths

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".cache" / "guidellm-venv"
TOKENIZER = REPO / ".cache" / "gl" / "tokenizer"
TTFT, ITL, PROMPT, OUT = 50.0, 10.0, 64, 32

_TRAIN = """
import sys
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
words = "the of and to in is you that it he was for on are as with his they at be this have from or".split()
text = [" ".join(words[(i * 7 + j) % len(words)] for j in range(50)) for i in range(2000)]
tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[BOS]", "[EOS]"]))
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]",
                        eos_token="[EOS]").save_pretrained(sys.argv[1])
"""


def guidellm(url: str, streams: int, requests: int) -> list[object]:
    if not (TOKENIZER / "tokenizer.json").exists():
        subprocess.run([str(VENV / "bin" / "python"), "-c", _TRAIN, str(TOKENIZER)], check=True)
    backend = {"kind": "openai_http", "target": url, "model": "sim-model", "request_format": "/v1/chat/completions",
               "validate_backend": False, "extras": {"body": {"max_tokens": OUT}}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([
            str(VENV / "bin" / "guidellm"), "run", "--backend", json.dumps(backend),
            "--profile", json.dumps({"kind": "concurrent", "streams": [streams]}),
            "--constraint", f"kind=max_requests,count={requests}",
            "--tokenizer", f"kind=huggingface_auto,model={TOKENIZER}",
            "--data", f"kind=synthetic_text,prompt_tokens={PROMPT},output_tokens={OUT}",
            "--output", f"kind=json,path={out}", "--disable-progress"],
            check=True, cwd=tmp, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        b = json.loads(out.read_text())["benchmarks"][0]
    m = b["metrics"]
    ok = m["request_totals"]["successful"]
    ttft = m["time_to_first_token_ms"]["successful"]["median"]
    return [streams, "GuideLLM 0.8.1", ok, ok / b["duration"], m["requests_per_second"]["successful"]["mean"],
            m["output_tokens_per_second"]["successful"]["mean"], ttft, ttft - TTFT,
            m["inter_token_latency_ms"]["successful"]["median"], "(none)"]


def factorybench(url: str, streams: int, requests: int) -> list[object]:
    config = LoadConfig(target=url, model="sim-model",
                        dataset=DatasetConfig(prompt_tokens=Lengths(mean=PROMPT), output_tokens=Lengths(mean=OUT)),
                        profile=ProfileConfig(kind="concurrent", streams=streams, max_requests=requests))
    s = run_load(config).summary
    return [streams, "factorybench", s.requests, s.request_rate, s.request_rate, s.output_tokens_per_s,
            s.ttft_p50_ms, s.ttft_p50_ms - TTFT, s.itl_p50_ms, "valid" if s.valid else "INVALID"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[64])
    ap.add_argument("--requests-per-stream", type=int, default=10)
    args = ap.parse_args()
    rows = []
    with simulator("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--max-num-seqs", "4096",
                   "--max-queue", "100000") as url:
        for n in args.streams:
            for tool in (guidellm, factorybench):
                rows.append(tool(url, n, n * args.requests_per_stream))
                print(rows[-1], flush=True)
    print(table(["streams", "tool", "ok", "ok/duration req/s", "reported req/s", "output tok/s", "TTFT p50 ms",
                 "TTFT err ms", "ITL p50 ms", "guard"], rows))


if __name__ == "__main__":
    main()
