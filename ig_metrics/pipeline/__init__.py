"""The sampler: a gadget's kernel maps read each tick, keys decoded and enriched,
into a Snapshot (model/); and the metrics ig-metrics exports about itself."""
