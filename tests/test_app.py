"""The running app: `python app.py` in a subprocess, called through its API and driven in a real browser
(in English, Chinese and Japanese).

The app is started, and called over plain HTTP, by `sentikit.app.load`, the harness that the load
benchmark (`benchmarks/app_load.py`) drives it with too; its load (20 clients, 500 requests) is also
sent here, as a slow test."""

import contextlib
import os
import re
import shutil
import struct
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sentikit.app.i18n import STATIC
from sentikit.app.layout import (
    DEFAULT_BUNDLES, EXAMPLES, MAX_BODY_BYTES, MAX_REVIEW_CHARS, ZH_EXAMPLES, build_app, build_parser, check_model_name, check_review,
)
from sentikit.app.load import (
    BAD_INPUTS, ODD_REVIEWS, RSS_GROWTH_BOUND_MB, call, compare_with_local, plan, rss_growth_mb, running_app, send_all,
    settled_rss_mb, sst2_sentences, warm_up_plan,
)
from sentikit.errors import ConfigError
from sentikit.app.page import explain_one, load_models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` on 127.0.0.1 and a free port, as a user starts it (its output is shown if it fails)."""
    with running_app(["--concurrency", "4"], tmp_path_factory.mktemp("app") / "app.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def local_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_models(DEFAULT_BUNDLES)


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_the_explain_endpoint_returns_the_gates_json_with_words_of_the_input(app_url):
    text = EXAMPLES[0]
    result = client(app_url).predict(text, "english-lstm", api_name="/explain")
    assert result["label"] == "positive" and result["method"] == "gates" and result["cell"] == "lstm"
    assert len(result["probabilities"]) == len(result["classes"]) == len(result["bias"]) == 2
    words = result["words"]
    assert [w["word"] for w in words][:4] == ["This", "cereal", "is", "amazing"]
    for w in words:
        assert text[w["start"] : w["end"]] == w["word"] and w["word"].strip() == w["word"] != ""
        assert len(w["contributions"]) == 2 and 0 <= w["retention"] <= 1
    logits = [b + sum(w["contributions"][k] for w in words) for k, b in enumerate(result["bias"])]
    assert logits == pytest.approx(result["logits"], abs=1e-4)


def test_the_endpoint_defaults_to_the_first_model_and_names_a_wrong_one_or_an_empty_review(app_url):
    from gradio_client.exceptions import AppError

    api = client(app_url)
    assert api.predict("a dull , lifeless film", api_name="/explain")["cell"] == "rnn"
    with pytest.raises(AppError, match="no served model is called 'bert'"):
        api.predict("a fine film", "bert", api_name="/explain")
    with pytest.raises(AppError, match="the review is empty"):
        api.predict("   ", api_name="/explain")


def test_a_chinese_review_without_a_model_named_is_explained_by_the_first_chinese_model_an_english_one_by_the_first_english(app_url, local_models):
    api = client(app_url)
    chinese = next(m for m in local_models if m.language == "zh")
    text = ZH_EXAMPLES[0]
    result = api.predict(text, api_name="/explain")
    assert result["cell"] == chinese.cell and result["label"] == "positive"
    assert result["probabilities"] == pytest.approx(explain_one(chinese, text)["probabilities"], abs=1e-4)
    assert [w["word"] for w in result["words"]] == list(text)  # one unit per character, punctuation included
    english = api.predict(EXAMPLES[0], api_name="/explain")
    assert english["cell"] == "rnn" and english["probabilities"] == pytest.approx(explain_one(local_models[0], EXAMPLES[0])["probabilities"], abs=1e-4)


def test_a_cell_picks_the_model_of_the_review_s_language_and_a_bundle_name_is_used_as_named(app_url, local_models):
    api = client(app_url)
    text = ZH_EXAMPLES[3]  # negative
    by_name = {m.name: m for m in local_models}
    as_gru = api.predict(text, "gru", api_name="/explain")
    assert as_gru["probabilities"] == pytest.approx(explain_one(by_name["zh-shopping-gru"], text)["probabilities"], abs=1e-4)
    assert as_gru["label"] == "negative"
    as_named = api.predict(text, "english-gru", api_name="/explain")
    assert as_named["probabilities"] == pytest.approx(explain_one(by_name["english-gru"], text)["probabilities"], abs=1e-4)
    assert as_named["probabilities"] != pytest.approx(as_gru["probabilities"], abs=1e-3)


def test_a_review_just_under_the_length_limit_is_answered_truncated(app_url):
    text = "what a lovely , warm film . " * 700  # 19,600 characters, some 5,600 tokens
    assert len(text) <= MAX_REVIEW_CHARS
    result = client(app_url).predict(text, "gru", api_name="/explain")
    assert result["truncated"] and result["num_tokens"] > result["max_length"] >= len(result["words"])


def test_a_review_of_100000_characters_is_refused_naming_the_limit_and_its_length(app_url):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"^the review is too long: 100,000 characters received, the limit is 20,000 "):
        client(app_url).predict(("what a lovely , warm film . " * 3600)[:100_000], "gru", api_name="/explain")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "the review must be text (a JSON string), got NoneType"),
        (3.5, "got float"),
        (["a", "list"], "got list"),
        ({"text": "a dict"}, "got dict"),
        ("a" * (MAX_REVIEW_CHARS + 1), f"the review is too long: {MAX_REVIEW_CHARS + 1:,} characters received, the limit is {MAX_REVIEW_CHARS:,}"),
        ("bad \udcff bytes", "the review is not valid Unicode: a lone surrogate at character 4"),
    ],
)
def test_the_server_refuses_a_review_that_is_not_text_too_long_or_not_unicode(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_review(text)


def test_the_server_accepts_any_unicode_text_up_to_the_limit():
    for text in ["a" * MAX_REVIEW_CHARS, "nul\x00 bell\x07 escape\x1b[0m", "\U0001f600 \u200b", ""]:
        assert check_review(text) == text  # emptiness is explain_one's to say, for library callers too


def test_a_model_name_must_be_short_text_or_nothing():
    assert check_model_name(None) == "" and check_model_name("english-gru") == "english-gru"
    with pytest.raises(ConfigError, match="the model name must be text such as 'english-gru' or 'gru', got int"):
        check_model_name(7)
    with pytest.raises(ConfigError, match="no served model has a 1,000-character name"):
        check_model_name("m" * 1_000)


@pytest.mark.parametrize(("name", "text", "model", "message"), BAD_INPUTS, ids=[bad[0] for bad in BAD_INPUTS])
def test_a_bad_input_gets_its_error_and_the_server_keeps_answering(app_url, name, text, model, message):
    with httpx.Client() as http:
        result, error = call(http, app_url, text, model, timeout=60)
        assert result is None and message in error and "\n" not in error
        result, error = call(http, app_url, "a warm , funny film", "lstm", timeout=60)
    assert error is None and result["label"] == "positive"


@pytest.mark.parametrize("text", ODD_REVIEWS[:2], ids=["control characters", "emoji and zero-width spaces"])
def test_control_characters_and_emoji_are_explained_as_any_text(app_url, text):
    with httpx.Client() as http:
        result, error = call(http, app_url, text, "gru", timeout=60)
    assert error is None and result["text"] == text and result["words"]
    for word in result["words"]:
        assert text[word["start"] : word["end"]] == word["word"]


def test_twenty_clients_at_once_are_all_answered_correctly(app_url, local_models):
    sentences = [f"{adjective} film , {adverb} {verb}" for adjective in ("a moving", "a dull", "a clever", "an awful", "a warm")
                 for adverb, verb in (("beautifully", "shot"), ("badly", "acted"), ("well", "paced"), ("poorly", "written"))]
    assert len(sentences) == 20
    expected = [explain_one(local_models[1], s)["label"] for s in sentences]

    def ask(sentence):
        return client(app_url).predict(sentence, "english-lstm", api_name="/explain")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, sentences))
    assert [r["text"] for r in results] == sentences
    assert [r["label"] for r in results] == expected


def test_the_queue_cannot_be_skipped_through_the_direct_run_route(app_url):
    with pytest.raises(urllib.error.HTTPError) as refused:
        request = urllib.request.Request(
            app_url + "/gradio_api/run/explain", data=b'{"data": ["a fine film", "gru"]}', headers={"content-type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 404


def test_a_body_over_the_limit_is_refused_unread_whether_its_length_is_declared_or_not(app_url):
    declared = httpx.post(app_url + "/gradio_api/call/explain", content=b"x" * (MAX_BODY_BYTES + 1), timeout=30)
    assert declared.status_code == 413 and declared.text == f"the request body is over {MAX_BODY_BYTES:,} bytes"

    def chunks():  # no Content-Length: read until it passes the limit, then the app sees the client leave
        yield b'{"data": ["'
        for _ in range(MAX_BODY_BYTES // 100_000 + 1):
            yield b"x" * 100_000
        yield b'", "gru"]}'

    chunked = httpx.post(app_url + "/gradio_api/call/explain", content=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert chunked.status_code == 400
    with httpx.Client() as http:
        result, error = call(http, app_url, "a warm , funny film", "gru", timeout=60)
    assert error is None and result["label"] == "positive"


def test_the_launch_defaults_are_this_machine_only_and_no_error_details(app_url):
    assert build_parser().parse_args([]).host == "127.0.0.1"
    config = httpx.get(app_url + "/config", timeout=10).json()
    assert config["show_error"] is False and config["max_file_size"] == 1


def test_the_app_takes_no_uploads(app_url):
    response = httpx.post(app_url + "/gradio_api/upload", files={"files": ("review.txt", b"a fine film " * 100)}, timeout=10)
    assert response.status_code == 413


def test_an_unexpected_failure_reaches_the_client_named_without_its_message(local_models, monkeypatch):
    import gradio as gr

    def broken(*args, **kwargs):
        raise RuntimeError("The following operation failed in the TorchScript interpreter: /srv/secret/model.py line 7")

    monkeypatch.setattr(local_models[2].explainer, "explain", broken)
    demo = build_app(local_models)
    explain = next(fn.fn for fn in demo.fns.values() if fn.api_name == "explain")
    with pytest.raises(gr.Error) as failed:
        explain("a fine film", "gru")
    assert failed.value.message == "sentikit could not explain this review: an internal error (RuntimeError), logged on the server"


@pytest.fixture(scope="module")
def small_queue_url(tmp_path_factory):
    """The app with one bundle, one review explained at a time and two waiting."""
    args = ["--bundle", str(DEFAULT_BUNDLES[0]), "--concurrency", "1", "--queue-size", "2"]
    with running_app(args, tmp_path_factory.mktemp("app") / "app.log") as (url, _):
        yield url


@pytest.mark.slow  # a second server of its own
def test_requests_beyond_the_queue_are_refused_at_once_and_the_others_answered(small_queue_url):
    long_review = ODD_REVIEWS[-1]  # the RNN's occlusion over 128 tokens: a slow request
    body = {"data": [long_review, "rnn"]}
    with httpx.Client(timeout=60) as http:
        start = time.monotonic()
        posted = [http.post(f"{small_queue_url}/gradio_api/call/explain", json=body) for _ in range(8)]
        posting = time.monotonic() - start
        accepted = [p.json()["event_id"] for p in posted if p.status_code == 200]
        refused = [p for p in posted if p.status_code != 200]
        assert refused and all(p.status_code == 503 and "Queue is full. Max size is 2" in p.text for p in refused)
        assert posting < 5  # refused at once, not after a wait
        for event_id in accepted:
            answer = http.get(f"{small_queue_url}/gradio_api/call/explain/{event_id}").text
            assert "event: complete" in answer
        result, error = call(http, small_queue_url, "a warm , funny film", "", timeout=60)
    assert error is None and result["cell"] == "rnn"


def test_no_file_outside_the_app_is_served(app_url):
    for path in ("/gradio_api/file=/etc/passwd", "/file=/etc/passwd", "/gradio_api/file=" + str(REPO / "pyproject.toml")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(app_url + path, timeout=10)
        assert refused.value.code in (403, 404)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def browser_page(locale: str):
    """A chromium page (1280 x 900) whose browser's language is `locale`, as Playwright sets it: both
    `navigator.language` and the `Accept-Language` of its requests. Skips where chromium or playwright is missing."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on this machine: `apt-get install -y chromium` (.ci/run installs it where it can)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}).new_page()
        finally:
            browser.close()


def screenshot_down_to_the_gates(page, columns: list[int], path: Path, target: str | None) -> None:
    """The page from its top down to the lowest gate heatmap of `columns`, 1280 wide, checked as a PNG; copied
    to `target` too when given (the docs' pictures)."""
    for column in columns:
        page.wait_for_selector(f"#gates-{column} .sk-note", timeout=30_000)  # a heatmap, or the RNN's note
    bottom = page.evaluate(
        f"Math.max(...{columns}.map(i => document.querySelector('#gates-' + i).getBoundingClientRect().bottom)) + window.scrollY"
    )
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 12})
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk's
    assert width == 1280 and abs(height - (bottom + 12)) <= 1
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def test_a_browser_types_a_review_and_reads_the_highlighted_words(app_url, tmp_path):
    """Also the README's picture: `SENTIKIT_SCREENSHOT=docs/images/app.png python -m pytest tests/test_app.py
    -k browser_types` writes the page, as the browser shows it after Explain, there."""
    text = EXAMPLES[0]
    with browser_page("en-US") as page:
        page.goto(app_url)
        assert page.get_attribute("#review textarea", "maxlength") == str(MAX_REVIEW_CHARS)
        page.fill("#review textarea", text)
        page.click("#explain-button")
        for column in range(3):
            page.wait_for_selector(f"#highlight-{column} .sk-word", timeout=30_000)
        lstm_words = page.locator("#highlight-1 .sk-word").all_inner_texts()
        assert lstm_words[:4] == ["This", "cereal", "is", "amazing"]
        assert all(word in text for word in lstm_words)
        assert "positive" in page.inner_text("#summary-1") and "occlusion" in page.inner_text("#summary-0")
        amazing = page.locator("#highlight-1 .sk-word", has_text="amazing")
        assert "22, 163, 74" in amazing.get_attribute("style")  # green: pushed towards positive
        assert page.locator("#models-zh").is_hidden() and page.inner_text("#route-note").strip() == ""
        assert page.title() == STATIC["en"]["title"]

        # The README's picture (docs/images/app.png): the page down to the three columns' gates.
        screenshot_down_to_the_gates(page, [0, 1, 2], tmp_path / "app.png", os.environ.get("SENTIKIT_SCREENSHOT"))

        page.locator("#highlight input[value='retention']").check()
        page.wait_for_function("document.querySelector('#highlight-1 .sk-word').title.includes('retention')", timeout=30_000)


def test_a_chinese_browser_shows_the_page_in_chinese_and_a_chinese_review_coloured_character_by_character(app_url, tmp_path, local_models):
    """Also docs/app.md's Chinese picture: `SENTIKIT_SCREENSHOT_ZH=docs/images/app-zh.png python -m pytest
    tests/test_app.py -k chinese_browser` writes the page after Explain there."""
    chinese = [index for index, model in enumerate(local_models) if model.language == "zh"]
    text = ZH_EXAMPLES[0]
    with browser_page("zh-CN") as page:
        page.goto(app_url)
        page.wait_for_selector("#models-zh", state="visible", timeout=30_000)  # before any review: the page's language's models
        assert page.locator("#models-en").is_hidden()
        assert page.inner_text("h1") == "sentikit：门记住了什么"
        assert page.inner_text("#explain-button").strip() == "解释" and "评论" in page.inner_text("#review")
        assert page.get_attribute("#review textarea", "placeholder") == f"输入或粘贴一条评论（最多 {MAX_REVIEW_CHARS:,} 个字符）"
        page.wait_for_function(f"document.title === {STATIC['zh']['title']!r}", timeout=10_000)
        page.fill("#review textarea", text)
        page.click("#explain-button")
        for column in chinese:
            page.wait_for_selector(f"#highlight-{column} .sk-word", timeout=30_000)
            characters = page.locator(f"#highlight-{column} .sk-word").all_inner_texts()
            assert characters == list(text)  # one coloured span per character
        gru = chinese[-1]
        assert "正面" in page.inner_text(f"#summary-{gru}") and "门的精确分解" in page.inner_text(f"#summary-{gru}")
        crisp = page.locator(f"#highlight-{gru} .sk-word", has_text="脆")
        assert "22, 163, 74" in crisp.get_attribute("style")  # green: pushed towards positive
        assert "推向" in page.inner_text("#legend") and page.locator("#models-en").is_hidden()

        screenshot_down_to_the_gates(page, chinese, tmp_path / "app-zh.png", os.environ.get("SENTIKIT_SCREENSHOT_ZH"))


def test_a_japanese_browser_shows_the_page_in_japanese_and_a_japanese_review_goes_to_the_chinese_models_saying_so(app_url, local_models):
    chinese = [index for index, model in enumerate(local_models) if model.language == "zh"]
    with browser_page("ja-JP") as page:
        page.goto(app_url)
        page.wait_for_selector("#models-zh", state="visible", timeout=30_000)  # no Japanese model: the Chinese ones
        assert page.inner_text("h1") == "sentikit：ゲートは何を覚えていたか"
        assert page.inner_text("#explain-button").strip() == "説明" and "レビュー" in page.inner_text("#review")
        page.fill("#review textarea", ZH_EXAMPLES[-1])
        page.click("#explain-button")
        page.wait_for_selector(f"#highlight-{chinese[0]} .sk-word", timeout=30_000)
        assert "日本語のモデルはありません" in page.inner_text("#route-note")
        assert "ポジティブ" in page.inner_text("#legend") and "ポジティブ" in page.inner_text(f"#summary-{chinese[0]}")


def test_memory_growth_past_the_bound_counts_only_if_a_second_round_of_the_load_grows_it_again():
    bound = RSS_GROWTH_BOUND_MB
    assert rss_growth_mb(600.0, 620.0) == pytest.approx(20.0)
    assert rss_growth_mb(600.0, 600.0 + bound + 2, 600.0 + bound) == pytest.approx(-2.0)  # a stray reading
    assert rss_growth_mb(600.0, 600.0 + bound + 2, 600.0 + 2 * bound + 4) == pytest.approx(bound + 2)  # a leak


@pytest.mark.slow
def test_twenty_clients_sending_500_good_and_bad_requests_are_all_answered_and_memory_stays_flat(tmp_path):
    """The load of `benchmarks/app_load.py` with its defaults, on a fresh server of its own."""
    sentences = sst2_sentences()
    load = plan(500, sentences)
    with running_app([], tmp_path / "app.log") as (url, pid):
        send_all(url, warm_up_plan(sentences), clients=20)
        before = settled_rss_mb(pid)
        answers = send_all(url, load, clients=20)
        after = settled_rss_mb(pid)
        second_round = None
        if after - before > RSS_GROWTH_BOUND_MB:  # a leak, or a stray reading? (rss_growth_mb)
            send_all(url, load, clients=20)
            second_round = settled_rss_mb(pid)
    good = [a for a in answers if a.request.kind == "good"]
    bad = [a for a in answers if a.request.kind == "bad"]
    assert len(good) == 400 and len(bad) == 100
    assert [a.request.name for a in answers if not a.answered] == []
    assert [a.error for a in good if a.result is None or a.result["text"] != a.request.text] == []
    assert [(a.request.name, a.error) for a in bad if not (a.error and a.request.expected_error in a.error)] == []
    checked, differences = compare_with_local(answers, sample=100)
    assert checked == 100 and differences == []
    assert rss_growth_mb(before, after, second_round) <= RSS_GROWTH_BOUND_MB
