"""The "slay" attention backend of Hugging Face transformers.

    import slay.torch.transformers
    slay.torch.transformers.register()          # kind="slay", seed 0, ... chooses the map
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="slay")
    model.generate(ids, attention_mask=mask, max_new_tokens=20)   # recurrent-state cache

What register() adds:
- "slay" in transformers' AttentionInterface (every attention layer runs through libslay, GQA
  without repeating heads) and in its AttentionMaskInterface (layers receive the 2-D padding
  mask; padded keys are left out of the sums exactly, by packing the valid tokens with
  cu_seqlens: SLAY's φ(0) ≠ 0, so zeroing them would not remove them);
- SlayCache, a transformers Cache whose layers hold one libslay State per layer (S, z per
  sequence): a decoding step costs O(1) in the context length. generate() builds it by itself for
  models whose attn_implementation is "slay" (it wraps GenerationMixin._prepare_cache_for_generation,
  which otherwise builds a growing DynamicCache: transformers has no official hook for a cache class
  per attention implementation, see _use_slay_cache_in_generate); a cache the user passes is used
  as given. Beam search reorders the states (reorder_cache, batch_repeat_interleave).
  With a DynamicCache the backend still computes the right result, recomputing over all keys.

A model pretrained with softmax attention computes different outputs after the swap: it needs
fine-tuning or distillation (slay.fit_feature_map, the backward) before its outputs mean anything.
The softmax `scaling` and attention dropout do not apply to linear attention and are not used.
"""
import torch
import transformers
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache
from transformers.generation.utils import GenerationMixin
from transformers.masking_utils import AttentionMaskInterface

from ..feature_map import FeatureMap
from ..errors import error_for, INVALID_ARGUMENT
from ._errors import value_error, unsupported
from .attention import linear_attention
from ._inputs import needs_grad
from .state import State

NAME = "slay"
_settings = {}
_maps = {}


def register(kind="slay", nodes=2, poly="anchor", poly_dim=8, prf_dim=8, eps=1e-6, prf_clamp=20.0, seed=0,
             max_length=0, orthogonal=False, shared_omega=False, expansion="quadrature", degree=2,
             normalize=True, denominator="add", delta=1e-6):
    """Registers the "slay" attention implementation with transformers (AttentionInterface and
    AttentionMaskInterface) and makes generate() use SlayCache for models that select it.

    The map of each layer is slay.FeatureMap(kind, head_dim=<the layer's head_dim>,
    num_heads=<its key/value heads>, nodes, poly, poly_dim, prf_dim, eps, prf_clamp, seed,
    max_length, orthogonal, shared_omega, expansion, degree): by default the SLAY anchor map, seed
    0. normalize, denominator and delta are slay.linear_attention's (use normalize=False for
    kind="identity"). Calling register() again replaces the settings for models run afterwards.
    """
    FeatureMap(kind, head_dim=8, num_heads=1, nodes=nodes, poly=poly, poly_dim=poly_dim, prf_dim=prf_dim, eps=eps,
               prf_clamp=prf_clamp, seed=seed, max_length=max_length, orthogonal=orthogonal,
               shared_omega=shared_omega, expansion=expansion, degree=degree).close()  # validates the keywords
    _settings.clear()
    _settings.update(map=dict(kind=kind, nodes=nodes, poly=poly, poly_dim=poly_dim, prf_dim=prf_dim, eps=eps,
                              prf_clamp=prf_clamp, seed=seed, max_length=max_length, orthogonal=orthogonal,
                              shared_omega=shared_omega, expansion=expansion, degree=degree),
                     options=dict(normalize=normalize, denominator=denominator, delta=delta))
    _maps.clear()
    AttentionInterface.register(NAME, slay_attention_forward)
    AttentionMaskInterface.register(NAME, slay_padding_mask)
    _use_slay_cache_in_generate()


def feature_map(head_dim, num_heads):
    """The registered map for layers of this head_dim and key/value head count (shared by them)."""
    if not _settings:
        raise error_for(INVALID_ARGUMENT, "slay.torch.transformers.register() has not been called")
    key = (int(head_dim), int(num_heads))
    if key not in _maps:
        _maps[key] = FeatureMap(head_dim=key[0], num_heads=key[1], **_settings["map"])
    return _maps[key]


# ---- the mask: layers get the 2-D padding mask [B, kv_length] (or None: no padding) ---------------

