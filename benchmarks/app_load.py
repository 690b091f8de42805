#!/usr/bin/env python
"""Load test of the demo app: many clients at once, good reviews and bad inputs mixed, against `python app.py`.

It starts the app itself (`python app.py` on 127.0.0.1, a free port, the shipped bundles, its default
`--concurrency` and `--queue-size`, and the `OMP_NUM_THREADS` of this environment), warms it up, then
sends the requests from `--clients` threads, each with its own HTTP connection, through Gradio's plain
HTTP API (`POST /gradio_api/call/explain`, then the answer's event stream), the route `curl` users take.
One request in five is a bad input: empty, whitespace only, 1,000,000 characters, 10,000,000 (a body
refused unread), an unknown model, a text that is not a string (null, a number, a list, a dict), a model
name that is not a string, a lone surrogate. The good ones are SST-2 validation sentences sent to the RNN, LSTM, GRU or the default model,
with now and then an odd but valid review (control characters, emoji, one just under the length limit).
How the app is started and called, the bad inputs and the memory readings are `sentikit.app.load`'s,
which the tests use too; this script is the load: its size, its checks and its table.

Checked (the exit code is 1 if one fails; speed is printed, never judged):

- every request is answered, with a result or an error message, within `TIMEOUT_S`: nothing hangs;
- no good request gets an error, and each answer is about its own text (`text` comes back unchanged);
- every bad request gets an error whose message names its problem (`BAD_INPUTS`);
- for a sample of good requests, label and probabilities equal those of an in-process `explain_one` on
  the same bundles (probabilities to 1e-4: the server may use other thread counts);
- the server's resident memory (VmRSS) after the load is at most `RSS_GROWTH_BOUND_MB` above what it
  was after the warm-up; where it is not, the load is sent a second time, and the server fails only if
  its memory grows past the bound over that round too (`rss_growth_mb`).

The warm-up (`warm_up_plan`) first sends the heaviest requests, then `--warm-up` requests of the load's
mix (default: twice the sessions the app keeps, `sentikit.app.layout.SESSIONS_KEPT`), so that what the
load adds is what the server keeps per request. Memory is read as the lowest of several readings over a
few seconds of idle (`settled_rss_mb`); docs/results.md has the figures behind the bound.

    python benchmarks/app_load.py                          # 20 clients, 500 requests
    python benchmarks/app_load.py --quick                  # CI: 4 clients, 40 requests
    python benchmarks/app_load.py --clients 8 --requests 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sentikit.app.layout import SESSIONS_KEPT
from sentikit.app.load import (
    BAD_EVERY, RSS_GROWTH_BOUND_MB, TIMEOUT_S, Answer, compare_with_local, plan, rss_growth_mb, running_app, send_all,
    settled_rss_mb, sst2_sentences, warm_up_plan,
)


@dataclass
class LoadReport:
    clients: int
    answers: list[Answer]
    seconds: float  # wall time of the load, warm-up excluded
    rss_before_mb: float
    rss_after_mb: float
    rss_second_round_mb: float | None = None  # after the load sent again, when the first round grew past the bound
    warm_up: int = 0  # requests sent before memory was first read
    checked: int = 0  # good answers compared with an in-process explanation
    mismatches: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Answer]:
        return [a for a in self.answers if a.request.kind == kind]

    @property
    def unanswered(self) -> list[Answer]:
        return [a for a in self.answers if not a.answered]

    @property
    def good_errors(self) -> list[Answer]:
        return [a for a in self.of_kind("good") if a.answered and (a.result is None or a.result.get("text") != a.request.text)]

    @property
    def bad_wrongly_answered(self) -> list[Answer]:
        return [a for a in self.of_kind("bad") if a.answered and not (a.error and a.request.expected_error in a.error)]

    @property
    def rss_growth_mb(self) -> float:
        """Growth over the load; with a second round, the smaller of the two rounds' growths (a leak
        raises both, a stray reading one)."""
        return rss_growth_mb(self.rss_before_mb, self.rss_after_mb, self.rss_second_round_mb)

    def failures(self) -> list[str]:
        """The correctness conditions that failed, one line each (empty: all hold)."""
        failed = []
        if self.unanswered:
            failed.append(f"{len(self.unanswered)} requests unanswered within {TIMEOUT_S} s, e.g. {describe(self.unanswered[0])}")
        if self.good_errors:
            failed.append(f"{len(self.good_errors)} good requests failed, e.g. {describe(self.good_errors[0])}")
        if self.bad_wrongly_answered:
            failed.append(f"{len(self.bad_wrongly_answered)} bad requests not refused as expected, e.g. {describe(self.bad_wrongly_answered[0])}")
        if self.mismatches:
            failed.append(f"{len(self.mismatches)} answers differ from the in-process explanation, e.g. {self.mismatches[0]}")
        if self.rss_growth_mb > RSS_GROWTH_BOUND_MB:
            failed.append(f"the server's memory grew by {self.rss_growth_mb:.1f} MB (bound {RSS_GROWTH_BOUND_MB:g} MB)")
        return failed


def describe(answer: Answer) -> str:
    request = answer.request
    got = f"error {answer.error!r}" if answer.error is not None else ("a result" if answer.result else "nothing")
    return f"{request.kind} {request.name!r} (model {request.model!r}) got {got}"


def run_load(clients: int, requests: int, sample: int = 100, warm_up: int = 2 * SESSIONS_KEPT) -> LoadReport:
    """Start the app, warm it up (see the module docstring), read its memory, send the load, read it
    again, stop the app; then compare a sample of the answers with in-process explanations (after the
    load, so that the comparison does not compete with the server for the CPU)."""
    sentences = sst2_sentences()
    first = warm_up_plan(sentences, warm_up)
    load = plan(requests, sentences)
    with tempfile.TemporaryDirectory() as folder, running_app([], Path(folder) / "app.log") as (url, pid):
        send_all(url, first, clients)
        rss_before = settled_rss_mb(pid)
        start = time.perf_counter()
        answers = send_all(url, load, clients)
        seconds = time.perf_counter() - start
        rss_after = settled_rss_mb(pid)
        rss_again = None
        if rss_after - rss_before > RSS_GROWTH_BOUND_MB:  # a leak, or a stray reading? (rss_growth_mb)
            send_all(url, load, clients)
            rss_again = settled_rss_mb(pid)
    report = LoadReport(clients, answers, seconds, rss_before, rss_after, rss_again, warm_up=len(first))
    report.checked, report.mismatches = compare_with_local(answers, sample)
    return report


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def table(report: LoadReport) -> str:
    good, bad = report.of_kind("good"), report.of_kind("bad")
    latencies = [1000 * a.seconds for a in good if a.answered]
    refused = len(bad) - len(report.bad_wrongly_answered) - sum(not a.answered for a in bad)
    rows = [
        ("requests", f"{len(report.answers)}"),
        ("clients (threads, one connection each)", f"{report.clients}"),
        ("good / bad requests", f"{len(good)} / {len(bad)}"),
        ("warm-up requests before (not counted)", f"{report.warm_up}"),
        ("answered (a result or an error) within the timeout", f"{len(report.answers) - len(report.unanswered)}"),
        ("errors on good requests", f"{len(report.good_errors)}"),
        ("bad requests refused with their message", f"{refused} / {len(bad)}"),
        ("good answers equal to in-process explain", f"{report.checked - len(report.mismatches)} / {report.checked} compared"),
        ("requests/s", f"{len(report.answers) / report.seconds:.1f}"),
        ("latency of good requests p50 / p90 / max (ms)", f"{statistics.median(latencies):.0f} / {percentile(latencies, 0.9):.0f} / {max(latencies):.0f}"),
        ("server RSS after warm-up / after load (MB)", f"{report.rss_before_mb:.1f} / {report.rss_after_mb:.1f}"),
        ("server RSS growth (MB)", f"{report.rss_growth_mb:+.1f} (bound {RSS_GROWTH_BOUND_MB:g})"),
    ]
    if report.rss_second_round_mb is not None:
        rows.insert(-1, ("server RSS after a second round of the load (MB)", f"{report.rss_second_round_mb:.1f}"))
    return "\n".join(["| figure | value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="threads sending at once (default 20)")
    parser.add_argument("--requests", type=int, default=500, help="requests in all, warm-up excluded (default 500)")
    parser.add_argument("--sample", type=int, default=100, help="good answers compared with an in-process explanation (default 100)")
    parser.add_argument("--warm-up", type=int, default=2 * SESSIONS_KEPT, help=f"requests of the mix sent before memory is first read (default {2 * SESSIONS_KEPT})")
    parser.add_argument("--quick", action="store_true", help="CI: 4 clients, 40 requests, a short warm-up, all good answers compared")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests, args.sample, args.warm_up = 4, 40, 40, 8
    if args.clients < 1 or args.requests < 1 or args.warm_up < 0:
        parser.error("--clients and --requests must be at least 1, --warm-up at least 0")
    print(f"python app.py on 127.0.0.1 with the shipped bundles; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"{args.clients} clients, {args.requests} requests (one in {BAD_EVERY} bad)\n")
    report = run_load(args.clients, args.requests, args.sample, args.warm_up)
    print(table(report))
    failures = report.failures()
    print("\nchecks: " + ("all hold" if not failures else "FAILED\n- " + "\n- ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
