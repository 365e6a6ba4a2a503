import dagster as dg

# Everything that touches a network retries with exponential backoff and jitter.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
