"""core/ids.py: a request id is what `uuid.uuid4().hex` gives — 32 hex digits of a random version-4 UUID."""

import re
import uuid

from core.ids import new_request_id


def test_a_request_id_is_a_version_4_uuid_without_dashes() -> None:
    for _ in range(2_000):  # the version and variant bits are set on every id, not by luck
        request_id = new_request_id()
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        parsed = uuid.UUID(request_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == request_id


def test_request_ids_do_not_repeat() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    # 122 random bits: every hex digit but the version's takes many values over the sample
    assert all(len({request_id[i] for request_id in ids}) > 3 for i in range(32) if i != 12)
