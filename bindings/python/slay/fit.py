"""Fit a feature map's parameters to data: slay.fit_feature_map and `python -m slay.fit`.

The loss is the relative error of causal attention through the map against exact spherical-Yat
attention (slay.exact_attention, kernel "yat-spherical", the map's eps), minimised with Adam in
numpy on the gradients of slay.linear_attention_backward (the Hedgehog / LoLCATs idea of
learnable feature maps, here for the SLAY map's anchors and ω, or any map with parameters)."""
import argparse
import sys

import numpy as np

from .attention import linear_attention, exact_attention
from .errors import error_for, INVALID_ARGUMENT, SHAPE
from .feature_map import FeatureMap
from .gradients import linear_attention_backward

CONFIG_KEYS = ("kind", "head_dim", "num_heads", "nodes", "poly", "poly_dim", "prf_dim", "eps", "prf_clamp", "seed",
               "max_length", "orthogonal", "shared_omega", "expansion", "degree")


def copy_map(fm):
    """A new FeatureMap of the same kind and size holding fm's current parameters."""
    config = fm.config
    clone = FeatureMap(**{key: config[key] for key in CONFIG_KEYS})
    params = fm.get_params()
    if params:
        clone.set_params(**params)
    return clone


def relative_error(fm, q, k, v):
    """‖y − y*‖ / ‖y*‖ of causal attention through fm against exact spherical Yat (fm's eps)."""
    eps = fm.config["eps"]
    y = linear_attention(q, k, v, fm).astype(np.float64)
    ref = exact_attention(q, k, v, kernel="yat-spherical", eps=eps).astype(np.float64)
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def _loss_and_gradients(fm, q, k, v, n_threads):
    eps = fm.config["eps"]
    y = linear_attention(q, k, v, fm, n_threads=n_threads).astype(np.float64)
    ref = exact_attention(q, k, v, kernel="yat-spherical", eps=eps, n_threads=n_threads).astype(np.float64)
    scale = float((ref ** 2).sum())
    residual = y - ref
    loss = float((residual ** 2).sum()) / scale
    dout = (2 * residual / scale).astype(np.float32)
    grads = linear_attention_backward(q, k, v, fm, dout, n_threads=n_threads, wrt=["params"])
    return loss, grads.get("params", {})


def fit_feature_map(fm, q, k, v=None, steps=200, lr=1e-2, seed=0, batch_size=4, held_out=0.25, n_threads=1,
                    log=None):
    """A NEW FeatureMap of fm's kind and size whose parameters are fitted to q, k (B, T, H, d)
    float32 sample sequences; fm itself is unchanged.

    The loss is the relative squared error of causal attention through the map against exact
    spherical-Yat attention with the map's eps, averaged over minibatches of `batch_size`
    sequences; Adam (β = 0.9, 0.999) with step size lr for `steps` steps. v: values (B, T, H, dv),
    random N(0, 1) when None. A fraction `held_out` of the sequences (at least one) is kept out of
    training; the returned map carries `fit_report` = {"train_before", "train_after",
    "held_out_before", "held_out_after"} (relative L2 errors). The parameters kept are those with
    the lowest training error seen (checked every 10 steps), and fm's own when nothing improved,
    so fitting never makes the training error worse. log: a callable given progress lines."""
    params = fm.get_params()
    if not params:
        raise error_for(INVALID_ARGUMENT, "this feature map has no parameters to fit")
    q = np.ascontiguousarray(q, np.float32)
    k = np.ascontiguousarray(k, np.float32)
    if q.ndim != 4 or k.shape != q.shape[:2] + k.shape[2:] or k.ndim != 4:
        raise error_for(SHAPE, "q and k must be (B, T, H, d) sample sequences, got %s and %s" % (q.shape, k.shape))
    rng = np.random.default_rng(seed)
    if v is None:
        v = rng.standard_normal(k.shape[:3] + (k.shape[3],)).astype(np.float32)
    v = np.ascontiguousarray(v, np.float32)
    B = q.shape[0]
    held = max(1, int(round(B * held_out))) if B > 1 else 0
    train = np.arange(B - held)
    test = np.arange(B - held, B) if held else train
    if len(train) == 0:
        raise error_for(SHAPE, "need at least one training sequence (B = %d)" % B)
    work = copy_map(fm)
    names = list(params)
    first = {name: 0.0 * params[name].astype(np.float64) for name in names}
    second = {name: 0.0 * params[name].astype(np.float64) for name in names}
    current = {name: params[name].astype(np.float64) for name in names}
    trainable = [name for name in names if name != "sketch"]  # TensorSketch hashes are discrete
    before_train = relative_error(work, q[train], k[train], v[train])
    best = (before_train, {name: params[name].copy() for name in names})
    for step in range(1, steps + 1):
        batch = rng.choice(train, size=min(batch_size, len(train)), replace=False)
        loss, grads = _loss_and_gradients(work, q[batch], k[batch], v[batch], n_threads)
        for name in trainable:
            g = np.asarray(grads[name], np.float64)
            first[name] = 0.9 * first[name] + 0.1 * g
            second[name] = 0.999 * second[name] + 0.001 * g * g
            update = (first[name] / (1 - 0.9 ** step)) / (np.sqrt(second[name] / (1 - 0.999 ** step)) + 1e-8)
            current[name] = current[name] - lr * update
        work.set_params(**{name: current[name].astype(np.float32) for name in trainable})
        if step % 10 == 0 or step == steps:
            error = relative_error(work, q[train], k[train], v[train])
            if log is not None:
                log("step %d: minibatch loss %.4f, training error %.4f" % (step, loss, error))
            if error < best[0]:
                best = (error, work.get_params())
    result = copy_map(fm)
    result.set_params(**best[1])
    result.fit_report = {"train_before": before_train, "train_after": best[0],
                         "held_out_before": relative_error(fm, q[test], k[test], v[test]),
                         "held_out_after": relative_error(result, q[test], k[test], v[test])}
    return result


