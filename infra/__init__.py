"""Small infrastructure every package uses: structured logs, backoff, throttling, durable
writes, percentiles. Nothing here knows about cameras, models or clips."""
