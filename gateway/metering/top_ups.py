"""After usage debits reach PostgreSQL, the workspaces with auto top-up on are looked at again
(console.tasks.auto_top_up: below the threshold, one off-session charge of the saved card). Queued once the
debits commit; a broker that is down loses nothing, as beat's sweep looks at them every minute."""

import uuid
from collections.abc import Iterable

from django.db import transaction

from billing.payments import auto_top_up_workspaces
from console.tasks import auto_top_up


def top_ups_after_commit(workspace_ids: Iterable[uuid.UUID | str]) -> None:
    ids = {uuid.UUID(str(workspace_id)) for workspace_id in set(workspace_ids)}  # one parse a workspace
    if ids:
        transaction.on_commit(lambda: _queue(ids), robust=True)


def _queue(workspace_ids: set[uuid.UUID]) -> None:
    for workspace_id in auto_top_up_workspaces(workspace_ids=workspace_ids):
        auto_top_up.delay(str(workspace_id))
