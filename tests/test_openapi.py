"""The committed spec in openapi/ is the contract: it must equal what the app serves."""

from dispatch.cli import OPENAPI_PATH, render_openapi


def test_the_committed_spec_matches_the_app():
    assert OPENAPI_PATH.read_text() == render_openapi(), "run `dispatch openapi` and commit openapi/openapi.json"


def test_every_operation_has_a_stable_id_and_documents_its_problems(api):
    spec = api.client.get("/openapi.json").json()
    ids = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            ids.append(op["operationId"])
            if path.startswith("/v1"):
                assert "401" in op["responses"], (method, path)
                assert "application/problem+json" in op["responses"]["401"]["content"]
    assert len(ids) == len(set(ids))
