"""The page at / in a real browser: Debian's Chromium, driven by Playwright, against scripts/serve.py."""

from pathlib import Path

import pytest
from test_serving import post, server_process

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: tests may run as root, where Chromium's sandbox refuses to start. The rest keeps a
# headless Chromium from reaching for the network or a GPU.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing (apt-get install chromium installs it)"
)


@pytest.mark.slow
def test_the_page_translates_what_is_typed(trained_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    sentences = ["Hello!", "I am cold."]
    with server_process("--run", str(trained_run), cwd=tmp_path) as (_, url, _), sync_playwright() as playwright:
        status, expected = post(url, {"text": sentences})
        assert status == 200
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("#model")).to_have_text(trained_run.name)
            page.get_by_label("Sentences to translate, one per line").fill("\n".join(sentences))
            page.get_by_role("button", name="Translate").click()
            expect(page.get_by_role("status")).to_contain_text("Translated 2 sentences in ")
            assert page.locator("#translations > li").all_text_contents() == expected["translations"]

            page.get_by_label("Sentences to translate, one per line").fill("x" * 1001)
            page.get_by_role("button", name="Translate").click()
            expect(page.get_by_role("alert")).to_have_text(
                "text[0] has 1001 characters; a sentence may have at most 1000 (max_sentence_chars)"
            )
        finally:
            browser.close()