def slay_padding_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                      attention_mask=None, **kwargs):
    """transformers' mask hook for "slay": the 2-D boolean padding mask cut to the last kv_length
    positions, or None when nothing is padded (causality is the kernel's own)."""
    if attention_mask is None:
        return None
    attention_mask = attention_mask[:, -kv_length:].to(torch.bool)
    return None if bool(attention_mask.all()) else attention_mask


# ---- attention over (possibly padded) sequences ------------------------------------------------------

def _attend(q, k, v, fm, valid, initial, output_final_state):
    """Causal linear attention of q, k, v [B, T, H, D] leaving out the tokens where valid [B, T] is
    False (their outputs are 0), from `initial` (a State of B slots, or None). Returns (y, final
    State or None)."""
    options = _settings["options"]
    if valid is None or bool(valid.all()):
        result = linear_attention(q, k, v, fm, initial_state=initial, output_final_state=output_final_state,
                                  **options)
        return result if output_final_state else (result, None)
    B, T = valid.shape
    index = valid.reshape(-1).nonzero().squeeze(1)
    lengths = valid.sum(1)
    offsets = torch.zeros(B + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)

    def packed(x):
        return x.reshape(B * T, *x.shape[2:]).index_select(0, index).unsqueeze(0)

    result = linear_attention(packed(q), packed(k), packed(v), fm, cu_seqlens=offsets, initial_state=initial,
                              output_final_state=output_final_state, **options)
    y_packed, state = result if output_final_state else (result, None)
    y = y_packed.new_zeros((B * T, *y_packed.shape[2:])).index_copy(0, index, y_packed[0])
    return y.reshape(B, T, *y.shape[1:]), state


