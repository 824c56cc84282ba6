#!/usr/bin/env python3
"""Times dinoreg against PyTorch + transformers (SDPA), ONNX Runtime and OpenVINO on the same rows,
checks that their outputs agree, and prints a markdown table.

Subcommands (each engine runs in its own process, so each peak RSS is its own):

  make    --arch ARCH --out DIR                       random HF-layout checkpoint (saved once); ARCH is
                                                      small|base|large|giant (DINOv2 with registers) or
                                                      dinov3-small|dinov3-small-plus|dinov3-base|dinov3-large
  torch   --model DIR --size HxW --batch B ...        PyTorch + transformers, attn_implementation="sdpa"
  export  --model DIR --size HxW --batch B --out F    ONNX export (torch.onnx.export, dynamo=True, opset 18)
  ort     --onnx F --size HxW --batch B ...           ONNX Runtime, CPU, all graph optimisations
  ov      --onnx F --size HxW --batch B ...           OpenVINO, CPU, f32 (INFERENCE_PRECISION_HINT=f32), latency
  gemm    --engine ort|torch|ov --threads T           2048^3 f32 MatMul in that engine (the sgemm peak)
  probe   --engine torch                              which ISA PyTorch's ATen, MKL and oneDNN dispatch to
  run     --rows small:224:1,... --dinoreg BIN ...    all of the above per row, checks, ratios, a markdown table

Each timing subcommand prints per-run times and, as its last line, JSON
{"median_ms": .., "min_ms": .., "peak_rss_mb": ..}, like `dinoreg bench`. With --check-input X.npy
--check-output Y.npz it also runs one pass on X (after the timed ones) and saves last_hidden_state and
pooler_output to Y; `run` compares every engine's outputs against PyTorch's on the same input.

`run --isa avx2` measures the AVX2 code paths on an AVX-512 machine: DINOREG_SIMD=avx2 for dinoreg,
ATEN_CPU_CAPABILITY / MKL_ENABLE_INSTRUCTIONS / ONEDNN_MAX_CPU_ISA for PyTorch, ONEDNN_MAX_CPU_ISA for
OpenVINO (its oneDNN kernels only: its f32 FullyConnected runs a bundled MLAS that dispatches by CPUID),
nothing for ONNX Runtime (MLAS has no switch). The output says, per engine, what was actually capped.

Setup: python3 -m venv .venv && .venv/bin/pip install torch torchvision transformers onnxruntime onnxscript onnx safetensors openvino
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

PRESETS = {
    # family, hidden, intermediate, layers, heads, gated MLP (SwiGLU for DINOv2 giant, gated SiLU for v3)
    "small": ("dinov2", 384, 1536, 12, 6, False),
    "base": ("dinov2", 768, 3072, 12, 12, False),
    "large": ("dinov2", 1024, 4096, 24, 16, False),
    "giant": ("dinov2", 1536, 6144, 40, 24, True),
    "dinov3-small": ("dinov3", 384, 1536, 12, 6, False),
    "dinov3-small-plus": ("dinov3", 384, 1536, 12, 6, True),
    "dinov3-base": ("dinov3", 768, 3072, 12, 12, False),
    "dinov3-large": ("dinov3", 1024, 4096, 24, 16, False),
}
REGISTERS = 4

DEFAULT_ROWS = (
    "small:224:1,small:518:1,base:224:1,base:518:1,small:224:8,"
    "dinov3-small:224:1,dinov3-base:224:1,dinov3-base:512:1"
)

ENGINES = ("dinoreg", "ort", "torch", "ov")
NAMES = {"dinoreg": "dinoreg", "ort": "ONNX Runtime", "torch": "PyTorch", "ov": "OpenVINO"}

# Relative difference (max |peer - PyTorch| / max |PyTorch|) above which a row is flagged.
TOLERANCE = 1e-3

# What `--isa avx2` sets for each engine. ONNX Runtime's MLAS picks its kernels from CPUID with no
# switch (checked on 1.32: no session option or environment variable), so it is left alone.
ISA_ENV = {
    "avx2": {
        "dinoreg": {"DINOREG_SIMD": "avx2"},
        "torch": {
            "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
            "DNNL_MAX_CPU_ISA": "AVX2",
        },
        "ov": {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
        "ort": {},
    },
}


def parse_size(s):
    h, _, w = s.lower().partition("x")
    return int(h), int(w or h)


def peak_rss_mb():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(times_ms, extra=None):
    for i, t in enumerate(times_ms):
        print(f"run {i + 1}: {t:.2f} ms")
    out = {}
    if times_ms:
        out = {
            "median_ms": statistics.median(times_ms),
            "min_ms": min(times_ms),
            "mean_ms": statistics.fmean(times_ms),
        }
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out.update(extra or {})
    print(json.dumps(out))


def time_loop(fn, warmup, iters):
    for _ in range(warmup if iters else 0):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def check_input(a):
    """The input of the output check (--check-input), or None."""
    if not a.check_input:
        return None
    import numpy as np

    return np.load(a.check_input).astype(np.float32)


def save_outputs(path, last_hidden_state, pooler_output):
    import numpy as np

    np.savez(path, last_hidden_state=last_hidden_state, pooler_output=pooler_output)


def cmd_make(a):
    import torch

    if os.path.exists(os.path.join(a.out, "model.safetensors")):
        print(f"{a.out}: already there")
        return
    family, hidden, inter, layers, heads, gated = PRESETS[a.arch]
    if family == "dinov2":
        from transformers import Dinov2WithRegistersConfig as Config
        from transformers import Dinov2WithRegistersModel as Model

        cfg = Config(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=inter,
            image_size=518,
            patch_size=14,
            num_register_tokens=REGISTERS,
            use_swiglu_ffn=gated,
            layerscale_value=1.0,
        )
    else:
        from transformers import DINOv3ViTConfig as Config
        from transformers import DINOv3ViTModel as Model

        cfg = Config(
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            patch_size=16,
            num_register_tokens=REGISTERS,
            hidden_act="silu" if gated else "gelu",
            use_gated_mlp=gated,
            key_bias=False,
            layerscale_value=1.0,
            image_size=224,
        )
    torch.manual_seed(a.seed)
    model = Model(cfg).eval()
    with torch.no_grad():
        # Norm weights and layer scales 1 ± 0.1, everything else (linear, conv, biases, tokens,
        # positions) 0 ± 0.02: activations stay O(1) through every block.
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight") or "lambda1" in name:
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.02)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    print(f"{a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")


def load_hf(model_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_dir, attn_implementation="sdpa").eval()


def cmd_torch(a):
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    model = load_hf(a.model)
    h, w = parse_size(a.size)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, h, w)
    with torch.inference_mode():
        times = time_loop(lambda: model(pixel_values=x), a.warmup, a.iters)
        xc = check_input(a)
        if xc is not None:
            out = model(pixel_values=torch.from_numpy(xc))
            save_outputs(a.check_output, out.last_hidden_state.numpy(), out.pooler_output.numpy())
    report(
        times,
        {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": a.threads,
            "aten_isa": torch.backends.cpu.get_cpu_capability(),
            "numpy": np.__version__,
        },
    )


def cmd_export(a):
    import torch

    model = load_hf(a.model)
    h, w = parse_size(a.size)
    x = torch.randn(a.batch, 3, h, w)
    emb = model.embeddings
    if hasattr(emb, "position_embeddings") and not a.keep_pos_resize:
        # DINOv2 interpolates its position embeddings to the input's grid (bicubic, antialias=True).
        # With the fixed input shape of the export that subgraph is constant, and ONNX Runtime and
        # OpenVINO both fold it when they load the graph; but OpenVINO's Interpolate ignores
        # antialias (openvinotoolkit/openvino#35893: 0.17 off at 224), so PyTorch computes it here
        # and the graph holds the result. Same runtime work for both engines either way.
        with torch.no_grad():
            d = model.config.hidden_size
            p = model.config.patch_size
            pos = emb.interpolate_pos_encoding(torch.zeros(1, 1 + (h // p) * (w // p), d), h, w).detach().clone()
        emb.interpolate_pos_encoding = lambda embeddings, height, width: pos

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
    xc = check_input(a)
    if xc is not None:
        lhs, pooled = sess.run(["last_hidden_state", "pooler_output"], {name: xc})
        save_outputs(a.check_output, lhs, pooled)
    report(times, {"onnxruntime": ort.__version__, "threads": a.threads})


def ov_config(threads, precision):
    """OpenVINO CPU settings: f32 unless told otherwise (on CPUs with AVX512_BF16 or AMX the default
    INFERENCE_PRECISION_HINT is bf16, which is ~1e-2 off), latency, one stream, `threads` threads."""
    cfg = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": threads,
        # Dynamic activation quantisation only acts on compressed weights; off anyway.
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
    }
    if precision != "default":
        cfg["INFERENCE_PRECISION_HINT"] = precision
    return cfg


def ov_exec_info(compiled):
    """Counts of the kernels (primitiveType) and runtime precisions of a compiled model's nodes."""
    kernels, precisions = {}, {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer = rt["layerType"].astype(str)
        if layer in ("Input", "Output", "Const", "Parameter", "Result", "Constant"):
            continue
        k = f"{rt['primitiveType'].astype(str)} ({layer})"
        kernels[k] = kernels.get(k, 0) + 1
        p = rt["runtimePrecision"].astype(str)
        precisions[p] = precisions.get(p, 0) + 1
    return kernels, precisions


def cmd_ov(a):
    import numpy as np
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(a.onnx), "CPU", ov_config(a.threads, a.precision))
    req = compiled.create_infer_request()
    h, w = parse_size(a.size)
    x = np.random.default_rng(0).standard_normal((a.batch, 3, h, w), dtype=np.float32)
    times = time_loop(lambda: req.infer({0: x}), a.warmup, a.iters)
    xc = check_input(a)
    if xc is not None:
        res = req.infer({0: xc})
        out = {k.get_any_name(): v for k, v in res.items()}
        save_outputs(a.check_output, out["last_hidden_state"], out["pooler_output"])
    kernels, precisions = ov_exec_info(compiled)
    report(
        times,
        {
            "openvino": ov.get_version(),
            "threads": compiled.get_property("INFERENCE_NUM_THREADS"),
            "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
            "kernels": kernels,
            "runtime_precisions": precisions,
        },
    )


