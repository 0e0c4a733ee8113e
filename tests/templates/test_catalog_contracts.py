"""Each catalog template calls its systems the way their connector types take it: for every step
through a binding, the capability exists on the binding's connector types and the step's inputs name
only that capability's inputs and every one it requires. (A template is checked on its own, before
any customer binds it; a deployment then checks the connections chosen.)"""

from __future__ import annotations

import msgspec

from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.platform.engine.definition import ActionStep, LookupStep, compile_definition
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.dsl.load import built_definition, defaults


def test_every_call_of_every_catalog_template_fits_its_connector_types() -> None:
    problems: list[str] = []
    for key, (template, _) in builtin_templates().items():
        compiled = compile_definition(built_definition(template, defaults(template.parameters)))
        for step in compiled.definition.steps:
            if not isinstance(step, ActionStep | LookupStep) or "." not in step.capability:
                continue
            binding, _, capability = step.capability.partition(".")
            types = template.requires[binding].types
            assert types, f"{key}: requires.{binding} names no connector type"
            for type_key in types:
                kind = CONNECTOR_TYPES.get(type_key)
                if kind is None:
                    problems.append(f"{key}: requires.{binding}: no connector type '{type_key}'")
                    continue
                spec = kind.capabilities.get(capability)
                if spec is None:
                    problems.append(f"{key}.{step.key}: {type_key} has no capability '{capability}'")
                    continue
                info = {f.name: f.required for f in msgspec.structs.fields(spec.inputs)}
                required = {name for name, needed in info.items() if needed}
                unknown = sorted(set(step.inputs) - set(info))
                missing = sorted(required - set(step.inputs))
                if unknown:
                    problems.append(f"{key}.{step.key}: {type_key}.{capability} takes no {', '.join(unknown)}")
                if missing:
                    problems.append(f"{key}.{step.key}: {type_key}.{capability} needs {', '.join(missing)}")
    assert problems == []
