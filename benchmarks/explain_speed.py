#!/usr/bin/env python
"""Time to trace and explain one review of 256 tokens, for a 1-layer bidirectional LSTM, GRU and RNN.

The models are untrained (embedding 128, hidden 256 per direction, a 20,000-word vocabulary): the
time does not depend on what the weights learned. Per cell it reports, as the median of `--runs`:

- trace: `gates.replay` of the fused module, recording every gate at every step;
- explain: `Explainer.explain(text, memory_probes=0)`: tokenization, the replay (whose final states
  give the logits), the word scores (gates split for LSTM/GRU, occlusion for the RNN) and the report,
  both for the model as a checkpoint loads it (eager) and as a bundle runs it (TorchScript, what the
  app and `sentikit explain --bundle` use);
- + memory: the eager explain with the memory-decay estimate (`memory_probes=32`).

Everything is measured on one torch thread and on all of the machine's cores (torch's default, or
`--threads`). Target: the BiLSTM explained with the gates, without the memory estimate, in at most 30 ms
on this (2-core) CPU. One review is a chain of small operations; the second core helps mainly the
matrix products of the fused kernel and of the backward sweep.

    python benchmarks/explain_speed.py              # 256 tokens, 30 runs
    python benchmarks/explain_speed.py --quick      # a smoke run for CI (64 tokens, 2 runs): figures meaningless
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from sentikit.explain.explainer import Explainer, encode_text
from sentikit.gates.replay import replay
from sentikit.nn.classifier import SentimentClassifier
from sentikit.gates.portable import PortableClassifier
from sentikit.data.tokenizer import train_tokenizer

VOCABULARY, EMBEDDING, HIDDEN = 20_000, 128, 256
TARGET_MS = 30.0  # BiLSTM, gates, no memory estimate


def median_ms(function: Callable[[], object], runs: int) -> float:
    function()  # warm-up, untimed
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="the many-thread setting (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="64 tokens, 2 runs: for CI, figures meaningless")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.runs = 64, 2

    words = [f"w{i}" for i in range(VOCABULARY - 2)]  # + [PAD] and [UNK]
    tokenizer = train_tokenizer([[" ".join(words)]], vocab_size=VOCABULARY, min_frequency=1)
    text = " ".join(words[: args.tokens])
    ids = torch.tensor([encode_text(tokenizer, text, args.tokens).ids])
    lengths = torch.tensor([ids.shape[1]])

    print(f"one review of {ids.shape[1]} tokens, 1-layer bidirectional, embedding {EMBEDDING}, hidden {HIDDEN}, "
          f"vocabulary {tokenizer.get_vocab_size()}; median of {args.runs} runs\n")
    print("| cell | method | threads | trace ms | explain ms (eager) | explain ms (bundle) | explain + memory ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    lstm_ms: dict[int, float] = {}
    for cell in ("lstm", "gru", "rnn"):
        torch.manual_seed(0)
        model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, embedding_dim=EMBEDDING, hidden_size=HIDDEN)
        eager = Explainer(model, tokenizer, max_length=args.tokens)
        with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit; bundles still use it (docs/bundles.md)
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = Explainer(torch.jit.script(PortableClassifier.from_classifier(model)), tokenizer, max_length=args.tokens)
        with torch.no_grad():
            embedded = model.embedding(ids)
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            trace = median_ms(lambda: replay(model.encoder.rnn, embedded, lengths), args.runs)
            explain = median_ms(lambda: eager.explain(text, memory_probes=0), args.runs)
            bundle = median_ms(lambda: scripted.explain(text, memory_probes=0), args.runs)
            with_memory = median_ms(lambda: eager.explain(text, memory_probes=32), max(2, args.runs // 5))
            method = "gates" if eager.exact else "occlusion"
            print(f"| {cell} | {method} | {threads} | {trace:.1f} | {explain:.1f} | {bundle:.1f} | {with_memory:.1f} |")
            if cell == "lstm":
                lstm_ms[threads] = max(explain, bundle)
    if not args.quick:
        for threads, ms in lstm_ms.items():
            verdict = "met" if ms <= TARGET_MS else "MISSED"
            print(f"target: BiLSTM explain (gates, no memory estimate, slower of eager and bundle) <= {TARGET_MS:g} ms "
                  f"on {threads} thread(s): {ms:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
