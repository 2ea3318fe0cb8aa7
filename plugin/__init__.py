"""The multi-language component package (PulumiPlugin.yaml, __main__.py, schema.json)."""
