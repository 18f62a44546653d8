"""The distributed engine's Kafka side: topic administration (more with the workers)."""
