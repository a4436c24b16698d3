"""python -m slay.accuracy — the SLAY paper's accuracy protocol for every feature map libslay offers.

Protocol (docs/math.md §1): x ~ N(0, 1) of shape (B=4, T=128, 64), H=4 heads of d=16, causal, ε=1e-6.
Each row's map gives linear attention y = φ(Q)(φ(K)ᵀV) / (φ(Q)(φ(K)ᵀ1) + δ); the reference is exact
spherical Yat attention (slay.exact_attention kernel="yat-spherical", quadratic, double precision).
Measured per row, averaged over seeds (data seed and map seed both vary):
  - relative L2 error ‖y − ref‖ / ‖ref‖ of the measured output;
  - mean cosine similarity between y and ref, one per token (the token's whole output vector).

Setups (--setup):
  module     the reference module (default): qkv = Linear(64, 192), attention, out = Linear(64, 64),
             PyTorch default init U(±1/8) with biases; the module output is measured. This is the
             setup that reproduces the published 0.65 of the anchor default.
  attention  q, k, v = x·W (W ~ U(±1/8), no bias); the bare attention output is measured.
Scenarios (--scenario, both by default, one table each):
  random     the queries the setup produces.
  aligned    each query q_i is replaced by a vector of the same norm whose direction has cosine
             c ~ U(0.9, 0.99) with the key k_j of a random earlier position j <= i (same head): the
             regime the Yat kernel is built for, and where few quadrature nodes are least accurate.

Rows marked "clamp" (the signed polynomials random_maclaurin, tensorsketch, nystrom) divide by
max(den, δ) instead of den + δ, as slay.h recommends for signed features.
Rows: SLAY configurations at the paper's budget (anchor P=M=8, R=2: 128 features per head) and
larger ones, the classic maps (their error against the Yat reference is large by construction: it
shows what swapping kernels changes), and reference lines "quadrature R=n": the R-node quadrature
kernel Σ_r w_r x² e^{2 s_r x} (x = q̂·k̂) used directly as quadratic attention in numpy, i.e. SLAY with
exact features and no random features — the floor that random features converge to.
The "published" column gives the numbers of docs/math.md §1 (reference-module setup, random scenario).
--fit adds the structured scenario (keys around a few directions per head, queries aligned with earlier
keys, values by direction): the paper-default map fitted with slay.fit_feature_map on training
sequences against the unfitted map, on held-out sequences (and the same on i.i.d. inputs).
Default run: 4 seeds, both scenarios, well under a minute on 2 cores; --quick (1 seed, fewer rows)
is for smoke tests. Each row is printed (stdout flushed) as soon as it is measured, with a running count
and an ETA on stderr (--quiet turns that off).
"""
import argparse
import json
import math
import sys
import time

import numpy as np

import slay
from slay._progress import Progress

PROTOCOL = dict(B=4, T=128, width=64, heads=4, eps=1e-6, delta=1e-6, causal=True)

