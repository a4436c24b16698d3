"""slay.torch.SlayAttention: an nn.Module holding a feature map whose parameters are nn.Parameters
(learnable) or buffers, so state_dict, deepcopy, pickle and torch.save work."""
import torch
from torch import nn

from ..feature_map import FeatureMap
from ._inputs import check_tensor
from .attention import run, final_positions
from .state import State


class SlayAttention(nn.Module):
    """Linear attention through a libslay feature map, as a module.

    SlayAttention(head_dim, num_heads=1, kind="slay", learnable=False, nodes=2, poly="anchor",
    poly_dim=8, prf_dim=8, eps=1e-6, prf_clamp=20.0, seed=0, max_length=0, orthogonal=False,
    shared_omega=False, expansion="quadrature", degree=2): the map is slay.FeatureMap(kind,
    head_dim=head_dim, num_heads=num_heads (the key heads), ...) with those keywords. Its parameters
    (SLAY anchors and ω, random-feature ω, ...) become nn.Parameters when learnable=True (trained
    with the model through slay.linear_attention_backward) and buffers otherwise; both are in the
    state_dict. The C map is re-created from the config and the parameters on deepcopy / pickle /
    torch.save, and updated when the parameters change.

    forward(q, k, v, ...) takes [B, T, H, D] tensors and slay.torch.linear_attention's keywords.
    The module's dtype (`.to(torch.bfloat16)`, default float32) is its output dtype.
    """

    def __init__(self, head_dim, num_heads=1, kind="slay", learnable=False, nodes=2, poly="anchor", poly_dim=8,
                 prf_dim=8, eps=1e-6, prf_clamp=20.0, seed=0, max_length=0, orthogonal=False, shared_omega=False,
                 expansion="quadrature", degree=2):
        super().__init__()
        fm = FeatureMap(kind, head_dim=head_dim, num_heads=num_heads, nodes=nodes, poly=poly, poly_dim=poly_dim,
                        prf_dim=prf_dim, eps=eps, prf_clamp=prf_clamp, seed=seed, max_length=max_length,
                        orthogonal=orthogonal, shared_omega=shared_omega, expansion=expansion, degree=degree)
        self.config = fm.config
        self.learnable = bool(learnable)
        self.param_names = []
        for name, array in fm.get_params().items():
            value = torch.from_numpy(array)
            if self.learnable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
            self.param_names.append(name)
        # A float marker whose dtype follows .to(dtype) / .half() / .bfloat16(): the output dtype.
        self.register_buffer("io_dtype_marker", torch.zeros(()), persistent=False)
        self._fm = fm
        self._synced = self._signature()

    # -- the C map follows the parameters -------------------------------------------------------------
    def _tensors(self):
        return [getattr(self, name) for name in self.param_names]

    def _signature(self):
        return tuple((t.data_ptr(), t._version, t.dtype) for t in self._tensors())

    @property
    def feature_map(self):
        """The slay.FeatureMap, holding the current parameter values."""
        signature = self._signature()
        if signature != self._synced:
            self._fm.set_params(**{name: t.detach().float().cpu().numpy()
                                   for name, t in zip(self.param_names, self._tensors())})
            self._synced = signature
        return self._fm

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fm", None)
        state.pop("_synced", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._fm = FeatureMap(**self.config)
        self._synced = None

    def _apply(self, fn, recurse=True):
        # .to(bfloat16) / .half() change the I/O dtype (the marker), not the map's parameters:
        # libslay computes in float32, so they stay float32 at full precision.
        kept = {name: t.detach().clone() for name, t in zip(self.param_names, self._tensors())}
        result = super()._apply(fn, recurse)
        for name, t in zip(self.param_names, self._tensors()):
            if t.dtype != torch.float32:
                t.data = kept[name].to(t.device)
        return result

    # -- attention -----------------------------------------------------------------------------
    @property
    def io_dtype(self):
        return self.io_dtype_marker.dtype

    def forward(self, q, k, v, causal=True, delta=1e-6, chunk_size=0, n_threads=1, initial_state=None,
                output_final_state=False, cu_seqlens=None, denominator="add", normalize=True, decay=None,
                log_decay=None, query_gate_logits=None, key_gate_logits=None, update="add", beta=None,
                qk_l2norm=False, check_finite=False):
        """slay.torch.linear_attention(q, k, v, self.feature_map, ...) with every keyword (causal,
        delta, chunk_size, n_threads, initial_state, output_final_state, cu_seqlens, denominator,
        normalize, decay, log_decay, query_gate_logits, key_gate_logits, update, beta, qk_l2norm,
        check_finite) as there; the output is in the module's dtype, and learnable map parameters
        receive gradients."""
        check_tensor(q, "q")
        fm = self.feature_map
        params = [t if t.dtype == torch.float32 else t.float() for t in self._tensors()] if self.learnable else []
        y, S, z, positions = run(q, k, v, fm, causal, delta, chunk_size, n_threads, initial_state,
                                 output_final_state, cu_seqlens, denominator, normalize, decay, log_decay,
                                 query_gate_logits, key_gate_logits, params, update, beta, qk_l2norm, check_finite)
        y = y if self.io_dtype == torch.float32 else y.to(self.io_dtype)
        if not output_final_state:
            return y
        state = State.from_arrays(fm, S.detach(), z.detach(), final_positions(q, cu_seqlens, positions))
        state.tensors = (S, z)
        return y, state

    def extra_repr(self):
        c = self.config
        return "kind=%r, head_dim=%d, num_heads=%d, learnable=%s, dim=%d" % (
            c["kind"], c["head_dim"], c["num_heads"], self.learnable, self._fm.dim)
