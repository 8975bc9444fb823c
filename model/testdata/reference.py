#!/usr/bin/env python3
"""Plain-PyTorch reference of Cachet's denoiser, for the Go parity tests (model/parity_test.go,
model/convert_test.go). Regenerate with scripts/goldens.sh; the outputs are committed, so CI needs no Python.

It re-implements, independently of the Go code, exactly the architecture Cachet's model/ package runs:
  - the image path is facebookresearch/DiT's models.py (PatchEmbed conv, get_2d_sincos_pos_embed with its
    meshgrid(w, h) quirk, TimestepEmbedder [cos ‖ sin] → Linear-SiLU-Linear, adaLN-Zero DiTBlocks with
    LayerNorm(eps 1e-6, no affine), timm's fused-qkv Attention, Mlp with GELU(tanh), FinalLayer, unpatchify
    nhwpqc→nchpwq, learn_sigma), with DiT's own state_dict names;
  - label conditioning: DiT's LabelEmbedder (nn.Embedding with one extra row, the null class);
  - Cachet's text encoder (model/text.go): token (+ pad row) and position embeddings, pre-LN layers
    (LayerNorm with affine, eps 1e-6; 4 heads; MLP 2×, GELU tanh; no attention mask: pads take part),
    ln_final, mean over the real words, projection, a learned null vector for null rows;
  - the samplers of model/sampler.go: flow-matching Euler (t = 1 → 0, model time 1000·t) and DDIM (η = 0)
    over DiT's linear-β DDPM schedule, with classifier-free guidance u + g·(c − u) on the first C channels.

One deliberate departure from DiT: the timestep sinusoid is computed in float64 and rounded to float32, as
Cachet's Go code does (DiT computes it in float32, which differs by up to ~6e-5 at t ≈ 1000).

Outputs (all in the directory given as the only argument, default: next to this script):
  parity_text_flow.safetensors      Cachet weights (cachet.format = dit-v1, cachet.config = Config JSON)
  parity_text_flow_golden.safetensors   inputs + expected Evaluate and Sample outputs
  parity_label_eps.safetensors, parity_label_eps_golden.safetensors   the same for the label/ε model
  dit_label_eps.pt                  the label/ε model's state_dict in DiT's layout (torch.save)
  dit_bad_names.pt                  a tiny DiT state_dict with a missing, an unexpected and a mis-shaped tensor
  dit_bad_pos.pt                    a tiny DiT state_dict whose pos_embed uses the un-quirked meshgrid
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------- DiT (facebookresearch/DiT models.py)

def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed_from_grid(embed_dim, grid):
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, quirk=True):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    # DiT: "here w goes first" — grid[0] holds the column index, so the first half encodes the column.
    grid = np.meshgrid(grid_w, grid_h) if quirk else np.meshgrid(grid_w, grid_h, indexing="ij")
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    return get_2d_sincos_pos_embed_from_grid(embed_dim, grid)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):  # timm's, as DiT uses it (flatten=True, norm=Identity)
    def __init__(self, img_size, patch, in_chans, dim):
        super().__init__()
        self.patch_size = (patch, patch)
        self.num_patches = (img_size // patch) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):  # timm's Attention (qkv_bias=True), written with matmul/softmax
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):  # timm's Mlp with DiT's approx_gelu
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        # DiT's formula; float64 like Cachet (see the module docstring).
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float64) / half)
        args = t[:, None].to(torch.float64) * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(torch.get_default_dtype())

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden_size):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)
        self.num_classes = num_classes

    def forward(self, labels, null):
        labels = torch.where(null, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# ---------------------------------------------------------------- Cachet's text encoder (model/text.go)

def prompt_words(prompt):  # model.PromptWords
    for ch in ",.;":
        prompt = prompt.replace(ch, " ")
    return prompt.lower().split()


class TextLayer(nn.Module):
    def __init__(self, dt, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(dt, eps=1e-6)
        self.ln2 = nn.LayerNorm(dt, eps=1e-6)
        self.attn = Attention(dt, heads)
        self.mlp = Mlp(dt, 2 * dt)


class TextEncoder(nn.Module):
    def __init__(self, vocab, max_words, dt, depth, width):
        super().__init__()
        self.vocab, self.max_words = list(vocab), max_words
        self.index = {w: i for i, w in enumerate(vocab)}
        self.token_embedding = nn.Parameter(torch.zeros(len(vocab) + 1, dt))  # row len(vocab) pads
        self.position_embedding = nn.Parameter(torch.zeros(max_words, dt))
        heads = 4 if dt % 4 == 0 else 1
        self.layers = nn.ModuleList([TextLayer(dt, heads) for _ in range(depth)])
        self.ln_final = nn.LayerNorm(dt, eps=1e-6)
        self.proj = nn.Linear(dt, width)
        self.null_embedding = nn.Parameter(torch.zeros(width))

    def forward(self, prompts, null):
        b, l, pad = len(prompts), self.max_words, len(self.vocab)
        ids = torch.full((b, l), pad, dtype=torch.long)
        mask = torch.zeros(b, l, 1)
        for i, p in enumerate(prompts):
            if null[i]:
                continue
            words = prompt_words(p)
            assert 0 < len(words) <= l, p
            for j, w in enumerate(words):
                ids[i, j] = self.index[w]
                mask[i, j, 0] = 1
        x = self.token_embedding[ids] + self.position_embedding
        for layer in self.layers:
            x = x + layer.attn(layer.ln1(x))
            x = x + layer.mlp(layer.ln2(x))
        x = self.ln_final(x)
        count = mask.sum(1).clamp_min(1)
        pooled = self.proj((x * mask).sum(1) / count)
        n = torch.tensor([1.0 if z else 0.0 for z in null]).unsqueeze(1)
        return pooled * (1 - n) + n * self.null_embedding


# ---------------------------------------------------------------- the model

class DiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, p, c = cfg["width"], cfg["patch"], cfg["channels"]
        self.in_channels = c
        self.out_channels = 2 * c if cfg["learn_sigma"] else c
        self.x_embedder = PatchEmbed(cfg["image_size"], p, c, d)
        self.t_embedder = TimestepEmbedder(d)
        if cfg["conditioning"] == "label":
            self.y_embedder = LabelEmbedder(cfg["num_classes"], d)
        else:
            self.text = TextEncoder(cfg["vocabulary"], cfg["max_words"], cfg["text_width"], cfg["text_depth"], d)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.x_embedder.num_patches, d), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(d, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])])
        self.final_layer = FinalLayer(d, p, self.out_channels)
        pe = get_2d_sincos_pos_embed(d, int(self.x_embedder.num_patches ** 0.5))
        self.pos_embed.data.copy_(torch.from_numpy(pe).float().unsqueeze(0))

    def condition(self, prompts, labels, null):
        if self.cfg["conditioning"] == "label":
            return self.y_embedder(torch.tensor(labels, dtype=torch.long), torch.tensor(null))
        return self.text(prompts, null)

    def unpatchify(self, x):
        c = self.out_channels
        p = self.x_embedder.patch_size[0]
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(shape=(x.shape[0], c, h * p, h * p))

    def forward(self, x, t, y):
        """x [N, C, H, W], t [N] model times, y [N, D] condition vectors."""
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + y
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))


def ddpm_alphas_cumprod():  # DiT's gaussian_diffusion: linear betas 1e-4…0.02 over 1000 steps, float64
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def sample(model, prompts, labels, noise, steps, guidance):
    """model/sampler.go's Sample with explicit noise."""
    cfg = model.cfg
    n, ch = noise.shape[0], cfg["channels"]
    guided = guidance > 1
    rows = 2 * n if guided else n
    null = [k >= n for k in range(rows)]
    if cfg["conditioning"] == "label":
        y = model.condition(None, list(labels) + [0] * (rows - n), null)
    else:
        y = model.condition(list(prompts) + [""] * (rows - n), None, null)
    ab = ddpm_alphas_cumprod()
    x = noise.clone()
    for i in range(steps):
        if cfg["prediction"] == "flow":
            t = 1000.0 * (1 - i / steps)
        else:
            stride = 1000 // steps
            t = float((steps - 1 - i) * stride)
        inp = torch.cat([x, x]) if guided else x
        out = model(inp, torch.full((rows,), t), y)[:, :ch]
        if guided:
            c, u = out[:n], out[n:]
            out = u + guidance * (c - u)
        if cfg["prediction"] == "flow":
            x = x + out * (-1.0 / steps)
        else:
            a, ti = ab[int(t)], int(t) - stride
            a_prev = ab[ti] if ti >= 0 else 1.0
            x0 = (x - out * math.sqrt(1 - a)) * (1 / math.sqrt(a))
            x = x0 * math.sqrt(a_prev) + out * math.sqrt(1 - a_prev)
    return x