# (name, family, FeatureMap keyword arguments, published relative L2 error or None, in --quick)
SLAY_ROWS = [
    ("anchor R=2 P=8 M=8 (paper default)", "anchor R=2", dict(nodes=2, poly="anchor", poly_dim=8, prf_dim=8), 0.65, True),
    ("anchor R=1 P=16 M=8", "anchor R=1", dict(nodes=1, poly="anchor", poly_dim=16, prf_dim=8), None, False),
    ("anchor R=2 P=16 M=8", "anchor R=2", dict(nodes=2, poly="anchor", poly_dim=16, prf_dim=8), None, False),
    ("anchor R=1 P=17 M=8", "anchor R=1", dict(nodes=1, poly="anchor", poly_dim=17, prf_dim=8), None, True),
    ("anchor R=2 P=16 M=16", "anchor R=2", dict(nodes=2, poly="anchor", poly_dim=16, prf_dim=16), None, False),
    ("anchor R=2 P=24 M=20", "anchor R=2", dict(nodes=2, poly="anchor", poly_dim=24, prf_dim=20), None, False),
    ("taylor N=2 (deterministic)", "taylor", dict(expansion="taylor", degree=2), None, True),
    ("taylor N=3 (deterministic)", "taylor", dict(expansion="taylor", degree=3), None, False),
    ("taylor N=4 (deterministic)", "taylor", dict(expansion="taylor", degree=4), None, False),
    ("exact R=1 M=1", "exact R=1", dict(nodes=1, poly="exact", prf_dim=1), None, True),
    ("exact R=1 M=2", "exact R=1", dict(nodes=1, poly="exact", prf_dim=2), None, False),
    ("exact R=2 M=1", "exact R=2", dict(nodes=2, poly="exact", prf_dim=1), None, True),
    ("exact R=2 M=2", "exact R=2", dict(nodes=2, poly="exact", prf_dim=2), None, False),
    ("exact R=2 M=8", "exact R=2", dict(nodes=2, poly="exact", prf_dim=8), 0.34, True),
    ("exact R=4 M=1", "exact R=4", dict(nodes=4, poly="exact", prf_dim=1), None, False),
    ("exact R=4 M=2", "exact R=4", dict(nodes=4, poly="exact", prf_dim=2), None, False),
    ("exact_full R=2 M=2", "exact_full R=2", dict(nodes=2, poly="exact_full", prf_dim=2), None, False),
    ("anchor R=2 P=8 M=8 orthogonal ω", "anchor R=2 orth", dict(nodes=2, poly="anchor", poly_dim=8, prf_dim=8,
                                                               orthogonal=True), None, False),
    ("exact R=1 M=2 orthogonal ω", "exact R=1 orth", dict(nodes=1, poly="exact", prf_dim=2, orthogonal=True), None, False),
    ("exact R=2 M=8 orthogonal ω", "exact R=2 orth", dict(nodes=2, poly="exact", prf_dim=8, orthogonal=True), None, True),
    # Signed polynomial estimators, with the clamp denominator they need (slay.h SLAY_POLY_*).
    ("random_maclaurin R=2 P=8 M=8 clamp", "random_maclaurin R=2",
     dict(nodes=2, poly="random_maclaurin", poly_dim=8, prf_dim=8, denominator="clamp"), None, False),
    ("tensorsketch R=2 P=8 M=8 clamp", "tensorsketch R=2",
     dict(nodes=2, poly="tensorsketch", poly_dim=8, prf_dim=8, denominator="clamp"), None, True),
    ("tensorsketch R=2 P=64 M=8 clamp", "tensorsketch R=2",
     dict(nodes=2, poly="tensorsketch", poly_dim=64, prf_dim=8, denominator="clamp"), None, False),
    ("nystrom R=2 P=8 M=8 clamp", "nystrom R=2",
     dict(nodes=2, poly="nystrom", poly_dim=8, prf_dim=8, denominator="clamp"), None, True),
    ("nystrom R=2 P=64 M=8 clamp", "nystrom R=2",
     dict(nodes=2, poly="nystrom", poly_dim=64, prf_dim=8, denominator="clamp"), None, False),
    ("nystrom R=2 P=136 M=2 clamp", "nystrom R=2",
     dict(nodes=2, poly="nystrom", poly_dim=136, prf_dim=2, denominator="clamp"), None, False),
]
CLASSIC_ROWS = [
    ("elu+1", "classic", dict(kind="elu+1"), None, True),
    ("relu", "classic", dict(kind="relu"), None, False),
    ("favor+ m=128", "classic", dict(kind="favor+", prf_dim=128), None, True),
    ("relu-random m=128", "classic", dict(kind="relu-random", prf_dim=128), None, False),
    ("random-fourier m=128", "classic", dict(kind="random-fourier", prf_dim=128), None, False),
    ("cosformer", "classic", dict(kind="cosformer", max_length=PROTOCOL["T"]), None, False),
    ("identity clamp", "classic", dict(kind="identity", denominator="clamp"), None, False),
    ("ela-hadamard-exp", "classic", dict(kind="ela-hadamard-exp"), None, False),
    ("ela-sum-sqeuclid", "classic", dict(kind="ela-sum-sqeuclid"), None, False),
    ("ela-sub-sqeuclid", "classic", dict(kind="ela-sub-sqeuclid"), None, False),
    ("ela-blueprint", "classic", dict(kind="ela-blueprint"), None, False),
]
# Equal-budget comparisons printed under each table: (configuration, an anchor configuration with the
# same or the nearest larger budget). R=1 P=17 M=8 is the best of the anchor splits of 136 features
# measured (R=2 P=8 M=8.5 is not a map; R=1 P=8 M=17 0.639, R=2 P=17 M=4 0.651, R=2 P=4 M=17 0.683).
COMPARISONS = [("taylor N=2 (deterministic)", "anchor R=1 P=17 M=8"),
               ("taylor N=3 (deterministic)", "anchor R=2 P=24 M=20")]
