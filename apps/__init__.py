"""Applications built on the qvltrain library: benchmarks, held-out evaluation, reports, shard tools."""
