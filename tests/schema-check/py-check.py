"""Checks every published JSON Schema with Python jsonschema: against its
dialect's meta-schema, by building a format-checking validator with all
schemas in one registry and resolving every $ref, and by requiring every
`format` to be one the format checker knows (jsonschema silently ignores
unknown formats, so an unknown one is a check nobody makes).

usage: python3 py-check.py <schemas dir>
Prints one line per problem and exits 1 if there is any.
"""

import json
import pathlib
import sys

import jsonschema
import referencing
import referencing.jsonschema

# Keywords whose value is a schema, a list of schemas, or a map of schemas.
ONE = {"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then",
       "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
MAP = {"properties", "patternProperties", "$defs", "dependentSchemas"}


def subschemas(schema):
    """The schema and every schema inside it (not property names or data)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key, value in schema.items():
        if key in ONE:
            yield from subschemas(value)
        elif key in LIST:
            for s in value:
                yield from subschemas(s)
        elif key in MAP:
            for s in value.values():
                yield from subschemas(s)


def main(root):
    files = sorted(root.rglob("*.json"))
    schemas = {f.relative_to(root).as_posix(): json.loads(f.read_text()) for f in files}
    registry = referencing.Registry().with_resources(
        (s.get("$id", name), referencing.jsonschema.specification_with(s["$schema"]).create_resource(s))
        for name, s in schemas.items()
    )
    problems = []
    for name, schema in schemas.items():
        cls = jsonschema.validators.validator_for(schema, default=None)
        if cls is None:
            problems.append(f"{name}: unknown $schema {schema.get('$schema')!r}")
            continue
        try:
            cls.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            problems.append(f"{name}: {e.message} at {'/'.join(map(str, e.path))}")
            continue
        checker = cls.FORMAT_CHECKER
        validator = cls(schema, registry=registry, format_checker=checker)
        resolver = registry.resolver(base_uri=schema.get("$id", name))
        for sub in subschemas(schema):
            fmt = sub.get("format")
            if isinstance(fmt, str) and fmt not in checker.checkers:
                problems.append(f"{name}: format {fmt!r} is not checked by jsonschema")
            ref = sub.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except referencing.exceptions.Unresolvable:
                    problems.append(f"{name}: $ref {ref!r} does not resolve")
        # Smoke test: the validator runs (a non-object is refused, not a crash).
        list(validator.iter_errors(None))
    refused = {p.split(":")[0] for p in problems}
    for p in problems:
        print(p)
    print(f"python jsonschema: {len(schemas)} schemas, {len(refused)} refused")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))