def cmd_gemm(a):
    import numpy as np

    n = a.n
    rng = np.random.default_rng(0)
    an, bn = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    extra = {}
    if a.engine == "ort":
        import onnxruntime as ort
        from onnx import TensorProto, helper

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
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feeds = {"a": an, "b": bn}
        fn = lambda: sess.run(None, feeds)  # noqa: E731
        extra["onnxruntime"] = ort.__version__
    elif a.engine == "torch":
        import torch

        torch.set_num_threads(a.threads)
        at, bt = torch.from_numpy(an), torch.from_numpy(bn)
        fn = lambda: torch.mm(at, bt)  # noqa: E731
        extra.update(torch=torch.__version__, aten_isa=torch.backends.cpu.get_cpu_capability())
    else:
        import openvino as ov
        import openvino.opset13 as ops

        pa = ops.parameter([n, n], np.float32, name="a")
        pb = ops.parameter([n, n], np.float32, name="b")
        model = ov.Model([ops.matmul(pa, pb, False, False)], [pa, pb], "gemm")
        compiled = ov.Core().compile_model(model, "CPU", ov_config(a.threads, "f32"))
        req = compiled.create_infer_request()
        fn = lambda: req.infer({0: an, 1: bn})  # noqa: E731
        kernels, precisions = ov_exec_info(compiled)
        extra.update(openvino=ov.get_version(), kernels=kernels, runtime_precisions=precisions)
    times = time_loop(fn, 2, a.iters)
    report(times, {"engine": a.engine, "gflops": 2 * n**3 / min(times) / 1e6, "n": n, "threads": a.threads, **extra})


