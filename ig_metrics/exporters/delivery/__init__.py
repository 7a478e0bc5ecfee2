"""What every exporter shares to deliver: worker, health, retry, limits, queue, transport."""
