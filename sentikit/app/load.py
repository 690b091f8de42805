"""Drive a running demo app as its users do: `python app.py` in a process of its own, called over plain HTTP.

This lives in the package because two places drive a running app the same way: the load benchmark
(`benchmarks/app_load.py`, many clients at once) and the tests (`tests/test_app.py`). A benchmark is a
script, not a module a test imports, so what both need is written once here: starting the app on a free
port and stopping it (`running_app`), one request to `/explain` through Gradio's plain HTTP API, the
route `curl` users take (`call`), many clients at once (`send_all`), the bad inputs with the messages
they must get (`BAD_INPUTS`) and odd but valid reviews (`ODD_REVIEWS`), the mix of a load (`plan`), and
the server's memory (`settled_rss_mb`, `rss_growth_mb`). Nothing else in the package imports it: it
starts the `app.py` of a source checkout, and needs `httpx`, which Gradio brings.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pyarrow.parquet as pq

from sentikit.app.layout import DEFAULT_BUNDLES, MAX_BODY_BYTES, MAX_REVIEW_CHARS, SESSIONS_KEPT
from sentikit.app.page import explain_one, find_model, load_models

REPO = Path(__file__).resolve().parents[2]  # the checkout: app.py and data/ beside sentikit/
STARTUP_S = 120  # loading six bundles and warming TorchScript up takes seconds; a cold disk more
TIMEOUT_S = 120  # one request, queue wait included: beyond this it counts as unanswered (a hang)
# The most a server's resident memory may grow over a load. Twice the highest growth of the app as
# shipped, and below what Gradio's default session store grew by (docs/results.md has both): it catches
# a server that keeps 150 KB or more per request (an explanation's tensors, a copy of the page's state),
# not a few bytes.
RSS_GROWTH_BOUND_MB = 75.0
BAD_EVERY = 5  # one request in five is a bad input
ODD_EVERY = 25  # one good request in 25 is an odd but valid review
# A cell picks that cell's model for the review's language, "" the first model of it: for the English
# sentences of a load, the English LSTM, GRU, RNN (`page.find_model`).
MODELS = ("rnn", "lstm", "gru", "")

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


def sst2_sentences() -> list[str]:
    """The SST-2 validation sentences of the checkout's data/: the good reviews of a load."""
    return pq.read_table(REPO / "data" / "sst2" / "validation.parquet").column("text").to_pylist()


def plan(requests: int, sentences: list[str]) -> list[Request]:
    """The requests in the order they are queued: every `BAD_EVERY`-th a bad input (cycling through
    `BAD_INPUTS`), the others `sentences` over the models, every `ODD_EVERY`-th good one odd."""
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


def warm_up_plan(sentences: list[str], requests: int = 2 * SESSIONS_KEPT) -> list[Request]:
    """What to send before memory is first read: the heaviest requests (reviews just under the length
    limit to every model, 1,000,000-character refusals), then `requests` of a load's mix (by default
    twice the sessions the app keeps). So the malloc arenas have held the largest buffers a request needs
    and Gradio's session store is full; what a load adds after that is what the server keeps per request.
    The mix reads `sentences` from the end, so that a load's first requests are not repeats."""
    heaviest = [Request("good", "odd", ODD_REVIEWS[-1], model) for model in ("rnn", "lstm", "gru")] * 8
    heaviest += [Request("bad", *BAD_INPUTS[2])] * 6
    return heaviest + plan(requests, sentences[::-1])


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid` in MB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def settled_rss_mb(pid: int, seconds: float = 3.0, samples: int = 15) -> float:
    """The lowest of `samples` readings of `rss_mb` over `seconds` of an idle server. Right after the last
    answer, the server is still closing event streams and freeing the last requests' buffers, and a single
    reading can catch that, far above the idle figure (docs/results.md)."""
    readings = []
    for _ in range(samples):
        readings.append(rss_mb(pid))
        time.sleep(seconds / samples)
    return min(readings)


def rss_growth_mb(before: float, after: float, second_round: float | None = None) -> float:
    """The server's memory growth over a load, from settled readings before and after it. A growth past
    `RSS_GROWTH_BOUND_MB` is checked by sending the same load again (`second_round`: the reading after it)
    because settled readings still stray now and then: the growth is then the smaller of the two rounds'.
    A server that keeps memory per request grows past the bound in both rounds; a stray reading does not
    repeat."""
    first = after - before
    return first if second_round is None else min(first, second_round - after)


def compare_with_local(answers: list[Answer], sample: int) -> tuple[int, list[str]]:
    """Label and probabilities of `sample` good answers (spread evenly) against `explain_one` in this
    process on the shipped bundles: (how many were compared, the differences). Probabilities agree to
    1e-4, not exactly: the server may use other thread counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates torch.jit, which bundles use
        models = load_models(DEFAULT_BUNDLES)
    good = [a for a in answers if a.request.kind == "good" and a.result is not None]
    step = max(1, len(good) // sample) if sample else len(good) + 1
    chosen = good[::step][:sample]
    differences = []
    for answer in chosen:
        expected = explain_one(find_model(models, answer.request.model, answer.request.text), answer.request.text)
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
