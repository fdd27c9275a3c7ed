"""A completed answer's outcome is in the settlement journal before the client gets the answer's last bytes
(ADR 0010, 0019): a process killed after the answer is sent and before it is settled bills it exactly, not
as a cut-off (which bills a whole answer nothing, as nothing was counted as delivered before its end)."""

import json

import httpx
import pytest

from gateway.run import Run
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import serve_model_from, settled_generation


def journaled_outcome(run: Run) -> dict | None:
    entry = run.journal.pending.get(run.request_id)
    return None if entry is None or entry.outcome is None else json.loads(entry.outcome)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_outcome_is_journaled_before_the_last_bytes_go(gateway_url, funded_key, monkeypatch, stream):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    _, key = funded_key
    at_last_bytes: list[dict | None] = []
    send_whole, send_frames = Run._safe_send_json, Run._frames

    async def recording_send_whole(self, status, body, headers=None):
        at_last_bytes.append(journaled_outcome(self))
        await send_whole(self, status, body, headers)

    async def recording_frames(self, frames, last=False):
        if last:
            at_last_bytes.append(journaled_outcome(self))
        await send_frames(self, frames, last)

    monkeypatch.setattr(Run, "_safe_send_json", recording_send_whole)
    monkeypatch.setattr(Run, "_frames", recording_frames)
    with openai_fake("cerebras", Scenario(text="Hello there.", prompt_tokens=9, completion_tokens=4)) as fake:
        serve_model_from("test/journaled", [("cerebras", fake.base_url)])
        answer = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            json={
                "model": "test/journaled",
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    [outcome] = at_last_bytes
    assert outcome is not None, "the last bytes went before the journal had the outcome"
    assert outcome["status"] == "completed" and outcome["finish_reason"] == "stop"
    assert (outcome["usage"]["prompt_tokens"], outcome["usage"]["completion_tokens"]) == (9, 4)
    generation = settled_generation(answer.headers["x-request-id"])
    assert (generation.tokens_prompt, generation.tokens_completion) == (9, 4)
