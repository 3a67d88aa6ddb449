"""The documentation is part of the project: the site builds with no broken link, and the configuration
reference it carries, generated from the schema, names every key."""

import os
import subprocess
import sys

from gpusim import config, config_reference

from helpers import ROOT


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").stat().st_size > 50_000


def schema_keys():
    """(section, key) of every key, from the schema's JSON form (independent of the reference's own walk)."""
    schema = config.Config.model_json_schema()
    definitions = schema.get("$defs", {})

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            node = definitions[node["$ref"].split("/")[-1]]
        return node

    def section_of(node):
        """The object schema a property holds: directly, optionally (anyOf with null), or as list items."""
        node = resolve(node)
        for option in node.get("anyOf", []):
            found = section_of(option)
            if found is not None:
                return found
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            found = resolve(node["items"])
            if "properties" in found:
                return found
        return node if "properties" in node else None

    found = []

    def walk(node, prefix):
        for name, prop in node["properties"].items():
            inner = section_of(prop)
            listed = resolve(prop).get("type") == "array"
            if inner is not None:
                walk(inner, f"{prefix}{name}" + (".N" if listed else "") + ".")
            else:
                found.append((prefix.rstrip("."), name))

    walk(schema, "")
    return found


def test_every_key_of_the_schema_is_in_the_generated_reference():
    reference = config_reference.markdown()
    blocks = {}
    for block in reference.split("### ")[1:]:
        title = block.splitlines()[0]
        blocks[title] = block
    for section, key in schema_keys():
        title = "top level" if not section else (f"`[[{section[:-2]}]]` (each entry)" if section.endswith(".N")
                                                 else f"`[{section}]`")
        assert title in blocks, f"no section {title} in the reference"
        assert f"| `{key}` |" in blocks[title], f"{section}.{key} is missing from the reference"
    assert len(schema_keys()) == len(config_reference.keys()) > 150