# Reference lines: (R, published), computed by quadrature_attention, not by a feature map.
QUADRATURE_ROWS = [(1, None), (2, 0.026), (4, None)]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def align_queries(q, k, rng, low=0.9, high=0.99):
    """Queries of the same norms as q whose directions have cosine c ~ U(low, high) with the key of a
    random position j <= i (same batch row and head): q_i = ‖q_i‖ (c k̂_j + √(1 − c²) w), w ⊥ k̂_j."""
    B, T, H, d = q.shape
    j = (rng.random((B, T, H)) * (np.arange(T)[None, :, None] + 1)).astype(np.int64)   # uniform in 0..i
    key = np.take_along_axis(k.astype(np.float64), j[..., None], axis=1)
    key /= np.linalg.norm(key, axis=-1, keepdims=True)
    w = rng.standard_normal((B, T, H, d))
    w -= (w * key).sum(-1, keepdims=True) * key
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    c = rng.uniform(low, high, (B, T, H, 1))
    direction = c * key + np.sqrt(1 - c * c) * w
    return (np.linalg.norm(q, axis=-1, keepdims=True) * direction).astype(np.float32)


def make_case(setup, scenario, seed):
    """One seed's inputs: (q, k, v) float32 (B, T, H, d) and `project`, which maps an attention output
    (B, T, H, d) to the measured output (B, T, width): the module's out projection, or a reshape.
    Data streams match tests/test_estimators.py (module: rng 100 + seed; attention: rng seed)."""
    B, T, width, H = (PROTOCOL[name] for name in ("B", "T", "width", "heads"))
    if setup == "module":
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((B, T, width))
        bound = 1 / np.sqrt(width)
        w_qkv, b_qkv = rng.uniform(-bound, bound, (width, 3 * width)), rng.uniform(-bound, bound, 3 * width)
        w_out, b_out = rng.uniform(-bound, bound, (width, width)), rng.uniform(-bound, bound, width)
        qkv = x @ w_qkv + b_qkv
        q, k, v = (qkv[..., i * width:(i + 1) * width].reshape(B, T, H, width // H).astype(np.float32)
                   for i in range(3))

        def project(y):
            return y.reshape(B, T, width).astype(np.float64) @ w_out + b_out
    else:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((B, T, width))
        q, k, v = ((x @ rng.uniform(-1 / 8, 1 / 8, (width, width))).reshape(B, T, H, width // H).astype(np.float32)
                   for _ in range(3))

        def project(y):
            return y.reshape(B, T, width).astype(np.float64)
    if scenario == "aligned":
        q = align_queries(q, k, np.random.default_rng(1000 + seed))
    return q, k, v, project


# ---------------------------------------------------------------------------------------------
# References and metrics
# ---------------------------------------------------------------------------------------------
def yat_reference(q, k, v):
    """Exact spherical Yat attention x²/(2 + ε − 2x), kernel-normalised, causal (the library, float64)."""
    return slay.exact_attention(q, k, v, kernel="yat-spherical", eps=PROTOCOL["eps"], causal=PROTOCOL["causal"],
                                delta=PROTOCOL["delta"])


def quadrature_attention(q, k, v, R):
    """Quadratic attention with the R-node quadrature kernel Σ_r w_r x² e^{2 s_r x}, x = q̂·k̂,
    s_r = t_r/C, w_r = α_r/C (Gauss–Laguerre, C = 2 + ε), causal, K V / (K 1 + δ), float64 numpy:
    what SLAY with exact polynomial features converges to as M → ∞."""
    t, alpha = slay.gauss_laguerre(R)
    C = 2 + PROTOCOL["eps"]
    qn = q / np.linalg.norm(q.astype(np.float64), axis=-1, keepdims=True)
    kn = k / np.linalg.norm(k.astype(np.float64), axis=-1, keepdims=True)
    x = np.einsum("bihd,bjhd->bhij", qn, kn)
    K = sum((a / C) * x * x * np.exp(2 * (s / C) * x) for s, a in zip(t, alpha))
    K = np.tril(K)
    y = np.einsum("bhij,bjhd->bihd", K, v.astype(np.float64))
    return y / (K.sum(-1).transpose(0, 2, 1)[..., None] + PROTOCOL["delta"])


def metrics(y, ref):
    """(relative L2 error, mean per-token cosine similarity) of measured outputs (B, T, width)."""
    y, ref = y.reshape(-1, y.shape[-1]), ref.reshape(-1, ref.shape[-1])
    rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    cos = (y * ref).sum(-1) / (np.linalg.norm(y, axis=-1) * np.linalg.norm(ref, axis=-1) + 1e-300)
    return float(rel), float(np.mean(cos))


# ---------------------------------------------------------------------------------------------
# Rows and tables
# ---------------------------------------------------------------------------------------------
def sem(values):
    """Standard error of the mean over seeds (0 for one seed): the ± column."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def map_row(name, family, options, published, cases):
    """One feature map: build it per seed (map seed = data seed), run slay.linear_attention on each
    case, and average the metrics against the Yat reference. dim is fm.dim (features per head)."""
    options = dict(options)
    kind = options.pop("kind", "slay")
    denominator = options.pop("denominator", "add")
    errors, cosines, dim = [], [], None
    for seed, (q, k, v, project, ref) in cases:
        fm = slay.FeatureMap(kind, head_dim=q.shape[-1], num_heads=q.shape[2], eps=PROTOCOL["eps"], seed=seed,
                             **options)
        dim = fm.dim
        y = slay.linear_attention(q, k, v, fm, causal=PROTOCOL["causal"], delta=PROTOCOL["delta"],
                                  denominator=denominator)
        rel, cos = metrics(project(y), ref)
        errors.append(rel)
        cosines.append(cos)
    if denominator != "add":
        options["denominator"] = denominator
    return dict(name=name, family=family, kind=kind, options=options, dim=dim, rel_l2=float(np.mean(errors)),
                rel_l2_sem=sem(errors), cosine=float(np.mean(cosines)), published=published)


def quadrature_row(R, published, cases):
    """Reference line: the R-node quadrature kernel as exact quadratic attention (no feature map).
    dim is None: it is not a finite feature map of fixed size."""
    results = [metrics(project(quadrature_attention(q, k, v, R)), ref) for _, (q, k, v, project, ref) in cases]
    errors = [r for r, _ in results]
    return dict(name="quadrature R=%d (no random features)" % R, family="quadrature", kind="reference",
                options=dict(nodes=R), dim=None, rel_l2=float(np.mean(errors)), rel_l2_sem=sem(errors),
                cosine=float(np.mean([c for _, c in results])), published=published)


def planned_rows(quick=False):
    """The rows of one table in print order, each as (what it is, a function of the cases computing it)."""
    rows = [(name, lambda cases, spec=(name, family, options, published): map_row(*spec, cases))
            for name, family, options, published, in_quick in SLAY_ROWS + CLASSIC_ROWS if in_quick or not quick]
    rows += [("quadrature R=%d" % R, lambda cases, R=R, published=published: quadrature_row(R, published, cases))
             for R, published in QUADRATURE_ROWS if R == 2 or not quick]
    return rows


def table_cases(setup, scenario, seeds):
    """Every seed's inputs with its measured reference output: [(seed, (q, k, v, project, ref))]."""
    cases = []
    for seed in range(seeds):
        q, k, v, project = make_case(setup, scenario, seed)
        cases.append((seed, (q, k, v, project, project(yat_reference(q, k, v)))))
    return cases


def table_rows(setup, scenario, seeds, quick=False):
    """The rows of one (setup, scenario), yielded one at a time as each is measured."""
    cases = table_cases(setup, scenario, seeds)
    # Published numbers are for the reference module on random inputs only.
    show_published = setup == "module" and scenario == "random"
    for _, compute in planned_rows(quick):
        row = compute(cases)
        if not show_published:
            row["published"] = None
        yield row


def run_table(setup, scenario, seeds, quick=False):
    """All rows for one (setup, scenario): a dict with the rows in print order."""
    return dict(setup=setup, scenario=scenario, seeds=seeds, rows=list(table_rows(setup, scenario, seeds, quick)))


ROW_FORMAT = "  %-38s %9s %10s %7s %8s %10s"


def format_heading(table):
    """The table's title and column names: configuration, features per head, relative L2 (± its standard
    error over seeds), mean cosine, published relative L2."""
    return ["setup %s, scenario %s: relative L2 error and mean cosine vs exact spherical Yat attention "
            "(mean of %d seed%s)" % (table["setup"], table["scenario"], table["seeds"],
                                     "" if table["seeds"] == 1 else "s"),
            ROW_FORMAT % ("configuration", "dim/head", "rel L2", "±", "cosine", "published")]


def format_row(row):
    return ROW_FORMAT % (row["name"], "-" if row["dim"] is None else row["dim"], "%.4g" % row["rel_l2"],
                         "%.2g" % row["rel_l2_sem"], "%.4f" % row["cosine"],
                         "-" if row["published"] is None else "%.3g" % row["published"])


def format_comparisons(table):
    """The equal-budget comparisons (COMPARISONS) whose two rows are both in the table."""
    lines = []
    by_name = {row["name"]: row for row in table["rows"]}
    for name, baseline in COMPARISONS:
        if name in by_name and baseline in by_name:
            ours, theirs = by_name[name], by_name[baseline]
            lines.append("  %s (%d features) vs %s (%d): %.2f× lower error" % (
                name, ours["dim"], baseline, theirs["dim"], theirs["rel_l2"] / ours["rel_l2"]))
    return lines


def format_table(table):
    """The whole table as text (what the streaming output of main prints, in one string)."""
    return "\n".join(format_heading(table) + [format_row(row) for row in table["rows"]] + format_comparisons(table))


# Distinct colours and markers: one pair per SLAY family (13 in a full run), then the classic maps.
PLOT_MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H"]
FAMILY_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                  "#17becf", "#000000", "#6a3d9a", "#b15928", "#fb9a99", "#33a02c"]
CLASSIC_COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#999999",
                   "#66c2a5", "#1b9e77", "#e7298a"]


