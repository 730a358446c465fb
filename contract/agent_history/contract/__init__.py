"""The contract every part shares: the events on the wire, the statuses of a run, and the
settings base. It imports nothing else of agent_history."""