def cmd_probe(a):
    """Prints which ISA PyTorch dispatches to: ATen's capability, then MKL's and oneDNN's verbose
    headers (MKL_VERBOSE=1 / ONEDNN_VERBOSE=1 are set by the caller) on a Linear, a patch-embedding
    Conv2d and SDPA, like the model's own ops."""
    import torch

    torch.set_num_threads(a.threads)
    print(json.dumps({"aten_isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}), flush=True)
    with torch.inference_mode():
        x = torch.randn(261, 384)
        torch.nn.functional.linear(x, torch.randn(1536, 384), torch.randn(1536))
        torch.nn.Conv2d(3, 384, 14, 14)(torch.randn(1, 3, 224, 224))
        q = torch.randn(1, 6, 261, 64)
        torch.nn.functional.scaled_dot_product_attention(q, q, q)


# ---------------------------------------------------------------------------------------------
# run


def cpu_info():
    """CPU model name and its vector ISA, from /proc/cpuinfo."""
    name, flags, ident = "unknown CPU", set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and name == "unknown CPU":
                    name = value
                elif key == "flags" and not flags:
                    flags = set(value.split())
                elif key in ("cpu family", "model", "stepping") and key not in ident:
                    ident[key] = value
    except OSError:
        pass
    if "avx512f" in flags:
        extras = [
            label
            for flag, label in (
                ("avx512_vnni", "VNNI"),
                ("avx512_bf16", "BF16"),
                ("avx512_fp16", "FP16"),
                ("amx_tile", "AMX"),
            )
            if flag in flags
        ]
        isa = "AVX-512" + (f" (+{', '.join(extras)})" if extras else "")
    elif "avx2" in flags and "fma" in flags:
        isa = "AVX2+FMA"
    else:
        isa = "no AVX2+FMA"
    if ident:
        name += f" (family {ident.get('cpu family', '?')}, model {ident.get('model', '?')})"
    return name, isa, flags


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output:\n" + text[-2000:])


def child(cmd, log, env=None, quiet=False):
    """Runs one engine in its own process; returns (its JSON line or None, its stdout + stderr)."""
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr + "\n")
    if p.returncode != 0:
        if not quiet:
            print(f"  failed (exit {p.returncode}); see {log}:\n" + (p.stderr or p.stdout)[-1500:], flush=True)
        return None, p.stdout + p.stderr
    try:
        r = last_json(p.stdout)
    except ValueError as e:
        print(f"  {e}", flush=True)
        return None, p.stdout + p.stderr
    if "median_ms" in r:
        print(
            f"  median {r['median_ms']:.1f} ms, min {r['min_ms']:.1f} ms, peak RSS {r['peak_rss_mb']:.0f} MiB",
            flush=True,
        )
    return r, p.stdout + p.stderr


def last_error_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    for l in reversed(lines):
        if l.lower().startswith(("error", "caused by")) or "Error" in l:
            return l[:200]
    return lines[-1][:200] if lines else ""


def forward_gflop(arch, batch, h, w):
    """Multiply-adds x2 of one pass, as `dinoreg bench` counts them (patch embedding, q/k/v, scores,
    values, output projection, MLP), for rows where dinoreg does not report it."""
    family, d, inter, layers, _, gated = PRESETS[arch]
    p = 14 if family == "dinov2" else 16
    patches = (h // p) * (w // p)
    t = 1 + REGISTERS + patches
    if family == "dinov2" and gated:
        ffn = 3 * ((int(inter * 2 / 3) + 7) // 8 * 8)
    else:
        ffn = (3 if gated else 2) * inter
    per_block = 2 * batch * t * (4 * d * d + d * ffn) + 4 * batch * t * t * d
    return (2 * batch * patches * 3 * p * p * d + layers * per_block) / 1e9


def row_label(arch, size, batch):
    family, d, *_ = PRESETS[arch]
    letter = {384: "S", 768: "B", 1024: "L", 1536: "g"}[d]
    if arch.endswith("-plus"):
        letter += "+"
    h, w = size.split("x")
    dims = h if h == w else f"{h}×{w}"
    if family == "dinov2":
        return f"ViT-{letter}/14 {dims}, batch {batch}"
    return f"DINOv3 ViT-{letter}/16 {dims}, batch {batch}"


def compare(ref_path, out, engine):
    """Max abs and max relative (to max |reference|) differences of `out` against PyTorch's."""
    import numpy as np

    ref = np.load(ref_path)
    res = {}
    for key in ("last_hidden_state", "pooler_output"):
        if key not in out:
            continue
        a, b = np.asarray(out[key], dtype=np.float64), ref[key].astype(np.float64)
        if a.shape != b.shape:
            res[key] = {"error": f"shape {a.shape} vs PyTorch {b.shape}"}
            continue
        diff = float(np.abs(a - b).max())
        scale = float(np.abs(b).max()) or 1.0
        res[key] = {"max_abs": diff, "max_rel": diff / scale}
    worst = max((v.get("max_rel", float("inf")) for v in res.values()), default=float("inf"))
    ok = worst <= TOLERANCE
    for key, v in res.items():
        if "error" in v:
            print(f"  check {NAMES[engine]} {key}: {v['error']}  <-- MISMATCH", flush=True)
        else:
            flag = "" if v["max_rel"] <= TOLERANCE else f"  <-- OFF BY MORE THAN {TOLERANCE:g} RELATIVE"
            print(
                f"  check {NAMES[engine]} {key}: max abs diff {v['max_abs']:.2e}, "
                f"max rel diff {v['max_rel']:.2e}{flag}",
                flush=True,
            )
    return {"tensors": res, "max_rel": worst, "ok": ok}


def engine_env(engine, isa, threads):
    env = dict(os.environ)
    if engine == "dinoreg":
        env["RAYON_NUM_THREADS"] = str(threads)
    env.update(ISA_ENV.get(isa, {}).get(engine, {}))
    return env


def torch_probe(py, me, isa, threads, log):
    """What PyTorch actually dispatches to (ATen capability, MKL and oneDNN verbose headers)."""
    env = engine_env("torch", isa, threads)
    env.update(MKL_VERBOSE="1", ONEDNN_VERBOSE="1")
    cmd = [py, me, "probe", "--engine", "torch", "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr + "\n")
    out = p.stdout + p.stderr
    info = {"aten": None, "mkl": None, "onednn": None, "mkl_calls": 0, "onednn_impls": []}
    for line in out.splitlines():
        if line.startswith("{"):
            info["aten"] = json.loads(line).get("aten_isa")
        elif line.startswith("MKL_VERBOSE oneMKL") or line.startswith("MKL_VERBOSE Intel"):
            m = re.search(r"Intel\(R\) 64 architecture (.*?)(, Lnx| enabled processors|$)", line)
            info["mkl"] = (m.group(1) if m else line[12:120]).strip()
        elif line.startswith("MKL_VERBOSE") and "GEMM" in line:
            info["mkl_calls"] += 1
        elif line.startswith("onednn_verbose") and ",info,cpu,isa:" in line:
            info["onednn"] = line.split("isa:", 1)[1].strip()
        elif line.startswith("onednn_verbose") and ",primitive,exec," in line:
            impl = line.split(",")[5]
            if impl not in info["onednn_impls"]:
                info["onednn_impls"].append(impl)
    return info


def is_avx512_name(s):
    s = (s or "").lower()
    return any(t in s for t in ("avx512", "avx-512", "avx10", "amx"))


def binary_mentions(path, needle):
    """Whether the file at `path` contains the bytes `needle` (e.g. an environment variable's name)."""
    try:
        with open(path, "rb") as f:
            tail = b""
            while chunk := f.read(1 << 24):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle):]
    except OSError:
        pass
    return False


def isa_report(a, probe, rows, gemms, dinoreg_lines):
    """Per engine: (capped to AVX2?, what it reports using) for the model, and (capped?) for its
    sgemm. In native mode `capped` just records whether only AVX2-or-narrower kernels ran."""
    out, gemm_capped = {}, {}
    capped_mode = a.isa != "native"
    if "torch" in probe:
        t = probe["torch"]
        parts = [f"ATen {t['aten']}", f"MKL {t['mkl']}", f"oneDNN {t['onednn']} ({', '.join(t['onednn_impls'])})"]
        mkl_ok = t["mkl"] is not None and not is_avx512_name(t["mkl"])
        capped = t["aten"] == "AVX2" and mkl_ok and t["onednn"] is not None and not is_avx512_name(t["onednn"])
        out["torch"] = (capped, "; ".join(parts))
        gemm_capped["torch"] = mkl_ok  # torch.mm is an MKL sgemm
    ov_kernels = {}
    for r in rows:
        for k, n in ((r.get("ov") or {}).get("kernels") or {}).items():
            ov_kernels[k] = ov_kernels.get(k, 0) + n
    if ov_kernels:
        wide = {k: n for k, n in ov_kernels.items() if is_avx512_name(k) or "mlas" in k}
        narrow = {k: n for k, n in ov_kernels.items() if k not in wide and not k.startswith("unknown")}
        fmt = lambda d: ", ".join(f"{k}×{n}" for k, n in sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
        note = f"AVX-512 (or CPUID-dispatched) kernels: {fmt(wide) or 'none'}; other kernels: {fmt(narrow) or 'none'}"
        if any("mlas" in k for k in wide):
            note += " (`gemm_mlas_*` is OpenVINO's bundled MLAS, which picks AVX-512 by CPUID whatever ONEDNN_MAX_CPU_ISA says)"
        out["ov"] = (not wide, note)
    if "ov" in gemms:
        gemm_capped["ov"] = not any(is_avx512_name(k) or "mlas" in k for k in gemms["ov"].get("kernels", {}))
    if "ort" in gemms or any(r.get("ort") for r in rows):
        out["ort"] = (False, "MLAS selects its kernels by CPUID; ONNX Runtime has no option or variable to cap it")
        gemm_capped["ort"] = False
    if "dinoreg" in a.peers_list:
        said = sorted(set(dinoreg_lines))
        if said:
            out["dinoreg"] = (not any(is_avx512_name(l) for l in said), "dinoreg says: " + " | ".join(said[:3]))
        elif not capped_mode:
            out["dinoreg"] = (None, "its AVX-512 kernels when the CPU has AVX-512")
        elif not binary_mentions(a.dinoreg, b"DINOREG_SIMD"):
            out["dinoreg"] = (False, "DINOREG_SIMD=avx2 set, but this binary does not contain that name: it ignores it")
        else:
            out["dinoreg"] = (None, "DINOREG_SIMD=avx2 set and read by this build; it does not print its kernel path")
    return out, gemm_capped


def cmd_run(a):
    import numpy as np

    py = sys.executable
    me = os.path.abspath(__file__)
    os.makedirs(a.cache, exist_ok=True)
    checks_dir = os.path.join(a.cache, "checks")
    os.makedirs(checks_dir, exist_ok=True)
    log = os.path.join(a.cache, "bench_peers.log")
    timing = ["--iters", str(a.iters), "--warmup", str(a.warmup), "--threads", str(a.threads)]
    peers = [p for p in a.peers.split(",") if p]
    unknown = [p for p in peers if p not in ENGINES]
    if unknown:
        sys.exit(f"unknown --peers {unknown}: expected some of {','.join(ENGINES)}")
    a.peers_list = peers
    cpu, isa, flags = cpu_info()
    if a.isa == "avx2" and "avx512f" not in flags:
        print("note: --isa avx2 on a CPU without AVX-512: every engine runs its AVX2 path anyway")
    print(f"CPU: {cpu}")
    print(f"ISA: {isa}; engines run with --isa {a.isa}; {a.threads} thread(s)")
    if a.isa != "native":
        for e in ENGINES:
            if e in peers or (e == "torch" and a.check):
                env = ISA_ENV[a.isa][e]
                print(f"  {NAMES[e]}: " + (" ".join(f"{k}={v}" for k, v in env.items()) or "(no switch exists)"))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)

    probe = {}
    if "torch" in peers or "torch" in a.gemm.split(","):
        probe["torch"] = torch_probe(py, me, a.isa, a.threads, log)
        t = probe["torch"]
        print(f"PyTorch dispatch: ATen {t['aten']}; MKL {t['mkl']}; oneDNN {t['onednn']} {t['onednn_impls']}")

    gemms = {}
    for e in [e for e in a.gemm.split(",") if e]:
        r, _ = child([py, me, "gemm", "--engine", e, "--threads", str(a.threads)], log, env=engine_env(e, a.isa, a.threads))
        if r:
            gemms[e] = r
            print(f"  sgemm 2048³ f32 in {NAMES[e]}: {r['gflops']:.0f} GFLOP/s (best of 10)", flush=True)
    results = []
    dinoreg_lines = []
    for row in a.rows.split(","):
        arch, size, batch = row.split(":")
        if arch not in PRESETS:
            sys.exit(f"unknown arch {arch!r} in --rows: expected one of {', '.join(PRESETS)}")
        size = size if "x" in size else f"{size}x{size}"
        h, w = parse_size(size)
        family = PRESETS[arch][0]
        model = os.path.join(a.cache, f"random-{arch}")
        subprocess.run([py, me, "make", "--arch", arch, "--out", model], check=True)
        label = row_label(arch, size, batch)
        print(f"\n== {label} ==", flush=True)
        r = {"arch": arch, "family": family, "size": size, "batch": int(batch), "label": label,
             "gflop": forward_gflop(arch, int(batch), h, w), "checks": {}}
        shape = ["--size", size, "--batch", batch]
        tag = f"{arch}-{size}-b{batch}"
        pixels = os.path.join(checks_dir, f"pixels-{size}-b{batch}.npy")
        if a.check and not os.path.exists(pixels):
            np.save(pixels, np.random.default_rng(1).standard_normal((int(batch), 3, h, w), dtype=np.float32))
        ref = os.path.join(checks_dir, f"{tag}-torch.npz")
        if a.check and os.path.exists(ref):
            os.remove(ref)

        def check_args(engine):
            if not a.check:
                return []
            return ["--check-input", pixels, "--check-output", os.path.join(checks_dir, f"{tag}-{engine}.npz")]

        if "dinoreg" in peers:
            res, text = child([a.dinoreg, "bench", "--model", model, *shape, *timing], log,
                              env=engine_env("dinoreg", a.isa, a.threads), quiet=family != "dinov2")
            dinoreg_lines += [l for l in text.splitlines() if re.search(r"simd|avx", l, re.I)]
            if res is None and family != "dinov2":
                r["dinoreg_unsupported"] = last_error_line(text)
                print(f"  dinoreg: not supported by this build ({r['dinoreg_unsupported']})", flush=True)
            r["dinoreg"] = res
        if "torch" in peers:
            r["torch"], _ = child([py, me, "torch", "--model", model, *shape, *timing, *check_args("torch")], log,
                                  env=engine_env("torch", a.isa, a.threads))
        elif a.check and ("ort" in peers or "ov" in peers or "dinoreg" in peers):
            # The reference only: one untimed pass.
            child([py, me, "torch", "--model", model, *shape, "--iters", "0", "--threads", str(a.threads),
                   *check_args("torch")], log, env=engine_env("torch", a.isa, a.threads))
        # ".pe": the export with DINOv2's interpolated position embeddings computed by PyTorch (see
        # cmd_export); graphs cached by earlier versions of this script are not reused.
        onnx_path = os.path.join(a.cache, f"{tag}.pe.onnx")
        if ("ort" in peers or "ov" in peers) and not os.path.exists(onnx_path):
            print(f"  exporting {onnx_path}", flush=True)
            p = subprocess.run([py, me, "export", "--model", model, *shape, "--out", onnx_path],
                               capture_output=True, text=True)
            if p.returncode != 0:
                with open(log, "a") as f:
                    f.write(p.stdout + p.stderr)
                print(f"  export failed (exit {p.returncode}); see {log}:\n{(p.stderr or p.stdout)[-1000:]}", flush=True)
        if "ort" in peers and os.path.exists(onnx_path):
            r["ort"], _ = child([py, me, "ort", "--onnx", onnx_path, *shape, *timing, *check_args("ort")], log,
                                env=engine_env("ort", a.isa, a.threads))
        if "ov" in peers and os.path.exists(onnx_path):
            r["ov"], _ = child([py, me, "ov", "--onnx", onnx_path, *shape, *timing, "--precision", a.ov_precision,
                                *check_args("ov")], log, env=engine_env("ov", a.isa, a.threads))
            if r["ov"]:
                print(f"  OpenVINO inference precision {r['ov']['inference_precision']}, runtime precisions "
                      f"{r['ov']['runtime_precisions']}", flush=True)

        if a.check and os.path.exists(ref):
            for e in ("ort", "ov"):
                out_path = os.path.join(checks_dir, f"{tag}-{e}.npz")
                if r.get(e) and os.path.exists(out_path):
                    r["checks"][e] = compare(ref, dict(np.load(out_path)), e)
            if r.get("dinoreg"):
                feats = os.path.join(checks_dir, f"{tag}-dinoreg.safetensors")
                p = subprocess.run([a.dinoreg, "features", "--model", model, "--pixels", pixels, "--output", feats],
                                   capture_output=True, text=True, env=engine_env("dinoreg", a.isa, a.threads))
                if p.returncode == 0:
                    from safetensors.numpy import load_file

                    r["checks"]["dinoreg"] = compare(ref, load_file(feats), "dinoreg")
                else:
                    print(f"  dinoreg features failed: {last_error_line(p.stdout + p.stderr)}", flush=True)
        elif a.check:
            print("  no PyTorch reference: outputs not checked", flush=True)
        results.append(r)
        for peer in ("ort", "torch", "ov"):
            if r.get("dinoreg") and r.get(peer):
                ratio = r["dinoreg"]["median_ms"] / r[peer]["median_ms"]
                print(f"  dinoreg / {NAMES[peer]}: {ratio:.2f}", flush=True)

    isa_info, gemm_capped = isa_report(a, probe, results, gemms, dinoreg_lines)
    md = render(a, results, gemms, isa_info, gemm_capped, cpu, isa)
    print("\n" + md)
    with open(os.path.join(a.cache, "bench_peers.md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.cache, "bench_peers.json"), "w") as f:
        json.dump({"cpu": cpu, "isa": isa, "isa_mode": a.isa, "threads": a.threads, "rows": results, "gemm": gemms,
                   "gemm_capped": gemm_capped,
                   "dispatch": {k: {"capped": v[0], "detail": v[1]} for k, v in isa_info.items()},
                   "torch_probe": probe.get("torch")}, f, indent=1)
    bad = [(r["label"], e) for r in results for e, c in r["checks"].items() if not c["ok"]]
    if bad:
        print("\n" + "!" * 100)
        for label, e in bad:
            print(f"!! {NAMES[e]} disagrees with PyTorch on {label} by more than {TOLERANCE:g} relative")
        print("!" * 100)
    print(f"\nwrote {os.path.join(a.cache, 'bench_peers.md')} and bench_peers.json")


def render(a, results, gemms, isa_info, gemm_capped, cpu, isa):
    """The markdown: caption, table, notes."""
    capped_mode = a.isa != "native"
    # In --isa avx2 the percentage is of the capped engines' sgemm peak only (an uncapped AVX-512 peak
    # would make the AVX2 path look twice as slow as it is).
    peak_from = {e: g for e, g in gemms.items() if not capped_mode or gemm_capped.get(e)}
    peak = max((g["gflops"] for g in peak_from.values()), default=None)
    peak_engine = max(peak_from, key=lambda e: peak_from[e]["gflops"]) if peak_from else None

    def ms(r, e):
        v = r.get(e)
        if e == "dinoreg" and r.get("dinoreg_unsupported"):
            return "n/s"
        if not v:
            return "—"
        flag = " ⚠" if e in r["checks"] and not r["checks"][e]["ok"] else ""
        return f"{v['median_ms']:.1f}{flag}"

    def rss(r, e):
        v = r.get(e)
        return f"{v['peak_rss_mb']:.0f}" if v and v.get("peak_rss_mb") is not None else "—"

    def ratio(r, e):
        if r.get("dinoreg") and r.get(e):
            return f"{r['dinoreg']['median_ms'] / r[e]['median_ms']:.2f}"
        return "—"

    def check(r, e):
        c = r["checks"].get(e)
        if not c:
            return "—"
        s = f"{c['max_rel']:.0e}"
        return s if c["ok"] else f"**⚠ {s} OFF**"

    versions = []
    for key, name in (("torch", "PyTorch"), ("transformers", "transformers"), ("onnxruntime", "ONNX Runtime"),
                      ("openvino", "OpenVINO")):
        v = next((r[e][key] for r in results for e in ("torch", "ort", "ov") if r.get(e) and key in r[e]), None)
        if v:
            versions.append(f"{name} {v.split('-')[0]}")
    lines = []
    lines.append(
        f"**{cpu}, {isa}**, {a.threads} thread(s), f32, {'ISA capped to ' + a.isa.upper() if capped_mode else 'native ISA'}; "
        f"medians of {a.iters} pass{'es' if a.iters != 1 else ''} after {a.warmup} warm-up; random weights in the HF layout; "
        + ", ".join(versions)
        + " (PyTorch with SDPA; ONNX Runtime and OpenVINO on the same `torch.onnx.export(dynamo=True, opset_version=18)` graph, "
        f"OpenVINO with INFERENCE_PRECISION_HINT={a.ov_precision}). Ratio = dinoreg's median / the peer's (below 1.0: dinoreg faster). "
        + (f"sgemm peak = {peak:.0f} GFLOP/s ({NAMES[peak_engine]}, 2048³ f32 MatMul"
           + (", capped engines only" if capped_mode else "") + ")." if peak else "No sgemm peak measured.")
    )
    lines.append("")
    lines.append(
        "| row | dinoreg ms | ONNX Runtime ms | PyTorch ms | OpenVINO ms | dinoreg / ORT | dinoreg / PyTorch | dinoreg / OpenVINO "
        "| dinoreg GFLOP/s | % of sgemm peak | peak RSS MiB (dinoreg / ORT / PyTorch / OpenVINO) "
        "| max rel. diff vs PyTorch (dinoreg / ORT / OpenVINO) |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in results:
        d = r.get("dinoreg")
        gflop = d.get("gflop", r["gflop"]) if d else r["gflop"]
        gfs = gflop / d["median_ms"] * 1e3 if d else None
        lines.append(
            f"| {r['label']} | {ms(r, 'dinoreg')} | {ms(r, 'ort')} | {ms(r, 'torch')} | {ms(r, 'ov')} "
            f"| {ratio(r, 'ort')} | {ratio(r, 'torch')} | {ratio(r, 'ov')} "
            f"| {f'{gfs:.0f}' if gfs else '—'} | {f'{100 * gfs / peak:.0f} %' if gfs and peak else '—'} "
            f"| {rss(r, 'dinoreg')} / {rss(r, 'ort')} / {rss(r, 'torch')} / {rss(r, 'ov')} "
            f"| {check(r, 'dinoreg')} / {check(r, 'ort')} / {check(r, 'ov')} |"
        )
    lines.append("")
    if gemms:
        lines.append(
            "sgemm 2048³ f32, best of 10: "
            + ", ".join(
                f"{NAMES[e]} {g['gflops']:.0f} GFLOP/s"
                + ((" (capped)" if gemm_capped.get(e) else " (NOT capped)") if capped_mode else "")
                for e, g in gemms.items()
            )
            + "."
        )
    errors = sorted({re.sub(r"^error: (config )?\S+: ", "", r["dinoreg_unsupported"])
                     for r in results if r.get("dinoreg_unsupported")})
    if errors:
        lines.append("n/s: dinoreg: not supported by this build (it says: " + "; ".join(errors) + ").")
    lines.append(
        f"Max rel. diff: max |engine − PyTorch| / max |PyTorch| over last_hidden_state and pooler_output on one "
        f"random normal input; ⚠ marks engines off by more than {TOLERANCE:g}."
    )
    if isa_info:
        lines.append("")
        lines.append("ISA dispatch" + (f" (requested: {a.isa.upper()})" if capped_mode else "") + ":")
        for e in ENGINES:
            if e in isa_info:
                capped, detail = isa_info[e]
                if capped_mode:
                    verdict = {True: "capped", False: "NOT capped", None: "cap requested, unverified"}[capped]
                    lines.append(f"- {NAMES[e]}: **{verdict}**: {detail}")
                else:
                    lines.append(f"- {NAMES[e]}: {detail}")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def timing(s, check=True):
        s.add_argument("--size", default="224x224")
        s.add_argument("--batch", type=int, default=1)
        s.add_argument("--iters", type=int, default=10)
        s.add_argument("--warmup", type=int, default=2)
        s.add_argument("--threads", type=int, default=os.cpu_count())
        if check:
            s.add_argument("--check-input", help="a float32 .npy (B, 3, H, W) to run once after timing")
            s.add_argument("--check-output", help="where to save that pass's outputs (.npz)")

    s = sub.add_parser("make")
    s.add_argument("--arch", choices=list(PRESETS), required=True)
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
    s.add_argument("--keep-pos-resize", action="store_true",
                   help="keep DINOv2's position-embedding Resize in the graph (OpenVINO gets it wrong)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("ort")
    s.add_argument("--onnx", required=True)
    timing(s)
    s.set_defaults(fn=cmd_ort)

    s = sub.add_parser("ov")
    s.add_argument("--onnx", required=True)
    s.add_argument("--precision", default="f32", help="INFERENCE_PRECISION_HINT (f32, bf16, or default)")
    timing(s)
    s.set_defaults(fn=cmd_ov)

    s = sub.add_parser("gemm")
    s.add_argument("--engine", choices=["ort", "torch", "ov"], default="ort")
    s.add_argument("--n", type=int, default=2048)
    s.add_argument("--iters", type=int, default=10)
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.set_defaults(fn=cmd_gemm)

    s = sub.add_parser("probe")
    s.add_argument("--engine", choices=["torch"], default="torch")
    s.add_argument("--threads", type=int, default=os.cpu_count())
    s.set_defaults(fn=cmd_probe)

    s = sub.add_parser("run")
    s.add_argument("--rows", default=DEFAULT_ROWS, help="arch:size:batch,... (size N or HxW)")
    s.add_argument("--peers", default="dinoreg,ort,torch,ov", help="some of dinoreg,ort,torch,ov")
    s.add_argument("--gemm", default="ort,torch,ov", help="engines whose 2048^3 sgemm is measured ('' for none)")
    s.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: cap every engine that can be capped to its AVX2 path")
    s.add_argument("--ov-precision", default="f32",
                   help="OpenVINO INFERENCE_PRECISION_HINT: f32 (default), bf16, or default (the plugin's choice)")
    s.add_argument("--no-check", dest="check", action="store_false", help="skip the output checks")
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
