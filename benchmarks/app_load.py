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

Checked (the exit code is 1 if one fails; speed is printed, never judged):

- every request is answered, with a result or an error message, within `TIMEOUT_S`: nothing hangs;
- no good request gets an error, and each answer is about its own text (`text` comes back unchanged);
- every bad request gets an error whose message names its problem (`BAD_INPUTS`);
- for a sample of good requests, label and probabilities equal those of an in-process `explain_one` on
  the same bundles (probabilities to 1e-4: the server may use other thread counts);
- the server's resident memory (VmRSS) after the load is at most `RSS_GROWTH_BOUND_MB` above what it
  was after the warm-up; where it is not, the load is sent a second time, and the server fails only if
  its memory grows past the bound over that round too.

The warm-up first sends the heaviest requests (reviews just under the length limit to every model,
1,000,000-character refusals), then `--warm-up` requests of the load's mix (default: twice the sessions
the app keeps, `sentikit.app.layout.SESSIONS_KEPT`). So, before memory is first read, the malloc arenas have
held the largest buffers a request needs and Gradio's session store is full; what the load adds after
that is what the server keeps per request. Memory is read as the lowest of several readings over a
few seconds of idle (`settled_rss_mb`). Why 75 MB, measured on a 2-core machine: the app as it is grew
by 20 to 36 MB over 500 requests (three runs of settled readings; single readings had given -39 to +67
MB, the noise that made a bound of 50 MB fail in CI), and by 30 MB over 3,000; with Gradio's default
session store (10,000 sessions of 75-190 KB, one per API call) it grew by 108 MB over 500, and without
the app's limit of two malloc arenas by 28 to 93 MB over 500 and 183 MB over 5,000. The bound is twice
the highest figure of the app as it is and below the session leak: it catches a server that keeps
150 KB or more per request (an explanation's tensors, a copy of the page's state), not a few bytes.
Settled readings still strayed once in some twenty CI runs (+76.6 MB, where runs on their own gave +3 to
+33), so a growth past the bound is checked by a second round of the same load: a server that keeps
memory per request grows past the bound again, while an outlier reading does not repeat.

    python benchmarks/app_load.py                          # 20 clients, 500 requests
    python benchmarks/app_load.py --quick                  # CI: 4 clients, 40 requests
    python benchmarks/app_load.py --clients 8 --requests 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pyarrow.parquet as pq

from sentikit.app.layout import DEFAULT_BUNDLES, MAX_BODY_BYTES, MAX_REVIEW_CHARS, SESSIONS_KEPT
from sentikit.app.page import explain_one, find_model, load_models

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 120  # loading three bundles and warming TorchScript up takes ~10 s here; a cold disk more
TIMEOUT_S = 120  # one request, queue wait included: beyond this it counts as unanswered (a hang)
RSS_GROWTH_BOUND_MB = 75.0  # see the module docstring
BAD_EVERY = 5  # one request in five is a bad input
ODD_EVERY = 25  # one good request in 25 is an odd but valid review
MODELS = ("rnn", "lstm", "gru", "")  # "" is the app's default: the first bundle (the RNN)

