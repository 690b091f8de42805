"""The running app: `python app.py` in a subprocess, called through its API and driven in a real browser."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sentikit.app import DEFAULT_BUNDLES, EXAMPLES
from sentikit.page import explain_one, load_models

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` on a free port, as a user starts it; its output is shown if it fails to come up."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--concurrency", "4"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**__import__("os").environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"app.py did not answer on {url} within {STARTUP_SECONDS} s:\n{log.read_text()}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


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
    result = client(app_url).predict(text, "sst2-lstm", api_name="/explain")
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


def test_a_review_of_100000_characters_is_answered_truncated(app_url):
    result = client(app_url).predict("what a lovely , warm film . " * 3600, "gru", api_name="/explain")
    assert result["truncated"] and result["num_tokens"] > result["max_length"] >= len(result["words"])


def test_twenty_clients_at_once_are_all_answered_correctly(app_url, local_models):
    sentences = [f"{adjective} film , {adverb} {verb}" for adjective in ("a moving", "a dull", "a clever", "an awful", "a warm")
                 for adverb, verb in (("beautifully", "shot"), ("badly", "acted"), ("well", "paced"), ("poorly", "written"))]
    assert len(sentences) == 20
    expected = [explain_one(local_models[1], s)["label"] for s in sentences]

    def ask(sentence):
        return client(app_url).predict(sentence, "sst2-lstm", api_name="/explain")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, sentences))
    assert [r["text"] for r in results] == sentences
    assert [r["label"] for r in results] == expected


def test_no_file_outside_the_app_is_served(app_url):
    for path in ("/gradio_api/file=/etc/passwd", "/file=/etc/passwd", "/gradio_api/file=" + str(REPO / "pyproject.toml")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(app_url + path, timeout=10)
        assert refused.value.code in (403, 404)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_a_browser_types_a_review_and_reads_the_highlighted_words(app_url, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on this machine: `apt-get install -y chromium` (.ci/run installs it where it can)")
    text = EXAMPLES[0]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(app_url)
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

            page.locator("#highlight input[value='retention']").check()
            page.wait_for_function("document.querySelector('#highlight-1 .sk-word').title.includes('retention')", timeout=30_000)
            screenshot = tmp_path / "app.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            print(f"screenshot: {screenshot}")
        finally:
            browser.close()
