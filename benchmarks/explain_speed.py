#!/usr/bin/env python
"""Time to trace and explain one review of 256 tokens, for a 1-layer bidirectional LSTM, GRU and RNN.

The models are untrained (embedding 128, hidden 256 per direction, a 20,000-word vocabulary): the
time does not depend on what the weights learned. Per cell it reports, as the median of `--runs`:

- trace: `gates.replay` of the fused module, recording every gate at every step;
- explain: `Explainer.explain(text, memory_probes=0)`: tokenization, the model's own logits, the
  replay, the word scores (gates split for LSTM/GRU, occlusion for the RNN) and the report;
- + memory: the same with the memory-decay estimate (`memory_probes=32`, one batched backward pass).

Target: explaining with the gates, without the memory estimate, takes at most 30 ms for the BiLSTM.
Timings are taken on one torch thread by default (`--threads`): explaining one review is a chain of
small operations, which more threads do not speed up, and a busy machine slows them down.

    python benchmarks/explain_speed.py              # 256 tokens, 20 runs
    python benchmarks/explain_speed.py --quick      # a smoke run for CI (64 tokens, 2 runs): figures meaningless
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from sentikit.explain import Explainer, encode_text
from sentikit.gates import replay
from sentikit.model import SentimentClassifier
from sentikit.tokenizer import train_tokenizer

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
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="64 tokens, 2 runs: for CI, figures meaningless")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.runs = 64, 2
    torch.set_num_threads(args.threads)

    words = [f"w{i}" for i in range(VOCABULARY - 2)]  # + [PAD] and [UNK]
    tokenizer = train_tokenizer([[" ".join(words)]], vocab_size=VOCABULARY, min_frequency=1)
    text = " ".join(words[: args.tokens])
    ids = torch.tensor([encode_text(tokenizer, text, args.tokens).ids])
    lengths = torch.tensor([ids.shape[1]])

    print(f"one review of {ids.shape[1]} tokens, 1-layer bidirectional, embedding {EMBEDDING}, hidden {HIDDEN}, "
          f"vocabulary {tokenizer.get_vocab_size()}; median of {args.runs} runs on {args.threads} torch thread(s)\n")
    print("| cell | method | trace ms | explain ms | explain + memory ms |")
    print("|---|---|---:|---:|---:|")
    lstm_ms = None
    for cell in ("lstm", "gru", "rnn"):
        torch.manual_seed(0)
        model = SentimentClassifier(tokenizer.get_vocab_size(), ["negative", "positive"], cell=cell, embedding_dim=EMBEDDING, hidden_size=HIDDEN)
        explainer = Explainer(model, tokenizer, max_length=args.tokens)
        with torch.no_grad():
            embedded = model.embedding(ids)
        trace = median_ms(lambda: replay(model.encoder.rnn, embedded, lengths), args.runs)
        explain = median_ms(lambda: explainer.explain(text, memory_probes=0), args.runs)
        with_memory = median_ms(lambda: explainer.explain(text, memory_probes=32), args.runs)
        method = "gates" if explainer.exact else "occlusion"
        print(f"| {cell} | {method} | {trace:.1f} | {explain:.1f} | {with_memory:.1f} |")
        if cell == "lstm":
            lstm_ms = explain
    if not args.quick:
        verdict = "met" if lstm_ms <= TARGET_MS else "MISSED"
        print(f"\ntarget: BiLSTM explain (gates, no memory estimate) <= {TARGET_MS:g} ms: {lstm_ms:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