def slay_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers attention function: query [B, Hq, Tq, D], key / value [B, Hk, Tk, D] →
    ([B, Tq, Hq, Dv], None)."""
    if attention_mask is not None and attention_mask.dim() != 2:
        raise value_error("the slay attention backend takes 2-D padding masks; got a %d-D mask (a custom 4-D mask "
                         "cannot be applied to linear attention)" % attention_mask.dim())
    fm = feature_map(query.shape[-1], key.shape[1])
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
    layer = _claim(key)
    if layer is not None:
        y = layer.attend(q, k, v, fm, attention_mask)
    elif k.shape[1] == q.shape[1]:
        y, _ = _attend(q, k, v, fm, attention_mask, None, False)
    else:
        y = _attend_with_past(q, k, v, fm, attention_mask)
    return (y if y.dtype == query.dtype else y.to(query.dtype)), None


def _attend_with_past(q, k, v, fm, valid):
    """Keys longer than queries (a DynamicCache holding the past): the past keys are absorbed into
    a state first, then the queries run from it (O(T) per call, like the KV cache itself)."""
    past = k.shape[1] - q.shape[1]
    past_valid = None if valid is None else valid[:, :past]
    new_valid = None if valid is None else valid[:, past:]
    _, state = _attend(k[:, :past].repeat_interleave(q.shape[2] // k.shape[2], 2), k[:, :past], v[:, :past], fm,
                       past_valid, None, True)
    y, _ = _attend(q, k[:, past:], v[:, past:], fm, new_valid, state, False)
    return y


# ---- the recurrent-state cache ---------------------------------------------------------------------

_PENDING = {}


def _claim(key):
    """The SlayCacheLayer that just returned `key` from its update (None for other caches)."""
    entry = _PENDING.pop(id(key), None)
    if entry is None or entry[0] is not key:
        return None
    return entry[1]


class SlayCacheLayer(CacheLayerMixin):
    """One layer's recurrent state: a slay.torch.State with one slot per sequence (S [Hk, m, dv]
    and z [Hk, m] each), plus the number of positions seen (padding included, as transformers
    counts them). update() keeps no keys or values: it hands them to the "slay" attention
    function, which prefills or steps the state."""

    is_sliding = False
    is_compileable = False
    is_croppable = False
    _layer_type = NAME

    def __init__(self, **kwargs):
        super().__init__()
        self.state = None
        self.seen = 0

    def lazy_initialization(self, key_states, value_states):
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        _PENDING[id(key_states)] = (key_states, self)
        return key_states, value_states

    def attend(self, q, k, v, fm, mask):
        """Outputs of the new tokens q, k, v [B, Tq, H, D]; absorbs the valid ones into the state."""
        T = q.shape[1]
        valid = None if mask is None else mask[:, -T:]
        if self.state is not None and T == 1:
            y = self._step(q, k, v, valid)
        else:
            if needs_grad(q, k, v) and self.state is not None:
                raise unsupported("SlayCache: gradients do not flow through states kept between calls; "
                                   "train without a cache (use_cache=False)")
            y, state = _attend(q, k, v, fm, valid, self.state, True)
            state.tensors = None
            self.state = state
        self.seen += T
        return y

    def _step(self, q, k, v, valid):
        options = _settings["options"]
        args = [x[:, 0].detach().float() for x in (q, k, v)]
        if valid is None or bool(valid.all()):
            return self.state.step(*args, delta=options["delta"], denominator=options["denominator"],
                                   normalize=options["normalize"]).unsqueeze(1)
        slots = valid[:, 0].nonzero().squeeze(1)
        y = torch.zeros(q.shape[0], q.shape[2], v.shape[3])
        if slots.numel():
            y[slots] = self.state.step(*(x[slots] for x in args), slots=slots, delta=options["delta"],
                                       denominator=options["denominator"], normalize=options["normalize"])
        return y.unsqueeze(1)

    def get_seq_length(self):
        return self.seen

    def get_mask_sizes(self, query_length):
        return self.seen + query_length, 0

    def get_max_length(self):
        return -1

    def reset(self):
        if self.state is not None:
            self.state.reset()
        self.seen = 0

    def _select(self, rows):
        """Slot i of the new state = slot rows[i] of the current one (beams, batch edits)."""
        if self.state is None:
            return
        rows = [int(r) for r in rows]
        selected = State(self.state.fm, num_seqs=len(rows), value_dim=self.state.value_dim)
        for slot, row in enumerate(rows):
            selected.copy_slot(slot, self.state, row)
        self.state = selected

    def reorder_cache(self, beam_idx):
        self._select(beam_idx.tolist())

    def batch_repeat_interleave(self, repeats):
        if self.state is not None:
            self._select([row for row in range(self.state.num_seqs) for _ in range(repeats)])

    def batch_select_indices(self, indices):
        if self.state is not None:
            self._select(torch.arange(self.state.num_seqs)[indices].tolist())

    def crop(self, tokens_to_remove):
        raise unsupported("SlayCache cannot be cropped: a recurrent state cannot forget tokens")

    def offload(self):
        pass

    def prefetch(self):
        pass

    def __deepcopy__(self, memo):
        clone = SlayCacheLayer()
        clone.is_initialized, clone.seen = self.is_initialized, self.seen
        clone.state = None if self.state is None else self.state.copy()
        return clone


class SlayCache(Cache):
    """A transformers Cache of libslay recurrent states, one SlayCacheLayer per attention layer
    (created as the layers first run). Memory and per-token cost do not grow with the context."""

    def __init__(self, config=None):
        super().__init__(layer_class_to_replicate=SlayCacheLayer)


# ---- generate() builds a SlayCache for "slay" models ---------------------------------------------------

_original_prepare_cache = None


def _uses_slay(config):
    try:
        return config.get_text_config(decoder=True)._attn_implementation == NAME
    except AttributeError:
        return False


def _use_slay_cache_in_generate():
    """Makes generate() build a SlayCache for "slay" models by wrapping
    GenerationMixin._prepare_cache_for_generation. transformers 5 (checked against 5.24) has no
    official hook for this: generate() picks its cache from generation_config.cache_implementation
    (a closed list of names) or builds DynamicCache(config), whose layers come from
    config.layer_types through DYNAMIC_LAYER_TYPE_MAPPING. A CacheLayerMixin subclass registers a
    layer type by its `_layer_type` (SlayCacheLayer does: "slay"), but config validation accepts
    only transformers' own layer-type names (ALLOWED_LAYER_TYPES), Llama's and GPT-2's configs carry
    no layer_types, and neither AttentionInterface nor AttentionMaskInterface functions see the
    cache. The wrapper runs transformers' own choice first and swaps only a DynamicCache that it
    built itself (not user-defined) for a model whose attn_implementation is "slay"."""
    global _original_prepare_cache
    if _original_prepare_cache is not None:
        return
    _original_prepare_cache = GenerationMixin._prepare_cache_for_generation

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, *args, **kwargs):
        result = _original_prepare_cache(self, generation_config, model_kwargs, *args, **kwargs)
        cache = model_kwargs.get("cache")
        if type(cache) is DynamicCache and not getattr(cache, "_is_user_defined", False) and _uses_slay(self.config):
            model_kwargs["cache"] = SlayCache(self.config)
        return result

    GenerationMixin._prepare_cache_for_generation = _prepare_cache_for_generation


__all__ = ["register", "SlayCache", "SlayCacheLayer", "slay_attention_forward", "slay_padding_mask", "feature_map"]