# ---------------------------------------------------------------- weights and files

def randomize(model, seed):
    """Deterministic random weights at scales where every parameter visibly changes the output
    (adaLN modulations included: not zero as in adaLN-Zero's initialisation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            if p.dim() >= 2 and "embedding" not in name and "embedding_table" not in name:
                fan_in = p[0].numel()
                std = 1.0 / math.sqrt(fan_in)
                if "adaLN_modulation" in name:
                    std *= 0.5
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith(("ln1.weight", "ln2.weight", "ln_final.weight")):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:  # biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def go_config_json(cfg):
    """model.Config as Go's encoding/json writes it (field order, omitempty)."""
    keys = ["image_size", "channels", "patch", "width", "depth", "heads", "mlp_ratio", "learn_sigma",
            "prediction", "conditioning", "vocabulary", "max_words", "text_width", "text_depth", "num_classes"]
    out = {}
    for k in keys:
        v = cfg.get(k)
        if k in ("vocabulary", "max_words", "text_width", "text_depth", "num_classes") and not v:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out[k] = v
    return json.dumps(out, separators=(",", ":"))


_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: 8-byte LE header length, JSON header (space-padded to 8), raw LE data."""
    assert sys.byteorder == "little"
    header, blobs, offset = {"__metadata__": dict(metadata)}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def cachet_state(model):
    """The Go VarStore's names: DiT's, minus the fixed pos_embed buffer, with the label table unwrapped."""
    out = {}
    for name, t in model.state_dict().items():
        if name == "pos_embed":
            continue
        if name == "y_embedder.embedding_table.weight":
            name = "y_embedder.embedding_table"
        out[name] = t.float()
    return out


def make_golden(outdir, stem, cfg, seed, eval_in, sample_in):
    model = DiT(cfg).eval()
    randomize(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    res = cfg["image_size"]
    tensors, meta = {}, {}
    with torch.no_grad():
        b = len(eval_in["t"])
        x = torch.randn((b, cfg["channels"], res, res), generator=g)
        t = torch.tensor(eval_in["t"], dtype=torch.float32)
        null = eval_in["null"]
        y = model.condition(eval_in.get("prompts"), eval_in.get("labels"), null)
        out = model(x, t, y)
        tensors.update(eval_x=x, eval_t=t, eval_out=out)
        meta["eval"] = json.dumps(eval_in)

        n = len(sample_in.get("prompts") or sample_in.get("labels"))
        noise = torch.randn((n, cfg["channels"], res, res), generator=g)
        xs = sample(model, sample_in.get("prompts"), sample_in.get("labels"), noise, sample_in["steps"], sample_in["guidance"])
        tensors.update(sample_noise=noise, sample_out=xs)
        meta["sample"] = json.dumps(sample_in)

        # How far float32 itself is from the exact answer (information for the tolerance).
        torch.set_default_dtype(torch.float64)
        try:
            m64 = DiT(cfg).eval()
            m64.load_state_dict(model.state_dict())
            out64 = m64(x.double(), t.double(), m64.condition(eval_in.get("prompts"), eval_in.get("labels"), null))
        finally:
            torch.set_default_dtype(torch.float32)
    print(f"{stem}: eval_out range ±{out.abs().max():.3f}, fp32 vs fp64 max |Δ| {(out.double() - out64).abs().max():.2e}; "
          f"sample_out range ±{xs.abs().max():.3f}")

    meta_w = {"cachet.format": "dit-v1", "cachet.config": go_config_json(cfg),
              "cachet.note": "random weights from model/testdata/reference.py (parity golden)"}
    write_safetensors(os.path.join(outdir, stem + ".safetensors"), cachet_state(model), meta_w)
    write_safetensors(os.path.join(outdir, stem + "_golden.safetensors"), tensors, meta)
    return model


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(outdir, exist_ok=True)

    text_cfg = dict(image_size=8, channels=3, patch=2, width=32, depth=2, heads=4, mlp_ratio=2.0, learn_sigma=False,
                    prediction="flow", conditioning="text",
                    vocabulary=["a", "small", "large", "red", "blue", "cat", "dog", "left"],
                    max_words=5, text_width=16, text_depth=2)
    make_golden(outdir, "parity_text_flow", text_cfg, 11,
                eval_in=dict(prompts=["a red cat", "Dog, blue.", "a small blue dog left", "ignored", "cat"],
                             null=[False, False, False, True, False],
                             t=[0.0, 1000.0, 37.5, 512.25, 999.0]),
                sample_in=dict(prompts=["a red cat", "large blue dog"], steps=4, guidance=3.0))

    label_cfg = dict(image_size=8, channels=4, patch=2, width=32, depth=2, heads=2, mlp_ratio=4.0, learn_sigma=True,
                     prediction="epsilon", conditioning="label", num_classes=5)
    label = make_golden(outdir, "parity_label_eps", label_cfg, 23,
                        eval_in=dict(labels=[0, 4, 2, 1], null=[False, False, True, False],
                                     t=[0.0, 999.0, 250.0, 731.5]),
                        sample_in=dict(labels=[3, 0], steps=4, guidance=3.0))
    # The same weights in DiT's own checkpoint layout, for the converter (its golden is the label eval).
    torch.save(label.state_dict(), os.path.join(outdir, "dit_label_eps.pt"))

    tiny = dict(image_size=4, channels=1, patch=2, width=16, depth=2, heads=2, mlp_ratio=4.0, learn_sigma=True,
                prediction="epsilon", conditioning="label", num_classes=2)
    m = DiT(tiny)
    randomize(m, 5)
    sd = m.state_dict()
    del sd["blocks.1.mlp.fc2.bias"]                              # missing
    sd["blocks.0.attn.rel_pos"] = torch.zeros(3, 3)              # unexpected
    sd["final_layer.linear.bias"] = torch.zeros(5)               # mis-shaped (wants 2·2·2 = 8)
    torch.save(sd, os.path.join(outdir, "dit_bad_names.pt"))
    sd = m.state_dict()
    sd["pos_embed"] = torch.from_numpy(get_2d_sincos_pos_embed(16, 2, quirk=False)).float().unsqueeze(0)
    torch.save(sd, os.path.join(outdir, "dit_bad_pos.pt"))


if __name__ == "__main__":
    main()
