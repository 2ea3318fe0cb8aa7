"""dms-event-bus: reads the typed stack config, then composes the components."""

from settings import settings_from_pulumi

settings = settings_from_pulumi()
