"""flask_dashboard_ws/limits.py: the token buckets and the client address (the rest is live: integration/)."""

from flask_dashboard_ws.limits import BucketsByKey, TokenBucket, client_address


def test_a_bucket_gives_a_burst_of_one_seconds_worth_then_its_rate():
    bucket = TokenBucket(3)
    now = bucket.stamp
    assert [bucket.take(now) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(now + 0.34) and not bucket.take(now + 0.34)  # one more each third of a second


def test_a_new_bucket_read_at_a_time_just_before_it_was_made_still_has_its_burst():
    bucket = TokenBucket(1)
    assert bucket.take(bucket.stamp - 0.001)


def test_buckets_by_key_are_separate_and_full_ones_are_forgotten_when_there_are_many():
    buckets = BucketsByKey(1, most=2)
    now = 1e9
    assert buckets.take("a", now) and not buckets.take("a", now) and buckets.take("b", now)
    assert buckets.take("c", now + 10)  # a and b are full again by then: forgotten, not counted
    assert set(buckets.buckets) == {"c"}


def test_the_client_address_is_the_one_the_farthest_trusted_proxy_saw():
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.7"}
    assert client_address(environ, 0) == "10.0.0.1"
    assert client_address(environ, 1) == "198.51.100.7"
    assert client_address(environ, 2) == "203.0.113.9"
    assert client_address(environ, 3) == "10.0.0.1"  # fewer entries than trusted proxies: not trusted
