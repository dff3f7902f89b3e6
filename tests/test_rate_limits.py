"""Requests per API key are limited (OWASP API4): over the limit is a 429 problem with
Retry-After; each key has its own bucket; the bucket refills as the service clock moves."""

import pytest

from dispatch.ratelimit import TokenBuckets


@pytest.fixture
def limited(settings):
    settings.rate_limit_per_second = 1
    settings.rate_limit_burst = 3


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(limited, api):
    for _ in range(3):
        assert api.get("/v1/jobs").status_code == 200
    r = api.get("/v1/jobs")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "rate-limited"
    assert api.get("/v1/jobs", who="supervisor").status_code == 200  # another key, another bucket
    api.clock.advance(seconds=1)
    assert api.get("/v1/jobs").status_code == 200
    assert api.get("/v1/jobs").status_code == 429


def test_writes_count_too_and_a_refused_write_changes_nothing(limited, api):
    from conftest import job_body

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


# Credentials as authentication reads them; failed authentication; eviction (issue 13) -------


def test_a_key_has_one_bucket_however_the_scheme_is_spelt(limited, api):
    """`bearer K`, `BEARER K` and `Bearer  K` all authenticate as K, so they are K's bucket."""
    secret = api.keys["dispatcher"]
    spellings = [f"Bearer {secret}", f"bearer {secret}", f"BEARER {secret}", f"Bearer  {secret}"]
    statuses = [api.client.get("/v1/jobs", headers={"Authorization": s}).status_code for s in spellings]
    assert statuses == [200, 200, 200, 429]


@pytest.fixture
def failures_limited(settings):
    settings.auth_failures_per_minute = 60
    settings.auth_failures_burst = 3


def test_failed_authentication_is_limited_per_client_address_before_any_database_lookup(failures_limited, api):
    from sqlalchemy import event

    assert api.get("/v1/jobs").status_code == 200  # the dispatcher at this address, known
    statements = []
    event.listen(api.database.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    guesses = [api.client.get("/v1/jobs", headers={"Authorization": f"Bearer guess-{i}"}) for i in range(3)]
    assert [r.status_code for r in guesses] == [401, 401, 401]
    looked_up = len(statements)
    refused = api.client.get("/v1/jobs", headers={"Authorization": "Bearer guess-3"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "too-many-auth-failures"
    assert refused.headers["retry-after"] == "1"
    assert len(statements) == looked_up  # refused before the key was looked up
    assert api.client.get("/v1/jobs").status_code == 429  # no key at all is a failure too
    assert api.get("/v1/jobs").status_code == 200  # a known key from the same address still works
    api.clock.advance(seconds=1)
    assert api.client.get("/v1/jobs", headers={"Authorization": "Bearer guess-4"}).status_code == 401


def test_a_full_table_evicts_only_idle_buckets_and_never_resets_a_live_one():
    buckets = TokenBuckets(rate=1, burst=2, max_keys=2)
    for key in ("a", "a", "b"):
        assert buckets.take(key, 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0  # a is empty
    for i in range(100):  # a flood of new keys while a and b are still refilling
        buckets.take(f"new-{i}", 0.5)
    assert buckets.take("a", 0.5) > 0  # still empty: the flood did not give it a fresh burst
    # Full again (nothing taken for burst/rate seconds) is the same as no bucket: evicted.
    assert buckets.take("c", 10.0) == 0.0
    assert buckets.take("c", 10.0) == 0.0
    assert buckets.take("c", 10.0) > 0


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer k1", "k1"),
        ("bearer k1", "k1"),
        ("BEARER  k1 ", "k1"),
        ("Bearer\tk1", "k1"),
        ("Basic k1", None),
        ("Bearer", None),
        ("Bearer k1 k2", None),
        ("", None),
        (None, None),
    ],
)
def test_authentication_and_the_limiter_read_the_credential_with_one_function(header, secret):
    from dispatch.auth.credentials import bearer_secret

    assert bearer_secret(header) == secret
