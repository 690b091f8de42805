"""The Gradio demo: type a review, see which words each cell's gates kept.

    python app.py                                  # the shipped SST-2 bundles (RNN, LSTM, GRU)
    python app.py --bundle DIR [--bundle DIR ...]  # your own bundles (`sentikit export`)
    python app.py --host 0.0.0.0 --port 8080       # reachable from other machines (default: this one only)

Only the layout lives here; what the page shows for a text is built by `sentikit.app.page`, which is tested
without a server. Besides the page, the app serves a named API endpoint, `/explain` (text, and
optionally a model name), which returns `Explainer.explain`'s JSON: `gradio_client.Client(url).predict(
"a review", api_name="/explain")`.

The app reads bundles only: no checkpoint, no training code path, no network.

What a stranger can send is bounded here, because the API hands a client's JSON to `explain` as it
came. A request body over `MAX_BODY_BYTES` is refused before Gradio reads it (`BodyLimit`); a review
must be text of at most `MAX_REVIEW_CHARS` characters (`check_review`) and a model name short text
(`check_model_name`), or the client gets a one-line message and no model runs. `--concurrency` reviews
are explained at once and `--queue-size` wait, and the queue cannot be skipped (`api_open=False`).
The page takes no uploads; an unexpected failure reaches the client named, its traceback only in the
log. Memory stays flat under load (`SESSIONS_KEPT`, `limit_malloc_arenas`): `benchmarks/app_load.py`
sends 20 clients' 500 requests, bad ones among them, to a running app and checks all of this.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
from pathlib import Path
from typing import Any

from sentikit.errors import ConfigError
from sentikit.app.page import HIGHLIGHTS, DemoModel, explain_one, explain_review, find_model, legend_html, load_models, model_view, survival_frame

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "bundles"
DEFAULT_BUNDLES = [SHIPPED / f"sst2-{cell}" for cell in ("rnn", "lstm", "gru")]
LOG = logging.getLogger("sentikit.app.layout")

# The longest review the server accepts. The shipped models read the first 128 tokens and the page
# greys out at most 2,000 more characters, so past that a review only costs: tokenizing it and sending it
# back in the JSON, both linear in its length, a request that a few clients could repeat to keep the
# server busy (docs/reliability.md has the timings). Library callers (`explain_one`, `sentikit explain`)
# have no limit: their input is their own.
MAX_REVIEW_CHARS = 20_000
# Gradio reads and parses a request's whole body before `check_review` sees the text, so a huge body
# costs time and memory before it can be refused. The longest accepted review takes at most 12 bytes of
# JSON a character (an emoji escaped as two surrogates); bodies past 2 MB are refused unread
# (`BodyLimit`), and a too-long review of up to about 2,000,000 characters still gets `check_review`'s
# message, which names its length.
MAX_BODY_BYTES = 2_000_000
MAX_MODEL_NAME_CHARS = 200  # a bundle's folder name; longer is not a name, and is not echoed back
# The page takes no files, but Gradio accepts uploads on every app (`/gradio_api/upload`), without a
# limit unless one is set: a stranger could fill the disk. This is the smallest size Gradio takes.
MAX_UPLOAD_BYTES = 1
# Gradio keeps a copy of the page's state for every session, and every plain HTTP API call
# (`/gradio_api/call/explain`) is a session of its own, kept until `state_session_capacity` newer ones
# push it out; Gradio's default, 10,000, lets API clients grow the server by gigabytes. Twice the default
# queue is enough. A browser tab pushed out only loses its last explanation for the highlight toggle:
# press Explain again.
SESSIONS_KEPT = 128

# Written for this project. The first is the cereal review of the reference articles' intuition; the
# next turns late, the two after it are decided by their first word, which the plain RNN has mostly
# forgotten by the end (it is far less sure of them than the LSTM).
EXAMPLES = [
    "This cereal is amazing: crunchy, fresh and full of flavour. I gave a box to all my friends. Definitely buying it again.",
    "I expected to hate this film, with its tired plot and wooden cast in the first hour, "
    "but the ending is moving and beautifully shot.",
    "Awful. The film has a famous cast, a big budget, colourful sets, a busy soundtrack and a song over the final credits.",
    "Brilliant. The plot follows a man, his brother and their old car across the country for two hours, stopping at every town on the way.",
    "not good , not bad , just forgettable .",
    "The service was slow and the soup was cold, yet the dessert alone was worth the trip.",
]

INTRO = """# sentikit: what the gates kept

Type a review and press **Explain**. Each column is one model reading the same text: a plain RNN, an LSTM
and a GRU trained on the same SST-2 sentences. Words are coloured by how much they pushed the prediction
(the exact split of the logits through the LSTM's and GRU's gates; leave-one-out occlusion for the RNN,
which has no gates). Switch the highlight to **retention** to see how much of each word's write is still in
the final memory: the gated cells hold on to the words that matter, while the plain RNN's memory of early
words fades (its curve is the gradient of the final state, the vanishing gradient).

