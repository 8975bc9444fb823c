#!/usr/bin/env python3
"""PyTorch eager reference for `cachet bench model`: one sampler step of the same DiT as Cachet's model/
(same architecture and size, random weights), timed in this process.

The step is the one model.(*DiT).step runs: with guidance > 1 the batch is doubled (CFG rows), then
patchify -> N adaLN-Zero blocks (matmul/softmax attention, like Cachet's) -> final layer -> unpatchify,
the learned-sigma half dropped, the CFG combination and the sampler update (flow Euler or DDIM). The
adaLN modulation vectors depend only on (t, condition); like Cachet's sampler they are computed once,
outside the timed step. The step always starts from the same x (random weights would drift it).

Usage: reference_step.py CONFIG_JSON --batch B --guidance G --threads N [--attn matmul|sdpa]
Protocol (line based): prints one JSON line {"ready": ...}; then each stdin line "step K" runs K steps and
prints {"times": [wall seconds, ...], "cpu": [process CPU seconds, ...]}; "quit" (or EOF) ends it.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class Attention(nn.Module):
    def __init__(self, dim, heads, sdpa):
        super().__init__()
        self.heads, self.hd, self.sdpa = heads, dim // heads, sdpa
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            a = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
            o = a.softmax(dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, sdpa):
        super().__init__()
        self.attn = Attention(dim, heads, sdpa)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.ada = nn.Linear(dim, 6 * dim)

    def forward(self, x, mod):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod
        d = x.shape[-1]
        x = x + gate_a * self.attn(modulate(F.layer_norm(x, (d,), eps=1e-6), shift_a, scale_a))
        h = modulate(F.layer_norm(x, (d,), eps=1e-6), shift_m, scale_m)
        return x + gate_m * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class DiT(nn.Module):
    def __init__(self, cfg, sdpa):
        super().__init__()
        self.cfg = cfg
        d, c, p = cfg["width"], cfg["channels"], cfg["patch"]
        self.out_c = 2 * c if cfg.get("learn_sigma") else c
        self.grid = cfg["image_size"] // p
        self.patch = nn.Conv2d(c, d, p, stride=p)
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid, d) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d, cfg["heads"], int(d * cfg["mlp_ratio"]), sdpa) for _ in range(cfg["depth"]))
        self.final_ada = nn.Linear(d, 2 * d)
        self.final = nn.Linear(d, p * p * self.out_c)
        for prm in self.parameters():
            nn.init.normal_(prm, 0, 0.02)

    def modulation(self, c):
        """Per-block [shift, scale, gate]x2 and the final shift/scale, each [B, 1, D] (contiguous)."""
        sc = F.silu(c)
        blocks = [[t.unsqueeze(1).contiguous() for t in b.ada(sc).chunk(6, dim=1)] for b in self.blocks]
        final = [t.unsqueeze(1).contiguous() for t in self.final_ada(sc).chunk(2, dim=1)]
        return blocks, final

    def forward(self, x, mod):
        blocks, final = mod
        n, d, p, g = x.shape[0], self.cfg["width"], self.cfg["patch"], self.grid
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for blk, m in zip(self.blocks, blocks):
            h = blk(h, m)
        h = self.final(modulate(F.layer_norm(h, (d,), eps=1e-6), final[0], final[1]))
        h = h.reshape(n, g, g, p, p, self.out_c).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(n, self.out_c, g * p, g * p)


def ddpm_alpha_bar(t):
    ab = 1.0
    for i in range(t + 1):
        ab *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999)
    return ab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--attn", choices=["matmul", "sdpa"], default="matmul")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = json.loads(a.config)
    n, ch, size = a.batch, cfg["channels"], cfg["image_size"]
    guided = a.guidance > 1
    rows = 2 * n if guided else n
    steps = 20
    flow = cfg.get("prediction", "flow") == "flow"
    if flow:
        delta = -1.0 / steps
    else:
        stride = 1000 // steps
        t0 = (steps - 1) * stride
        ab, ab_prev = ddpm_alpha_bar(t0), ddpm_alpha_bar(t0 - stride)

    with torch.inference_mode():
        model = DiT(cfg, a.attn == "sdpa").eval()
        mod = model.modulation(torch.randn(rows, cfg["width"]))
        x = torch.randn(n, ch, size, size)

        def step():
            inp = torch.cat([x, x], 0) if guided else x
            out = model(inp, mod)
            if out.shape[1] != ch:
                out = out[:, :ch]
            if guided:
                c, u = out[:n], out[n:]
                out = u + a.guidance * (c - u)
            if flow:
                return x + out * delta
            x0 = (x - out * math.sqrt(1 - ab)) * (1 / math.sqrt(ab))
            return x0 * math.sqrt(ab_prev) + out * math.sqrt(1 - ab_prev)

        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "params": sum(p.numel() for p in model.parameters()), "attn": a.attn}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] != "step" or len(cmd) != 2:
                print(json.dumps({"error": "unknown command %r" % line.strip()}), flush=True)
                continue
            times, cpu = [], []
            for _ in range(int(cmd[1])):
                c0, start = time.process_time(), time.perf_counter()
                r = step()
                del r
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - c0)
            print(json.dumps({"times": times, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
