"""The Gradio demo: type a review, see which words each cell's gates kept.

    python app.py                                  # the shipped bundles: English and Chinese reviews (RNN, LSTM, GRU each)
    python app.py --bundle DIR [--bundle DIR ...]  # your own bundles (`sentikit export`)
    python app.py --host 0.0.0.0 --port 8080       # reachable from other machines (default: this one only)

Only the layout lives here; what the page shows for a text is built by `sentikit.app.page`, which is tested
without a server. A review goes to the models of its language (`page.route_review`: English, Chinese, or
Japanese read by the Chinese models), whose columns the page shows; the page's own text follows the
browser's language (`app/i18n.py`). Besides the page, the app serves a named API endpoint, `/explain`
(text, and optionally a model name), which returns `Explainer.explain`'s JSON: `gradio_client.Client(url).predict(
"a review", api_name="/explain")`; without a model name, the review's language picks the first model of it.

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

# No `from __future__ import annotations` here: Gradio hands a page's request to an event function whose
# parameter is annotated `gr.Request`, and finds that annotation with `typing.get_type_hints`, which cannot
# resolve the name `gr` imported inside `build_app` from a string.
import argparse
import ctypes
import json
import logging
import os
from pathlib import Path
from typing import Any

from sentikit.errors import ConfigError
from sentikit.app.i18n import STATIC, gradio_translations, message
from sentikit.app.language import LANGUAGE_NAMES, LANGUAGES, Route, page_language, route
from sentikit.app.page import (
    HIGHLIGHTS, DemoModel, explain_one, explain_review, find_model, legend_html, load_models, model_view, route_review, survival_frame,
)

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "bundles"
# English first: the first served model is the API's default for a review in no served language. The
# SST-2-only bundles (`sst2-*`) are shipped too, for comparison, but not served unless named.
SHIPPED_BUNDLES = [SHIPPED / f"{data}-{cell}" for data in ("english", "zh-shopping") for cell in ("rnn", "lstm", "gru")]
# A checkout without some of them serves the others (`main` names the missing ones in its log).
DEFAULT_BUNDLES = [path for path in SHIPPED_BUNDLES if path.exists()]
LOG = logging.getLogger("sentikit.app.layout")

# The longest review the server accepts. The page reads the first 256 tokens (`page.MAX_PAGE_TOKENS`; the
# Chinese models 200 characters) and greys out at most 2,000 more characters, so
# past that a review only costs: tokenizing it and sending it
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
# forgotten by the end (it is far less sure of them than the LSTM); the last ones are short reviews of
# products and services, the kind people type.
EXAMPLES = [
    "This cereal is amazing: crunchy, fresh and full of flavour. I gave a box to all my friends. Definitely buying it again.",
    "I expected to hate this film, with its tired plot and wooden cast in the first hour, "
    "but the ending is moving and beautifully shot.",
    "Awful. The film has a famous cast, a big budget, colourful sets, a busy soundtrack and a song over the final credits.",
    "Brilliant. The plot follows a man, his brother and their old car across the country for two hours, stopping at every town on the way.",
    "not good , not bad , just forgettable .",
    "The service was slow and the soup was cold, yet the dessert alone was worth the trip.",
    "Stopped charging after two weeks. Sent it back.",
    "Quiet, powerful and easy to empty. Best vacuum I have owned.",
    "The hotel room was clean but the walls were paper thin and breakfast was a joke.",
]

# Written for this project, each read by the Chinese GRU as the comment says: the cereal review again
# (positive; 脆, 香 and 好吃 push it most, and the gates keep 再买 to the end), one that turns late, one
# mixed, one negative, and a Japanese one, which the Chinese models read (`language.route`).
ZH_EXAMPLES = [
    "这款麦片超级好吃：又脆又香，甜度刚好，我肯定还会再买。",
    "以为这部手机会很卡，没想到用起来非常流畅，拍照也很清晰。",
    "屏幕很清晰，电池也耐用，就是价格有点贵。",
    "质量太差了，用了两天就坏了，客服也不理人，再也不会买了。",
    "このシリアルはとても美味しい。サクサクで甘すぎない。また買います。",
]
# The browser tab's title in the browser's language (Gradio translates the page, not the tab's title).
TITLE_JS = """() => {
  const titles = %s;
  const language = (navigator.language || "en").split("-")[0];
  if (titles[language]) document.title = titles[language];
}""" % json.dumps({language: texts["title"] for language, texts in STATIC.items()}, ensure_ascii=False)

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
.sk-gates tr:first-child th:is([lang="zh"], [lang="ja"]) { transform: none; text-align: right; }  /* characters upright, top to bottom */
.sk-gates th.sk-gate { text-align: right; }
.sk-note { font-size: 0.8rem; color: #6b7280; }
#route-note { color: #92400e; }
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
        raise ConfigError(f"the model name must be text such as 'english-gru' or 'gru', got {type(name).__name__}")
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


def translations(models: list[DemoModel]):
    """The page's fixed texts in every language as Gradio's `gr.I18n` (`app/i18n.py`), with each model's
    column heading (`sk_model_<index>`), for `Blocks.launch(i18n=...)`."""
    import gradio as gr

    headings = {language: {f"model_{i}": f"### {m.heading(language)}" for i, m in enumerate(models)} for language in LANGUAGES}
    return gr.I18n(**gradio_translations(headings, limit=f"{MAX_REVIEW_CHARS:,}"))


def build_app(models: list[DemoModel]):
    """The page for `models` (one column each, grouped by language), with the `/explain` API endpoint and a
    bounded queue. A review shows the columns of the models that read it (`route_review`)."""
    import gradio as gr

    groups: dict[str, list[int]] = {}  # language -> the indices of its models, in the served order
    for index, model in enumerate(models):
        groups.setdefault(model.language, []).append(index)
    i18n = translations(models)  # its keys; `main` hands the texts to `launch`

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

    def language_of(request: gr.Request | None) -> str:
        return page_language(request.headers.get("accept-language") if request else None)

    def shown_groups(readers: list[int]) -> list[Any]:
        return [gr.update(visible=any(i in readers for i in group)) for group in groups.values()]

    def plot(frame: Any, language: str) -> Any:
        return gr.update(
            value=frame, title=STATIC[language]["plot_title"], x_title=STATIC[language]["plot_x"], y_title=STATIC[language]["plot_y"]
        )

    def note(reading: Route, language: str) -> str:
        if reading.note is None:
            return ""
        read_as = message(f"language_{reading.language}", language)
        return message(f"note_{reading.note}", language, read_as=read_as)

    def show(reading: tuple[Route, list[dict[str, Any]]] | None, highlight: str, request: gr.Request) -> list[Any]:
        """Everything below the examples for `reading` (the route and its models' reports), in the page's language."""
        if not reading:
            return [gr.skip()] * (2 + len(groups) + 4 * len(models) + 1)
        language = language_of(request)
        chosen, reports = reading
        readers = [models[i] for i in chosen.models]
        outputs: list[Any] = [note(chosen, language), legend_html(readers, highlight, language)] + shown_groups(chosen.models)
        by_index = dict(zip(chosen.models, reports))
        for index, model in enumerate(models):
            if index not in by_index:
                outputs += [gr.skip()] * 4  # a hidden column keeps its last review until it reads another
                continue
            view = model_view(model, by_index[index], highlight, language)
            outputs += [view.summary, view.probabilities, view.highlight, view.gates]
        outputs.append(plot(survival_frame(readers, reports, language), language))
        return outputs

    def explain_page(text: str, highlight: str, language: str, request: gr.Request) -> list[Any]:
        try:
            text = check_review(text)
            chosen = route_review(models, text, language if language in LANGUAGES else "auto")
            reading = (chosen, explain_review([models[i] for i in chosen.models], text))
        except Exception as error:  # noqa: BLE001 - shown as a message, see user_error
            raise user_error(error) from None
        return [reading] + show(reading, highlight, request)

    def on_load(request: gr.Request) -> list[Any]:
        """The legend and the columns a review in the page's language would go to, before any review."""
        language = language_of(request)
        readers = route([m.language for m in models], language).models
        return [legend_html([models[i] for i in readers], "contribution", language)] + shown_groups(readers)

    def explain(text: str, model: str = "") -> dict[str, Any]:
        """Explain a review with one served model: label, probabilities, logits, the head's bias, the method,
        and per word its character span, contributions (one per class), retention, memory decay and gate
        means. `model` is a bundle name, or a cell (`lstm`) or nothing, which pick among the models of
        the review's language (`find_model`)."""
        try:
            text = check_review(text)
            return explain_one(find_model(models, check_model_name(model), text), text)
        except Exception as error:  # noqa: BLE001
            raise user_error(error) from None

    first = models[0].language
    with gr.Blocks(title=STATIC["en"]["title"]) as demo:
        gr.Markdown(i18n("sk_intro"))
        with gr.Row():
            with gr.Column(scale=4):
                review = gr.Textbox(
                    label=i18n("sk_review"), lines=4, max_lines=12, max_length=MAX_REVIEW_CHARS, elem_id="review",
                    placeholder=i18n("sk_placeholder"),
                )
            with gr.Column(scale=1, min_width=200):
                language = gr.Radio(
                    [(i18n("sk_auto"), "auto")] + [(LANGUAGE_NAMES[code], code) for code in LANGUAGES],
                    value="auto", label=i18n("sk_language"), elem_id="language",
                )
                highlight = gr.Radio(
                    [(i18n(f"sk_{name}"), name) for name in HIGHLIGHTS], value="contribution", label=i18n("sk_highlight"),
                    elem_id="highlight",
                )
                button = gr.Button(i18n("sk_explain"), variant="primary", elem_id="explain-button")
        with gr.Row():
            if "en" in groups or not ({"zh", "ja"} & groups.keys()):
                with gr.Column():
                    gr.Examples(EXAMPLES, inputs=review, label=i18n("sk_examples_en"))
            if {"zh", "ja"} & groups.keys():
                with gr.Column():
                    gr.Examples(ZH_EXAMPLES, inputs=review, label=i18n("sk_examples_zh"))
        route_note = gr.Markdown(elem_id="route-note")
        legend = gr.HTML(legend_html([models[i] for i in groups[first]], "contribution"), elem_id="legend")
        reading = gr.State(None)
        columns: list[Any] = []
        shown: list[Any] = []
        for group_language, indices in groups.items():
            with gr.Column(visible=group_language == first, elem_id=f"models-{group_language}") as group:
                gr.Markdown(i18n(f"sk_models_{group_language}"))
                with gr.Row(equal_height=False):
                    for index in indices:
                        with gr.Column(min_width=280):
                            gr.Markdown(i18n(f"sk_model_{index}"), elem_id=f"heading-{index}")
                            summary = gr.Markdown(elem_id=f"summary-{index}")
                            probabilities = gr.Label(label="Prediction", show_label=False, elem_id=f"prediction-{index}")
                            words = gr.HTML(elem_id=f"highlight-{index}", elem_classes=["sk-model-highlight"])
                            gates = gr.HTML(elem_id=f"gates-{index}")
                            columns += [summary, probabilities, words, gates]
            shown.append(group)
        survival = gr.LinePlot(
            x="position", y="share", color="model", tooltip=["word", "share", "model"],
            title=i18n("sk_plot_title"), x_title=STATIC["en"]["plot_x"], y_title=STATIC["en"]["plot_y"], elem_id="survival",
        )
        outputs = [route_note, legend] + shown + columns + [survival]
        event = {"fn": explain_page, "inputs": [review, highlight, language], "outputs": [reading] + outputs, "api_visibility": "private"}
        button.click(**event)
        review.submit(**event)
        highlight.change(show, inputs=[reading, highlight], outputs=outputs, api_visibility="private", queue=False)
        demo.load(on_load, outputs=[legend] + shown, api_visibility="private", queue=False)
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
    parser.add_argument("--bundle", action="append", default=[], help="a bundle folder or .zip to serve (repeat for several; default: the shipped RNN, LSTM and GRU for English and for Chinese reviews)")
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
        if not paths:
            raise ConfigError(f"the shipped bundles are not in {SHIPPED} (is this a copy of the repository?); pass --bundle DIR")
        if not args.bundle and len(paths) < len(SHIPPED_BUNDLES):
            LOG.warning("serving %d of the shipped bundles; not found: %s", len(paths), ", ".join(p.name for p in SHIPPED_BUNDLES if not p.exists()))
        models = load_models(paths)
    except (ConfigError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    for model in models:  # TorchScript optimises a method on its first calls: not on a user's time
        explain_one(model, EXAMPLES[0] if model.language == "en" else ZH_EXAMPLES[0])
    from starlette.middleware import Middleware

    demo = build_app(models)
    # api_open=False: Gradio otherwise opens `/gradio_api/run/<name>` off Hugging Face Spaces, a route
    # that runs a queued event at once, past the concurrency limit and the queue's size.
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size, api_open=False)
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share, css=CSS, js=TITLE_JS, i18n=translations(models), footer_links=["api"],
        show_error=False,  # Gradio's default, said aloud: an exception that is not a gr.Error reaches a client as `null`
        max_file_size=MAX_UPLOAD_BYTES, state_session_capacity=SESSIONS_KEPT,
        app_kwargs={"middleware": [Middleware(BodyLimit, limit=MAX_BODY_BYTES)]},
    )