# name, text, model, a fragment of the error message that must come back
BAD_INPUTS: list[tuple[str, Any, Any, str]] = [
    ("empty review", "", "gru", "the review is empty"),
    ("whitespace only", " \n\t\u00a0 ", "lstm", "the review is empty"),
    ("1,000,000 characters", "so very long . " * 66_667, "gru", "the review is too long: 1,000,005 characters received"),
    ("10,000,000 characters", "x" * 10_000_000, "lstm", f"HTTP 413: the request body is over {MAX_BODY_BYTES:,} bytes"),
    ("unknown model", "a fine film", "bert", "no served model is called 'bert'"),
    ("text null", None, "gru", "the review must be text (a JSON string), got NoneType"),
    ("text a number", 42, "rnn", "the review must be text (a JSON string), got int"),
    ("text a list", ["a fine film"], "lstm", "the review must be text (a JSON string), got list"),
    ("text a dict", {"text": "a fine film"}, "gru", "the review must be text (a JSON string), got dict"),
    ("model a number", "a fine film", 7, "the model name must be text"),
    ("lone surrogate", "a fine \ud800 film", "gru", "the review is not valid Unicode: a lone surrogate at character 7"),
]
ODD_REVIEWS = [
    "a warm\x00 film\x07 with a \x1b[31mbrilliant\x1b[0m cast\r\n\x0b",  # control characters
    "the best film of the year \U0001f600\U0001f3ac \u200b\u200b !",  # emoji, zero-width spaces
    ("an utterly charming , moving film . " * 600)[: MAX_REVIEW_CHARS - 1],  # just under the limit: read truncated
]


@dataclass
class Request:
    kind: str  # "good" or "bad"
    name: str  # the bad input's name, or "sst2" / "odd"
    text: Any
    model: Any
    expected_error: str = ""  # bad inputs: a fragment of the message


@dataclass
class Answer:
    request: Request
    result: dict[str, Any] | None = None  # the explanation, for an answered good request
    error: str | None = None  # the message of an error event, a refused POST or a broken connection
    answered: bool = False  # False: the request timed out or the connection broke
    seconds: float = 0.0


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
        first = self.rss_after_mb - self.rss_before_mb
        if self.rss_second_round_mb is None:
            return first
        return min(first, self.rss_second_round_mb - self.rss_after_mb)

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(args: list[str], log: Path) -> Iterator[tuple[str, int]]:
    """`python app.py ARGS` on 127.0.0.1 and a free port, as a user starts it: yields its URL and process
    id once its page answers, stops it afterwards. Its output goes to `log`, shown if it fails to start."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer on {url} within {STARTUP_S} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call(http: httpx.Client, url: str, text: Any, model: Any, timeout: float = TIMEOUT_S) -> tuple[dict | None, str | None]:
    """One request to `/explain` through Gradio's plain HTTP API: (the explanation, None) or (None, the
    error message). Raises `TimeoutError` past `timeout`, `httpx.HTTPError` if the connection breaks.

    The body is JSON with `ensure_ascii`, so a lone surrogate travels as `\\ud800`, as any JSON client may
    send it. A POST the server refuses (e.g. a full queue: 503) is an error answer too."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"data": [text, model]}).encode()
    posted = http.post(f"{url}/gradio_api/call/explain", content=body, headers={"content-type": "application/json"}, timeout=timeout)
    if posted.status_code != 200:
        return None, f"HTTP {posted.status_code}: {posted.text[:200]}"
    event_id = posted.json()["event_id"]
    event = None
    with http.stream("GET", f"{url}/gradio_api/call/explain/{event_id}", timeout=timeout) as stream:
        for line in stream.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout} s")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line.split(":", 1)[1])
                if event == "complete":
                    return data[0], None
                message = data.get("error") if isinstance(data, dict) else None  # None: an exception Gradio hides
                return None, str(message) if message else "an error without a message"
    raise httpx.RemoteProtocolError("the event stream ended without an answer")


