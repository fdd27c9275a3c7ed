"""gateway.http.client_left: a whole answer asks once whether its client left, without a task or a wait."""

import asyncio

from gateway.http import client_left


def test_a_disconnect_already_there_is_seen():
    async def receive():
        return {"type": "http.disconnect"}

    assert client_left(receive) is True


def test_another_message_is_not_a_disconnect():
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    assert client_left(receive) is False


def test_a_client_still_there_costs_no_wait_and_leaves_no_waiter_behind():
    async def scenario():
        queue: asyncio.Queue[dict] = asyncio.Queue()  # how Daphne and the test transports hand messages over
        left = client_left(queue.get)
        waiters = len(queue._getters)  # the withdrawn wait is gone from the queue
        queue.put_nowait({"type": "http.disconnect"})
        later = await asyncio.wait_for(queue.get(), 1)  # and the message goes to the next reader, whole
        return left, waiters, later

    assert asyncio.run(scenario()) == (False, 0, {"type": "http.disconnect"})


def test_a_server_that_waits_on_an_event_has_its_wait_withdrawn():
    """uvicorn's receive() after the body: it waits on an asyncio.Event until the client leaves."""

    async def scenario():
        gone = asyncio.Event()

        async def receive():
            await gone.wait()
            return {"type": "http.disconnect"}

        first = client_left(receive)
        waiters = len(gone._waiters)
        gone.set()
        return first, waiters, client_left(receive)

    assert asyncio.run(scenario()) == (False, 0, True)


def test_a_server_whose_request_cycle_keeps_a_disconnected_flag_is_read_without_a_receive():
    """uvicorn's receive() is a method of its request cycle, setting `disconnected` as the client leaves."""

    class Cycle:
        def __init__(self, disconnected: bool) -> None:
            self.disconnected = disconnected
            self.receives = 0

        async def receive(self):
            self.receives += 1
            return {"type": "http.request", "body": b"", "more_body": False}

    gone, there = Cycle(disconnected=True), Cycle(disconnected=False)
    assert (client_left(gone.receive), client_left(there.receive)) == (True, False)
    assert gone.receives == there.receives == 0
