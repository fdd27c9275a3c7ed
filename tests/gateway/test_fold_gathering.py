"""gateway/fold.py: a block's text gathered delta by delta reads as the whole text, whenever it is read, and a
block is equal to another by what it says, however its deltas cut it."""

from hypothesis import given
from hypothesis import strategies as st

from gateway.canonical import BlockStart, ReasoningDelta, TextDelta, ToolCallDelta
from gateway.fold import Folded, FoldedReasoning, FoldedText, FoldedToolCall

pieces = st.lists(st.text(max_size=5), max_size=30)


@given(pieces, st.sets(st.integers(min_value=0, max_value=30)))
def test_the_text_reads_whole_between_any_deltas(deltas, read_after):
    folded = Folded()
    for number, delta in enumerate(deltas):
        folded.add(TextDelta(index=0, text=delta))
        if number in read_after:  # a read joins what came so far; what comes after is still added
            assert folded.text == "".join(deltas[: number + 1])
    assert folded.text == "".join(deltas)
    assert folded.deltas == len(deltas)


@given(pieces, pieces)
def test_blocks_are_equal_by_what_they_say_not_by_their_cuts(first, second):
    one, other = Folded(), Folded()
    for fold, deltas in ((one, first), (other, second)):
        fold.add(BlockStart(index=0, kind="tool_call", tool_call_id="call_1", tool_name="get_weather"))
        fold.add(BlockStart(index=1, kind="reasoning"))
        for delta in deltas:
            fold.add(ToolCallDelta(index=0, arguments=delta))
            fold.add(ReasoningDelta(index=1, text=delta))
    same = "".join(first) == "".join(second)
    assert (one.blocks == other.blocks) is same
    assert one.tool_calls[0].arguments == one.reasoning == "".join(first)


def test_a_block_says_its_kind_its_text_and_what_else_it_carries():
    text, reasoning, call = FoldedText(), FoldedReasoning(signature="sig"), FoldedToolCall(id="c", name="f")
    for piece in ("Hel", "lo"):
        text.add(piece)
    reasoning.add("Hmm.")
    for piece in ('{"a":', "1}"):
        call.add(piece)

    assert repr(text) == "FoldedText('Hello',)"
    assert repr(reasoning) == "FoldedReasoning('Hmm.', 'sig', False)"
    assert call.arguments == '{"a":1}' and call == FoldedToolCall(id="c", name="f", _pieces=['{"a":1}'])
    assert text != FoldedReasoning(_pieces=["Hello"])  # another kind of block
    assert reasoning != FoldedReasoning(signature="other", _pieces=["Hmm."])
