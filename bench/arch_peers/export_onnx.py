#!/usr/bin/python3
"""Exports a model directory written by tests/oracle/arch/make_models.py to ONNX
through the PyTorch ports beside make_models.py (the same forward code the
goldens come from), for the ONNX Runtime peer of bench/arch.sh.

  /usr/bin/python3 bench/arch_peers/export_onnx.py SPEC MODEL_DIR OUT.onnx [--int8]

SPEC is a make_models.py real-size name (nomic-embed-text-v1.5, ...). The ports
embed one unpadded sequence, so the graph has batch 1 and a dynamic sequence
axis: inputs input_ids / attention_mask / token_type_ids [1, seq] (int64; the
mask and types are accepted and unused), output last_hidden_state [1, seq, H]
for an embedding model, logits [1, labels] for a reranker. The weights become
initializers (F16 checkpoints are upcast to F32 by the port's reader).

--int8 swaps every nn.functional.linear of the encoder for the dynamic-int8
pattern of onnxruntime.quantization.quantize_dynamic(per_channel=True):
DynamicQuantizeLinear on the activation (one uint8 scale and zero point per
tensor), MatMulInteger with int8 weights (symmetric, one scale per output
column), Cast, Mul by the scales, Add the bias. Embeddings, norms and attention
stay fp32 (as quantize_dynamic leaves them). No onnxruntime Python package is
needed: the pattern is written by a custom autograd Function's symbolic.
"""
import os
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "oracle", "arch"))
sys.path.insert(0, ARCH)

import common as C  # noqa: E402
import make_models as M  # noqa: E402
import port_bert, port_jina, port_modernbert, port_nomic, port_qwen, port_xlmr  # noqa: E402,E401

PORTS = (port_bert, port_jina, port_modernbert, port_nomic, port_qwen, port_xlmr)


def torch_shim():
    """torch, except that torch.tensor(t) of a traced tensor returns t (the
    ports build their id tensor from a Python list)."""
    shim = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    real = torch.tensor

    def tensor(x, *a, **kw):
        if isinstance(x, torch.Tensor):
            return x.to(kw.get("dtype", x.dtype))
        return real(x, *a, **kw)
    shim.tensor = tensor
    return shim


class DynInt8Linear(torch.autograd.Function):
    """y = x W^T + b, exported as the dynamic-int8 pattern; eager: the same arithmetic."""

    @staticmethod
    def forward(ctx, x, wq, scale, bias):
        xmin = torch.clamp(x.min(), max=0.0)
        xmax = torch.clamp(x.max(), min=0.0)
        s = (xmax - xmin) / 255.0
        zp = torch.clamp(torch.round(-xmin / s), 0, 255)
        xq = torch.clamp(torch.round(x / s) + zp, 0, 255)
        y = torch.matmul(xq - zp, wq.float()) * (s * scale)
        return y + bias if bias is not None else y

    @staticmethod
    def symbolic(g, x, wq, scale, bias):
        xq, s, zp = g.op("DynamicQuantizeLinear", x, outputs=3)
        wzp = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8))
        acc = g.op("MatMulInteger", xq, wq, zp, wzp)
        y = g.op("Mul", g.op("Cast", acc, to_i=1), g.op("Mul", s, scale))
        return g.op("Add", y, bias) if bias is not None else y


def int8_linear_factory():
    cache = {}

    def linear(x, weight, bias=None):
        key = id(weight)
        if key not in cache:
            w = weight.detach().float()
            sc = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)       # per output column
            q = torch.round(w / sc[:, None]).clamp(-127, 127).to(torch.int8)
            cache[key] = (q.t().contiguous(), sc.contiguous())
        wq, sc = cache[key]
        return DynInt8Linear.apply(x, wq, sc, bias)
    return linear


def read_weights(path):
    """common.read_safetensors, plus the BF16 tensors it skips (numpy has no
    bfloat16): the Qwen checkpoints of make_real.py are BF16 as the Hub's.
    A BF16 value is the top half of the float32 with the same bits."""
    import json
    import struct

    import numpy as np
    w = C.read_safetensors(path)
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, h in header.items():
            if name == "__metadata__" or h["dtype"] != "BF16":
                continue
            a, b = h["data_offsets"]
            f.seek(base + a)
            u = np.frombuffer(f.read(b - a), dtype=np.uint16).astype(np.uint32) << 16
            w[name] = torch.from_numpy(u.view(np.float32).reshape(h["shape"]))
    return w


class Wrapped(torch.nn.Module):
    def __init__(self, spec, w):
        super().__init__()
        self.spec, self.w = spec, w

    def forward(self, input_ids, attention_mask, token_type_ids):
        ids = input_ids[0]
        if self.spec.kind == "embed":
            return self.spec.forward(self.w, ids, None).unsqueeze(0)
        return self.spec.forward(self.w, ids, torch.zeros_like(ids)).reshape(1, -1)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    int8 = "--int8" in sys.argv
    if len(args) != 3 or (args[0] not in M.REAL and args[0] not in M.TINY):
        sys.exit(__doc__)
    name, d, out = args
    spec = M.REAL[name]() if name in M.REAL else M.TINY[name]()  # a tiny name: for checking the export
    torch.set_num_threads(2)
    w = read_weights(os.path.join(d, "model.safetensors"))
    w = {k: (v.float() if v.is_floating_point() else v) for k, v in w.items()}
    shim = torch_shim()
    for p in PORTS:
        p.torch = shim
    # the ports call F.linear through port_bert.linear and F.layer_norm with
    # (x.shape[-1],), which the tracer keeps symbolic: make it a constant
    fshim = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    fshim.layer_norm = lambda x, shape, *a, **kw: F.layer_norm(x, tuple(int(n) for n in shape), *a, **kw)
    if int8:
        fshim.linear = int8_linear_factory()
    for p in PORTS:
        if hasattr(p, "F"):
            p.F = fshim
    model = Wrapped(spec, w).eval()
    n = 7
    ids = torch.tensor([[spec.cls] + [spec.filler[0] + i for i in range(n - 2)] + [spec.sep]], dtype=torch.long)
    outname = "last_hidden_state" if spec.kind == "embed" else "logits"
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), out,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=[outname],
                          dynamic_axes={"input_ids": {1: "seq"}, "attention_mask": {1: "seq"},
                                        "token_type_ids": {1: "seq"}, outname: {1: "seq"}} if spec.kind == "embed"
                          else {"input_ids": {1: "seq"}, "attention_mask": {1: "seq"}, "token_type_ids": {1: "seq"}},
                          opset_version=14, do_constant_folding=True)
    print("%s%s -> %s (%.0f MB)" % (name, " int8" if int8 else "", out, os.path.getsize(out) / 1e6))


if __name__ == "__main__":
    main()