def plot(tables, path):
    """Relative L2 error against features per head, one panel per table: a line per SLAY family, a point
    per classic map (off-scale ones at the top edge, their value in the legend) and a dotted line per
    quadrature reference. Every series has its own colour and marker; nothing is annotated on the axes
    (labels of nearby points would overlap): the legends sit outside, right of the panels.
    Returns False if matplotlib is not importable."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        return False
    top = 2.0   # relative L2 errors above this are off scale
    families, classics, references = [], [], []
    for table in tables:
        for row in table["rows"]:
            kind = ("reference" if row["family"] == "quadrature" else "classic" if row["family"] == "classic"
                    else "family")
            key = row["name"] if kind != "family" else row["family"]
            bucket = {"family": families, "classic": classics, "reference": references}[kind]
            if key not in bucket:
                bucket.append(key)
    family_style = {name: (FAMILY_COLOURS[i % len(FAMILY_COLOURS)], PLOT_MARKERS[i % len(PLOT_MARKERS)])
                    for i, name in enumerate(families)}
    classic_style = {name: (CLASSIC_COLOURS[i % len(CLASSIC_COLOURS)], PLOT_MARKERS[(i + 3) % len(PLOT_MARKERS)])
                     for i, name in enumerate(classics)}
    reference_dashes = [(0, (1, 1)), (0, (4, 2)), (0, (6, 2, 1, 2)), (0, (2, 3))]
    fig, axes = plt.subplots(1, len(tables), figsize=(6.0 * len(tables) + 4.6, 6.4), squeeze=False)
    off_scale = {}
    for ax, table in zip(axes[0], tables):
        by_family = {}
        for row in table["rows"]:
            if row["family"] == "quadrature":
                ax.axhline(row["rel_l2"], color="0.35", linewidth=1.2,
                           linestyle=reference_dashes[references.index(row["name"]) % len(reference_dashes)])
            elif row["family"] == "classic":
                colour, marker = classic_style[row["name"]]
                y = min(row["rel_l2"], top)
                if y != row["rel_l2"]:
                    off_scale.setdefault(row["name"], []).append(row["rel_l2"])
                ax.scatter(row["dim"], y, marker=marker, s=55, color=colour, edgecolors="black", linewidths=0.5,
                           zorder=3)
            else:
                by_family.setdefault(row["family"], []).append(row)
        for family, rows in by_family.items():
            rows = sorted(rows, key=lambda r: r["dim"])
            if any(r["rel_l2"] > top for r in rows):
                off_scale.setdefault(family, []).extend(r["rel_l2"] for r in rows if r["rel_l2"] > top)
            colour, marker = family_style[family]
            ax.plot([r["dim"] for r in rows], [min(r["rel_l2"], top) for r in rows], marker=marker, color=colour,
                    markersize=6, linewidth=1.3, zorder=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(min(r["rel_l2"] for r in table["rows"]) * 0.7, top * 1.15)
        ax.set_xlabel("features per head (fm.dim)")
        ax.set_ylabel("relative L2 error vs spherical Yat")
        ax.set_title("%s setup, %s queries" % (table["setup"], table["scenario"]))
        ax.grid(True, which="major", alpha=0.3)
    def label(name):
        values = off_scale.get(name)
        return name if not values else "%s (off scale, drawn at %g: %s)" % (name, top, ", ".join(
            "%.3g" % v for v in values[:3]) + (", ..." if len(values) > 3 else ""))
    handles = [Line2D([], [], color="none", label="SLAY configurations (lines)")]
    handles += [Line2D([], [], color=family_style[f][0], marker=family_style[f][1], label=label(f)) for f in families]
    handles += [Line2D([], [], color="none", label="references (no feature map)")]
    handles += [Line2D([], [], color="0.35", linestyle=reference_dashes[i % len(reference_dashes)], label=name)
                for i, name in enumerate(references)]
    handles += [Line2D([], [], color="none", label="classic maps (points)")]
    handles += [Line2D([], [], linestyle="none", color=classic_style[name][0], marker=classic_style[name][1],
                       markeredgecolor="black", markeredgewidth=0.5, markersize=7, label=label(name))
                for name in classics]
    legend_width = 4.6   # inches right of the panels
    legend = fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0 - legend_width / fig.get_figwidth(), 0.5),
                        fontsize=7.5, frameon=False, handlelength=2.6)
    for text in legend.get_texts():
        if text.get_text().endswith(")") and text.get_text().split(" (")[0] in ("SLAY configurations", "references",
                                                                               "classic maps"):
            text.set_fontweight("bold")
    fig.tight_layout(rect=(0, 0, 1.0 - legend_width / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def finite(value):
    """JSON has no NaN/inf: non-finite numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m slay.accuracy", description=__doc__.split("\n")[0],
                                     epilog="Default: module setup, both scenarios, 4 seeds, every row "
                                            "(under a minute on 2 cores).")
    parser.add_argument("--setup", choices=("module", "attention"), default="module",
                        help="module: reference module with qkv/out projections (default; reproduces the "
                             "published 0.65); attention: the bare attention output")
    parser.add_argument("--scenario", choices=("random", "aligned", "both"), default="both",
                        help="random queries, queries aligned (cosine 0.9..0.99) with earlier keys, or both")
    parser.add_argument("--seeds", type=int, default=4, help="seeds to average over (default 4)")
    parser.add_argument("--quick", action="store_true", help="fewer rows (paper default, a few exact, two "
                        "classic maps, quadrature R=2), for smoke tests")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress (running count and ETA) on stderr; the rows still print as measured")
    parser.add_argument("--fit", action="store_true",
                        help="also run the structured scenario of slay.fit: the paper-default SLAY map against the "
                             "same map fitted (slay.fit_feature_map, default settings) on training sequences, judged "
                             "on held-out sequences; and the same on i.i.d. Gaussian inputs")
    parser.add_argument("--json", metavar="FILE", help="write the tables as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="plot error against feature budget (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib, which is not installed (pip install matplotlib); nothing was run.",
                  file=sys.stderr)
            return 2
    start = time.perf_counter()
    scenarios = ("random", "aligned") if args.scenario == "both" else (args.scenario,)
    progress = Progress(len(scenarios) * len(planned_rows(args.quick)), quiet=args.quiet)
    tables = []
    for scenario in scenarios:
        table = dict(setup=args.setup, scenario=scenario, seeds=args.seeds, rows=[])
        for line in format_heading(table):
            progress.print(line)
        for row in table_rows(args.setup, scenario, args.seeds, quick=args.quick):
            table["rows"].append(row)
            progress.print(format_row(row))
            progress.step("%s: %s" % (scenario, row["name"]))
        for line in format_comparisons(table) + [""]:
            progress.print(line)
        tables.append(table)
    progress.close()
    if args.fit:
        from .fit import main as fit_main
        for scenario in ("structured", "iid"):
            fit_main(["--scenario", scenario, "--quiet"])
    elapsed = time.perf_counter() - start
    print("published: docs/math.md §1 (reference module, random inputs; exact R=2 M=8 and quadrature R=2 are from "
          "an independent re-implementation). %.1f s." % elapsed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(finite(dict(protocol=PROTOCOL, seconds=elapsed, tables=tables)), f, indent=1)
    if args.plot:
        plot(tables, args.plot)
        print("plot written to %s" % args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
