"""dms-event-bus as an importable distribution: `dms_event_bus.components`,
`dms_event_bus.settings`, `dms_event_bus.providers`, `dms_event_bus.handlers` and
`dms_event_bus.consumer`.

Installed (a wheel, `pip install dms-event-bus`), these are ordinary subpackages: the wheel
maps this repository's top-level folders under this one name (pyproject.toml,
`[tool.setuptools.package-dir]`), so no other project's `components` or `settings` can
collide with them.

In a checkout the folders stay at the top (`components/`, `handlers/`, ...); the entries of
this folder are symbolic links to them, so the checkout imports exactly what the wheel
installs, under the same names, and type checkers and editors follow it.
"""

#: The subpackages the distribution installs (pyproject.toml maps each from its folder).
SUBPACKAGES = ("components", "settings", "providers", "handlers", "consumer")
