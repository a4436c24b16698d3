"""The PyTorch rows of python -m slay.bench (run in its child processes when torch is installed):
the per-call overhead of slay.torch against a direct ctypes call, the cost of bf16 I/O, a GPT block
forward+backward against the same chunked SLAY written in torch, and per-token decoding of a random
Llama with the recurrent-state cache against torch SDPA with its KV cache."""
import ctypes
import math
import time

import numpy as np
import torch

import slay
from slay._lib import lib, Error
from slay._tensor import pointer_struct
from slay.attention import attention_options
import slay.torch as slay_torch


def _best(fn, repeats, min_time=0.0):
    fn()
    best, start, runs = float("inf"), time.perf_counter(), 0
    while runs < repeats or (time.perf_counter() - start < min_time and runs < 5000):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        runs += 1
    return best


def overhead_row():
    """µs per call on a one-token problem: the bare ctypes call with prebuilt descriptors, and
    slay.torch.linear_attention with autograd recording (and with inputs requiring grad, when
    the library has its backward)."""
    fm = slay.FeatureMap("elu+1", head_dim=4, num_heads=1)
    q, k, v = (torch.randn(1, 1, 1, 4) for _ in range(3))
    out = torch.empty(1, 1, 1, 4)
    descriptors = [ctypes.byref(pointer_struct(t.data_ptr(), tuple(t.shape), t.stride())) for t in (q, k, v, out)]
    options = ctypes.byref(attention_options())
    err = ctypes.byref(Error())
    handle = fm.handle
    direct = _best(lambda: lib.slay_linear_attention(handle, *descriptors, options, err), 2000, 0.1)
    with torch.enable_grad():
        wrapped = _best(lambda: slay_torch.linear_attention(q, k, v, fm), 2000, 0.1)
        row = {"row": "overhead", "direct_us": direct * 1e6, "torch_us": wrapped * 1e6,
               "overhead_us": (wrapped - direct) * 1e6}
        if slay_torch.backward_available():
            qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
            recorded = _best(lambda: slay_torch.linear_attention(qg, kg, vg, fm), 2000, 0.1)
            row.update(torch_requires_grad_us=recorded * 1e6, overhead_requires_grad_us=(recorded - direct) * 1e6)
    return row


def half_row(threads, T):
    """slay.torch with bfloat16 q, k, v (passed to libslay as they are: it widens them as it loads
    them and rounds the output as it stores it) against float32."""
    fm = slay.FeatureMap("slay", head_dim=64, num_heads=8, poly_dim=16, prf_dim=16)
    q, k, v = (torch.randn(1, T, 8, 64) for _ in range(3))
    f32 = _best(lambda: slay_torch.linear_attention(q, k, v, fm, n_threads=threads), 3)
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    bf16 = _best(lambda: slay_torch.linear_attention(qb, kb, vb, fm, n_threads=threads), 3)
    return {"row": "bf16", "T": T, "float32_ms": f32 * 1e3, "bfloat16_ms": bf16 * 1e3, "bf16_cost": bf16 / f32 - 1}


# ---- the GPT block and the same chunked SLAY written in torch ---------------------------------------

class TorchChunkedSlay:
    """Chunked causal SLAY attention in torch (autograd), the algorithm libslay runs: features per
    chunk, the state S, z carried across chunks, the intra-chunk block masked. `anchors` (P, d)
    and `omega` (R, H, d, M) are the map's parameters as tensors (set requires_grad to learn them)."""

    def __init__(self, fm, chunk=64):
        params, config = fm.get_params(), fm.config
        self.anchors = torch.from_numpy(params["anchors"])
        self.omega = torch.from_numpy(params["omega"])
        t, alpha = np.polynomial.laguerre.laggauss(config["nodes"])
        C = 2 + config["eps"]
        self.s = torch.tensor(t / C, dtype=torch.float32)
        self.w = torch.tensor(alpha / C, dtype=torch.float32)
        self.clamp = config["prf_clamp"]
        self.chunk = chunk

    def features(self, x):
        """x (B, H, T, d) → (B, H, T, m), m ordered (node, anchor, feature) as libslay's."""
        R, _, _, M = self.omega.shape
        scaled = self.omega * torch.sqrt(2 * self.s)[:, None, None, None]
        omega_cat = scaled.permute(1, 2, 0, 3).reshape(self.omega.shape[1], self.omega.shape[2], -1)  # (H, d, R·M)
        u = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        poly = (u @ self.anchors.T) ** 2 / math.sqrt(self.anchors.shape[0])
        z = (u @ omega_cat).unflatten(-1, (R, M)) - self.s[:, None]
        prf = torch.exp(z.clamp(-self.clamp, self.clamp)) * torch.sqrt(self.w / M)[:, None]
        return (poly[..., None, :, None] * prf[..., :, None, :]).flatten(-3)

    def __call__(self, q, k, v, delta=1e-6):
        """q, k, v (B, T, H, d) → (B, T, H, dv), causal."""
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        fq, fk = self.features(q), self.features(k)
        B, H, T, m = fq.shape
        S = fq.new_zeros(B, H, m, v.shape[-1])
        z = fq.new_zeros(B, H, m, 1)
        outputs = []
        for t0 in range(0, T, self.chunk):
            pq, pk, pv = fq[:, :, t0:t0 + self.chunk], fk[:, :, t0:t0 + self.chunk], v[:, :, t0:t0 + self.chunk]
            scores = (pq @ pk.transpose(-1, -2)).tril()
            numerator = pq @ S + scores @ pv
            denominator = pq @ z + scores.sum(-1, keepdim=True)
            outputs.append(numerator / (denominator + delta))
            S = S + pk.transpose(-1, -2) @ pv
            z = z + pk.sum(-2, keepdim=True).transpose(-1, -2)
        return torch.cat(outputs, 2).transpose(1, 2)