The shipped models are bidirectional: their backward half reads the review from the end, so the first
words are its most recent ones, which is why the opening word keeps a share of the memory.

Conventions are PyTorch's. LSTM: `c_t = f_t * c_(t-1) + i_t * g_t`, `h_t = o_t * tanh(c_t)`, a forget gate near 1
keeps the old memory. GRU: `h_t = (1 - z_t) * n_t + z_t * h_(t-1)`: the update gate `z` shown here is the share
of the **old** state kept (many articles call `1 - z` the update gate)."""

CSS = """
.sk-highlight { line-height: 2.1; font-size: 1.05rem; white-space: pre-wrap; }
.sk-word { border-radius: 4px; padding: 1px 2px; }
.sk-unread { color: #9ca3af; }
.sk-swatch { display: inline-block; width: 1em; height: 1em; border-radius: 3px; vertical-align: middle; }
.sk-gates { overflow-x: auto; }
.sk-gates table { border-collapse: collapse; font-size: 0.8rem; }
.sk-gates td { min-width: 1.6em; height: 1.6em; border: 1px solid #e5e7eb; }
.sk-gates th { font-weight: normal; padding: 2px 4px; white-space: nowrap; }
.sk-gates tr:first-child th { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; }
.sk-gates th.sk-gate { text-align: right; }
.sk-note { font-size: 0.8rem; color: #6b7280; }
"""


def check_review(text: object) -> str:
    """`text` if the server explains it, else a `ConfigError` saying why in one line.

    The page's textbox always sends a string, but the API does not convert what a client sends: `None`, a
    number, a list or a dict arrive as they are. JSON may also carry a lone UTF-16 surrogate (`"\\ud800"`),
    which Python accepts in a `str` but the tokenizer cannot read and no JSON response can carry. The
    length is checked first, so that nothing else scans a huge string; an empty review is left to
    `explain_one`, which says so for library callers too."""
    if not isinstance(text, str):
        raise ConfigError(f"the review must be text (a JSON string), got {type(text).__name__}")
    if len(text) > MAX_REVIEW_CHARS:
        raise ConfigError(
            f"the review is too long: {len(text):,} characters received, the limit is {MAX_REVIEW_CHARS:,} "
            "(the models read only its beginning)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(f"the review is not valid Unicode: a lone surrogate at character {error.start}") from None
    return text


def check_model_name(name: object) -> str:
    """`name` if it can name a served model (`None` and `""` mean the first), else a `ConfigError`."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise ConfigError(f"the model name must be text such as 'sst2-gru' or 'gru', got {type(name).__name__}")
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise ConfigError(f"no served model has a {len(name):,}-character name")
    return name


class BodyLimit:
    """ASGI middleware: refuses a request whose body is over `limit` bytes (413) before Gradio reads it.

    A declared `Content-Length` is checked before anything is read; a body sent in chunks without one is
    cut off where it passes the limit (the app sees the client go away)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            message = f"the request body is over {self.limit:,} bytes".encode()
            await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            return await send({"type": "http.response.body", "body": message})
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted_receive, send)


def build_app(models: list[DemoModel]):
    """The page for `models` (one column each), with the `/explain` API endpoint and a bounded queue."""
    import gradio as gr

    def user_error(error: Exception) -> Exception:
        """A message for the page, never a traceback: user mistakes as they are; bugs logged with their
        traceback and named to the client by type only, since their message may carry server internals
        (a TorchScript error holds the serialised code and its file paths)."""
        if isinstance(error, (ConfigError, FileNotFoundError)):
            LOG.info("refused: %s", error)  # one line: a client's mistake is not the server's problem
            return gr.Error(str(error), print_exception=False)
        LOG.exception("explaining a review failed")
        message = f"sentikit could not explain this review: an internal error ({type(error).__name__}), logged on the server"
        return gr.Error(message, print_exception=False)

    def show(models_reports: list[dict[str, Any]] | None, highlight: str) -> list[Any]:
        if not models_reports:
            return [gr.skip()] * (4 * len(models) + 2)
        outputs: list[Any] = [legend_html(models, highlight)]
        for model, report in zip(models, models_reports):
            view = model_view(model, report, highlight)
            outputs += [view.summary, view.probabilities, view.highlight, view.gates]
        outputs.append(survival_frame(models, models_reports))
        return outputs

    def explain_page(text: str, highlight: str) -> list[Any]:
        try:
            reports = explain_review(models, check_review(text))
        except Exception as error:  # noqa: BLE001 - shown as a message, see user_error
            raise user_error(error) from None
        return [reports] + show(reports, highlight)

    def explain(text: str, model: str = "") -> dict[str, Any]:
        """Explain a review with one served model (default: the first): label, probabilities, logits, the
        head's bias, the method, and per word its character span, contributions (one per class),
        retention, memory decay and gate means."""
        try:
            return explain_one(find_model(models, check_model_name(model)), check_review(text))
        except Exception as error:  # noqa: BLE001
            raise user_error(error) from None

    with gr.Blocks(title="sentikit: what the gates kept") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=4):
                review = gr.Textbox(
                    label="Review", lines=4, max_lines=12, max_length=MAX_REVIEW_CHARS, elem_id="review",
                    placeholder=f"Type or paste a review (up to {MAX_REVIEW_CHARS:,} characters)",
                )
            with gr.Column(scale=1, min_width=200):
                highlight = gr.Radio(list(HIGHLIGHTS), value="contribution", label="Highlight", elem_id="highlight")
                button = gr.Button("Explain", variant="primary", elem_id="explain-button")
        gr.Examples(EXAMPLES, inputs=review, label="Examples")
        legend = gr.HTML(legend_html(models, "contribution"), elem_id="legend")
        reports = gr.State(None)
        columns: list[Any] = []
        with gr.Row(equal_height=False):
            for index, model in enumerate(models):
                with gr.Column(min_width=280):
                    gr.Markdown(f"### {model.title}")
                    summary = gr.Markdown(elem_id=f"summary-{index}")
                    probabilities = gr.Label(label="Prediction", show_label=False, elem_id=f"prediction-{index}")
                    words = gr.HTML(elem_id=f"highlight-{index}", elem_classes=["sk-model-highlight"])
                    gates = gr.HTML(elem_id=f"gates-{index}")
                    columns += [summary, probabilities, words, gates]
        survival = gr.LinePlot(
            x="position", y="share", color="model", tooltip=["word", "share", "model"],
            title="How much of each word survives to the end", x_title="word position", y_title="share of the final state",
            elem_id="survival",
        )
        outputs = [legend] + columns + [survival]
        event = {"fn": explain_page, "inputs": [review, highlight], "outputs": [reports] + outputs, "api_visibility": "private"}
        button.click(**event)
        review.submit(**event)
        highlight.change(show, inputs=[reports, highlight], outputs=outputs, api_visibility="private", queue=False)
        gr.api(explain, api_name="explain")
    return demo


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Ask glibc to share `arenas` malloc arenas among all threads (Linux with glibc; elsewhere a no-op).

    Gradio runs every request in one of up to 40 worker threads, and replaces idle ones. glibc gives
    threads arenas of their own, up to 8 per core, and each arena keeps the freed buffers of the largest
    requests it served (an RNN's occlusion batch, a long review's JSON), so the server's resident memory
    climbs for thousands of requests before it levels off. `--concurrency` reviews run at once, so two
    arenas are enough (`benchmarks/app_load.py` measures the growth, docs/results.md has it)."""
    m_arena_max = -8  # M_ARENA_MAX in glibc's malloc.h
    try:
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, arenas)
    except (OSError, AttributeError):  # not glibc: its allocator has its own policy
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="The sentikit demo: which words each cell's gates kept.")
    parser.add_argument("--bundle", action="append", default=[], help="a bundle folder or .zip to serve (repeat for several; default: the shipped SST-2 RNN, LSTM and GRU)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs internet)")
    parser.add_argument("--concurrency", type=int, default=2, help="reviews explained at once; more wait in the queue (default 2)")
    parser.add_argument("--queue-size", type=int, default=64, help="requests that may wait before new ones are turned away (default 64)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network: nothing is reported anywhere
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.concurrency < 1 or args.queue_size < 1:
            raise ConfigError("--concurrency and --queue-size must be at least 1")
        if not 0 < args.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
        paths = args.bundle or DEFAULT_BUNDLES
        if not args.bundle and not all(path.exists() for path in paths):
            raise ConfigError(f"the shipped bundles are not in {SHIPPED} (is this a copy of the repository?); pass --bundle DIR")
        models = load_models(paths)
    except (ConfigError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    explain_review(models, EXAMPLES[0])  # TorchScript optimises a method on its first calls: not on a user's time
    from starlette.middleware import Middleware

    demo = build_app(models)
    # api_open=False: Gradio otherwise opens `/gradio_api/run/<name>` off Hugging Face Spaces, a route
    # that runs a queued event at once, past the concurrency limit and the queue's size.
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size, api_open=False)
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, css=CSS, footer_links=["api"],
        show_error=False,  # Gradio's default, said aloud: an exception that is not a gr.Error reaches a client as `null`
        max_file_size=MAX_UPLOAD_BYTES, state_session_capacity=SESSIONS_KEPT,
        app_kwargs={"middleware": [Middleware(BodyLimit, limit=MAX_BODY_BYTES)]},
    )
