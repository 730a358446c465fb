"""The read model: the tables the projector writes and the API reads, their migrations, and
the database engine. Imports only the contract."""
