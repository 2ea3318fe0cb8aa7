"""Entry point of the multi-language component package (PulumiPlugin.yaml): serves the
components of `dms_event_bus.components.multi_language` to any Pulumi language."""

from pulumi.provider.experimental import component_provider_host

from dms_event_bus.components.multi_language import COMPONENTS, PACKAGE, VERSION

if __name__ == "__main__":
    component_provider_host(components=COMPONENTS, name=PACKAGE, version=VERSION)