def structured_sequences(B, T, H, d, directions=4, key_noise=0.3, query_noise=0.3, dv=None, seed=0):
    """(q, k, v) float32 (B, T, H, d) sequences that look like real layers' queries and keys: per
    head, keys are drawn around `directions` fixed unit directions (Gaussian noise of scale
    key_noise/√d), each query is the key of a random earlier position of its sequence plus noise
    (query_noise/√d) times a random scale in [0.5, 2], and values depend on the direction (a fixed
    vector per direction plus noise 0.1). The directions and value vectors are the same for every
    seed (drawn from a fixed generator), so different seeds give new sequences of the SAME
    distribution: fit on one seed, judge on another."""
    dv = d if dv is None else dv
    base = np.random.default_rng(12345)
    centres = base.standard_normal((H, directions, d))
    centres /= np.linalg.norm(centres, axis=-1, keepdims=True)
    value_centres = base.standard_normal((H, directions, dv))
    rng = np.random.default_rng(seed)
    which = rng.integers(0, directions, size=(B, T, H))
    heads = np.arange(H)[None, None, :]
    k = centres[heads, which] + key_noise * rng.standard_normal((B, T, H, d)) / np.sqrt(d)
    v = value_centres[heads, which] + 0.1 * rng.standard_normal((B, T, H, dv))
    earlier = (rng.random((B, T, H)) * (np.arange(T)[None, :, None] + 1)).astype(int)
    q = np.take_along_axis(k, earlier[..., None], axis=1) + query_noise * rng.standard_normal((B, T, H, d)) / np.sqrt(d)
    scale = rng.uniform(0.5, 2.0, size=(B, T, H, 1))
    return (q * scale).astype(np.float32), k.astype(np.float32), v.astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m slay.fit", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=("structured", "iid"), default="structured",
                        help="structured: keys around a few directions per head, queries aligned with earlier "
                             "keys (default); iid: Gaussian queries and keys")
    parser.add_argument("--head-dim", type=int, default=16)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--train", type=int, default=16, help="training sequences (default 16)")
    parser.add_argument("--held-out", type=int, default=8, help="held-out sequences (default 8)")
    parser.add_argument("--poly-dim", type=int, default=8)
    parser.add_argument("--prf-dim", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    B = args.train + args.held_out
    shape = (B, args.length, args.heads, args.head_dim)
    if args.scenario == "structured":
        q, k, v = structured_sequences(*shape, seed=args.seed)
    else:
        rng = np.random.default_rng(args.seed)
        q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    fm = FeatureMap("slay", head_dim=args.head_dim, num_heads=args.heads, poly_dim=args.poly_dim,
                    prf_dim=args.prf_dim, seed=args.seed)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    fitted = fit_feature_map(fm, q, k, v, steps=args.steps, lr=args.lr, seed=args.seed,
                             held_out=args.held_out / B, log=log)
    report = fitted.fit_report
    print("scenario %s, SLAY m = %d per head, %d steps: held-out error %.4f -> %.4f (%.2fx); training %.4f -> %.4f"
          % (args.scenario, fm.dim, args.steps, report["held_out_before"], report["held_out_after"],
             report["held_out_before"] / report["held_out_after"], report["train_before"], report["train_after"]))
    return report


if __name__ == "__main__":
    main()
