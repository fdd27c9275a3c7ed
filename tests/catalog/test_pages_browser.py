"""The catalog pages in a real headless Chromium (Debian's `chromium`, driven as a subprocess): the page
renders, its JavaScript draws the volume chart from the page's data, and a screenshot of each page is saved
to SCREENSHOT_DIR (default .artifacts/screenshots/) for a person to look at."""

import datetime
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings

from tests.catalog.traffic import record_generation, roll_up_and_refresh
from tests.factories import make_workspace

MODEL = "meta-llama/llama-3.1-8b"
WIDTH = 1280
TIMEOUT_SECONDS = 90
# (days ago, tokens): several days of traffic, the busiest 5 days ago.
TRAFFIC = [(0, 1_200), (1, 800), (2, 2_400), (5, 9_000), (9, 3_000), (16, 4_500), (23, 700), (29, 1_500)]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "chromium is not installed: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return found


def screenshot_dir() -> Path:
    path = Path(os.environ.get("SCREENSHOT_DIR") or Path(settings.BASE_DIR) / ".artifacts" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Elements(HTMLParser):
    """Every start tag of a document, as (tag, attributes)."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.document = document
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    def where(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [a for t, a in self.found if t == tag and all(a.get(k) == v for k, v in wanted.items())]


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile

    def _run(self, url: str, *args: str, height: int) -> subprocess.CompletedProcess:
        command = [
            self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={self.profile}", f"--window-size={WIDTH},{height}",
            "--virtual-time-budget=5000", *args, url,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    def dom(self, url: str, *, height: int = 2000) -> Elements:
        return Elements(self._run(url, "--dump-dom", height=height).stdout)

    def screenshot(self, url: str, path: Path, *, height: int = 2000) -> Path:
        path.unlink(missing_ok=True)
        self._run(url, f"--screenshot={path}", height=height)
        return path


@pytest.fixture
def browser(tmp_path) -> Browser:
    return Browser(chromium_path(), tmp_path / "chromium-profile")


@pytest.fixture
def traffic(one_utc_day, shipped_catalog):
    workspace = make_workspace()
    for days_ago, tokens in TRAFFIC:
        record_generation(
            workspace=workspace, model=MODEL, ago=datetime.timedelta(days=days_ago),
            tokens_prompt=tokens * 3 // 4, tokens_completion=tokens // 4, ttft_ms=150 + days_ago,
            latency_ms=1_150 + 10 * days_ago,
        )  # fmt: skip
    roll_up_and_refresh()


def assert_real_png(path: Path, *, width: int, height: int) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert len(data) > 30_000, f"{path} is only {len(data)} bytes"
    # The pixels are not one flat colour: the decompressed image data holds many different byte values.
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    assert len(set(zlib.decompress(b"".join(chunks)))) > 64, f"{path} looks blank"


@pytest.mark.django_db(transaction=True)
def test_the_model_page_draws_its_chart_in_chromium(live_server, browser, traffic):
    url = f"{live_server.url}/models/{MODEL}/"
    dom = browser.dom(url)

    [chart] = dom.where("div", id="volume-chart")
    assert chart.get("data-drawn") == "true", "the chart's script did not run"
    bars = dom.where("rect", **{"class": "bar"})
    active = dom.where("rect", **{"class": "bar active"})
    assert len(bars) + len(active) == 30  # one bar per day
    today = datetime.datetime.now(datetime.UTC).date()
    expected = {(today - datetime.timedelta(days=ago)).isoformat(): tokens for ago, tokens in TRAFFIC}
    drawn = {bar["data-date"]: (int(bar["data-tokens"]), float(bar["height"])) for bar in bars}
    assert {date: tokens for date, (tokens, _) in drawn.items() if tokens} == expected
    assert all(height > 0 for tokens, height in drawn.values() if tokens)
    assert all(height == 0 for tokens, height in drawn.values() if not tokens)
    tallest = max(drawn, key=lambda date: drawn[date][1])
    assert tallest == (today - datetime.timedelta(days=5)).isoformat()
    assert dom.where("h1", data_testid="model-name")
    assert '<h1 data-testid="model-name">Llama 3.1 8B Instruct</h1>' in dom.document
    assert [tab["id"] for tab in dom.where("button", role="tab")] == [
        "tab-curl",
        "tab-openai",
        "tab-anthropic",
    ]
    assert not any("hidden" in b for b in dom.where("button", **{"class": "copy", "data-copy": "code-curl"}))

    shot = browser.screenshot(url, screenshot_dir() / "model-detail.png", height=2200)
    assert_real_png(shot, width=WIDTH, height=2200)


@pytest.mark.django_db(transaction=True)
def test_the_model_list_renders_in_chromium(live_server, browser, traffic):
    url = f"{live_server.url}/models/"
    dom = browser.dom(url)
    cards = dom.where("article", data_testid="model-card")
    assert [card["data-slug"] for card in cards][:2] == [
        "deepseek/deepseek-v4-pro",
        "moonshotai/kimi-k2-instruct-0905",
    ]
    assert len(cards) == 8
    assert dom.where("a", href=f"/models/{MODEL}/")
    assert all(
        name in dom.document for name in ("DeepSeek V4 Pro", "Llama 3.1 8B Instruct", "HyperInfer Sandbox")
    )

    shot = browser.screenshot(url, screenshot_dir() / "model-list.png")
    assert_real_png(shot, width=WIDTH, height=2000)

    filtered = browser.screenshot(
        url + "?q=zzz-no-match", screenshot_dir() / "model-list-empty.png", height=900
    )
    assert_real_png(filtered, width=WIDTH, height=900)
