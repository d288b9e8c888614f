"""rl.shards: splitting batches, derived seeds, sharded sampling; Rollouts.cat / pad_to (rl.policy)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from rl.policy import Rollouts
from rl.shards import ShardedSampler, derive_seed, shard_base_seed, split_batch
from rl.toy import TabularSoftmaxPolicy


class _Pair(NamedTuple):
    ids: torch.Tensor
    names: list


def test_split_batch_kinds():
    t = torch.arange(6)
    assert torch.equal(split_batch(t, 1, 3), torch.tensor([2, 3]))
    assert split_batch(["a", "b", "c", "d"], 1, 2) == ["c", "d"]
    d = split_batch({"x": torch.arange(4), "note": "shared"}, 0, 2)
    assert torch.equal(d["x"], torch.tensor([0, 1])) and d["note"] == "shared"
    p = split_batch(_Pair(torch.arange(4), ["a", "b", "c", "d"]), 1, 2)
    assert isinstance(p, _Pair) and p.names == ["c", "d"] and torch.equal(p.ids, torch.tensor([2, 3]))
    assert split_batch(t, 0, 1) is t

    class Custom:
        def shard(self, index, count):
            return ("custom", index, count)

    assert split_batch(Custom(), 1, 2) == ("custom", 1, 2)
    with pytest.raises(ValueError, match="multiple of 4"):
        split_batch(torch.arange(6), 0, 4)
    with pytest.raises(ValueError, match="shard"):
        split_batch(object(), 0, 2)
    with pytest.raises(ValueError, match="different leading sizes"):
        split_batch({"a": torch.arange(4), "b": torch.arange(6)}, 0, 2)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(1, 2) == derive_seed(1, 2) == 9192633397613097166  # pinned: old runs must replay
    assert len({derive_seed(7, k) for k in range(100)}) == 100 and 0 <= derive_seed(-5, 3) < 2**63
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert shard_base_seed(g1) == shard_base_seed(g2) and shard_base_seed(g1) != shard_base_seed(g2.manual_seed(1))


def test_sharded_sampler_concatenates_independently_seeded_shards():
    pol = TabularSoftmaxPolicy(5, n_contexts=4, seq_len=3, init_logits=torch.randn(4, 3, 5))
    batch = torch.tensor([3, 1, 0, 2])
    ro = ShardedSampler(pol, 2).sample(batch, 3, generator=torch.Generator().manual_seed(9))
    base = shard_base_seed(torch.Generator().manual_seed(9))
    parts = [pol.sample(batch[2 * k : 2 * k + 2], 3, generator=torch.Generator().manual_seed(derive_seed(base, k)))
             for k in (0, 1)]
    assert ro.group_size == 3 and torch.equal(ro.tokens, torch.cat([p.tokens for p in parts]))
    assert torch.equal(ro.extras["context"], batch.repeat_interleave(3))


def test_rollouts_cat_pads_and_keeps_row_extras():
    a = Rollouts(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 3), 2,
                 {"ctx": torch.tensor([4, 5]), "tag": "a", "h": torch.ones(2, 3)})
    b = Rollouts(torch.full((2, 1), 7), torch.ones(2, 1), torch.zeros(2, 1), torch.ones(2, 1), 2,
                 {"ctx": torch.tensor([6, 7]), "tag": "b", "h": torch.ones(2, 1)})
    c = Rollouts.cat([a, b])
    assert c.tokens.shape == (4, 3) and c.group_size == 2 and c.extras["tag"] == "a"
    assert c.mask[2:].tolist() == [[1.0, 0.0, 0.0]] * 2 and c.tokens[2:, 1:].abs().sum() == 0
    assert torch.equal(c.extras["ctx"], torch.tensor([4, 5, 6, 7])) and c.extras["h"].shape == (4, 3)
    with pytest.raises(ValueError, match="group sizes"):
        Rollouts.cat([a, Rollouts(a.tokens, a.mask, a.old_logp, a.entropy, 1)])
    with pytest.raises(ValueError, match="cannot pad"):
        a.pad_to(2)


def test_sample_shard_seeds_the_global_rng_for_samplers_without_a_generator():
    from rl.shards import sample_shard

    def draw(batch, n):
        return torch.rand(n)

    torch.manual_seed(0)
    a = sample_shard(draw, None, 3, 11, takes_generator=False)
    after = torch.rand(1)
    torch.manual_seed(0)
    b = sample_shard(draw, None, 3, 11, takes_generator=False)
    assert torch.equal(a, b) and torch.equal(after, torch.rand(1))  # the caller's RNG stream is untouched
    assert not torch.equal(a, sample_shard(draw, None, 3, 12, takes_generator=False))