def plan(requests: int, sentences: list[str]) -> list[Request]:
    """The requests in the order they are queued: every `BAD_EVERY`-th a bad input (cycling through
    `BAD_INPUTS`), the others SST-2 sentences over the models, every `ODD_EVERY`-th good one odd."""
    planned, good, bad = [], 0, 0
    for index in range(requests):
        if index % BAD_EVERY == BAD_EVERY - 1:
            name, text, model, message = BAD_INPUTS[bad % len(BAD_INPUTS)]
            planned.append(Request("bad", name, text, model, message))
            bad += 1
            continue
        model = MODELS[good % len(MODELS)]
        if good % ODD_EVERY == ODD_EVERY - 1:
            planned.append(Request("good", "odd", ODD_REVIEWS[(good // ODD_EVERY) % len(ODD_REVIEWS)], model))
        else:
            planned.append(Request("good", "sst2", sentences[good % len(sentences)], model))
        good += 1
    return planned


def send_all(url: str, requests: list[Request], clients: int) -> list[Answer]:
    """`requests` from `clients` threads at once, each thread with its own connection; answers in order."""
    local = threading.local()
    opened: list[httpx.Client] = []

    def send(request: Request) -> Answer:
        if not hasattr(local, "http"):
            local.http = httpx.Client()
            opened.append(local.http)
        answer = Answer(request)
        start = time.perf_counter()
        try:
            answer.result, answer.error = call(local.http, url, request.text, request.model)
            answer.answered = True
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            answer.error = f"{type(error).__name__}: {error}"
        answer.seconds = time.perf_counter() - start
        return answer

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            return list(pool.map(send, requests))
    finally:
        for http in opened:
            http.close()


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid` in MB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def settled_rss_mb(pid: int, seconds: float = 3.0, samples: int = 15) -> float:
    """The lowest of `samples` readings of `rss_mb` over `seconds` of an idle server. Right after the last
    answer, the server is still closing event streams and freeing the last requests' buffers, and one
    reading caught that at anything up to 70 MB above the idle figure."""
    readings = []
    for _ in range(samples):
        readings.append(rss_mb(pid))
        time.sleep(seconds / samples)
    return min(readings)


def compare_with_local(answers: list[Answer], sample: int) -> tuple[int, list[str]]:
    """Label and probabilities of `sample` good answers (spread evenly) against `explain_one` in this
    process on the same bundles: (how many were compared, the differences)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates torch.jit, which bundles use
        models = load_models(DEFAULT_BUNDLES)
    good = [a for a in answers if a.request.kind == "good" and a.result is not None]
    step = max(1, len(good) // sample) if sample else len(good) + 1
    chosen = good[::step][:sample]
    differences = []
    for answer in chosen:
        expected = explain_one(find_model(models, answer.request.model), answer.request.text)
        got = answer.result
        same = got["label"] == expected["label"] and got["cell"] == expected["cell"] and all(
            abs(a - b) <= 1e-4 for a, b in zip(got["probabilities"], expected["probabilities"])
        )
        if not same:
            differences.append(
                f"{answer.request.text[:40]!r} on {answer.request.model or 'default'}: server {got['label']} "
                f"{got['probabilities']}, in-process {expected['label']} {expected['probabilities']}"
            )
    return len(chosen), differences


def run_load(clients: int, requests: int, sample: int = 100, warm_up: int = 2 * SESSIONS_KEPT) -> LoadReport:
    """Start the app, warm it up (see the module docstring), read its memory, send the load, read it
    again, stop the app; then compare a sample of the answers with in-process explanations (after the
    load, so that the comparison does not compete with the server for the CPU)."""
    sentences = pq.read_table(REPO / "data" / "sst2" / "validation.parquet").column("text").to_pylist()
    heaviest = [Request("good", "odd", ODD_REVIEWS[-1], model) for model in ("rnn", "lstm", "gru")] * 8
    heaviest += [Request("bad", *BAD_INPUTS[2])] * 6
    first = heaviest + plan(warm_up, sentences[::-1])
    load = plan(requests, sentences)
    with tempfile.TemporaryDirectory() as folder, running_app([], Path(folder) / "app.log") as (url, pid):
        send_all(url, first, clients)
        rss_before = settled_rss_mb(pid)
        start = time.perf_counter()
        answers = send_all(url, load, clients)
        seconds = time.perf_counter() - start
        rss_after = settled_rss_mb(pid)
        rss_again = None
        if rss_after - rss_before > RSS_GROWTH_BOUND_MB:  # a leak, or a stray reading? (module docstring)
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
