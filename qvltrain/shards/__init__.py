"""Shard authoring: the schema, token counting, recipe helpers, the shard writer, checks and stats."""
