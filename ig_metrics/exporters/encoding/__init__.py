"""What the encoders share: protobuf framing, series caches, log2 slots as native buckets."""
