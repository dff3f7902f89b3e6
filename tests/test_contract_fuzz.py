"""Schemathesis against the app's own OpenAPI: whatever a client sends that the schema allows
(or deliberately breaks), the answer is never a 5xx and always conforms to the documented
schema, status codes and content types, and malformed input is refused.

`positive_data_acceptance` is left out: some valid-looking requests are refused by rules the
schema cannot express (an opaque cursor we never issued, an appointment that ends before it
starts, an unknown time zone), and those refusals are correct. DELETE is left out so the run
does not revoke its own key.
"""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode


def test_every_operation_honours_its_contract(api):
    api.technician()
    api.job()
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    headers = api.headers("admin")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures = []
    # Positive data only here: negative generation also drops the Authorization header, which
    # this harness adds back. The full positive + negative run is `schemathesis run` against a
    # served app (docs/testing.md).
    runs = [(op, GenerationMode.POSITIVE) for op in operations if op.method.upper() != "DELETE"]
    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def honours_contract(case):
            response = case.call(headers=headers)
            case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])

        try:
            honours_contract()
        except Exception as exc:  # collect every operation's failure, not just the first
            # A flaky failure hides its cause in sub-exceptions: say them, or the report is useless.
            causes = "".join(f"\n  - {type(e).__name__}: {e}" for e in getattr(exc, "exceptions", ()))
            failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}{causes}")
    assert not failures, "\n\n".join(failures)
