"""core/encoding.py: orjson's speed with the standard library's answers, long integers included."""

import json

import pytest

from core.encoding import compact_json, has_long_number, read_json
from gateway.http import parse_json_object

BIG = 2**64 + 1  # past what orjson reads exactly: it would give the float 1.8446744073709552e+19


@pytest.mark.parametrize(
    ("text", "long"),
    [
        ('{"n": 1234567890123456789}', True),  # 19 digits
        ('{"n": 123456789012345678}', False),  # 18
        ('{"a": 123456789, "b": 1234567890}', False),  # digits apart
        ('{"s": "id-1234567890123456789"}', True),  # inside a string: a false alarm, read the slow way
        ('{"s": "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩"}', False),  # Arabic-Indic digits are no JSON number
        ('{"s": "\\ud800 12"}', False),
    ],
)
def test_a_long_number_is_19_ascii_digits_in_a_row(text, long):
    assert has_long_number(text) is long
    assert has_long_number(text.encode("utf-8", "surrogatepass")) is long


@pytest.mark.parametrize("number", [BIG, -BIG, BIG * 10**9])
def test_an_integer_past_64_bits_is_read_exactly(number):
    data = f'{{"n": {number}, "m": [1, "x"]}}'
    for raw in (data, data.encode()):
        read = read_json(raw)
        assert read == {"n": number, "m": [1, "x"]} and type(read["n"]) is int


def test_a_request_body_with_a_long_integer_keeps_it_exact():
    assert parse_json_object(f'{{"seed": {BIG}}}'.encode()) == {"seed": BIG}


def test_what_orjson_reads_is_what_the_standard_library_reads():
    text = '{"a": [1, 2.5, "é", null, true], "b": {"c": 1e3}, "d": 9223372036854775807}'
    assert read_json(text) == read_json(text.encode()) == json.loads(text)


def test_written_json_is_compact_and_keeps_a_long_integer():
    assert compact_json({"a": 1, "b": [BIG]}) == f'{{"a":1,"b":[{BIG}]}}'.encode()
