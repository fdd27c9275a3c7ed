"""The embedded default's stand-in for `celery beat`: runs the beat schedule in a daemon thread.

Only for one-process setups (`make run`); with a broker, run `celery -A config beat` instead (exactly one).
"""

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, maybe_schedule
from django.db import close_old_connections

from config.celery import app

logger = logging.getLogger(__name__)


def _as_schedule(value: float | timedelta | BaseSchedule) -> BaseSchedule:
    """A beat entry's `schedule` as a celery schedule (celery turns seconds and timedeltas into one)."""
    if isinstance(value, int | float):
        value = timedelta(seconds=value)  # as celery does (its stubs take numbers.Number, not float)
    when = maybe_schedule(value, app=app)
    if not isinstance(when, BaseSchedule):  # celery's stubs allow it; celery never returns it
        raise TypeError(f"not a beat schedule: {value!r}")
    return when


def start_embedded_beat(schedule: dict[str, dict[str, Any]], *, tick_seconds: float = 1.0) -> threading.Event:
    """Run each entry's task whenever its schedule is due. Returns an event that stops the thread."""
    app.loader.import_default_modules()  # registers the apps' tasks, as a worker does at start
    stop = threading.Event()
    entries = {name: (entry["task"], _as_schedule(entry["schedule"])) for name, entry in schedule.items()}
    last_run: dict[str, datetime] = {name: app.now() for name in entries}

    def loop() -> None:
        while not stop.wait(tick_seconds):
            for name, (task_name, when) in entries.items():
                if not when.is_due(last_run[name]).is_due:
                    continue
                last_run[name] = app.now()
                try:
                    app.tasks[task_name].apply(throw=True)
                except Exception:
                    logger.exception("embedded beat: %s failed", task_name)
                finally:
                    close_old_connections()

    threading.Thread(target=loop, name="embedded-beat", daemon=True).start()
    logger.info("embedded beat: running %s in-process (no celery beat)", ", ".join(entries))
    return stop
