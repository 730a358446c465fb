"""The projection itself, pure: records in, rows, names and poison out; no I/O.

What a batch of records means for the read model is decided here and nowhere else: which
records are poison (decode), which were already applied (plan), what an execution's row is
(fold) and which names win (names), put together per batch by changes. The rest of the
projector only moves bytes between Kafka, this core and PostgreSQL. The core imports only the
contract, the standard library and pydantic (an import-linter contract keeps it that way).
"""
