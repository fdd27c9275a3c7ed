"""The `image` server tool (gateway/tools/image.py): an OpenAI-compatible images endpoint (a real-HTTP fake
with its failure modes) and the offline sandbox, and what the settings make of it (registry, checks, meta)."""

import asyncio
import base64
import struct
import zlib

import aiohttp
import pytest

from gateway.tools.base import ToolContext
from gateway.tools.image import ImageGeneration, OpenAIImages, SandboxImages, sandbox_png
from gateway.tools.registry import available_server_tools, check_server_tools, server_tools
from tests.fakes.images_fake import IMAGE_URL, PNG, images_fake


def run(tool: ImageGeneration, arguments: dict):
    async def go():
        async with aiohttp.ClientSession() as session:
            return await tool.run(arguments, ToolContext(session=session))

    return asyncio.run(go())


def test_an_image_from_the_endpoint_is_a_data_url_billed_per_image():
    with images_fake("ok") as fake:
        outcome = run(
            ImageGeneration(OpenAIImages(fake.base_url, "img-key", "gpt-image-1")), {"prompt": "a cat"}
        )
    assert outcome.images == (f"data:image/png;base64,{PNG}",) and outcome.units == {"image": 1}
    assert not outcome.error and "'a cat'" in outcome.text and "sandbox" not in outcome.text
    [sent] = fake.requests
    assert sent == {
        "model": "gpt-image-1", "prompt": "a cat", "n": 1, "size": "1024x1024", "response_format": "b64_json"
    }  # fmt: skip


def test_an_endpoint_that_answers_with_a_url_passes_it_on():
    with images_fake("ok_url") as fake:
        outcome = run(ImageGeneration(OpenAIImages(fake.base_url, "img-key", "m")), {"prompt": "x"})
    assert outcome.images == (IMAGE_URL,)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("content_policy", "refused the prompt under its content policy"),
        ("unauthorized", "refused the gateway's credentials"),
        ("rate_limited", "rate limiting"),
        ("server_error", "failed (HTTP 500)"),
        ("slow", "did not answer (TimeoutError)"),
    ],
)
def test_a_failure_is_an_error_result_that_costs_nothing_and_leaks_nothing(mode, reason):
    with images_fake(mode) as fake:
        backend = OpenAIImages(fake.base_url, "img-key", "m", timeout_seconds=0.5)
        outcome = run(ImageGeneration(backend), {"prompt": "x"})
    assert reason in outcome.error and outcome.units == {} and outcome.images == ()
    assert (
        "img-key" not in outcome.text
        and "safety system" not in outcome.text
        and "img-****" not in outcome.text
    )


def test_a_wrong_key_is_refused_by_the_fake_as_by_the_service():
    with images_fake("ok") as fake:
        outcome = run(ImageGeneration(OpenAIImages(fake.base_url, "wrong", "m")), {"prompt": "x"})
    assert "credentials" in outcome.error


@pytest.mark.parametrize(
    ("arguments", "error"),
    [({}, "prompt must be"), ({"prompt": "  "}, "prompt must be"), ({"prompt": "x", "size": "9x9"}, "size")],
)
def test_bad_arguments_are_error_results(arguments, error):
    assert run(ImageGeneration(SandboxImages()), arguments).error.startswith(error)


def test_the_sandbox_draws_a_valid_png_of_its_own_for_each_prompt():
    png = sandbox_png("a red square")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR") and struct.unpack(">II", png[16:24]) == (64, 64)
    idat = png.index(b"IDAT")
    (size,) = struct.unpack(">I", png[idat - 4 : idat])
    assert len(zlib.decompress(png[idat + 4 : idat + 4 + size])) == 64 * (1 + 64 * 3)
    assert sandbox_png("a red square") == png != sandbox_png("a blue circle")
    outcome = run(ImageGeneration(SandboxImages()), {"prompt": "a red square"})
    assert base64.b64decode(outcome.images[0].partition(",")[2]) == png and "sandbox image" in outcome.text


def test_image_is_offered_exactly_when_a_backend_is_configured(settings):
    settings.IMAGE_GENERATION_BACKEND = ""
    assert "image" not in available_server_tools()
    settings.IMAGE_GENERATION_BACKEND = "sandbox"
    assert "image" in available_server_tools()
    assert isinstance(server_tools(["image"])["image"].backend, SandboxImages)
    settings.IMAGE_GENERATION_BACKEND, settings.IMAGE_GENERATION_URL = "openai", "https://images.example/v1"
    assert isinstance(server_tools(["image"])["image"].backend, OpenAIImages)


@pytest.mark.parametrize(
    ("backend", "url", "problem"),
    [("openai", "", "needs IMAGE_GENERATION_URL"), ("dall-e", "", "none of openai, sandbox")],
)
def test_the_startup_check_refuses_an_incomplete_image_backend(settings, backend, url, problem):
    settings.IMAGE_GENERATION_BACKEND, settings.IMAGE_GENERATION_URL = backend, url
    [error] = check_server_tools()
    assert error.id == "gateway.E003" and problem in error.msg


@pytest.mark.django_db
@pytest.mark.parametrize("backend", ["", "sandbox"])
def test_the_catalog_says_whether_image_generation_is_configured(client, shipped_catalog, settings, backend):
    settings.IMAGE_GENERATION_BACKEND = backend
    meta = client.get("/api/v1/models").json()["meta"]
    assert meta == {"image_generation_configured": bool(backend)}
