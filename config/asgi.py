"""The ASGI entry point: a Channels router in front of Django.

Gateway paths go to the gateway's own ASGI app ahead of Django's view stack (design §3-4);
everything else goes to Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

from gateway.app import lifespan, with_gateway  # noqa: E402

application = ProtocolTypeRouter({"http": with_gateway(django_asgi_app), "lifespan": lifespan})

if settings.EMBEDDED_BEAT:
    from config.embedded_beat import start_embedded_beat

    start_embedded_beat(settings.CELERY_BEAT_SCHEDULE)
