from __future__ import annotations

import pickle
from uuid import RFC_4122, UUID

from agent_history.producer.envelope import new_id


def test_a_new_id_is_a_random_uuid_like_uuid4_makes() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for uuid in ids[:100]:
        assert (uuid.version, uuid.variant) == (4, RFC_4122)
        again = UUID(str(uuid))
        assert again == uuid
        assert hash(again) == hash(uuid)
        assert pickle.loads(pickle.dumps(uuid)) == uuid
    # Every bit that is not the version or variant varies.
    varying = 0
    for uuid in ids:
        varying |= uuid.int ^ ids[0].int
    assert varying == (1 << 128) - 1 & ~(0xF000 << 64 | 0xC000 << 48)
