"""Requests per API key are limited (OWASP API4): over the limit is a 429 problem with
Retry-After; each key has its own bucket; the bucket refills as the service clock moves."""

import pytest
from support.api import job_body
from support.problems import assert_problem

from dispatch.ratelimit import TokenBuckets


@pytest.fixture
def limited(settings):
    settings.rate_limit_per_second = 1
    settings.rate_limit_burst = 3


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(limited, api):
    for _ in range(3):
        assert api.get("/v1/jobs").status_code == 200
    r = api.get("/v1/jobs")
    assert_problem(r, 429, "rate-limited")
    assert r.headers["retry-after"] == "1"
    assert api.get("/v1/jobs", who="supervisor").status_code == 200  # another key, another bucket
    api.clock.advance(seconds=1)
    assert api.get("/v1/jobs").status_code == 200
    assert api.get("/v1/jobs").status_code == 429


def test_writes_count_too_and_a_refused_write_changes_nothing(limited, api):
    statuses = [api.post("/v1/jobs", job_body()).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert len(api.get("/v1/jobs", who="supervisor").json()["items"]) == 3


def test_health_checks_are_never_limited(limited, api):
    assert all(api.client.get("/healthz").status_code == 200 for _ in range(10))


def test_the_bucket_refills_at_the_rate_up_to_the_burst():
    buckets = TokenBuckets(rate=2, burst=4)
    assert [buckets.take("k", 0.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("k", 0.0) == pytest.approx(0.5)
    assert buckets.take("k", 0.5) == 0.0
    assert [buckets.take("k", 100.0) for _ in range(5)][-1] > 0  # never more than the burst


def test_every_operation_documents_429(api):
    spec = api.client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        if path.startswith("/v1"):
            for method, op in operations.items():
                assert "429" in op["responses"], (method, path)
