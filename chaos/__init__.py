"""The chaos run (`make chaos`): the whole system on real parts, faults injected while kiosks post, invariants
checked afterwards, and schemathesis against every service's OpenAPI document. See docs/reliability.md."""
