"""Billing's periodic work. Tasks stay thin: they call a service and are safe to run twice."""

from celery import shared_task

from billing import reservations


@shared_task(name="billing.tasks.reap_expired_reservations")
def reap_expired_reservations() -> int:
    return reservations.reap_expired()
