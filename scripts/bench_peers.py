#!/usr/bin/env python3
"""Times dinoreg against PyTorch + transformers (SDPA) and ONNX Runtime on the same rows.

Subcommands (each peer runs in its own process, so each peak RSS is its own):

  make    --arch small|base|large|giant --out DIR     random HF-layout checkpoint (saved once)
  torch   --model DIR --size HxW --batch B ...        PyTorch + transformers, attn_implementation="sdpa"
  export  --model DIR --size HxW --batch B --out F    ONNX export (torch.onnx.export, dynamo=True, opset 18)
  ort     --onnx F --size HxW --batch B ...           ONNX Runtime, all graph optimisations
  gemm    --threads T                                 2048^3 f32 MatMul in ONNX Runtime (the GEMM peak)
  run     --rows small:224:1,... --dinoreg BIN ...    all of the above per row, ratios and a markdown table

Each timing subcommand prints per-run times and, as its last line, JSON
{"median_ms": .., "min_ms": .., "peak_rss_mb": ..}, like `dinoreg bench`.

Setup: python3 -m venv .venv && .venv/bin/pip install torch transformers onnxruntime onnxscript onnx safetensors
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

PRESETS = {
    # hidden, layers, heads, swiglu
    "small": (384, 12, 6, False),
    "base": (768, 12, 12, False),
    "large": (1024, 24, 16, False),
    "giant": (1536, 40, 24, True),
}

DEFAULT_ROWS = "small:224:1,small:518:1,base:224:1,base:518:1,small:224:8"


def parse_size(s):
    h, _, w = s.lower().partition("x")
    return int(h), int(w or h)


def peak_rss_mb():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(times_ms, extra=None):
    for i, t in enumerate(times_ms):
        print(f"run {i + 1}: {t:.2f} ms")
    out = {
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "mean_ms": statistics.fmean(times_ms),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    out.update(extra or {})
    print(json.dumps(out))


def time_loop(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def cmd_make(a):
    import torch
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    if os.path.exists(os.path.join(a.out, "model.safetensors")):
        print(f"{a.out}: already there")
        return
    hidden, layers, heads, swiglu = PRESETS[a.arch]
    cfg = Dinov2WithRegistersConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=518,
        patch_size=14,
        num_register_tokens=4,
        use_swiglu_ffn=swiglu,
        layerscale_value=1.0,
    )
    torch.manual_seed(a.seed)
    model = Dinov2WithRegistersModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight") or "lambda1" in name:
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.02)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    print(f"{a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")


def cmd_torch(a):
    import torch
    from transformers import Dinov2WithRegistersModel

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    model = Dinov2WithRegistersModel.from_pretrained(a.model, attn_implementation="sdpa").eval()
    h, w = parse_size(a.size)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, h, w)
    with torch.inference_mode():
        times = time_loop(lambda: model(pixel_values=x), a.warmup, a.iters)
    report(times, {"torch": torch.__version__, "threads": a.threads})


def cmd_export(a):
    import torch
    from transformers import Dinov2WithRegistersModel

    model = Dinov2WithRegistersModel.from_pretrained(a.model, attn_implementation="sdpa").eval()
    h, w = parse_size(a.size)
    x = torch.randn(a.batch, 3, h, w)

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            out = self.m(pixel_values=pixel_values)
            return out.last_hidden_state, out.pooler_output

    with torch.no_grad():
        torch.onnx.export(
            Wrapped(model),
            (x,),
            a.out,
            input_names=["pixel_values"],
            output_names=["last_hidden_state", "pooler_output"],
            dynamo=True,
            opset_version=18,
            external_data=True,
        )
    print(f"exported {a.out}")


def cmd_ort(a):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    h, w = parse_size(a.size)
    x = np.random.default_rng(0).standard_normal((a.batch, 3, h, w), dtype=np.float32)
    name = sess.get_inputs()[0].name
    times = time_loop(lambda: sess.run(None, {name: x}), a.warmup, a.iters)
    report(times, {"onnxruntime": ort.__version__, "threads": a.threads})


def cmd_gemm(a):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = a.n
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal((n, n), dtype=np.float32) for k in "ab"}
    times = time_loop(lambda: sess.run(None, feeds), 2, a.iters)
    best = min(times)
    report(times, {"gflops": 2 * n**3 / best / 1e6, "n": n})


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output:\n" + text[-2000:])


def child(cmd, log):
    """Runs one peer in its own process; returns its JSON line (or None on failure)."""
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr + "\n")
    if p.returncode != 0:
        print(f"  failed (exit {p.returncode}); see {log}:\n" + (p.stderr or p.stdout)[-1500:], flush=True)
        return None
    r = last_json(p.stdout)
    print(f"  median {r['median_ms']:.1f} ms, min {r['min_ms']:.1f} ms, peak RSS {r['peak_rss_mb']:.0f} MiB", flush=True)
    return r


def cmd_run(a):
    py = sys.executable
    me = os.path.abspath(__file__)
    os.makedirs(a.cache, exist_ok=True)
    log = os.path.join(a.cache, "bench_peers.log")
    timing = ["--iters", str(a.iters), "--warmup", str(a.warmup), "--threads", str(a.threads)]
    peers = [p for p in a.peers.split(",") if p]
    gemm = child([py, me, "gemm", "--threads", str(a.threads)], log) if "ort" in peers else None
    results = []
    for row in a.rows.split(","):
        arch, size, batch = row.split(":")
        size = size if "x" in size else f"{size}x{size}"
        model = os.path.join(a.cache, f"random-{arch}")
        subprocess.run([py, me, "make", "--arch", arch, "--out", model], check=True)
        print(f"\n== ViT-{arch[0].upper()}/14 {size}, batch {batch} ==", flush=True)
        r = {"arch": arch, "size": size, "batch": int(batch)}
        shape = ["--size", size, "--batch", batch]
        if "dinoreg" in peers:
            r["dinoreg"] = child([a.dinoreg, "bench", "--model", model, *shape, *timing], log)
        if "torch" in peers:
            r["torch"] = child([py, me, "torch", "--model", model, *shape, *timing], log)
        if "ort" in peers:
            onnx_path = os.path.join(a.cache, f"{arch}-{size}-b{batch}.onnx")
            if not os.path.exists(onnx_path):
                subprocess.run(
                    [py, me, "export", "--model", model, *shape, "--out", onnx_path],
                    check=True,
                    capture_output=True,
                )
            r["ort"] = child([py, me, "ort", "--onnx", onnx_path, *shape, *timing], log)
        results.append(r)
        for peer in ("ort", "torch"):
            if r.get("dinoreg") and r.get(peer):
                ratio = r["dinoreg"]["median_ms"] / r[peer]["median_ms"]
                print(f"  dinoreg / {peer}: {ratio:.2f}", flush=True)
    print_table(results, gemm, a.threads)
    with open(os.path.join(a.cache, "bench_peers.json"), "w") as f:
        json.dump({"rows": results, "gemm": gemm, "threads": a.threads}, f, indent=1)


def print_table(results, gemm, threads):
    def ms(r, peer):
        v = r.get(peer)
        return f"{v['median_ms']:.1f}" if v else "—"

    def rss(r, peer):
        v = r.get(peer)
        return f"{v['peak_rss_mb']:.0f}" if v else "—"

    def ratio(r, peer):
        if r.get("dinoreg") and r.get(peer):
            return f"{r['dinoreg']['median_ms'] / r[peer]['median_ms']:.2f}"
        return "—"

    print(f"\nMedians in ms, {threads} thread(s); ratio = dinoreg / peer (<= 1 means dinoreg is as fast or faster).\n")
    print("| row | dinoreg | ONNX Runtime | PyTorch SDPA | vs ORT | vs PyTorch | dinoreg GFLOP/s | peak RSS MiB dinoreg / ORT / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        name = f"ViT-{r['arch'][0].upper()}/14 {r['size'].split('x')[0] if r['size'].split('x')[0] == r['size'].split('x')[1] else r['size']}, batch {r['batch']}"
        d = r.get("dinoreg")
        gf = f"{d['gflop'] / d['median_ms'] * 1e3:.0f}" if d and "gflop" in d else "—"
        print(
            f"| {name} | {ms(r, 'dinoreg')} | {ms(r, 'ort')} | {ms(r, 'torch')} | {ratio(r, 'ort')} | {ratio(r, 'torch')} "
            f"| {gf} | {rss(r, 'dinoreg')} / {rss(r, 'ort')} / {rss(r, 'torch')} |"
        )
    if gemm:
        print(f"\nGEMM peak (ONNX Runtime MatMul 2048^3, best run): {gemm['gflops']:.0f} GFLOP/s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def timing(s):
        s.add_argument("--size", default="224x224")
        s.add_argument("--batch", type=int, default=1)
        s.add_argument("--iters", type=int, default=10)
        s.add_argument("--warmup", type=int, default=2)
        s.add_argument("--threads", type=int, default=os.cpu_count())

    s = sub.add_parser("make")
    s.add_argument("--arch", choices=sorted(PRESETS), required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_make)

    s = sub.add_parser("torch")
    s.add_argument("--model", required=True)
    timing(s)
    s.set_defaults(fn=cmd_torch)

    s = sub.add_parser("export")
    s.add_argument("--model", required=True)
    s.add_argument("--size", default="224x224")
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("ort")
    s.add_argument("--onnx", required=True)
    timing(s)
    s.set_defaults(fn=cmd_ort)

    s = sub.add_parser("gemm")
    s.add_argument("--n", type=int, default=2048)
    s.add_argument("--iters", type=int, default=10)
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.set_defaults(fn=cmd_gemm)

    s = sub.add_parser("run")
    s.add_argument("--rows", default=DEFAULT_ROWS, help="arch:size:batch,... (size N or HxW)")
    s.add_argument("--peers", default="dinoreg,ort,torch")
    s.add_argument("--dinoreg", default="target/release/dinoreg")
    s.add_argument("--cache", default=os.path.expanduser("~/.cache/dinoreg-bench"))
    s.add_argument("--iters", type=int, default=10)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.set_defaults(fn=cmd_run)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