class GPTBlock(torch.nn.Module):
    def __init__(self, attention, d_model=512, heads=8):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(d_model), torch.nn.LayerNorm(d_model)
        self.qkv, self.proj = torch.nn.Linear(d_model, 3 * d_model), torch.nn.Linear(d_model, d_model)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d_model, 4 * d_model), torch.nn.GELU(),
                                       torch.nn.Linear(4 * d_model, d_model))
        self.attention = attention

    def forward(self, x):
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, -1)).unbind(2)
        x = x + self.proj(self.attention(q, k, v).flatten(-2))
        return x + self.mlp(self.norm2(x))


def gpt_block_row(threads, T):
    """Forward + backward of a GPT block (d_model 512, 8 heads) at length T: slay.torch attention
    against the same chunked SLAY in torch autograd (same map, same weights)."""
    fm = slay.FeatureMap("slay", head_dim=64, num_heads=8, poly_dim=16, prf_dim=16)
    torch.manual_seed(0)
    ours = GPTBlock(lambda q, k, v: slay_torch.linear_attention(q, k, v, fm, chunk_size=64, n_threads=threads))
    theirs = GPTBlock(TorchChunkedSlay(fm, 64))
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, T, 512)

    def step(block):
        block.zero_grad()
        block(x).square().mean().backward()

    slay_s, torch_s = _best(lambda: step(ours), 2), _best(lambda: step(theirs), 2)
    return {"row": "gpt_block", "T": T, "slay_ms": slay_s * 1e3, "torch_ms": torch_s * 1e3,
            "speedup": torch_s / slay_s}


# ---- decoding a random Llama: recurrent state against the KV cache ------------------------------------

def decode_row(context, steps=16):
    """ms per generated token after a `context`-token prompt: a random Llama (hidden 512, 8 heads,
    4 layers) with attn_implementation "slay" and SlayCache, against the same model with torch SDPA
    and its DynamicCache."""
    from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig
    import slay.torch.transformers as backend
    backend.register()
    config = LlamaConfig(vocab_size=1024, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=context + steps + 8)
    torch.manual_seed(0)
    row = {"row": "decode", "context": context}
    for name, cache_class in (("slay", backend.SlayCache), ("sdpa", DynamicCache)):
        model = AutoModelForCausalLM.from_config(config, attn_implementation=name).eval()
        ids = torch.randint(0, 1024, (1, context))
        with torch.no_grad():
            cache = cache_class()
            model(ids, cache=cache, use_cache=True)
            token = torch.randint(0, 1024, (1, 1))
            model(token, cache=cache, use_cache=True)   # warm-up
            start = time.perf_counter()
            for _ in range(steps):
                model(token, cache=cache, use_cache=True)
            row[name + "_ms_per_token"] = (time.perf_counter() - start) / steps * 1e3
    row["speedup_vs_sdpa"] = row["sdpa_ms_per_token"] / row["slay_ms_per_token"]
    return row


def rows(threads, quick):
    """Every PyTorch row, one at a time."""
    torch.set_num_threads(threads)
    yield overhead_row()
    yield half_row(threads, 128 if quick else 4096)
    if slay_torch.backward_available():
        yield gpt_block_row(threads, 256 if quick else 4096)
    for context in ((64,) if quick else (256, 4096, 8192)):
        yield decode_row(context, steps=2 if quick else 16)



def line(row):
    if row["row"] == "overhead":
        text = ("torch overhead per call: %.1f us (slay.torch %.1f us with autograd recording, direct ctypes %.1f us)"
                % (row["overhead_us"], row["torch_us"], row["direct_us"]))
        if "overhead_requires_grad_us" in row:
            text += "; inputs requiring grad: %.1f us" % row["overhead_requires_grad_us"]
        return text
    if row["row"] == "bf16":
        return "torch bf16 I/O (zero-copy), T=%d: %.1f ms vs float32 %.1f ms (%+.0f%%)" % (
            row["T"], row["bfloat16_ms"], row["float32_ms"], 100 * row["bf16_cost"])
    if row["row"] == "gpt_block":
        return "GPT block fwd+bwd T=%d: slay.torch %.0f ms, chunked SLAY in torch %.0f ms (%.2fx)" % (
            row["T"], row["slay_ms"], row["torch_ms"], row["speedup"])
    return "Llama decode, context %5d: slay %.2f ms/token, SDPA + KV cache %.2f ms/token (%.2fx)" % (
        row["context"], row["slay_ms_per_token"], row["sdpa_ms_per_token"], row["speedup_vs_sdpa"])
