"""Entry point of the multi-language component package (PulumiPlugin.yaml): serves the
components of `dms_event_bus.components.multi_language` to any Pulumi language.

What `pulumi.provider.experimental.component_provider_host` does, with the package's own
`ComponentProvider` (it refuses an output in a plain input by name before the SDK maps it)."""

import sys

from pulumi.provider import main

from dms_event_bus.components.multi_language import COMPONENTS, PACKAGE, VERSION, PackageProvider

if __name__ == "__main__":
    main(PackageProvider(COMPONENTS, PACKAGE, None, VERSION), sys.argv[1:])
