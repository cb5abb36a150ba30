"""Benchmark: batched greedy decoding against decoding one prompt at a time (the baseline), in the same run.

The prompts are the built-in test set's (study_b template, the offline tokenizer); the model is a tiny built-in
LLaMA in fp32 on CPU. Both ways decode the same prompts with the same budget; batched decoding goes through
`ShardedGenerator` (length-sorted, padding-bounded batches, left padding, KV cache), the baseline calls
`generate_batch` on each prompt alone. Tokens/s counts generated reply tokens (stops excluded), so a way that
stopped early gains nothing. Each way runs `--repeats` times after a warm-up; the median wall time is used, and
the replies are checked equal token for token (the run fails otherwise).

The last line printed is one JSON object. Run from the repository root:

    python -m bench.evaluate                       # ~1 min on 2 cores
    python -m bench.evaluate --items 256 --batch-size 32 --hidden-size 256 --intermediate-size 688
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from dynamics.config import BuiltinModelConfig
from dynamics.data.builtin import generate_builtin
from dynamics.evaluate.generation import Decoding, ShardedGenerator, Stops, generate_batch
from dynamics.models import build_builtin_model, builtin_tokenizer
from dynamics.text.prompts import encode_prompt
from dynamics.text.templates import TEMPLATES


def _timed(run) -> tuple[float, list]:
    started = time.perf_counter()
    replies = run()
    return time.perf_counter() - started, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=96, help="test prompts decoded")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--intermediate-size", type=int, default=344)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (a worker's default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = builtin_tokenizer()
    sizes = BuiltinModelConfig(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
    )
    model = build_builtin_model(sizes, vocab_size=len(tokenizer)).eval()
    template = TEMPLATES.get("study_b")
    rows = [
        row
        for row in generate_builtin(per_train_task=1, per_test_task=16, seed=0).to_pylist()
        if row["split"] == "test"
    ]
    prompts = [encode_prompt(row["messages"], tokenizer, template, 256) for row in rows[: args.items]]
    stops = Stops.of(template, tokenizer)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    generator = ShardedGenerator(prompts, args.batch_size, rank=0, world_size=1)

    def batched() -> list:
        return generator.run(model, tokenizer, stops, decoding)

    def one_at_a_time() -> list:
        return [generate_batch(model, [prompts[index]], tokenizer, stops, decoding)[0] for index in generator.positions]

    batched(), one_at_a_time()  # warm-up: first-call allocations and kernel selection
    batched_s, one_s = [], []
    for _ in range(args.repeats):
        seconds, batched_replies = _timed(batched)
        batched_s.append(seconds)
        seconds, single_replies = _timed(one_at_a_time)
        one_s.append(seconds)
    mismatched = sum(a.token_ids != b.token_ids for a, b in zip(batched_replies, single_replies, strict=True))
    if mismatched:
        raise SystemExit(f"{mismatched} of {len(prompts)} batched replies differ from one-at-a-time decoding")
    tokens = sum(len(reply.token_ids) for reply in batched_replies)
    batched_rate, one_rate = tokens / statistics.median(batched_s), tokens / statistics.median(one_s)
    summary = {
        "prompts": len(prompts),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "generated_tokens": tokens,
        "replies_at_budget": sum(reply.hit_budget for reply in batched_replies),
        "batched_tokens_per_s": round(batched_rate, 1),
        "one_at_a_time_tokens_per_s": round(one_rate, 1),
        "batched_over_one_at_a_time": round(batched_rate / one_rate, 2),
        "replies_equal": True,
    }
    print(f"batched {batched_rate:.0f} tokens/s vs one at a time {one_rate:.0f} tokens/s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
