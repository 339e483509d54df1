"""Who owns which shard: every replica computes the same owners from the same members, each owns
its share, a replica joining or leaving moves only its own share; members expire unheard."""

from collections import Counter

from services.webhooks.members import EXPIRY, Members, owner
from shared.topology import SHARDS


def owners(members: set[str]) -> dict[int, str]:
    return {shard: owner(shard, members) for shard in range(SHARDS)}


def test_the_shards_are_shared_out_and_a_newcomer_takes_only_its_share() -> None:
    two = owners({"a/1", "b/2"})
    assert owners({"b/2", "a/1"}) == two  # the same, whoever computes it
    assert all(12 <= n <= 52 for n in Counter(two.values()).values())  # both have a share
    three = owners({"a/1", "b/2", "c/3"})
    moved = [shard for shard in range(SHARDS) if three[shard] != two[shard]]
    assert moved and all(three[shard] == "c/3" for shard in moved)  # only to the newcomer
    assert 8 <= len(moved) <= 36
    after = owners({"a/1", "c/3"})  # b leaves: only its shards move
    assert all(after[shard] == was for shard, was in three.items() if was != "b/2")


def test_a_member_unheard_for_the_expiry_is_gone_and_one_that_leaves_at_once() -> None:
    members = Members("me")
    assert members.alive(0.0) == {"me"} and members.mine(0.0) == frozenset(range(SHARDS))
    members.heard("other", 10.0)
    members.heard("third", 10.0)
    assert members.alive(10.0 + EXPIRY) == {"me", "other", "third"}
    members.heard("third", 10.0, leaving=True)
    assert members.alive(10.1) == {"me", "other"}
    mine = members.mine(11.0)
    assert mine and mine == {s for s in range(SHARDS) if owner(s, {"me", "other"}) == "me"}
    assert members.alive(10.0 + EXPIRY + 0.1) == {"me"}  # not heard since: gone
    members.heard("me", 20.0, leaving=True)  # its own echo changes nothing
    assert members.alive(20.0) == {"me"}
