"""The bus: transactional outbox, its relay to Kafka, and the exactly-once consumer runner."""
