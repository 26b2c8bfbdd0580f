"""natprec scan (spec/14, DEF-SCAN) on a synthetic bfloat16 checkpoint larger than a worker's memory limit.

    python bench/scan_checkpoint.py gen DIR --gib 1 --shards 4      # write the checkpoint (not committed)
    python bench/scan_checkpoint.py run DIR --memory-limit 256MiB   # 1 then 2 workers; throughput, peak RSS, equality
    python bench/scan_checkpoint.py kill DIR                         # a worker killed mid-scan: same result?
    python bench/scan_checkpoint.py minilm DIR                       # the default model, sharded: threads vs cluster

Every scan is compared with the 1-worker one (strict JSON, bit for bit).  The load average is printed with
each figure: the machine is shared.  Throughput is read from the page cache once the file is written
(the generator's pages stay cached); a cold read is bounded by the disk instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import sys
import time
from pathlib import Path

import numpy as np

from natprec.scan import scan_checkpoint
from natprec.strictjson import dumps

ROWS = 4096


def gen(folder: Path, gib: float, shards: int, seed: int = 0) -> None:
    """Shards of bfloat16 tensors (4096 × 8192 = 64 MiB each), streamed to disk: memory is one tensor."""
    import ml_dtypes

    folder.mkdir(parents=True, exist_ok=True)
    cols = 8192
    per = ROWS * cols * 2
    total = int(gib * 2**30) // per
    rng = np.random.default_rng(seed)
    weight_map = {}
    for s in range(shards):
        names = [f"layers.{i}.weight" for i in range(s, total, shards)]
        header, off = {}, 0
        for n in names:
            header[n] = {"dtype": "BF16", "shape": [ROWS, cols], "data_offsets": [off, off + per]}
            off += per
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        with open(folder / fname, "wb") as fh:
            fh.write(struct.pack("<Q", len(h)) + h)
            for i, n in enumerate(names):
                scale = 0.02 * (1 + int(n.split(".")[1]) % 7 / 7)
                x = (rng.standard_normal((ROWS, cols), dtype=np.float32) * scale).astype(ml_dtypes.bfloat16)
                fh.write(x.tobytes())
                weight_map[n] = fname
                del x
                print(f"\r{fname}: {i + 1}/{len(names)}", end="", file=sys.stderr)
        print(file=sys.stderr)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _doc(res) -> str:
    d = res.to_dict()
    d.pop("scheduler")
    return dumps(d)


def run(folder: Path, memory_limit: str, chunk: int, resamples: int) -> None:
    from distributed import Client, LocalCluster

    size = _size(folder)
    print(f"checkpoint {folder}: {size / 2**30:.2f} GiB in {len(list(folder.glob('*.safetensors')))} shards; "
          f"worker memory limit {memory_limit}; chunks of {chunk} elements ({chunk * 2 / 2**20:.0f} MiB)")
    docs = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            load0 = os.getloadavg()
            cpu0 = sum(client.run(_cpu_s).values())
            t0 = time.perf_counter()
            res = scan_checkpoint(folder / "model.safetensors.index.json", scheduler=client, chunk_elements=chunk,
                                  n_resamples=resamples)
            dt = time.perf_counter() - t0
            load1 = os.getloadavg()
            peaks = client.run(_peak_rss_mib)
            cpu = sum(client.run(_cpu_s).values()) - cpu0
            docs[workers] = _doc(res)
            print(f"{workers} worker(s): {dt:.1f} s, {size / dt / 2**30:.3f} GiB/s, {size / dt / 2**30 / workers:.3f} GiB/s per core; "
                  f"peak RSS per worker {', '.join(f'{v:.0f}' for v in peaks.values())} MiB; "
                  f"load average {load0[0]:.2f} → {load1[0]:.2f}; ok={res.ok}, {len(res.tensors)} tensors; "
                  f"worker CPU {cpu:.1f} s = {size / cpu / 2**30:.3f} GiB per CPU-second")
    print("2-worker result identical to 1-worker result:", docs[1] == docs[2])


def kill(folder: Path, chunk: int, resamples: int) -> None:
    """A worker's process is killed while the scan runs; the scheduler reruns its tasks elsewhere."""
    import threading

    from distributed import Client, LocalCluster

    index = folder / "model.safetensors.index.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        ref = _doc(scan_checkpoint(index, scheduler=client, chunk_elements=chunk, n_resamples=resamples))
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        seen = {"done": 0}

        def progress(done, total):
            seen["done"] = done

        def killer():
            while seen["done"] < 2:
                time.sleep(0.05)
            os.kill(victim, 9)
            print(f"killed worker pid {victim} after {seen['done']} tensors finished", file=sys.stderr)

        th = threading.Thread(target=killer)
        th.start()
        got = _doc(scan_checkpoint(index, scheduler=client, chunk_elements=chunk, n_resamples=resamples, progress=progress))
        th.join()
        print("result after a killed worker identical to the undisturbed one:", got == ref)


def minilm(folder: Path) -> None:
    from distributed import LocalCluster
    from safetensors.numpy import load_file, save_file

    from natprec.model.models import default_model_dir

    tensors = load_file(str(default_model_dir() / "model.safetensors"))
    folder.mkdir(parents=True, exist_ok=True)
    names, wm = list(tensors), {}
    for i in range(3):
        fname = f"model-{i + 1:05d}-of-00003.safetensors"
        save_file({k: tensors[k] for k in names[i::3]}, str(folder / fname))
        wm.update(dict.fromkeys(names[i::3], fname))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    index = folder / "model.safetensors.index.json"
    t0 = time.perf_counter()
    local = scan_checkpoint(index, scheduler="threads", chunk_elements=1 << 20)
    t1 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = scan_checkpoint(index, scheduler=cluster.scheduler_address, chunk_elements=1 << 20)
    t2 = time.perf_counter()
    print(f"default model ({len(local.tensors)} tensors): threads {t1 - t0:.1f} s, LocalCluster(2) {t2 - t1:.1f} s, "
          f"identical: {_doc(local) == _doc(remote)}; load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("gen", "run", "kill", "minilm"))
    p.add_argument("folder", type=Path)
    p.add_argument("--gib", type=float, default=1.0)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--memory-limit", default="256MiB")
    p.add_argument("--chunk-elements", type=int, default=1 << 24)
    p.add_argument("--resamples", type=int, default=2000)
    a = p.parse_args()
    if a.what == "gen":
        gen(a.folder, a.gib, a.shards)
    elif a.what == "run":
        run(a.folder, a.memory_limit, a.chunk_elements, a.resamples)
    elif a.what == "kill":
        kill(a.folder, a.chunk_elements, a.resamples)
    else:
        minilm(a.folder)


if __name__ == "__main__":
    main()
