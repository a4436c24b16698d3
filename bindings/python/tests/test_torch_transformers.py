"""The "slay" transformers backend on tiny random Llama (grouped-query attention) and GPT-2 models
built here (no downloads): forward, generation with the recurrent-state cache, padding, training."""
import pytest
import torch

pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, DynamicCache, GPT2Config, LlamaConfig  # noqa: E402

import slay.torch  # noqa: E402
import slay.torch.transformers as slay_transformers  # noqa: E402

NEEDS_BACKWARD = pytest.mark.skipif(not slay.torch.backward_available(),
                                    reason="needs slay.linear_attention_backward (the backward issue), "
                                           "not in this build yet")
VOCAB = 48


def llama():
    return LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=0, bos_token_id=1, eos_token_id=None)


def gpt2():
    return GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256, pad_token_id=0,
                      bos_token_id=1, eos_token_id=None)


CONFIGS = {"llama-gqa": llama, "gpt2": gpt2}


@pytest.fixture(scope="module", autouse=True)
def registered():
    slay_transformers.register()


def model_for(name, seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CONFIGS[name](), attn_implementation="slay").eval()


def greedy(model, ids, **kwargs):
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0, **kwargs)


@pytest.mark.parametrize("name", CONFIGS)
def test_forward_runs_through_libslay(name, monkeypatch):
    """Every attention layer calls the slay backend; logits are finite."""
    model = model_for(name)
    calls = []
    original = slay_transformers.slay_attention_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    from transformers import AttentionInterface
    AttentionInterface.register("slay", counting)
    try:
        with torch.no_grad():
            logits = model(torch.randint(1, VOCAB, (2, 9))).logits
    finally:
        AttentionInterface.register("slay", original)
    assert logits.shape == (2, 9, VOCAB) and torch.isfinite(logits).all()
    assert len(calls) == 2


@pytest.mark.parametrize("name", CONFIGS)
def test_generate_with_the_recurrent_cache_equals_without_cache(name):
    """Plain generate(use_cache=True) builds a SlayCache by itself; its tokens equal
    use_cache=False (full recomputation); the cache keeps fixed-size states, no keys."""
    model = model_for(name)
    ids = torch.randint(1, VOCAB, (1, 11))
    with torch.no_grad():
        result = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0, use_cache=True,
                                return_dict_in_generate=True)
    cache = result.cache
    assert isinstance(cache, slay_transformers.SlayCache)
    assert torch.equal(result.sequences, greedy(model, ids, use_cache=False))
    layer = cache.layers[0]
    assert layer.keys is None and layer.get_seq_length() == 11 + 8 - 1
    S, z, positions = layer.state.to_arrays()
    assert S.shape[:2] == (1, CONFIGS[name]().num_key_value_heads if name == "llama-gqa" else 4)
    assert positions.tolist() == [11 + 8 - 1]


@pytest.mark.parametrize("name", CONFIGS)
def test_left_padded_batch_equals_single_sequences(name):
    """Padded keys are excluded exactly: each row of a left-padded batch generates the tokens it
    generates alone."""
    model = model_for(name)
    long, short = torch.randint(1, VOCAB, (1, 10)), torch.randint(1, VOCAB, (1, 6))
    batch = torch.cat([long, torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1)])
    mask = torch.ones_like(batch)
    mask[1, :4] = 0
    together = greedy(model, batch, attention_mask=mask)
    assert torch.equal(together[0, 10:], greedy(model, long)[0, 10:])
    assert torch.equal(together[1, 10:], greedy(model, short)[0, 6:])


def test_a_dynamic_cache_gives_the_same_tokens():
    """A user-supplied DynamicCache (keys kept) is used as given, with the same result."""
    model = model_for("llama-gqa")
    ids = torch.randint(1, VOCAB, (1, 9))
    assert torch.equal(greedy(model, ids, cache=DynamicCache()), greedy(model, ids))


def test_four_dimensional_masks_are_refused():
    model = model_for("llama-gqa")
    ids = torch.randint(1, VOCAB, (1, 5))
    mask = torch.zeros(1, 1, 5, 5)
    with pytest.raises(ValueError, match="2-D padding masks"):
        with torch.no_grad():
            model(ids, attention_mask=mask)


@NEEDS_BACKWARD
@pytest.mark.parametrize("name", CONFIGS)
def test_loss_backward_reaches_every_qkv_projection(name):
    model = model_for(name).train()
    ids = torch.randint(1, VOCAB, (2, 12))
    model(ids, labels=ids, use_cache=False).loss.backward()
    for module_name, parameter in model.named_parameters():
        if any(p in module_name for p in ("q_proj", "k_proj", "v_proj", "c_attn")):
            assert parameter.grad is not None, module_name
            assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, module_name


@NEEDS_BACKWARD
def test_twenty_steps_on_a_copy_task_lower_the_loss():
    """Sequences [x, x]: the second half is predictable from the first only through attention."""
    model = model_for("llama-gqa").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(20):
        half = torch.randint(2, VOCAB, (8, 8), generator=generator)
        ids = torch.cat([half, half], 1)
        labels = ids.clone()
        labels[:, :8] = -100
        loss = model(ids, labels=labels, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses


@pytest.mark.parametrize("name", CONFIGS)
def test_beam_search_with_the_recurrent_cache_equals_without_cache(name, monkeypatch):
    """Beam search (num_beams=2) reorders the SlayCache's states between steps (reorder_cache /
    batch_repeat_interleave): the sequences equal use_cache=False beam search, for a single
    prompt and a left-padded batch, with 2 returned sequences per prompt; the reorders seen
    include ones that move states between slots."""
    model = model_for(name)
    reorders = []
    original = slay_transformers.SlayCacheLayer.reorder_cache

    def recording(self, beam_idx):
        reorders.append(beam_idx.tolist())
        return original(self, beam_idx)

    monkeypatch.setattr(slay_transformers.SlayCacheLayer, "reorder_cache", recording)
    long, short = torch.randint(1, VOCAB, (1, 9)), torch.randint(1, VOCAB, (1, 5))
    batch = torch.cat([long, torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1)])
    mask = torch.ones_like(batch)
    mask[1, :4] = 0
    for ids, attention_mask in ((long, None), (batch, mask)):
        keywords = dict(max_new_tokens=8, do_sample=False, num_beams=2, num_return_sequences=2, pad_token_id=0,
                        attention_mask=attention_mask)
        with torch.no_grad():
            cached = model.generate(ids, use_cache=True, return_dict_in_generate=True, **keywords)
            uncached = model.generate(ids, use_cache=False, **keywords)
        assert isinstance(cached.cache, slay_transformers.SlayCache)
        assert cached.sequences.shape == (2 * ids.shape[0], ids.shape[1] + 8)
        assert torch.equal(cached.sequences, uncached)
    assert any(rows != list(range(len(rows))) for rows in reorders), reorders
